"""What every motion source shares: the sequence record, COCO-17 points placed on a body, the H3.6M-17 joints
derived from them, rotations per H3.6M bone, and the assets folder.

The H3.6M-17 joints of every source are `skeleton.coco_to_h36m` of COCO-17 points placed on the mocap body,
exactly as the node derives them from a detector's 2D keypoints: pelvis = mid-hip, thorax = mid-shoulder,
head = the extrapolated head top. 3D targets and 2D inputs then mean the same points whatever the source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from petr_ros import skeleton

# BVH and DeepMimic files are y up; Human3.6M's world (and every MotionSequence) is z up. A proper rotation.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Face geometry as fractions of body height (adult averages): ears +-4.4 % H sideways of the head centre, eyes
# 5 % H forward and +-1.9 % H sideways, 0.6 % H up, nose 6.5 % H forward and 1.8 % H down.
_EAR_HALF_WIDTH = 0.044
_EYE_FORWARD, _EYE_HALF_WIDTH, _EYE_UP = 0.05, 0.019, 0.006
_NOSE_FORWARD, _NOSE_DOWN = 0.065, 0.018
# Hip joint to ankle joint as a fraction of standing height (Winter: hip 0.530 H, ankle 0.039 H above the floor).
_LEG_FRACTION = 0.491

# The COCO points that are body joints, by COCO name (the face points 0-4 are built from the head).
COCO_BODY_NAMES: tuple[str, ...] = skeleton.COCO_JOINT_NAMES[5:]


@dataclass(frozen=True)
class MotionSequence:
    """One real motion take, converted.

    joints: (T, 17, 3) float32 H3.6M-17 joints (`petr_ros.skeleton` order), world frame, z up, metres.
    coco: (T, 17, 3) float32 the COCO-17 points on the same body (what a 2D detector reports), same frame.
    fps: frames per second; fps_assumed is True where the source does not state it.
    rotations: (T, 17, 3, 3) float32 world-frame rotation of the source's body segment that carries each H3.6M
      bone (bone parent(j) -> j for joint j; the pelvis segment for joint 0), or None for position-only sources.
      The segment frames are the source's own: they differ from `kinematics.joint_rotations`' frames by a fixed
      rotation per joint (see `training.motion.rotation_offsets`).
    """

    name: str
    source: str
    joints: np.ndarray
    coco: np.ndarray
    fps: float
    rotations: np.ndarray | None = None
    fps_assumed: bool = False
    stature: float = field(default=0.0)  # metres: the source's scale, else estimated from the legs

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


def assets_dir(assets: str | os.PathLike | None = None) -> Path:
    """The assets folder: `assets`, else $PETR_ASSETS, else <repo>/assets (filled by scripts/fetch_assets.sh)."""
    if assets is not None:
        return Path(assets)
    env = os.environ.get("PETR_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "assets"


def need_file(path: Path) -> Path:
    """`path`, or FileNotFoundError telling how to get it (the assets come from set-up, never at run time)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: motion asset missing; run scripts/fetch_assets.sh (or make setup)")
    return path


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.clip(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9, None)


def stature_from_legs(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray) -> float:
    """Standing height (m) from one leg's joints (T, 3) each: median thigh + shank over Winter's leg fraction."""
    leg = np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
    return float(np.median(leg) / _LEG_FRACTION)


def coco_keypoints(
    body: dict[str, np.ndarray], head_centre: np.ndarray, head_up: np.ndarray, height: float
) -> np.ndarray:
    """COCO-17 points (T, 17, 3) in a z-up metre world.

    body: the 12 COCO body joints by COCO name (left_shoulder ... right_ankle), (T, 3) each; head_centre: (T, 3)
    the point between the ears; head_up: (T, 3) the head's up direction; height: standing height (m) that scales
    the face. The face's sideways direction comes from the shoulders (made orthogonal to head_up) and its forward
    direction is left x up (right-handed), so the face points are mirror-consistent with the body's sides.
    """
    missing = [name for name in COCO_BODY_NAMES if name not in body]
    if missing:
        raise ValueError(f"coco_keypoints needs the COCO body joints {missing}")
    frames = np.asarray(head_centre).shape[0]
    coco = np.zeros((frames, skeleton.COCO_NUM_JOINTS, 3))
    for index, name in enumerate(skeleton.COCO_JOINT_NAMES):
        if name in body:
            coco[:, index] = body[name]
    up = _unit(np.asarray(head_up, dtype=np.float64))
    left = body["left_shoulder"] - body["right_shoulder"]
    left = _unit(left - (left * up).sum(-1, keepdims=True) * up)
    forward = np.cross(left, up)
    centre, h = np.asarray(head_centre, dtype=np.float64), float(height)
    coco[:, 0] = centre + h * (_NOSE_FORWARD * forward - _NOSE_DOWN * up)
    coco[:, 1] = centre + h * (_EYE_FORWARD * forward + _EYE_HALF_WIDTH * left + _EYE_UP * up)
    coco[:, 2] = centre + h * (_EYE_FORWARD * forward - _EYE_HALF_WIDTH * left + _EYE_UP * up)
    coco[:, 3] = centre + h * _EAR_HALF_WIDTH * left
    coco[:, 4] = centre - h * _EAR_HALF_WIDTH * left
    return coco


def h36m_from_coco(coco: np.ndarray) -> np.ndarray:
    """(T, 17, 3) COCO-17 points -> (T, 17, 3) H3.6M-17 joints by the package's one conversion."""
    joints, _ = skeleton.coco_to_h36m(coco)
    return joints


def bone_rotations(segments: dict[str, np.ndarray], segment_of_joint: tuple[str, ...]) -> np.ndarray:
    """(T, 17, 3, 3): for H3.6M joint j the world rotation of segment `segment_of_joint[j]` (T, 3, 3)."""
    if len(segment_of_joint) != skeleton.NUM_JOINTS:
        raise ValueError(f"segment_of_joint needs {skeleton.NUM_JOINTS} names, got {len(segment_of_joint)}")
    return np.stack([segments[name] for name in segment_of_joint], axis=1)


def make_sequence(
    name: str,
    source: str,
    coco: np.ndarray,
    fps: float,
    rotations: np.ndarray | None = None,
    fps_assumed: bool = False,
    stature: float | None = None,
) -> MotionSequence:
    """A MotionSequence from COCO-17 world points (T, 17, 3): H3.6M-17 joints derived, everything float32.

    stature: the body height in metres where the source fixes it (else estimated from the legs)."""
    coco = np.asarray(coco, dtype=np.float64)
    if coco.ndim != 3 or coco.shape[1:] != (skeleton.COCO_NUM_JOINTS, 3) or len(coco) == 0:
        raise ValueError(f"{name}: COCO points must have shape (T>0, 17, 3), got {coco.shape}")
    if not np.isfinite(coco).all():
        raise ValueError(f"{name}: {int((~np.isfinite(coco)).sum())} non-finite coordinates")
    joints = h36m_from_coco(coco)
    ci = skeleton.COCO_JOINT_NAMES.index
    if stature is None:
        stature = stature_from_legs(coco[:, ci("left_hip")], coco[:, ci("left_knee")], coco[:, ci("left_ankle")])
    rot = None if rotations is None else np.asarray(rotations, dtype=np.float32)
    if rot is not None and rot.shape != (len(coco), skeleton.NUM_JOINTS, 3, 3):
        raise ValueError(f"{name}: rotations must have shape ({len(coco)}, 17, 3, 3), got {rot.shape}")
    return MotionSequence(
        name=name,
        source=source,
        joints=joints.astype(np.float32),
        coco=coco.astype(np.float32),
        fps=float(fps),
        rotations=rot,
        fps_assumed=fps_assumed,
        stature=stature,
    )
