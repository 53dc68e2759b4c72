"""CMU motion capture takes 01_01 and 01_03 (Debian assimp-testmodels; CMU: free for research and commercial use),
120 Hz, read with pybvh through `training.cmu` (its COCO placement, scaled to a standing height), plus the BVH's
own joint rotations: the measured rotation of every segment.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# The module, not its names: training.cmu imports training.motion.body, so either package may be imported first.
from training import cmu as cmu_takes
from training.motion.body import MotionSequence, assets_dir, bone_rotations, make_sequence, need_file

SOURCE = "cmu"
TAKES: tuple[str, ...] = ("01_01", "01_03")
# BVH joint whose rotation turns each H3.6M bone (the BVH joint at the bone's upper end).
SEGMENT_OF_JOINT: tuple[str, ...] = (
    "Hips", "Hips", "RightUpLeg", "RightLeg", "Hips", "LeftUpLeg", "LeftLeg", "LowerBack", "Spine1", "Head", "Head",
    "LeftShoulder", "LeftArm", "LeftForeArm", "RightShoulder", "RightArm", "RightForeArm",
)


def take_path(take: str, assets: str | os.PathLike | None = None) -> Path:
    if take not in TAKES:
        raise ValueError(f"unknown CMU take {take!r}; known: {TAKES}")
    return need_file(assets_dir(assets) / f"{take}.bvh")


def global_rotations(path: str | os.PathLike, frame_step: int = 1) -> dict[str, np.ndarray]:
    """World-frame (z up) rotation (F, 3, 3) of every BVH joint, composed down the hierarchy from pybvh's locals."""
    bvh = cmu_takes.read_bvh(path)
    _, local = bvh.to_rotmat()  # (F, joints, 3, 3) in bvh.joint_names order
    local = np.asarray(local, dtype=np.float64)[::frame_step]
    topology = bvh.fk_topology
    node_names = list(bvh.node_index)
    out: dict[int, np.ndarray] = {}
    for node, parent in enumerate(topology.parent_idx):
        joint = topology.joint_idx[node]
        if joint < 0:
            continue  # end sites carry no rotation
        rot = local[:, joint]
        out[node] = rot if parent < 0 else out[int(parent)] @ rot
    return {node_names[node]: cmu_takes.Y_UP_TO_Z_UP @ rot for node, rot in out.items()}


def load_take(take: str, assets: str | os.PathLike | None = None, height: float = 1.70) -> MotionSequence:
    """CMU take '01_01' | '01_03' at 120 Hz with rotations."""
    path = take_path(take, assets)
    converted = cmu_takes.load_cmu_take(path, height=height)
    segments = global_rotations(path)
    return make_sequence(f"{SOURCE}/{take}", SOURCE, converted.coco, converted.fps,
                         rotations=bone_rotations(segments, SEGMENT_OF_JOINT), stature=converted.height)
