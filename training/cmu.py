"""CMU motion-capture BVH takes -> Human3.6M-17 poses in metres (read with pybvh).

Two mappings:

- ``"direct"`` (the joint correspondence in data.md): Hips, RightUpLeg, RightLeg, RightFoot, LeftUpLeg, LeftLeg,
  LeftFoot, Spine, Neck, Neck1, Head, LeftArm, LeftForeArm, LeftHand, RightArm, RightForeArm, RightHand.
- ``"coco"`` (default, what the shipped lifter trains on): the 17 COCO keypoints a 2D detector reports are placed
  on the mocap skeleton (face points from the head segment: nose, eyes and ears around the head centre), and the
  H3.6M-17 joints are derived from them by ``skeleton.coco_to_h36m`` exactly as the node derives them from a
  detector's 2D keypoints. Pelvis = mid-hip, thorax = mid-shoulder, head = the extrapolated head top: 3D targets
  and 2D inputs then mean the same points.

Output world frame: Human3.6M's (z up, metres); BVH's y-up is rotated to z-up. CMU units are scaled so that the
rest-pose standing height (lowest toe to head end) equals ``height`` metres.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petr_ros import skeleton
from training.motion.body import Y_UP_TO_Z_UP, coco_keypoints

DIRECT_MAPPING: tuple[str, ...] = (
    "Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Spine", "Neck", "Neck1",
    "Head", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm", "RightHand",
)
# COCO body points (index -> CMU joint); face points 0-4 are built from the head segment.
_COCO_BODY = {
    5: "LeftArm", 6: "RightArm", 7: "LeftForeArm", 8: "RightForeArm", 9: "LeftHand", 10: "RightHand",
    11: "LeftUpLeg", 12: "RightUpLeg", 13: "LeftLeg", 14: "RightLeg", 15: "LeftFoot", 16: "RightFoot",
}
_REQUIRED = sorted(set(DIRECT_MAPPING) | set(_COCO_BODY.values()) | {"EndSiteHead"})
# Head centre between the ears: 40 % of the way from the CMU Head joint to the head end site (the face geometry
# around it is training.motion.body's).
_HEAD_CENTRE_FRACTION = 0.4

_Y_UP_TO_Z_UP = Y_UP_TO_Z_UP  # BVH (y up) -> Human3.6M world (z up)


@dataclass
class CmuTake:
    """A converted take: positions in the Human3.6M world frame (z up), metres."""

    name: str
    h36m: np.ndarray  # (F, 17, 3) H3.6M-17 joints
    coco: np.ndarray  # (F, 17, 3) COCO-17 keypoints on the same body
    fps: float
    scale: float  # metres per CMU unit
    height: float  # metres


def read_bvh(path: str | os.PathLike):
    """pybvh.Bvh of a file, or ValueError naming the file and what is wrong with it."""
    import pybvh  # heavy-ish import only when BVH is used

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BVH file not found")
    try:
        bvh = pybvh.read_bvh_file(str(path))
    except Exception as exc:  # pybvh raises several types for malformed files
        raise ValueError(f"{path}: malformed BVH ({exc})") from exc
    missing = [name for name in _REQUIRED if name not in bvh.node_index]
    if missing:
        raise ValueError(f"{path}: not a CMU skeleton, missing joints {missing}")
    if bvh.frame_count < 1:
        raise ValueError(f"{path}: BVH has no motion frames")
    return bvh


def coco_from_cmu(nodes: dict[str, np.ndarray], height: float) -> np.ndarray:
    """COCO-17 keypoints (F, 17, 3) from CMU node positions (F, 3) each, in a z-up metre world.

    The face sits around the head centre on the Head -> head end segment; its sideways direction comes from the
    shoulders (the head segment has no reliable roll in CMU takes).
    """
    body = {skeleton.COCO_JOINT_NAMES[index]: nodes[name] for index, name in _COCO_BODY.items()}
    head, head_end = nodes["Head"], nodes["EndSiteHead"]
    centre = head + _HEAD_CENTRE_FRACTION * (head_end - head)
    return coco_keypoints(body, centre, head_end - head, height)


def load_cmu_take(
    path: str | os.PathLike,
    height: float = 1.70,
    frame_step: int = 1,
    mapping: str = "coco",
) -> CmuTake:
    """Read a CMU BVH take and convert it to H3.6M-17 (and COCO-17) world poses in metres.

    height: standing height in metres the skeleton is scaled to; frame_step: keep every n-th frame (120 Hz takes).
    """
    if mapping not in ("coco", "direct"):
        raise ValueError(f"mapping must be 'coco' or 'direct', got {mapping!r}")
    if not 0.5 <= height <= 2.5:
        raise ValueError(f"height must be a human standing height in metres (0.5-2.5), got {height}")
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    bvh = read_bvh(path)
    index = bvh.node_index
    rest = np.asarray(bvh.rest_pose_positions(), dtype=np.float64)
    up_axis = 1  # CMU BVH is y-up
    lowest = min(rest[index[n], up_axis] for n in index if "Toe" in n or "Foot" in n)
    rest_height = rest[index["EndSiteHead"], up_axis] - lowest
    if rest_height <= 0:
        raise ValueError(f"{path}: rest pose has no positive standing height ({rest_height})")
    scale = height / rest_height
    positions = np.asarray(bvh.node_positions(), dtype=np.float64)[::frame_step]
    world = (positions * scale) @ _Y_UP_TO_Z_UP.T
    nodes = {name: world[:, i] for name, i in index.items()}
    coco = coco_from_cmu(nodes, height)
    if mapping == "coco":
        h36m, _ = skeleton.coco_to_h36m(coco)
    else:
        h36m = np.stack([nodes[name] for name in DIRECT_MAPPING], axis=1)
    return CmuTake(
        name=Path(path).stem,
        h36m=h36m.astype(np.float32),
        coco=coco.astype(np.float32),
        fps=float(bvh.fps) / frame_step,
        scale=float(scale),
        height=float(height),
    )
