"""DeepMimic humanoid clips shipped in pybullet 3.2.7 (PyPI wheel, zlib licence): `pybullet_data/data/motions/
humanoid3d_*.txt` (JSON: "Frames", one row per frame) on the skeleton of `pybullet_data/humanoid/humanoid.urdf`.

A row is: frame duration (s), root position (3, y up, metres), then per joint in the order of `JOINT_LAYOUT` a
unit quaternion (w, x, y, z) for a spherical joint or an angle (rad, about the joint's z axis) for a revolute one.
The URDF is written 4x the motion's scale (pybullet loads it with globalScaling 0.25), so its joint offsets are
scaled by `URDF_SCALE`. Forward kinematics gives every body's position and world rotation: positions for the
joints and real rotation ground truth.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from petr_ros import kinematics
from training.motion.body import (
    Y_UP_TO_Z_UP,
    MotionSequence,
    assets_dir,
    bone_rotations,
    coco_keypoints,
    make_sequence,
    need_file,
    stature_from_legs,
)

SOURCE = "deepmimic"
URDF_SCALE = 0.25
CLIPS: tuple[str, ...] = (
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump", "kick",
    "punch", "roll", "run", "spin", "spinkick", "walk",
)
# (joint, kind) in the order of a frame row after the root position; the root's quaternion comes first.
JOINT_LAYOUT: tuple[tuple[str, str], ...] = (
    ("root", "spherical"), ("chest", "spherical"), ("neck", "spherical"),
    ("right_hip", "spherical"), ("right_knee", "revolute"), ("right_ankle", "spherical"),
    ("right_shoulder", "spherical"), ("right_elbow", "revolute"),
    ("left_hip", "spherical"), ("left_knee", "revolute"), ("left_ankle", "spherical"),
    ("left_shoulder", "spherical"), ("left_elbow", "revolute"),
)
ROW_LENGTH = 1 + 3 + sum(4 if kind == "spherical" else 1 for _, kind in JOINT_LAYOUT)
_COCO_BODY = {
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist",
    "left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle",
}
# URDF link whose frame turns each H3.6M bone (the link is named after the joint at its upper end).
SEGMENT_OF_JOINT: tuple[str, ...] = (
    "root", "root", "right_hip", "right_knee", "root", "left_hip", "left_knee", "root", "chest", "neck", "neck",
    "chest", "left_shoulder", "left_elbow", "chest", "right_shoulder", "right_elbow",
)
# Head centre above the neck joint in the neck link's frame (the URDF's head sphere, y up, unscaled units).
_HEAD_CENTRE_URDF = np.array([0.0, 0.7, 0.0])


def clip_path(clip: str, assets: str | os.PathLike | None = None) -> Path:
    if clip not in CLIPS:
        raise ValueError(f"unknown DeepMimic clip {clip!r}; known: {CLIPS}")
    return need_file(assets_dir(assets) / "motion" / "deepmimic" / f"humanoid3d_{clip}.txt")


def read_skeleton(assets: str | os.PathLike | None = None) -> dict[str, tuple[str, np.ndarray]]:
    """{child link: (parent link, joint offset in the parent's frame, metres)} from humanoid.urdf."""
    path = need_file(assets_dir(assets) / "motion" / "deepmimic" / "humanoid.urdf")
    # The shipped file ends in a NUL byte after </robot>.
    root = ET.fromstring(path.read_bytes().rstrip(b"\x00\r\n ").decode("utf-8", errors="replace"))
    links: dict[str, tuple[str, np.ndarray]] = {}
    for joint in root.iter("joint"):
        parent, child, origin = joint.find("parent"), joint.find("child"), joint.find("origin")
        if parent is None or child is None:
            raise ValueError(f"{path}: joint {joint.get('name')} without parent or child")
        if origin is not None and any(abs(float(v)) > 1e-9 for v in origin.get("rpy", "0 0 0").split()):
            raise ValueError(f"{path}: joint {joint.get('name')} has a rotated origin, which this reader does not do")
        axis = joint.find("axis")
        if joint.get("type") == "revolute" and (axis is None or [float(v) for v in axis.get("xyz", "").split()]
                                                 != [0.0, 0.0, 1.0]):
            raise ValueError(f"{path}: revolute joint {joint.get('name')} does not turn about z, as the clips assume")
        xyz = np.zeros(3) if origin is None else np.array([float(v) for v in origin.get("xyz", "0 0 0").split()])
        links[child.get("link")] = (parent.get("link"), xyz * URDF_SCALE)
    return links


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """(F, ROW_LENGTH) float64 frame rows of a clip, or ValueError naming the file and the problem."""
    try:
        frames = np.asarray(json.loads(Path(path).read_text())["Frames"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a DeepMimic motion file ({exc})") from exc
    if frames.ndim != 2 or frames.shape[1] != ROW_LENGTH or len(frames) == 0:
        raise ValueError(f"{path}: expected (F, {ROW_LENGTH}) frame rows, got {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError(f"{path}: non-finite values in the frames")
    return frames


def _about_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def forward_kinematics(frames: np.ndarray, links: dict[str, tuple[str, np.ndarray]]) -> tuple[
    dict[str, np.ndarray], dict[str, np.ndarray]
]:
    """World positions (F, 3) and rotations (F, 3, 3) of every link, in the file's y-up frame."""
    local: dict[str, np.ndarray] = {}
    col = 4
    for name, kind in JOINT_LAYOUT:
        if kind == "spherical":
            wxyz = frames[:, col : col + 4]
            local[name] = kinematics.quaternion_to_matrix(wxyz[:, [1, 2, 3, 0]])
            col += 4
        else:
            local[name] = _about_z(frames[:, col])
            col += 1
    positions = {"root": frames[:, 1:4]}
    rotations = {"root": local["root"]}
    pending = [link for link in links if link != "root"]
    while pending:  # parents before children, whatever the file's order
        ready = [link for link in pending if links[link][0] in positions]
        if not ready:
            raise ValueError(f"humanoid.urdf: links {pending} are not connected to the root")
        for link in ready:
            parent, offset = links[link]
            positions[link] = positions[parent] + rotations[parent] @ offset
            # Fixed joints (the wrists) turn with their parent.
            rotations[link] = rotations[parent] @ local[link] if link in local else rotations[parent]
            pending.remove(link)
    return positions, rotations


def load_clip(clip: str, assets: str | os.PathLike | None = None) -> MotionSequence:
    """One clip (see CLIPS) as a MotionSequence in the z-up world, with rotations."""
    path = clip_path(clip, assets)
    frames = read_frames(path)
    positions, rotations = forward_kinematics(frames, read_skeleton(assets))
    world = {k: v @ Y_UP_TO_Z_UP.T for k, v in positions.items()}
    world_rot = {k: Y_UP_TO_Z_UP @ v for k, v in rotations.items()}
    body = {coco: world[link] for coco, link in _COCO_BODY.items()}
    # world_rot maps a link's own (y-up URDF) axes to the z-up world.
    head_centre = world["neck"] + world_rot["neck"] @ (_HEAD_CENTRE_URDF * URDF_SCALE)
    head_up = world_rot["neck"] @ np.array([0.0, 1.0, 0.0])
    height = stature_from_legs(body["left_hip"], body["left_knee"], body["left_ankle"])
    coco = coco_keypoints(body, head_centre, head_up, height)
    fps = 1.0 / float(np.median(frames[:, 0]))
    return make_sequence(f"{SOURCE}/{clip}", SOURCE, coco, fps, rotations=bone_rotations(world_rot, SEGMENT_OF_JOINT))
