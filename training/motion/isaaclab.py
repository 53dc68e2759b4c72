"""isaaclab 2.3.2.post1 humanoid_amp motions (BSD-3): DeepMimic-style clips with per-body positions and
quaternions at 60 fps, z up, metres. Real rotation ground truth for the 15 bodies.

File keys (the motions' README in the wheel): fps, body_names (15), body_positions (N, 15, 3), body_rotations
(N, 15, 4) as (w, x, y, z). A body's position is its joint with the parent (thigh = hip, shin = knee, foot =
ankle, upper arm = shoulder, lower arm = elbow, hand = wrist, head = neck). Body frames are the world's at the
rest pose (z up, x forward, y left).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from petr_ros import kinematics
from training.motion.body import (
    MotionSequence,
    assets_dir,
    bone_rotations,
    coco_keypoints,
    make_sequence,
    need_file,
    stature_from_legs,
)

SOURCE = "isaaclab"
CLIPS: tuple[str, ...] = ("dance", "run", "walk")
# COCO body joint -> body whose origin it is.
_COCO_BODY = {
    "left_shoulder": "left_upper_arm", "right_shoulder": "right_upper_arm",
    "left_elbow": "left_lower_arm", "right_elbow": "right_lower_arm",
    "left_wrist": "left_hand", "right_wrist": "right_hand",
    "left_hip": "left_thigh", "right_hip": "right_thigh",
    "left_knee": "left_shin", "right_knee": "right_shin",
    "left_ankle": "left_foot", "right_ankle": "right_foot",
}
# Segment carrying each H3.6M bone (joint order of petr_ros.skeleton).
SEGMENT_OF_JOINT: tuple[str, ...] = (
    "pelvis", "pelvis", "right_thigh", "right_shin", "pelvis", "left_thigh", "left_shin", "pelvis", "torso",
    "head", "head", "torso", "left_upper_arm", "left_lower_arm", "torso", "right_upper_arm", "right_lower_arm",
)
# Head centre above the neck joint in the head's frame (the DeepMimic humanoid's head sphere centre, metres).
_HEAD_CENTRE_OFFSET = np.array([0.0, 0.0, 0.175])


def clip_path(clip: str, assets: str | os.PathLike | None = None) -> Path:
    if clip not in CLIPS:
        raise ValueError(f"unknown isaaclab clip {clip!r}; known: {CLIPS}")
    return need_file(assets_dir(assets) / "motion" / "isaaclab" / f"humanoid_{clip}.npz")


def load_clip(clip: str, assets: str | os.PathLike | None = None) -> MotionSequence:
    """One humanoid_amp clip ('dance' | 'run' | 'walk') as a MotionSequence with rotations."""
    path = clip_path(clip, assets)
    with np.load(path) as data:
        names = [str(n) for n in data["body_names"]]
        positions = np.asarray(data["body_positions"], dtype=np.float64)
        quats_wxyz = np.asarray(data["body_rotations"], dtype=np.float64)
        fps = float(data["fps"])
    if positions.ndim != 3 or positions.shape[1:] != (len(names), 3) or quats_wxyz.shape[:2] != positions.shape[:2]:
        raise ValueError(f"{path}: unexpected shapes {positions.shape} / {quats_wxyz.shape} for {len(names)} bodies")
    index = {n: i for i, n in enumerate(names)}
    matrices = kinematics.quaternion_to_matrix(quats_wxyz[..., [1, 2, 3, 0]])  # to (x, y, z, w)
    segments = {n: matrices[:, i] for n, i in index.items()}
    body = {coco: positions[:, index[b]] for coco, b in _COCO_BODY.items()}
    head_rot = segments["head"]
    head_centre = positions[:, index["head"]] + head_rot @ _HEAD_CENTRE_OFFSET
    head_up = head_rot[:, :, 2]
    height = stature_from_legs(body["left_hip"], body["left_knee"], body["left_ankle"])
    coco = coco_keypoints(body, head_centre, head_up, height)
    return make_sequence(f"{SOURCE}/{clip}", SOURCE, coco, fps, rotations=bone_rotations(segments, SEGMENT_OF_JOINT))
