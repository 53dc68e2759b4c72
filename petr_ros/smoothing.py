"""Temporal smoothing per tracked person: One-Euro filter (Casiez et al., CHI 2012) on joint positions and 2D
keypoints, and its rotation analogue on joint quaternions (slerp towards the new rotation by the One-Euro alpha).

Off by default in the node: it trades a little latency for less jitter. Pure logic (no ROS).

The adaptive cutoff is `min_cutoff + beta * speed` (Hz) with the speed per joint in units chosen so one `beta`
suits all three signals and any image size: centimetres per second for `joints3d`, percent of the person's box
height per second for `keypoints2d`, degrees per second for `rotations`. With the defaults (1 Hz, beta 0.05) a
joint at rest (jitter of a few cm/s) is low-passed at about 1-3 Hz, one moving at 1 m/s at about 6 Hz.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_CM = 0.01  # metres per centimetre: joints3d speeds enter the cutoff in cm/s
DEFAULT_MIN_CUTOFF = 1.0  # Hz
DEFAULT_BETA = 0.05
DEFAULT_D_CUTOFF = 1.0  # Hz, of the speed estimate


def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray:
    """Exponential smoothing alpha of a first-order low-pass at `cutoff` Hz sampled every `dt` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation of (..., 4) unit quaternions (x, y, z, w) by t in [0, 1] along the short arc;
    the result is unit norm with w >= 0."""
    q0 = np.asarray(q0, np.float64)
    q1 = np.asarray(q1, np.float64)
    if q0.shape != q1.shape or q0.shape[-1] != 4:
        raise ValueError(f"quaternions must both have shape (..., 4), got {q0.shape} and {q1.shape}")
    t = np.asarray(t, np.float64)[..., None] if np.ndim(t) else np.float64(t)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)  # q and -q are the same rotation: take the short way
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6  # almost equal: linear interpolation is exact enough and avoids 0/0
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return np.where(out[..., 3:4] < 0.0, -out, out)


def quaternion_angle(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Angle in radians of the rotation between (..., 4) unit quaternions q0 and q1."""
    dot = np.abs(np.sum(np.asarray(q0, np.float64) * np.asarray(q1, np.float64), axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


class OneEuroFilter:
    """One-Euro filter on arrays of shape (..., D): per leading element, the speed is the norm over D."""

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        _check_params(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter sample x taken at time t (seconds); speeds are divided by `scale` (the unit of the cutoff)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or t <= self._t or x.shape != self._x.shape:
            # First sample, a time step back (a replayed bag) or a new shape: start afresh, no smoothing.
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + smoothing_factor(dt, self.d_cutoff) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-9)
        alpha = smoothing_factor(dt, self.min_cutoff + self.beta * speed)
        self._x = self._x + alpha * (x - self._x)
        self._t = float(t)
        return self._x.copy()


class QuaternionOneEuroFilter:
    """One-Euro filter on (..., 4) unit quaternions: slerp from the last output towards the new sample by the
    One-Euro alpha, with the cutoff raised by the (filtered) angular speed in degrees per second."""

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        _check_params(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._q: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, q: np.ndarray, t: float) -> np.ndarray:
        q = np.asarray(q, np.float64)
        if q.shape[-1] != 4:
            raise ValueError(f"quaternions must have shape (..., 4), got {q.shape}")
        q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
        if self._q is None or self._t is None or t <= self._t or q.shape != self._q.shape:
            self._q, self._speed, self._t = quaternion_slerp(q, q, 0.0), np.zeros(q.shape[:-1]), float(t)
            return self._q.copy()
        dt = float(t) - self._t
        speed = np.degrees(quaternion_angle(self._q, q)) / dt
        self._speed = self._speed + smoothing_factor(dt, self.d_cutoff) * (speed - self._speed)
        alpha = smoothing_factor(dt, self.min_cutoff + self.beta * self._speed)
        self._q = quaternion_slerp(self._q, q, alpha)
        self._t = float(t)
        return self._q.copy()


@dataclasses.dataclass
class _PersonFilters:
    joints3d: OneEuroFilter
    keypoints2d: OneEuroFilter
    rotations: QuaternionOneEuroFilter


class PoseSmoother:
    """Smooth each tracked person's joints3d, keypoints2d and rotations over time (One-Euro + slerp).

    Poses with person_id < 0 (untracked) pass through unchanged; a person absent from an update loses its
    filter state (when the tracker brings the id back, filtering starts afresh rather than from stale values).
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        _check_params(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._people: dict[int, _PersonFilters] = {}

    def reset(self) -> None:
        """Forget every person's filter state."""
        self._people = {}

    def update(self, poses: Sequence[Any], stamp_s: float) -> list[Any]:
        """Smoothed copies of this frame's PersonPoses (same order); `stamp_s` is the image time in seconds."""
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be a finite time in seconds, got {stamp_s!r}")
        out = []
        seen: set[int] = set()
        for pose in poses:
            pid = int(pose.person_id)
            if pid < 0 or pid in seen:
                out.append(pose)
                continue
            seen.add(pid)
            filters = self._people.get(pid)
            if filters is None:
                args = (self.min_cutoff, self.beta, self.d_cutoff)
                filters = _PersonFilters(OneEuroFilter(*args), OneEuroFilter(*args), QuaternionOneEuroFilter(*args))
                self._people[pid] = filters
            box = np.asarray(pose.box, np.float64)
            height = max(float(box[3] - box[1]), 1.0)
            out.append(
                dataclasses.replace(
                    pose,
                    joints3d=filters.joints3d(pose.joints3d, stamp_s, scale=_CM).astype(np.float32),
                    keypoints2d=filters.keypoints2d(pose.keypoints2d, stamp_s, scale=height / 100.0).astype(
                        np.float32
                    ),
                    rotations=filters.rotations(pose.rotations, stamp_s).astype(np.float32),
                )
            )
        self._people = {pid: f for pid, f in self._people.items() if pid in seen}
        return out


def _check_params(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    if not min_cutoff > 0.0:
        raise ValueError(f"min_cutoff must be > 0 Hz, got {min_cutoff!r}")
    if not beta >= 0.0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    if not d_cutoff > 0.0:
        raise ValueError(f"d_cutoff must be > 0 Hz, got {d_cutoff!r}")
