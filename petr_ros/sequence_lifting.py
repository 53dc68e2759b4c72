"""`SequenceTrackLifter`: the pipeline's TrackLifter for a sequence lifter, with per-person bone lengths.

For every tracked person it takes the recent 2D history (resampled to about 30 Hz when the stream is faster than
the 15-60 Hz the lifter was trained on), lifts the newest frame from the window (a new track is a window of one
frame), rebuilds the pose with that person's bone lengths (`bone_lengths.BoneLengthEstimator`: steady, symmetric,
anthropometric) and derives joint rotations with the limbs' twist from the elbow and knee bend
(`limb_twist.rotations_with_limb_twist`, the better of the measured ways; see docs/model_card.md). All people of
a frame are lifted in one batch. Knows nothing of ROS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from petr_ros import kinematics
from petr_ros.bone_lengths import BoneLengthEstimator, BoneLengthSettings, joints_from_bones, with_bone_lengths
from petr_ros.limb_twist import rotations_of_bones, rotations_with_limb_twist
from petr_ros.model.lifter import normalize_keypoints_2d
from petr_ros.model.temporal import NumpySequenceLifter
from petr_ros.skeleton import BONE_CHILDREN, BONE_PARENTS, NUM_JOINTS

TRAINED_RATES_HZ = (15.0, 60.0)  # the frame rates the shipped sequence lifter saw in training
TARGET_RATE_HZ = 30.0  # faster streams are subsampled to about this
MAX_STRIDE = 4  # history kept: window x this many frames (up to 120 Hz streams resampled to 30 Hz)
FORGET_AFTER_CALLS = 300  # a track's bone lengths are dropped after this many frames without it
# bones shorter than this (metres) take the general path (with_bone_lengths' zero-length rule, rotations from the
# rebuilt joints); real ones are centimetres
_SHORTEST_BONE = 1e-5
assert np.array_equal(BONE_CHILDREN, np.arange(1, NUM_JOINTS))  # lift_tracks' joints[:, 1:] are the bones' ends


def is_sequence_lifter(model: nn.Module) -> bool:
    """True for lifters that read windows of frames (LifterConfig.architecture == 'sequence')."""
    return getattr(getattr(model, "config", None), "architecture", "token") == "sequence"


def window_indices(stamps_s: np.ndarray, window: int) -> np.ndarray:
    """Indices into a track's (T,) stamps (oldest first) of the frames to feed: the newest frame and the ones
    before it, every n-th frame when the stream runs faster than the trained rates (n = rate / 30 Hz)."""
    first, stride, newest = _window_range(np.asarray(stamps_s, dtype=np.float64), window)
    return np.arange(first, newest + 1, stride)


def _window_range(stamps: np.ndarray, window: int) -> tuple[int, int, int]:
    """window_indices as (first, stride, newest): the indices are range(first, newest + 1, stride)."""
    newest = len(stamps) - 1
    stride = 1
    if len(stamps) > 2:
        steps = stamps[1:] - stamps[:-1]  # their median (np.median's and np.diff's own overheads are most of it)
        steps.sort()
        middle = len(steps) // 2
        dt = float(steps[middle] if len(steps) % 2 else 0.5 * (steps[middle - 1] + steps[middle]))
        if dt > 0 and 1.0 / dt > TRAINED_RATES_HZ[1]:
            stride = int(min(MAX_STRIDE, max(1, round((1.0 / dt) / TARGET_RATE_HZ))))
    return newest - stride * min(window - 1, newest // stride), stride, newest


class SequenceTrackLifter:
    """TrackLifter (petr_ros.pipeline) lifting each track from its window, with the track's own bone lengths.

    model: a sequence lifter (e.g. PoseEstimator.lifter loaded from the shipped checkpoint); device: where it
    runs. bone_lengths: False passes the lifter's own lengths through.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cpu",
        bone_lengths: bool = True,
        bone_length_settings: BoneLengthSettings | None = None,
    ) -> None:
        if not is_sequence_lifter(model):
            raise TypeError(f"{type(model).__name__} is not a sequence lifter (LifterConfig.architecture 'sequence')")
        self.model = model.eval()
        self.device = torch.device(device)
        # on the CPU the network runs as numpy (the same joints within float32 rounding, a third of the time)
        self._numpy_model = NumpySequenceLifter.for_model(model) if self.device.type == "cpu" else None
        self.window = int(model.config.window)
        self.history_length = self.window * MAX_STRIDE
        self.bone_lengths = bool(bone_lengths)
        self.bone_length_settings = bone_length_settings or BoneLengthSettings()
        self._people: dict[int, BoneLengthEstimator] = {}
        self._last_seen: dict[int, int] = {}
        self._calls = 0

    def windows(self, histories: Sequence[Any]) -> np.ndarray:
        """(N, window, 17, 2) pixel windows of the histories, oldest first, missing frames zero."""
        out = np.zeros((len(histories), self.window, NUM_JOINTS, 2), np.float32)
        for i, history in enumerate(histories):
            # only the frames the window uses are copied out of the history (it holds up to window x MAX_STRIDE)
            first, stride, newest = _window_range(np.fromiter(history.stamps_s, np.float64, len(history.stamps_s)),
                                                  self.window)
            keypoints = history.keypoints2d
            frames = [keypoints[k] for k in range(first, newest + 1, stride)]
            out[i, self.window - len(frames):] = frames
        return out

    def normalised_windows(self, histories: Sequence[Any]) -> np.ndarray:
        """The windows of `histories` normalised as the lifter was trained (`normalize_keypoints_2d`)."""
        return normalize_keypoints_2d(self.windows(histories))

    def lift_tracks(self, histories: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Joints (N, 17, 3) metres (root-relative, camera axes) and rotations (N, 17, 4) x y z w of the newest
        frame of each history."""
        self._calls += 1
        normalised = self.normalised_windows(histories)
        if self._numpy_model is not None:
            joints = self._numpy_model(normalised).astype(np.float64)
        else:
            with torch.inference_mode():
                x = torch.from_numpy(normalised).to(self.device)
                joints = self.model(x).joints3d.float().cpu().numpy().astype(np.float64)
        # the bones once for everything below (bone_lengths.measure_bone_lengths and with_bone_lengths, the same
        # arithmetic): lengths, directions, and the unit bones and root frame side of the joint rotations
        vectors = joints[:, 1:] - joints[:, BONE_PARENTS]  # bone b ends at joint b + 1
        measured = np.sqrt(np.add.reduce(vectors * vectors, -1))  # = measure_bone_lengths(joints)
        lengths = measured
        if self.bone_lengths:
            lengths = measured.copy()
            for i, history in enumerate(histories):
                pid = int(history.person_id)
                estimator = self._people.get(pid)
                if estimator is None or len(history.stamps_s) == 1:  # a new track is a new person
                    estimator = self._people[pid] = BoneLengthEstimator(self.bone_length_settings)
                known = estimator.update_measured(measured[i], np.asarray(history.confidences[-1]))
                if known is not None and estimator.frames >= estimator.settings.min_frames:
                    lengths[i] = known  # else this frame's own lengths
                self._last_seen[pid] = self._calls
            stale = [pid for pid, seen in self._last_seen.items() if self._calls - seen > FORGET_AFTER_CALLS]
            for pid in stale:
                self._people.pop(pid, None)
                self._last_seen.pop(pid, None)
        rotations = None
        if measured.min() > _SHORTEST_BONE and lengths.min() > _SHORTEST_BONE:  # nearly always
            directions = vectors / measured[..., None]
            if self.bone_lengths:  # with_bone_lengths(joints, lengths), all people in one pass
                scaled = directions * lengths[..., None]
                joints = joints_from_bones(joints[:, :1], scaled)
            else:
                scaled = vectors
            # the rotations of the rebuilt pose from its unit bones (its own bones' directions within 1e-15)
            matrices = rotations_of_bones(directions, scaled[:, 3] - scaled[:, 0])
            if matrices is not None:
                rotations = kinematics.rotation_quaternions_np(matrices)
        elif self.bone_lengths:
            joints = with_bone_lengths(joints, lengths)
        if rotations is None:  # degenerate poses: the general path
            rotations = kinematics.matrix_to_quaternion(rotations_with_limb_twist(joints))
        return joints.astype(np.float32), rotations.astype(np.float32)

    def reset(self) -> None:
        """Forget every person's bone lengths."""
        self._people.clear()
        self._last_seen.clear()


def track_lifter_for(estimator: Any) -> SequenceTrackLifter | None:
    """The TrackLifter a PoseEstimator's lifter calls for: a SequenceTrackLifter when it is a sequence lifter (the
    shipped default), None for one-token lifters (the pipeline then lifts frame by frame)."""
    model = getattr(estimator, "lifter", None)
    if model is None or not is_sequence_lifter(model):
        return None
    return SequenceTrackLifter(model, getattr(estimator, "device", "cpu"))
