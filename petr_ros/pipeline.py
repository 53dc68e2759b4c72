"""`FramePipeline`: the per-frame path from one RGB image to placed 3D skeletons, shared by the ROS node, the
demo, the benchmarks and the Python API. Pure logic (no ROS).

    rgb, stamp -> estimate (PoseEstimator: 2D front end + single-frame lift)
               -> reject implausible people (petr_ros.plausibility), keep the `max_persons` best
               -> track (petr_ros.tracking: stable person ids; a new track over someone tracked is held back
                  until confirmed, counted as `unconfirmed`)
               -> lift per track (a `TrackLifter` reading each track's recent 2D history: the sequence lifter
                  when the checkpoint is one, as the shipped one is; else the frame's own single-frame lift)
               -> smooth (petr_ros.smoothing, per track)
               -> place in the camera frame (petr_ros.camera.place_skeleton)
               -> [PersonResult]

Per-track state (the tracker's, the smoother's and each track's 2D history with stamps) lives here, one stream per
pipeline; `reset()` forgets it. Settings change between frames with `configure()` (thread-safe against
`process()` running in another thread).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from petr_ros.camera import DEFAULT_DEPTH_M, DEFAULT_FOCAL_PX, Intrinsics, place_skeleton
from petr_ros.estimator import DEFAULT_BACKEND, PersonPose, PoseEstimator, choose_backend
from petr_ros.model.device import DEFAULT_DEVICE, DEFAULT_PRECISION
from petr_ros.model.runtime import DEFAULT_RUNTIME, RUNTIMES
from petr_ros.plausibility import REASONS, PlausibilitySettings, reject_implausible
from petr_ros.results import PersonResult
from petr_ros.sequence_lifting import track_lifter_for
from petr_ros.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF, PoseSmoother
from petr_ros.tracking import DEFAULT_CONFIRM_HITS, DEFAULT_IOU_THRESHOLD, DEFAULT_MAX_MISSED, TENTATIVE, PersonTracker

__all__ = ["FramePipeline", "FrameReport", "PersonResult", "PipelineSettings", "SingleFrameLifter", "TrackHistory",
           "TrackLifter", "load_estimator"]

DEFAULT_MAX_PERSONS = 10
STAGES = ("estimate", "reject", "track", "lift", "smooth", "place")
UNCONFIRMED = "unconfirmed"  # a reason people are not published: a new track over someone tracked, not confirmed yet
REJECTION_REASONS = (*REASONS, UNCONFIRMED)  # every reason FrameReport.rejected counts


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the pipeline reads. The model fields are used when the pipeline builds its own estimator; the
    others apply from the next frame on (`FramePipeline.configure`). Defaults are the core modules' own."""

    # model (read when the estimator is built)
    lifter_checkpoint: str | None = None  # None: the lifter shipped in the package
    backend: str = DEFAULT_BACKEND
    hrnet_weights: str | None = None
    device: str = DEFAULT_DEVICE
    precision: str = DEFAULT_PRECISION
    hrnet_runtime: str = DEFAULT_RUNTIME  # who runs the HRNet backbone (model.runtime.RUNTIMES); MediaPipe ignores it
    # per frame
    plausibility: PlausibilitySettings = field(default_factory=PlausibilitySettings)  # the ghost filter's checks
    max_persons: int = DEFAULT_MAX_PERSONS  # the best-scoring people kept per frame
    tracking: bool = True
    tracking_iou_threshold: float = DEFAULT_IOU_THRESHOLD
    tracking_max_missed: int = DEFAULT_MAX_MISSED
    tracking_confirm_hits: int = DEFAULT_CONFIRM_HITS  # frames a new person over a tracked one waits (1: none)
    smoothing: bool = False  # needs tracking
    smoothing_min_cutoff: float = DEFAULT_MIN_CUTOFF
    smoothing_beta: float = DEFAULT_BETA
    default_depth: float = DEFAULT_DEPTH_M  # metres to the pelvis without intrinsics
    default_focal_length: float = DEFAULT_FOCAL_PX  # pixels without intrinsics (0: from the field of view)

    def __post_init__(self) -> None:
        if self.hrnet_runtime not in RUNTIMES:
            raise ValueError(f"hrnet_runtime must be one of {', '.join(RUNTIMES)}, got {self.hrnet_runtime!r}")
        if self.tracking_confirm_hits < 1:
            raise ValueError(f"tracking_confirm_hits must be >= 1, got {self.tracking_confirm_hits!r}")
        if self.max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {self.max_persons!r}")
        if not (math.isfinite(self.default_depth) and self.default_depth > 0):
            raise ValueError(f"default_depth must be > 0 metres, got {self.default_depth!r}")
        if not (math.isfinite(self.default_focal_length) and self.default_focal_length >= 0):
            raise ValueError(f"default_focal_length must be >= 0 pixels, got {self.default_focal_length!r}")


# Settings that make a new tracker and smoother (ids and filter state start afresh).
_FILTER_FIELDS = ("tracking_iou_threshold", "tracking_max_missed", "tracking_confirm_hits", "smoothing_min_cutoff",
                  "smoothing_beta")


@dataclass
class TrackHistory:
    """One tracked person's recent 2D observations, oldest first, and this frame's estimate (what a temporal
    lifter reads). Lengths are bounded by the lifter's `history_length`."""

    person_id: int
    stamps_s: deque[float]
    keypoints2d: deque[np.ndarray]  # each (17, 2) pixels, H3.6M order
    confidences: deque[np.ndarray]  # each (17,)
    latest: PersonPose  # this frame's observation, with its single-frame lift

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T,) stamps in seconds, (T, 17, 2) keypoints, (T, 17) confidences, oldest first."""
        return (np.asarray(self.stamps_s, np.float64), np.stack(self.keypoints2d).astype(np.float32),
                np.stack(self.confidences).astype(np.float32))


@runtime_checkable
class TrackLifter(Protocol):
    """Lifts each tracked person from its recent 2D history. `history_length`: how many frames it wants."""

    history_length: int

    def lift_tracks(self, histories: Sequence[TrackHistory]) -> tuple[np.ndarray, np.ndarray]:
        """Root-relative joints (N, 17, 3) metres in camera axes and global rotations (N, 17, 4) x y z w of the
        newest frame of each history (N = len(histories), N >= 1)."""
        ...


class SingleFrameLifter:
    """Today's lifter: each frame on its own, i.e. the estimator's lift of that frame's 2D (no history)."""

    history_length = 1

    def lift_tracks(self, histories: Sequence[TrackHistory]) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([np.asarray(h.latest.joints3d, np.float32) for h in histories]),
                np.stack([np.asarray(h.latest.rotations, np.float32) for h in histories]))


@dataclass
class FrameReport:
    """What happened to the last frame (for /diagnostics and logs)."""

    detected: int = 0  # people the estimator returned
    rejected: dict[str, int] = field(default_factory=dict)  # by reason (REJECTION_REASONS)
    dropped_over_max: int = 0  # plausible people beyond max_persons
    published: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)  # per stage (STAGES), seconds


def load_estimator(settings: PipelineSettings) -> PoseEstimator:
    """The estimator the settings describe, warmed up. FileNotFoundError naming the setting for a missing file."""
    for label, path, expected in (
        ("lifter_checkpoint", settings.lifter_checkpoint, "a petr_ros lifter checkpoint (.pt) written by petr_train"),
        ("hrnet_weights", settings.hrnet_weights, "the HRNet-W32 COCO weights pose_hrnet_w32_256x192.pth"),
    ):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{label} file not found: '{path}' (expected {expected})")
    backend, _ = choose_backend(settings.backend, settings.hrnet_weights, None)
    options = {"runtime": settings.hrnet_runtime} if backend == "hrnet" else None  # an HRNet front-end option
    estimator = PoseEstimator(lifter_checkpoint=settings.lifter_checkpoint, backend=settings.backend,
                              hrnet_weights=settings.hrnet_weights, device=settings.device,
                              precision=settings.precision, frontend_options=options)
    estimator.warmup()
    return estimator


class FramePipeline:
    """One image stream's per-frame pipeline (module docstring). `estimator`: a ready PoseEstimator (else one is
    built from `settings`); `lifter`: a TrackLifter (default: `sequence_lifting.SequenceTrackLifter` for a sequence
    lifter such as the shipped one, else `SingleFrameLifter`)."""

    def __init__(self, settings: PipelineSettings | None = None, estimator: PoseEstimator | None = None,
                 lifter: TrackLifter | None = None) -> None:
        self._settings = settings if settings is not None else PipelineSettings()
        self.estimator = estimator if estimator is not None else load_estimator(self._settings)
        # the shipped sequence lifter reads each track's window (petr_ros.sequence_lifting); one-token lifters lift
        # frame by frame
        self.lifter: TrackLifter = lifter if lifter is not None else (track_lifter_for(self.estimator)
                                                                      or SingleFrameLifter())
        if not isinstance(self.lifter, TrackLifter) or int(self.lifter.history_length) < 1:
            raise TypeError(f"lifter {type(self.lifter).__name__} must implement TrackLifter (history_length >= 1)")
        self._lock = threading.Lock()  # guards the per-track state against configure() from another thread
        self._tracker, self._smoother = self._make_filters(self._settings)
        self._histories: dict[int, TrackHistory] = {}
        self.last_report = FrameReport()

    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    @staticmethod
    def _make_filters(s: PipelineSettings) -> tuple[PersonTracker, PoseSmoother]:
        return (PersonTracker(iou_threshold=s.tracking_iou_threshold, max_missed=s.tracking_max_missed,
                              confirm_hits=s.tracking_confirm_hits),
                PoseSmoother(min_cutoff=s.smoothing_min_cutoff, beta=s.smoothing_beta))

    def configure(self, settings: PipelineSettings) -> None:
        """Use `settings` from the next frame on. A change of the tracker's or smoother's parameters starts their
        state afresh (new ids); the model fields are ignored (the estimator is built once)."""
        with self._lock:
            if any(getattr(settings, f) != getattr(self._settings, f) for f in _FILTER_FIELDS):
                self._tracker, self._smoother = self._make_filters(settings)
                self._histories = {}
            self._settings = settings

    def reset(self) -> None:
        """Forget the stream: tracks (ids restart at 0), filter states, 2D histories, the front end's state."""
        with self._lock:
            self._tracker.reset()
            self._smoother.reset()
            self._histories = {}
            reset_lifter = getattr(self.lifter, "reset", None)
            if callable(reset_lifter):
                reset_lifter()
        self.estimator.reset()

    def warmup(self) -> None:
        self.estimator.warmup()

    def close(self) -> None:
        self.estimator.close()

    def process(self, rgb: np.ndarray, stamp_s: float, intrinsics: Intrinsics | None = None,
                boxes: np.ndarray | None = None) -> list[PersonResult]:
        """One frame of the stream: (H, W, 3) uint8 RGB taken at `stamp_s` seconds (increasing along the stream),
        optional camera intrinsics (else the settings' default focal length and depth) and optional (N, 4) person
        boxes (else the front end finds people). One PersonResult per person, best score first."""
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be a finite time in seconds, got {stamp_s!r}")
        if intrinsics is not None and not isinstance(intrinsics, Intrinsics):
            raise TypeError(f"intrinsics must be a petr_ros.camera.Intrinsics or None, got {type(intrinsics).__name__}")
        s = self._settings
        report = FrameReport()
        clock = _StageClock(report.timings_s)
        # Only a lifter that reads the past needs the 2D histories (the single-frame one keeps the frame's own lift);
        # it lifts every person again and derives the rotations it publishes, so the frame's own are not computed.
        temporal = not isinstance(self.lifter, SingleFrameLifter)
        poses = self.estimator.estimate(rgb, boxes, rotations=not temporal)
        report.detected = len(poses)
        clock.lap("estimate")
        height, width = rgb.shape[:2]
        poses, report.rejected = reject_implausible(poses, s.plausibility, (height, width))
        report.rejected[UNCONFIRMED] = 0
        poses = sorted(poses, key=lambda p: -p.score)
        report.dropped_over_max = max(0, len(poses) - s.max_persons)
        poses = poses[: s.max_persons]
        clock.lap("reject")
        with self._lock:
            s = self._settings  # configure() may have run meanwhile: the state below matches these settings
            if s.tracking:
                tracked = self._tracker.update(poses)
                poses = [p for p in tracked if p.person_id != TENTATIVE]
                report.rejected[UNCONFIRMED] = len(tracked) - len(poses)
                histories = self._update_histories(poses, stamp_s) if temporal else []
            else:
                poses = [dataclasses.replace(p, person_id=i) for i, p in enumerate(poses)]
                self._histories = {}
                histories = [_fresh_history(p, stamp_s) for p in poses] if temporal else []
            clock.lap("track")
            if poses and temporal:
                joints, rotations = self.lifter.lift_tracks(histories)
                poses = [dataclasses.replace(p, joints3d=np.asarray(j, np.float32), rotations=np.asarray(q, np.float32))
                         for p, j, q in zip(poses, joints, rotations, strict=True)]
            clock.lap("lift")
            if s.tracking and s.smoothing:
                poses = self._smoother.update(poses, stamp_s)
            clock.lap("smooth")
        results = [self._place(p, intrinsics, (width, height), s) for p in poses]
        clock.lap("place")
        report.published = len(results)
        self.last_report = report
        return results

    def _update_histories(self, poses: Sequence[PersonPose], stamp_s: float) -> list[TrackHistory]:
        length = int(self.lifter.history_length)
        out = []
        for pose in poses:
            h = self._histories.get(int(pose.person_id))
            if h is None or (h.stamps_s and stamp_s <= h.stamps_s[-1]):  # new track, or time went back (a replay)
                h = _fresh_history(pose, stamp_s, length)
                self._histories[int(pose.person_id)] = h
            else:
                h.stamps_s.append(stamp_s)
                h.keypoints2d.append(np.asarray(pose.keypoints2d, np.float32))
                h.confidences.append(np.asarray(pose.confidences, np.float32))
                h.latest = pose
            out.append(h)
        live = set(self._tracker.tracked_ids)  # a track the tracker still keeps (briefly unseen) keeps its history
        self._histories = {pid: h for pid, h in self._histories.items() if pid in live}
        return out

    @staticmethod
    def _place(pose: PersonPose, intrinsics: Intrinsics | None, size: tuple[int, int],
               s: PipelineSettings) -> PersonResult:
        positions, metric = place_skeleton(pose.keypoints2d, pose.joints3d, intrinsics, size, pose.confidences,
                                           s.default_depth, s.default_focal_length)
        return PersonResult(person_id=int(pose.person_id), joints3d=np.asarray(pose.joints3d),
                            joints3d_camera=positions, rotations=np.asarray(pose.rotations),
                            keypoints2d=np.asarray(pose.keypoints2d), confidences=np.asarray(pose.confidences),
                            box=np.asarray(pose.box), score=float(pose.score), metric=metric)


def _fresh_history(pose: PersonPose, stamp_s: float, length: int = 1) -> TrackHistory:
    return TrackHistory(int(pose.person_id), deque([stamp_s], maxlen=length),
                        deque([np.asarray(pose.keypoints2d, np.float32)], maxlen=length),
                        deque([np.asarray(pose.confidences, np.float32)], maxlen=length), pose)


class _StageClock:
    """Seconds per stage, written into a report's `timings_s`."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._into[stage] = now - self._t
        self._t = now
