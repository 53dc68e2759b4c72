"""The one definition of the skeletons PETR uses: Human3.6M 17 joints, the raw H3.6M 32, and COCO-17.

Everything else in the package (model, kinematics, metrics, messages, markers, training) takes joint names,
order, parents, bones and left/right pairs from here.
"""

from __future__ import annotations

import numpy as np

from petr_ros.validation import check_points

# --- Human3.6M, 17 joints, in the order of VideoPose3D-format data -------------------------------------------
JOINT_NAMES: tuple[str, ...] = (
    "pelvis",  # 0 root, mid-hip
    "right_hip",  # 1
    "right_knee",  # 2
    "right_ankle",  # 3
    "left_hip",  # 4
    "left_knee",  # 5
    "left_ankle",  # 6
    "spine",  # 7
    "thorax",  # 8
    "neck_nose",  # 9
    "head",  # 10 head top
    "left_shoulder",  # 11
    "left_elbow",  # 12
    "left_wrist",  # 13
    "right_shoulder",  # 14
    "right_elbow",  # 15
    "right_wrist",  # 16
)
NUM_JOINTS = len(JOINT_NAMES)
ROOT = 0
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# PARENTS[j] is the parent of joint j (-1 for the root). Parents always come before children.
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

# The 16 bones as (child, parent), indexed by bone number b = child - 1: bone b ends at joint b + 1.
BONES: tuple[tuple[int, int], ...] = tuple((j, PARENTS[j]) for j in range(1, NUM_JOINTS))
NUM_BONES = len(BONES)
BONE_NAMES: tuple[str, ...] = tuple(f"{JOINT_NAMES[p]}->{JOINT_NAMES[c]}" for c, p in BONES)
BONE_CHILDREN = np.array([c for c, _ in BONES], dtype=np.int64)
BONE_PARENTS = np.array([p for _, p in BONES], dtype=np.int64)

# Left/right symmetry (pairs of joint indices) and the permutation that mirrors a pose.
SYMMETRY_PAIRS: tuple[tuple[int, int], ...] = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
LEFT_JOINTS: tuple[int, ...] = tuple(left for left, _ in SYMMETRY_PAIRS)
RIGHT_JOINTS: tuple[int, ...] = tuple(right for _, right in SYMMETRY_PAIRS)
CENTRE_JOINTS: tuple[int, ...] = tuple(j for j in range(NUM_JOINTS) if j not in LEFT_JOINTS + RIGHT_JOINTS)


def _flip_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_JOINTS))
    for left, right in SYMMETRY_PAIRS:
        perm[left], perm[right] = right, left
    return tuple(perm)


FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation()


def joint_side(joint: int) -> str:
    """'left', 'right' or 'centre' for an H3.6M-17 joint index (used for colours and mirroring)."""
    if joint in LEFT_JOINTS:
        return "left"
    if joint in RIGHT_JOINTS:
        return "right"
    return "centre"


def bone_side(bone: int) -> str:
    """Side of bone b, taken from its child joint."""
    return joint_side(BONES[bone][0])


# --- Raw Human3.6M, 32 joints -> 17 -------------------------------------------------------------------------
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def reduce_h36m32(poses: np.ndarray) -> np.ndarray:
    """(..., 32, D) raw Human3.6M joints -> (..., 17, D) in this module's order."""
    poses = np.asarray(poses)
    if poses.ndim < 2 or poses.shape[-2] != 32:
        raise ValueError(f"expected (..., 32, D) raw Human3.6M joints, got shape {poses.shape}")
    return poses[..., H36M32_TO_17, :]


# --- COCO-17 -> H3.6M-17 --------------------------------------------------------------------------------------
COCO_JOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_NUM_JOINTS = len(COCO_JOINT_NAMES)
COCO_FLIP_PERMUTATION: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# H3.6M joints that are COCO joints as they are.
_COCO_DIRECT = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
# Head top above the head centre (mean of eyes and ears), as a fraction of the thorax -> head-centre distance.
# In Human3.6M the head-top marker sits about half a neck-and-face length above eye level.
HEAD_TOP_EXTRAPOLATION = 0.5
_DIRECT_H36M, _DIRECT_COCO = np.array(list(_COCO_DIRECT)), np.array(list(_COCO_DIRECT.values()))
# H3.6M joints whose 2D position coco_to_h36m extrapolates (the head top: no detector sees it) rather than measures
# or averages: metric placement does not fit them (camera.place_skeleton).
EXTRAPOLATED_JOINTS: tuple[int, ...] = (10,)


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convert COCO-17 keypoints to the H3.6M-17 skeleton.

    keypoints: (..., 17, D) in COCO order (D = 2 for pixels, 3 for points); scores: (..., 17) or None (all 1).
    Returns (keypoints (..., 17, D), scores (..., 17)) in H3.6M order:
      pelvis = mid-hip, thorax = mid-shoulder, spine = midway pelvis-thorax, neck/nose = nose,
      head = head centre (score-weighted mean of eyes and ears) pushed away from the thorax by
      HEAD_TOP_EXTRAPOLATION of the thorax->head-centre vector. A derived joint's score is the lowest score of
      the joints it is built from (for the head: the nose's and the face points' weighted mean).
    """
    kp = check_points(keypoints, "keypoints", joints=COCO_NUM_JOINTS, dims=(2, 3), dtype=np.float64)
    if scores is None:
        sc = np.ones(kp.shape[:-1], dtype=np.float64)
    else:
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != kp.shape[:-1]:
            raise ValueError(f"scores must have shape {kp.shape[:-1]} to match keypoints {kp.shape}, got {sc.shape}")
        if not np.isfinite(sc).all():
            raise ValueError(f"scores (shape {sc.shape}) contain {int((~np.isfinite(sc)).sum())} NaN/inf values")
    out = np.empty_like(kp)
    out_sc = np.empty_like(sc)
    out[..., _DIRECT_H36M, :] = kp[..., _DIRECT_COCO, :]  # one gather, not 13 item assignments (bit for bit)
    out_sc[..., _DIRECT_H36M] = sc[..., _DIRECT_COCO]
    out[..., 0, :] = 0.5 * (kp[..., 11, :] + kp[..., 12, :])
    out_sc[..., 0] = np.minimum(sc[..., 11], sc[..., 12])
    out[..., 8, :] = 0.5 * (kp[..., 5, :] + kp[..., 6, :])
    out_sc[..., 8] = np.minimum(sc[..., 5], sc[..., 6])
    out[..., 7, :] = 0.5 * (out[..., 0, :] + out[..., 8, :])
    out_sc[..., 7] = np.minimum(out_sc[..., 0], out_sc[..., 8])

    face = kp[..., 1:5, :]
    w = np.clip(sc[..., 1:5], 1e-6, None)[..., None]
    head_centre = (face * w).sum(axis=-2) / w.sum(axis=-2)
    out[..., 10, :] = head_centre + HEAD_TOP_EXTRAPOLATION * (head_centre - out[..., 8, :])
    out_sc[..., 10] = np.minimum(sc[..., 0], sc[..., 1:5].mean(axis=-1))
    return out, out_sc


def flip_pose(joints: np.ndarray, axis: int = 0, layout: str = "h36m") -> np.ndarray:
    """Mirror a 17-joint pose: negate coordinate `axis` and swap left/right joints (data augmentation). `layout`:
    'h36m' (this module's H3.6M-17 order) or 'coco' (COCO-17); both have 17 joints, so the layout must be said."""
    permutations = {"h36m": FLIP_PERMUTATION, "coco": COCO_FLIP_PERMUTATION}
    if layout not in permutations:
        raise ValueError(f"layout must be one of {tuple(permutations)}, got {layout!r}")
    joints = check_points(joints, "joints", joints=NUM_JOINTS, dims=(2, 3))
    flipped = joints[..., list(permutations[layout]), :].copy()
    flipped[..., axis] = -flipped[..., axis]
    return flipped
