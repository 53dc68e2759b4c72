"""Per-person bone lengths: estimated over a track's frames, held steady, left/right symmetric, anthropometric.

A monocular lifter re-guesses every bone's length in every frame, so a person's size and proportions wobble
(forearms one frame 14 cm, the next 18 cm; left and right shanks differing by 5 cm). A person does not change:
`BoneLengthEstimator` (one per tracked person) collects the lengths the lifter measures frame after frame,
takes the per-bone median of the recent ones (robust to single bad frames), makes left and right equal, and
clamps every bone into an anthropometric range of fractions of the person's estimated stature.
`with_bone_lengths` then rebuilds a pose with those lengths along the predicted bone directions (forward
kinematics by summation from the pelvis), so the output skeleton is the same person in every frame.

Pure numpy; knows nothing of ROS or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petr_ros.skeleton import BONE_CHILDREN, BONE_PARENTS, FLIP_PERMUTATION, NUM_BONES, NUM_JOINTS, PARENTS
from petr_ros.validation import check_points

# Anthropometric range of each bone as a fraction of standing height (bone b ends at joint b + 1), wide enough
# for adults of both sexes and older children, and for the H3.6M-17 joints derived from COCO points
# (skeleton.coco_to_h36m: pelvis = mid-hip, thorax = mid-shoulder, head = extrapolated head top), whose trunk and
# head bones differ from Winter's segments (the CMU subject measures 0.052 H pelvis -> hip, 0.12 H thorax ->
# nose, 0.08 H nose -> head top).
BONE_FRACTION_RANGES: np.ndarray = np.array(
    [
        (0.035, 0.115),  # pelvis -> right hip (half the hip-joint width)
        (0.215, 0.305),  # right thigh
        (0.215, 0.305),  # right shank
        (0.035, 0.115),  # pelvis -> left hip
        (0.215, 0.305),  # left thigh
        (0.215, 0.305),  # left shank
        (0.100, 0.170),  # pelvis -> spine
        (0.100, 0.170),  # spine -> thorax
        (0.040, 0.150),  # thorax -> neck/nose
        (0.050, 0.110),  # neck/nose -> head top
        (0.080, 0.145),  # left clavicle (thorax -> shoulder)
        (0.155, 0.215),  # left upper arm
        (0.120, 0.165),  # left forearm
        (0.080, 0.145),  # right clavicle
        (0.155, 0.215),  # right upper arm
        (0.120, 0.165),  # right forearm
    ],
    dtype=np.float64,
)
BONE_FRACTION_RANGES.setflags(write=False)
# Typical fraction of stature per bone (the centre of each range): the weights of the stature estimate.
_TYPICAL_FRACTIONS = BONE_FRACTION_RANGES.mean(axis=1)
STATURE_RANGE_M: tuple[float, float] = (1.0, 2.1)

# Bone b's mirror bone (bone indices are child joint - 1).
MIRROR_BONE: np.ndarray = np.array([FLIP_PERMUTATION[c] - 1 for c in BONE_CHILDREN], dtype=np.int64)


@dataclass(frozen=True)
class BoneLengthSettings:
    """How a track's bone lengths are estimated."""

    history: int = 150  # frames whose measured lengths the median runs over (5 s at 30 Hz)
    refresh_every: int = 5  # once `history` frames are measured, the median is recomputed every n-th frame
    min_frames: int = 1  # below this many measured frames the estimator passes poses through unchanged
    min_confidence: float = 0.3  # a bone is measured only where both of its joints' 2D confidences reach this
    symmetric: bool = True  # left and right bones get their mean
    anthropometric: bool = True  # clamp into BONE_FRACTION_RANGES of the estimated stature

    def __post_init__(self) -> None:
        if self.history < 1 or self.min_frames < 1 or self.refresh_every < 1:
            raise ValueError(f"history ({self.history}), min_frames ({self.min_frames}) and refresh_every "
                             f"({self.refresh_every}) must be >= 1")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")


def measure_bone_lengths(joints3d: np.ndarray) -> np.ndarray:
    """(..., 17, 3) joints -> (..., 16) bone lengths (same units), bone b ending at joint b + 1."""
    joints = check_points(joints3d, "joints3d", joints=NUM_JOINTS, dims=3).astype(np.float64, copy=False)
    return np.linalg.norm(joints[..., BONE_CHILDREN, :] - joints[..., BONE_PARENTS, :], axis=-1)


def estimate_stature(lengths: np.ndarray) -> np.ndarray:
    """(..., 16) bone lengths in metres -> (...) standing height whose typical proportions fit them best
    (least squares of lengths ~ stature * typical fraction)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return (lengths @ _TYPICAL_FRACTIONS) / float(_TYPICAL_FRACTIONS @ _TYPICAL_FRACTIONS)


def plausible_bone_lengths(lengths: np.ndarray, symmetric: bool = True, anthropometric: bool = True) -> np.ndarray:
    """(..., 16) bone lengths in metres -> left/right averaged, scaled to a stature within STATURE_RANGE_M when
    they imply one outside it, and clamped into the anthropometric ranges of that stature."""
    out = np.array(lengths, dtype=np.float64)
    if out.shape[-1:] != (NUM_BONES,):
        raise ValueError(f"bone lengths must have shape (..., {NUM_BONES}), got {out.shape}")
    if not np.isfinite(out).all() or (out < 0).any():
        raise ValueError("bone lengths must be finite and non-negative")
    if symmetric:
        out = 0.5 * (out + out[..., MIRROR_BONE])
    if anthropometric:
        implied = estimate_stature(out)[..., None]
        stature = np.clip(implied, *STATURE_RANGE_M)
        out = out * (stature / np.maximum(implied, 1e-9))  # a giant or a dwarf is scaled to the nearest stature
        out = np.clip(out, BONE_FRACTION_RANGES[:, 0] * stature, BONE_FRACTION_RANGES[:, 1] * stature)
    return out


def _ancestry() -> np.ndarray:
    """(17, 16): 1 where bone b lies on joint j's path from the pelvis."""
    out = np.zeros((NUM_JOINTS, NUM_BONES))
    for j in range(1, NUM_JOINTS):  # parents come before children
        out[j] = out[PARENTS[j]]
        out[j, j - 1] = 1.0
    return out


_ANCESTRY = _ancestry()


def joints_from_bones(root: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Forward kinematics by summation: (..., 1, 3) pelvis and (..., 16, 3) bone vectors (bone b ends at joint
    b + 1) -> (..., 17, 3) joints, each the pelvis plus the bones on its path from it (one matmul, not a Python
    loop over the joints)."""
    return root + _ANCESTRY @ bones


def with_bone_lengths(joints3d: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rebuild (..., 17, 3) poses with the given (..., 16) bone lengths along their own bone directions.

    The pelvis stays where it is; each joint is its parent plus the unit bone direction times the new length
    (forward kinematics by summation), so the result has exactly these lengths. A zero-length bone keeps its
    parent's position.
    """
    joints = check_points(joints3d, "joints3d", joints=NUM_JOINTS, dims=3).astype(np.float64, copy=False)
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.shape[-1:] != (NUM_BONES,):
        raise ValueError(f"bone lengths must have shape (..., {NUM_BONES}), got {lengths.shape}")
    vectors = joints[..., BONE_CHILDREN, :] - joints[..., BONE_PARENTS, :]
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    directions = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-9)
    return joints_from_bones(joints[..., :1, :], directions * lengths[..., None])


def _nanmedian_or_nan(rows: np.ndarray) -> np.ndarray:
    """Per-column median of the measured values, NaN for a column never measured (without numpy's warning)."""
    out = np.full(rows.shape[1], np.nan)
    seen = ~np.isnan(rows).all(axis=0)
    out[seen] = np.nanmedian(rows[:, seen], axis=0)
    return out


class BoneLengthEstimator:
    """One tracked person's bone lengths: the per-bone median of the last `history` measured frames, made
    symmetric and anthropometric. Keep one per track; `update` with each frame's lifted pose, `apply` to it."""

    def __init__(self, settings: BoneLengthSettings | None = None) -> None:
        self.settings = settings or BoneLengthSettings()
        self._buffer = np.full((self.settings.history, NUM_BONES), np.nan)
        self._next = 0
        self._frames = 0
        self._lengths: np.ndarray | None = None

    @property
    def frames(self) -> int:
        """Frames measured so far (all of them, not only those still in the history)."""
        return self._frames

    @property
    def lengths(self) -> np.ndarray | None:
        """(16,) current bone lengths in metres, or None before any measured frame."""
        return None if self._lengths is None else self._lengths.copy()

    def update(self, joints3d: np.ndarray, confidences: np.ndarray | None = None) -> np.ndarray | None:
        """Add one frame's (17, 3) lifted pose (metres); bones whose joints' (17,) 2D confidences fall below
        settings.min_confidence are not measured. Returns the current lengths (None while none is known)."""
        return self.update_measured(measure_bone_lengths(np.asarray(joints3d).reshape(NUM_JOINTS, 3)), confidences)

    def update_measured(self, measured: np.ndarray, confidences: np.ndarray | None = None) -> np.ndarray | None:
        """`update` with the frame's (16,) bone lengths already measured (`measure_bone_lengths` of its pose;
        float64, not changed): for callers that measure every person's at once. Returns the current lengths."""
        if confidences is not None:
            conf = np.asarray(confidences, dtype=np.float64).reshape(NUM_JOINTS)
            joint_seen = conf >= self.settings.min_confidence
            seen = joint_seen if joint_seen.all() else joint_seen[BONE_CHILDREN] & joint_seen[BONE_PARENTS]
            if not seen.all():  # a bone is measured where both of its joints were seen
                measured = np.where(seen, measured, np.nan)
                if np.isnan(measured).all():
                    return self.lengths
        self._buffer[self._next] = measured
        self._next = (self._next + 1) % self.settings.history
        self._frames += 1
        settled = self._frames > self.settings.history and self._lengths is not None
        if settled and self._frames % self.settings.refresh_every:
            return self.lengths  # a full history changes slowly: the median need not be recomputed every frame
        rows = self._buffer[: min(self._frames, self.settings.history)]
        if np.isnan(rows).any():
            median = np.nanmedian(rows, axis=0) if not np.isnan(rows).all(axis=0).any() else _nanmedian_or_nan(rows)
        else:  # every bone measured in every frame kept: the plain median (nanmedian is 20x slower)
            median = np.median(rows, axis=0)
        if np.isnan(median).any():  # a bone never seen yet: borrow its mirror bone, else the last known value
            median = np.where(np.isnan(median), median[MIRROR_BONE], median)
            fallback = self._lengths if self._lengths is not None else _TYPICAL_FRACTIONS * 1.7
            median = np.where(np.isnan(median), fallback, median)
        s = self.settings
        self._lengths = plausible_bone_lengths(median, symmetric=s.symmetric, anthropometric=s.anthropometric)
        return self.lengths

    def apply(self, joints3d: np.ndarray) -> np.ndarray:
        """(..., 17, 3) poses rebuilt with this person's lengths (unchanged before settings.min_frames)."""
        if self._lengths is None or self._frames < self.settings.min_frames:
            return np.array(joints3d, dtype=np.float64)
        return with_bone_lengths(joints3d, self._lengths)

    def reset(self) -> None:
        """Forget everything (a new person)."""
        self._buffer[:] = np.nan
        self._next = self._frames = 0
        self._lengths = None
