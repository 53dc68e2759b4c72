"""Joint rotations from positions with the limbs' twist read off the elbow and knee bend.

`kinematics.joint_rotations` cannot see twist about a bone and takes the minimal one. For an upper arm or a
thigh the twist IS visible whenever the elbow or knee is bent: the forearm (shank) then leaves the upper arm
(thigh) in the joint's flexion direction (forwards for the elbow, backwards for the knee in the rest T-pose,
kinematics.JOINT_FRAMES), so the upper arm's rotation must carry that rest flexion direction onto the bend.
`rotations_with_limb_twist` does that for the four proximal limb bones, blending smoothly back to the minimal
twist as the limb straightens (where the bend direction is lost in noise), and re-derives the forearms and
shanks minimally from their corrected parents. Measured against real mocap rotations, this is what the node
publishes (see docs/model_card.md).
"""

from __future__ import annotations

import numpy as np

from petr_ros import kinematics
from petr_ros.skeleton import NUM_JOINTS, PARENTS
from petr_ros.validation import check_points

# (proximal joint j whose rotation R_j carries bone parent(j) -> j, distal joint, the rest direction the distal
# bone bends towards): upper arms bend forwards (the person faces -z), thighs' shanks bend backwards (+z).
_FRONT, _BACK = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
LIMBS: tuple[tuple[int, int, np.ndarray], ...] = (
    (12, 13, _FRONT),  # left upper arm, bend of the left elbow
    (15, 16, _FRONT),  # right upper arm
    (5, 6, _BACK),  # left thigh, bend of the left knee
    (2, 3, _BACK),  # right thigh
)
BEND_FULL = np.radians(25.0)  # bends above this fix the twist fully; below it the minimal twist blends in
_PROXIMAL = [limb[0] for limb in LIMBS]
_DISTAL = [limb[1] for limb in LIMBS]
_PROXIMAL_PARENT = [PARENTS[j] for j in _PROXIMAL]
_BEND_REST = np.stack([limb[2] for limb in LIMBS])
_DISTAL_REST = kinematics.REST_DIRECTIONS[_DISTAL]
# each distal joint is its proximal joint's only child (the wrist of the elbow, the ankle of the knee)
assert all(PARENTS[d] == p and sum(q == p for q in PARENTS) == 1 for p, d in zip(_PROXIMAL, _DISTAL, strict=True))


_LIMB_ENDS, _LIMB_STARTS = np.array(_PROXIMAL + _DISTAL), np.array(_PROXIMAL_PARENT + _PROXIMAL)
_DISTAL_TERMS = kinematics._minimal_rotation_terms_np(_DISTAL_REST)
_EYE = np.eye(3)


def _unit(v: np.ndarray) -> np.ndarray:
    n2 = (v * v).sum(-1, keepdims=True)
    ok = n2 > 1e-24
    return np.where(ok, v / np.sqrt(np.where(ok, n2, 1.0)), 0.0)


def _rotation_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) unit axes, (...) angles -> (..., 3, 3); K @ K = a a^T - |a|^2 I written out."""
    k = kinematics._skew_np(axis)
    k2 = axis[..., :, None] * axis[..., None, :] - (axis * axis).sum(-1)[..., None, None] * _EYE
    return _EYE + np.sin(angle)[..., None, None] * k + (1.0 - np.cos(angle))[..., None, None] * k2


def rotations_with_limb_twist(joints3d: np.ndarray) -> np.ndarray:
    """(..., 17, 3) joints -> (..., 17, 3, 3) global joint rotations (kinematics.joint_rotations' convention), the
    upper arms' and thighs' twist taken from the elbow and knee bend, their children re-derived minimally.
    float64 numpy throughout (this runs per person and frame in the node: no torch, no np.cross/einsum/norm,
    whose fixed costs per call exceed the arithmetic on one pose)."""
    joints = check_points(joints3d, "joints3d", joints=NUM_JOINTS, dims=3).astype(np.float64, copy=False)
    rot = kinematics._joint_rotations_np(joints)[0]
    # the four limbs at once, along a limb axis of length 4
    both = _unit(joints[..., _LIMB_ENDS, :] - joints[..., _LIMB_STARTS, :])  # proximal then distal bones
    bone, child = both[..., :4, :], both[..., 4:, :]
    along = (child * bone).sum(-1, keepdims=True)
    perp = child - along * bone
    perp_norm = np.sqrt((perp * perp).sum(-1))
    bend = np.arctan2(perp_norm, along[..., 0])  # 0 = straight limb
    proximal = rot[..., _PROXIMAL, :, :]
    current = (proximal @ _BEND_REST[:, :, None])[..., 0]  # where the rest bend direction points now
    # the twist about the bone that turns `current` onto the observed bend direction, faded out when straight
    perp_u = _unit(perp)
    twist = np.arctan2((kinematics._cross_np(current, perp_u) * bone).sum(-1), (current * perp_u).sum(-1))
    twist = twist * np.clip(bend / BEND_FULL, 0.0, 1.0)
    proximal = _rotation_about(bone, twist) @ proximal
    # the distal bones (forearms, shanks): minimal rotation from their corrected parents, as joint_rotations does
    local_dir = (child[..., None, :] @ proximal)[..., 0, :]  # proximal^T child
    swing = kinematics._minimal_rotation_of_unit_np(_DISTAL_TERMS, local_dir, (child * child).sum(-1).round())
    rot[..., _PROXIMAL, :, :] = proximal
    rot[..., _DISTAL, :, :] = proximal @ swing  # a zero-length distal bone: swing = identity, its parent's frame
    return rot
