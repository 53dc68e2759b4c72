"""holosoma-retargeting 0.1.0 demo motion capture (PyPI wheel, Apache-2.0): five takes of people climbing over
boxes, (F, 53, 3) float32 world joint positions in metres, z up, a solved skeleton. Positions only.

The frame rate is not stated in the wheel; joint speeds fit 100-120 Hz (hip speed median 1.6-1.8 mm/frame), so
120 Hz is assumed (`fps_assumed`). The 53 joint names are the wheel's `MOCAP_DEMO_JOINTS`; only these are used.
Never the wheel's OMOMO_new files (OMOMO's own terms).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from training.motion.body import (
    MotionSequence,
    assets_dir,
    coco_keypoints,
    make_sequence,
    need_file,
    stature_from_legs,
)

SOURCE = "holosoma"
ASSUMED_FPS = 120.0
NUM_MOCAP_JOINTS = 53
# File of each take in assets/motion/holosoma (the frame range of the original capture is in the name).
TAKE_FILES: dict[str, str] = {
    "climb_seq_0": "mocap_climb_seq_0_joint_positions_f900-3700.npy",
    "climb_seq_1": "mocap_climb_seq_1_joint_positions_f0-2422.npy",
    "climb_seq_2": "mocap_climb_seq_2_joint_positions_f100-3110.npy",
    "climb_seq_3": "mocap_climb_seq_3_joint_positions_f200-2600.npy",
    "climb_seq_4": "mocap_climb_seq_4_joint_positions_f0-2303.npy",
}
# Index in the 53-joint arrays of the joints used.
JOINT_INDEX: dict[str, int] = {
    "Hips": 0, "Spine": 1, "Spine1": 2, "Neck": 3, "Head": 4,
    "LeftShoulder": 5, "LeftArm": 6, "LeftForeArm": 7, "LeftHand": 8,
    "RightShoulder": 24, "RightArm": 25, "RightForeArm": 26, "RightHand": 27,
    "LeftUpLeg": 43, "LeftLeg": 44, "LeftFoot": 45, "LeftToeBase": 46,
    "RightUpLeg": 47, "RightLeg": 48, "RightFoot": 49, "RightToeBase": 50,
}
_COCO_BODY = {
    "left_shoulder": "LeftArm", "right_shoulder": "RightArm", "left_elbow": "LeftForeArm",
    "right_elbow": "RightForeArm", "left_wrist": "LeftHand", "right_wrist": "RightHand",
    "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "left_knee": "LeftLeg", "right_knee": "RightLeg",
    "left_ankle": "LeftFoot", "right_ankle": "RightFoot",
}


def take_path(take: str, assets: str | os.PathLike | None = None) -> Path:
    if take not in TAKE_FILES:
        raise ValueError(f"unknown holosoma take {take!r}; known: {tuple(TAKE_FILES)}")
    return need_file(assets_dir(assets) / "motion" / "holosoma" / TAKE_FILES[take])


def read_positions(path: str | os.PathLike) -> np.ndarray:
    """(F, 53, 3) float64 positions of a take file, or ValueError naming the file and the problem."""
    data = np.load(path, allow_pickle=False)
    if data.ndim != 3 or data.shape[1:] != (NUM_MOCAP_JOINTS, 3) or len(data) == 0:
        raise ValueError(f"{path}: expected (F, {NUM_MOCAP_JOINTS}, 3) joint positions, got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: {int((~np.isfinite(data)).sum())} non-finite coordinates")
    return data.astype(np.float64)


def load_take(take: str, assets: str | os.PathLike | None = None) -> MotionSequence:
    """One climbing take ('climb_seq_0' ... 'climb_seq_4'), 120 Hz assumed, positions only.

    The mocap Head joint is taken as the head centre between the ears and Neck -> Head as the head's up.
    """
    positions = read_positions(take_path(take, assets))
    node = {name: positions[:, i] for name, i in JOINT_INDEX.items()}
    body = {coco: node[name] for coco, name in _COCO_BODY.items()}
    height = stature_from_legs(body["left_hip"], body["left_knee"], body["left_ankle"])
    coco = coco_keypoints(body, node["Head"], node["Head"] - node["Neck"], height)
    return make_sequence(f"{SOURCE}/{take}", SOURCE, coco, ASSUMED_FPS, fps_assumed=True)


def toe_directions(take: str, assets: str | os.PathLike | None = None) -> np.ndarray:
    """(F, 2, 3) foot -> toe vectors (left, right): the feet point where the body faces (a chirality check)."""
    positions = read_positions(take_path(take, assets))
    j = JOINT_INDEX
    return np.stack([positions[:, j["LeftToeBase"]] - positions[:, j["LeftFoot"]],
                     positions[:, j["RightToeBase"]] - positions[:, j["RightFoot"]]], axis=1)
