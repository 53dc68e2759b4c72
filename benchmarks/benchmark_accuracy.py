"""3D accuracy on real video, beside BlazePose's own monocular 3D in the same run (prints one table; not a test).

    python benchmarks/benchmark_accuracy.py [--checkpoint LIFTER.pt] [--output results.json] [--predictions cam01.npz]
        [--sports2d-frames 120] [--vtest-frames 150] [--stride 1] [--pose2sim-frames 100]

Labelled part: `benchmarks/data/pose2sim_multi/` holds a multi-view triangulated Human3.6M-17 reference of one
person in the Pose2Sim 0.10.49 Demo_MultiPerson recording (its REFERENCE.md says how it was made and its caveats:
she is a ~1.40 m rendered character, so P-MPJPE comes first). The video (`assets/pose2sim_multi/cam01.mp4`) is
taken from the Pose2Sim wheel at set-up (scripts/fetch_assets.sh). The default pipeline runs on cam01; its people
are matched one-to-one to the reference person (and to the other people's boxes, when known) by box IoU. In the
same run every person the pipeline reports is also given to BlazePose on its own (static mode, the same model
complexity, the crop the front end would take of that box) for its `pose_world_landmarks`. Both 3D answers are
mapped to H3.6M-17 by the package's one conversion (`skeleton.coco_to_h36m`: head = head top), so the reference's
mid-ear head costs both the same; "no head" rows leave that joint out.

Measures (petr_ros.metrics): P-MPJPE (similarity Procrustes per frame), MPJPE (pelvis-aligned, camera axes),
bone-direction error (camera axes), limb-length CV over the track, acceleration error (pelvis-aligned, mm per
frame^2 at 60 fps), and the pelvis position error when placed with cam01's intrinsics (`camera.place_skeleton`,
distortion ignored: |k1|, |k2| < 0.003). Scored frames: all 17 reference joints valid and the person found.

Label-free part, on the other real videos (Sports2D demo, OpenCV's vtest, the other people of cam01): per track
(at least MIN_TRACK_FRAMES frames) limb-length CV, left/right limb asymmetry, joint-limit violations and
acceleration (pelvis-aligned), beside BlazePose's world landmarks of the same detections; people per frame, and
for cam01 found / missed / false people against the three known people's boxes
(test/data/pose2sim_cam01_people.npz for the man and the bystander).

The pipeline call lives in one place, `frame_runner`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: no spinning OpenMP waits

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from petr_ros import metrics  # noqa: E402
from petr_ros.camera import Intrinsics, place_skeleton, project  # noqa: E402
from petr_ros.detection import PeopleTally, boxes_from_keypoints, match_boxes  # noqa: E402
from petr_ros.estimator import PersonPose, PoseEstimator  # noqa: E402
from petr_ros.fileio import atomic_path, write_text  # noqa: E402
from petr_ros.frontends.mediapipe import BLAZEPOSE_TO_COCO, mediapipe_model_path  # noqa: E402
from petr_ros.kinematics import matrix_to_quaternion  # noqa: E402
from petr_ros.preprocessing import expand_boxes  # noqa: E402
from petr_ros.skeleton import coco_to_h36m  # noqa: E402

ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
REFERENCE = REPO / "benchmarks" / "data" / "pose2sim_multi" / "reference_h36m17.npz"
OTHER_PEOPLE = REPO / "test" / "data" / "pose2sim_cam01_people.npz"  # boxes of the man and the bystander
MIN_TRACK_FRAMES = 10
# The reference "lies on her" in a cam01 frame when BlazePose's pelvis on her box is this close to its projection
# (the reference's own cam01 residuals: mean 8.3 px, p95 17.6 px; in frames 0-35 it is 80-110 px off her).
MAX_DISAGREEMENT_PX = 40.0
MIN_IOU = 0.3
NO_HEAD = [j for j in range(17) if j != 10]


# --- One person of one frame, as the benchmark needs it -------------------------------------------------------
@dataclass
class Person:
    person_id: int
    joints3d: np.ndarray  # (17, 3) m, root-relative, camera axes (the lifter's answer)
    joints3d_camera: np.ndarray  # (17, 3) m, placed in the camera frame
    keypoints2d: np.ndarray  # (17, 2) px, H3.6M order
    confidences: np.ndarray  # (17,)
    box: np.ndarray  # (4,)
    blaze: BlazePoseAnswer | None = None  # BlazePose's own 3D for the same person (same frame, same box)


@dataclass
class BlazePoseAnswer:
    """BlazePose's own monocular answer for one person crop."""

    world: np.ndarray  # (17, 3) m, H3.6M-17 from pose_world_landmarks, root-relative, camera-like axes
    keypoints2d: np.ndarray  # (17, 2) px in the full image, H3.6M order (its own 2D of the same run)
    confidences: np.ndarray  # (17,)


class BlazePoseWorld:
    """BlazePose (mediapipe `solutions.pose`, static image mode, one model complexity) on the crop of a person
    box, returning its `pose_world_landmarks` mapped to H3.6M-17 by the package's conversion. The crop is the
    box grown to 3:4 and padded by 50 % as the MediaPipe front end crops a person, so BlazePose sees what the
    pipeline's front end sees; it depends on nothing inside the front end."""

    def __init__(self, model_complexity: int = 1) -> None:
        import mediapipe as mp

        path = mediapipe_model_path(model_complexity)
        if not Path(path).is_file():
            raise FileNotFoundError(f"BlazePose model_complexity={model_complexity} needs {path} (not shipped)")
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                            enable_segmentation=False, min_detection_confidence=0.5)

    def measure(self, rgb: np.ndarray, box: np.ndarray) -> BlazePoseAnswer | None:
        height, width = rgb.shape[:2]
        crop = expand_boxes(np.asarray(box, np.float32).reshape(1, 4), aspect=0.75, padding=1.5)[0]
        x0, y0 = max(0, int(crop[0])), max(0, int(crop[1]))
        x1, y1 = min(width, int(np.ceil(crop[2]))), min(height, int(np.ceil(crop[3])))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        result = self._pose.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
        if result.pose_landmarks is None or result.pose_world_landmarks is None:
            return None
        image = np.array([(q.x * (x1 - x0) + x0, q.y * (y1 - y0) + y0, q.visibility)
                          for q in result.pose_landmarks.landmark])
        world = np.array([(q.x, q.y, q.z) for q in result.pose_world_landmarks.landmark])
        coco = list(BLAZEPOSE_TO_COCO)
        joints, _ = coco_to_h36m(world[coco])
        keypoints, confidences = coco_to_h36m(image[coco, :2], np.clip(image[coco, 2], 0.0, 1.0))
        return BlazePoseAnswer((joints - joints[0]).astype(np.float32), keypoints.astype(np.float32),
                               confidences.astype(np.float32))

    def close(self) -> None:
        self._pose.close()


# --- The pipeline under test: the one place that calls it -----------------------------------------------------
@dataclass
class Runner:
    """The pipeline under test: run(rgb, stamp_s, intrinsics) -> people; reset(); close(); and lift_2d(keypoints
    (T, 17, 2) px of one person's consecutive frames, fps) -> (T, 17, 3) m: the pipeline's lifter alone on given
    2D, as one track (for the oracle-2D row); peer_2d(rgb, box): BlazePose's own 2D on that box, independent of
    the pipeline (to check the reference against the image)."""

    run: Callable[[np.ndarray, float, Intrinsics | None], list[Person]]
    reset: Callable[[], None]
    close: Callable[[], None]
    lift_2d: Callable[[np.ndarray, float], np.ndarray]
    peer_2d: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None  # BlazePose (17, 2) px on a box


def frame_runner(checkpoint: str | None, model_complexity: int) -> Runner:
    """The default pipeline with `checkpoint` (None: the shipped lifter), each person also given BlazePose's world
    landmarks (`BlazePoseWorld`, same model complexity).

    petr_ros.pipeline.FramePipeline when the package has it; else PoseEstimator + PersonTracker + place_skeleton
    (what the node did before the pipeline existed)."""
    options = {"model_complexity": model_complexity} if model_complexity != 1 else None
    estimator = PoseEstimator(lifter_checkpoint=checkpoint, frontend_options=options)
    estimator.warmup()
    blaze = BlazePoseWorld(model_complexity)

    def close() -> None:
        estimator.close()
        blaze.close()

    def peer_2d(rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        answer = blaze.measure(rgb, box)
        return None if answer is None else answer.keypoints2d

    def lift_single_frames(keypoints: np.ndarray, fps: float) -> np.ndarray:
        return estimator.lift_keypoints(keypoints)[0]

    try:
        from petr_ros.pipeline import FramePipeline, PipelineSettings
    except ImportError:
        FramePipeline = None  # noqa: N806

    if FramePipeline is not None:
        pipeline = FramePipeline(PipelineSettings(lifter_checkpoint=checkpoint), estimator=estimator)

        def run(rgb: np.ndarray, stamp_s: float, intrinsics: Intrinsics | None) -> list[Person]:
            return [Person(r.person_id, r.joints3d, r.joints3d_camera, r.keypoints2d, r.confidences, r.box,
                           blaze.measure(rgb, r.box)) for r in pipeline.process(rgb, stamp_s, intrinsics)]

        def lift_track(keypoints: np.ndarray, fps: float) -> np.ndarray:
            """The keypoints as one new track through a fresh copy of the pipeline's track lifter."""
            from petr_ros.pipeline import SingleFrameLifter, TrackHistory
            from petr_ros.sequence_lifting import track_lifter_for

            lifter = track_lifter_for(estimator) or SingleFrameLifter()
            length = int(lifter.history_length)
            kp = np.asarray(keypoints, np.float32)
            single, rotations = estimator.lift_keypoints(kp)
            quats = matrix_to_quaternion(rotations.astype(np.float64)).astype(np.float32)
            conf = np.ones(17, np.float32)
            boxes = boxes_from_keypoints(kp, np.ones(kp.shape[:2], np.float32))
            history: TrackHistory | None = None
            out = []
            for t in range(len(kp)):
                pose = PersonPose(single[t], quats[t], kp[t], conf, boxes[t], 1.0, 0)
                if history is None:
                    history = TrackHistory(0, deque([t / fps], maxlen=length), deque([kp[t]], maxlen=length),
                                           deque([conf], maxlen=length), pose)
                else:
                    history.stamps_s.append(t / fps)
                    history.keypoints2d.append(kp[t])
                    history.confidences.append(conf)
                    history.latest = pose
                out.append(lifter.lift_tracks([history])[0][0])
            return np.stack(out)

        return Runner(run, pipeline.reset, close, lift_track, peer_2d)

    from petr_ros.tracking import PersonTracker

    tracker = PersonTracker()

    def run_estimator(rgb: np.ndarray, stamp_s: float, intrinsics: Intrinsics | None) -> list[Person]:
        size = (rgb.shape[1], rgb.shape[0])
        out = []
        for p in tracker.update(estimator.estimate(rgb)):
            placed, _ = place_skeleton(p.keypoints2d, p.joints3d, intrinsics, size, p.confidences)
            out.append(Person(p.person_id, p.joints3d, placed, p.keypoints2d, p.confidences, p.box,
                              blaze.measure(rgb, p.box)))
        return out

    def reset() -> None:
        tracker.reset()
        estimator.reset()

    return Runner(run_estimator, reset, close, lift_single_frames, peer_2d)


# --- Video ---------------------------------------------------------------------------------------------------
def read_frames(path: Path, max_frames: int, stride: int = 1) -> tuple[list[np.ndarray], float]:
    """RGB frames 0, stride, 2 stride, ... (at most max_frames of them) and the video's frame rate."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video missing; run scripts/fetch_assets.sh (or make setup)")
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % stride == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        index += 1
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames could be read")
    return frames, fps


@dataclass
class VideoRun:
    """Everything one video's run produced."""

    name: str
    people: list[list[Person]]  # per frame
    seconds: float
    fps: float
    tracks: dict[int, list[tuple[int, Person]]] = field(default_factory=dict)  # id -> (frame, person)

    def __post_init__(self) -> None:
        for f, frame in enumerate(self.people):
            for p in frame:
                self.tracks.setdefault(p.person_id, []).append((f, p))


def run_video(runner: Runner, name: str, frames: list[np.ndarray], fps: float,
              intrinsics: Intrinsics | None = None) -> VideoRun:
    runner.reset()
    t0 = time.perf_counter()
    people = [runner.run(rgb, i / fps, intrinsics) for i, rgb in enumerate(frames)]
    return VideoRun(name, people, time.perf_counter() - t0, fps)


# --- Labelled: the reference person of cam01 -----------------------------------------------------------------
def load_reference(path: Path = REFERENCE) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def known_boxes(ref: dict[str, np.ndarray], frames: int) -> tuple[list[str], np.ndarray]:
    """Names and (F, P, 4) boxes of the known people of cam01: the reference person first, then (when the file is
    there) the man and the bystander."""
    names, boxes = ["reference"], [ref["box_cam01"][0, :frames]]
    if OTHER_PEOPLE.is_file():
        with np.load(OTHER_PEOPLE) as other:
            for key in sorted(other.files):
                names.append(key)
                boxes.append(other[key][:frames])
    return names, np.stack(boxes, axis=1).astype(np.float32)


def match_reference(video: VideoRun, names: list[str], boxes: np.ndarray) -> tuple[list[int | None], PeopleTally]:
    """Per frame the index of the person matched to the reference (known person 0) or None, matching all of a
    frame's people to all known people at once (one-to-one), and the found / missed / false tally."""
    tally = PeopleTally(names, MIN_IOU)
    matched: list[int | None] = []
    for f, frame in enumerate(video.people):
        found = np.array([p.box for p in frame], np.float32).reshape(-1, 4)
        tally.add(found, boxes[f])
        visible = np.flatnonzero(np.isfinite(boxes[f]).all(axis=1))
        pairs = match_boxes(found, boxes[f][visible], MIN_IOU)
        matched.append(next((i for i, j in pairs if visible[j] == 0), None))
    return matched, tally


def matched_sequences(video: VideoRun, ref: dict[str, np.ndarray], matched: list[int | None]) -> tuple[
    dict[str, np.ndarray], dict[str, np.ndarray]
]:
    """Per method ("petr", "blaze") the matched person's root-relative joints (F, 17, 3) and placed pelvis (F, 3),
    NaN in frames without a match (BlazePose's pelvis is placed with the intrinsics from its own 2D)."""
    n = len(video.people)
    seqs = {"petr": np.full((n, 17, 3), np.nan), "blaze": np.full((n, 17, 3), np.nan)}
    placed_pelvis = {"petr": np.full((n, 3), np.nan), "blaze": np.full((n, 3), np.nan)}
    K = Intrinsics.from_k(ref["K_cam01"].reshape(-1))
    size = tuple(int(v) for v in ref["image_size_cam01"])
    for f, i in enumerate(matched):
        if i is None:
            continue
        p = video.people[f][i]
        seqs["petr"][f] = p.joints3d - p.joints3d[0]
        placed_pelvis["petr"][f] = p.joints3d_camera[0]
        if p.blaze is not None:
            seqs["blaze"][f] = p.blaze.world
            placed, metric = place_skeleton(p.blaze.keypoints2d, p.blaze.world, K, size, p.blaze.confidences)
            placed_pelvis["blaze"][f] = placed[0] if metric else np.nan
    return seqs, placed_pelvis


def reference_disagreement_px(frames: list[np.ndarray], ref: dict[str, np.ndarray],
                              peer_2d: Callable[[np.ndarray, np.ndarray], np.ndarray | None]) -> np.ndarray:
    """(F,) pixels between the reference pelvis projected into cam01 and the pelvis (mid-hip) BlazePose finds on
    the reference's own box in that frame, NaN where it finds none. The reference was triangulated from the views
    that agreed (the worst view dropped above 20 px): where cam01 disagrees, its projection can lie off her."""
    K = Intrinsics.from_k(ref["K_cam01"].reshape(-1))
    out = np.full(len(frames), np.nan)
    for f, rgb in enumerate(frames):
        pelvis = ref["joints_cam01"][0, f, 0]
        keypoints = peer_2d(rgb, ref["box_cam01"][0, f]) if np.isfinite(pelvis).all() else None
        if keypoints is not None:
            out[f] = float(np.linalg.norm(keypoints[0] - project(pelvis, K)))
    return out


def labelled_scores(video: VideoRun, ref: dict[str, np.ndarray], matched: list[int | None],
                    lift_2d: Callable[[np.ndarray, float], np.ndarray] | None = None,
                    disagreement_px: np.ndarray | None = None) -> dict[str, dict]:
    """The labelled measures for petr_ros and BlazePose (mm, degrees, %, m), the reference's own limb CV, and with
    `lift_2d` the lifter alone on the reference's projected 2D ("oracle 2D": what the lifter costs by itself).
    With `disagreement_px` (`reference_disagreement_px`) also the pelvis error on the frames where the reference
    lies on her in cam01 (within MAX_DISAGREEMENT_PX)."""
    n = len(video.people)
    truth = np.where(ref["valid"][0, :n, :, None], ref["joints_cam01"][0, :n], np.nan).astype(np.float64)
    truth_rel = truth - truth[:, :1]
    seqs, placed_pelvis = matched_sequences(video, ref, matched)
    full = np.isfinite(truth).all(axis=(1, 2))
    out: dict[str, dict] = {}
    for key, seq in seqs.items():
        frames = full & np.isfinite(seq).all(axis=(1, 2))
        if not frames.any():
            out[key] = {"frames": 0}
            continue
        pred_mm, true_mm = 1000.0 * seq[frames], 1000.0 * truth_rel[frames]
        pelvis_err = np.linalg.norm(placed_pelvis[key] - truth[:, 0], axis=-1)
        depth_err = placed_pelvis[key][:, 2] - truth[:, 0, 2]
        ok = np.isfinite(pelvis_err)
        out[key] = {
            "frames": int(frames.sum()),
            "found": int(sum(np.isfinite(seq).all(axis=(1, 2)))),
            "p_mpjpe_mm": metrics.p_mpjpe(pred_mm, true_mm),
            "p_mpjpe_no_head_mm": metrics.p_mpjpe(pred_mm[:, NO_HEAD], true_mm[:, NO_HEAD]),
            "mpjpe_mm": metrics.mpjpe(pred_mm, true_mm),
            "mpjpe_no_head_mm": metrics.mpjpe(pred_mm[:, NO_HEAD], true_mm[:, NO_HEAD]),
            "bone_direction_deg": metrics.bone_direction_error_deg(pred_mm, true_mm),
            "limb_length_cv_pct": 100.0 * metrics.limb_length_cv(seq),
            "acceleration_error_mm": metrics.acceleration_error(1000.0 * seq, 1000.0 * truth_rel),
            "pelvis_error_m": float(np.mean(pelvis_err[ok])) if ok.any() else float("nan"),
            "pelvis_depth_bias_m": float(np.mean(depth_err[ok])) if ok.any() else float("nan"),
            **_agreeing_pelvis(pelvis_err, disagreement_px),
            "size_ratio": float(np.nanmedian(_size(seq) / _size(truth_rel))),
            "p_mpjpe_per_joint_mm": np.asarray(metrics.p_mpjpe(pred_mm, true_mm, reduction="none")).mean(0).tolist(),
            "limb_lengths_cm": _limb_lengths_cm(seq),
        }
    out["reference"] = {"limb_length_cv_pct": 100.0 * metrics.limb_length_cv(truth_rel),
                        "frames": int(full.sum()), "limb_lengths_cm": _limb_lengths_cm(truth_rel)}
    if lift_2d is not None and full.any():
        # Every frame as one track (a temporal lifter needs them all): a joint missing in a frame keeps its last
        # valid position (the first valid one before that). Scored on the frames with all 17 joints valid.
        filled = _fill_missing(truth)
        pixels = project(filled, Intrinsics.from_k(ref["K_cam01"].reshape(-1)))
        lifted = np.asarray(lift_2d(pixels.astype(np.float32), float(ref["fps"])), np.float64)[full]
        pred_mm, true_mm = 1000.0 * (lifted - lifted[:, :1]), 1000.0 * truth_rel[full]
        out["petr_oracle_2d"] = {"frames": int(full.sum()), "p_mpjpe_mm": metrics.p_mpjpe(pred_mm, true_mm),
                                 "mpjpe_mm": metrics.mpjpe(pred_mm, true_mm),
                                 "bone_direction_deg": metrics.bone_direction_error_deg(pred_mm, true_mm)}
    return out


def _agreeing_pelvis(pelvis_err: np.ndarray, disagreement_px: np.ndarray | None) -> dict[str, float]:
    if disagreement_px is None:
        return {}
    found = np.isfinite(pelvis_err)
    agree = found & (np.nan_to_num(disagreement_px, nan=np.inf) <= MAX_DISAGREEMENT_PX)
    other = found & ~agree
    return {"pelvis_error_agreeing_m": float(np.mean(pelvis_err[agree])) if agree.any() else float("nan"),
            "pelvis_error_disagreeing_m": float(np.mean(pelvis_err[other])) if other.any() else float("nan"),
            "agreeing_frames": int(agree.sum())}


def _fill_missing(joints: np.ndarray) -> np.ndarray:
    """(T, 17, 3) with NaN joints -> each NaN joint takes its last valid position (or, before any, its first)."""
    out = joints.copy()
    for j in range(out.shape[1]):
        ok = np.flatnonzero(np.isfinite(out[:, j]).all(axis=1))
        if len(ok) == 0:
            raise ValueError(f"joint {j} is never valid in the reference")
        source = ok[np.clip(np.searchsorted(ok, np.arange(len(out)), side="right") - 1, 0, None)]
        out[:, j] = out[source, j]
    return out


def _limb_lengths_cm(joints: np.ndarray) -> dict[str, float]:
    """Median length (cm) over the frames of each limb, right and left pooled (metrics.LIMB_PAIRS)."""
    lengths = metrics.bone_lengths_over_time(joints)
    return {limb: float(100.0 * np.nanmedian(lengths[:, [r - 1, left - 1]]))
            for limb, (r, left) in metrics.LIMB_PAIRS.items()}


def _size(joints: np.ndarray) -> np.ndarray:
    """Per frame sum of the limb bone lengths (a body size)."""
    lengths = metrics.bone_lengths_over_time(joints)
    return lengths[:, [j - 1 for j in metrics.LIMB_JOINTS]].sum(1)


# --- Label-free ------------------------------------------------------------------------------------------------
def track_measures(video: VideoRun, exclude: set[tuple[int, int]] | None = None) -> dict[str, dict]:
    """Frame-weighted means over the tracks (>= MIN_TRACK_FRAMES frames, consecutive frames only for the
    acceleration) of limb-length CV, asymmetry, joint-limit violations and acceleration, for petr and BlazePose.
    exclude: (frame, person index) pairs left out (the labelled reference person)."""
    exclude = exclude or set()
    sums: dict[str, dict[str, list[tuple[float, int]]]] = {"petr": {}, "blaze": {}}
    n_tracks = 0
    for _, items in video.tracks.items():
        items = [(f, p) for f, p in items if (f, _index(video, f, p)) not in exclude]
        if len(items) < MIN_TRACK_FRAMES:
            continue
        n_tracks += 1
        first = items[0][0]
        span = items[-1][0] - first + 1
        for key in ("petr", "blaze"):
            seq = np.full((span, 17, 3), np.nan)
            for f, p in items:
                if key == "petr":
                    joints = p.joints3d - p.joints3d[0]
                else:
                    joints = None if p.blaze is None else p.blaze.world
                if joints is not None:
                    seq[f - first] = joints
            present = np.isfinite(seq).all(axis=(1, 2))
            if present.sum() < MIN_TRACK_FRAMES:
                continue
            m = sums[key]
            weight = int(present.sum())
            m.setdefault("limb_length_cv_pct", []).append((100.0 * metrics.limb_length_cv(seq), weight))
            m.setdefault("asymmetry_pct", []).append((100.0 * metrics.left_right_asymmetry(seq), weight))
            m.setdefault("limit_violations_pct", []).append((100.0 * metrics.joint_limit_violations(seq), weight))
            m.setdefault("acceleration_mm", []).append((metrics.acceleration(1000.0 * seq), weight))
    out: dict[str, dict] = {}
    for key, m in sums.items():
        out[key] = {name: float(np.average([v for v, _ in vals], weights=[w for _, w in vals]))
                    for name, vals in m.items() if vals}
    counts = [len(frame) for frame in video.people]
    short = sum(1 for items in video.tracks.values() if len(items) < 5)
    out["people"] = {"tracks": n_tracks, "people_per_frame": float(np.mean(counts)), "max_people": max(counts),
                     "tracks_under_5_frames": short}
    return out


def _index(video: VideoRun, f: int, person: Person) -> int:
    return next(i for i, p in enumerate(video.people[f]) if p is person)


# --- Report ----------------------------------------------------------------------------------------------------
def _fmt(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict) -> str:
    """The one table: labelled rows, then label-free rows per video."""
    lab = results["pose2sim_cam01"]["labelled"]
    petr, blaze, ref = lab["petr"], lab["blaze"], lab["reference"]
    rows: list[tuple[str, str, str, str]] = [
        ("pose2sim cam01, reference person", f"petr_ros ({results['lifter']})", "BlazePose world", "reference"),
        ("frames scored (all 17 joints valid)", _fmt(petr.get("frames")), _fmt(blaze.get("frames")),
         _fmt(ref["frames"])),
    ]
    for label, key, digits in (
        ("P-MPJPE (mm)", "p_mpjpe_mm", 1), ("P-MPJPE, no head (mm)", "p_mpjpe_no_head_mm", 1),
        ("MPJPE, pelvis-aligned (mm)", "mpjpe_mm", 1), ("MPJPE, no head (mm)", "mpjpe_no_head_mm", 1),
        ("bone direction error (deg)", "bone_direction_deg", 1), ("limb-length CV (%)", "limb_length_cv_pct", 1),
        ("acceleration error (mm/frame^2)", "acceleration_error_mm", 1),
        ("pelvis position error, intrinsics (m)", "pelvis_error_m", 3),
        ("pelvis depth bias (m, + = too far)", "pelvis_depth_bias_m", 3),
        (f"  pelvis error where the reference is on her in cam01 ({petr.get('agreeing_frames', '-')} frames, *) (m)",
         "pelvis_error_agreeing_m", 3),
        ("  pelvis error in the other frames (m)", "pelvis_error_disagreeing_m", 3),
        ("body size / reference size", "size_ratio", 2),
    ):
        rows.append((label, _fmt(petr.get(key), digits), _fmt(blaze.get(key), digits),
                     _fmt(ref.get(key), digits) if key in ref else ""))
    lengths = [" / ".join(f"{v:.0f}" for v in col["limb_lengths_cm"].values()) if "limb_lengths_cm" in col else "-"
               for col in (petr, blaze, ref)]
    rows.append(("limb lengths, thigh / shank / upper arm / forearm (cm)", *lengths))
    oracle = lab.get("petr_oracle_2d")
    if oracle:
        rows.append(("pipeline's lifter alone on the reference's projected 2D: P-MPJPE / MPJPE / bone dir",
                     f"{oracle['p_mpjpe_mm']:.1f} / {oracle['mpjpe_mm']:.1f} / {oracle['bone_direction_deg']:.1f}",
                     "", ""))
    tally = results["pose2sim_cam01"]["people"]
    names = [k for k in tally if k.startswith("found_")]
    rows.append(("people found (share of frames): " + ", ".join(n[6:] for n in names),
                 " / ".join(_fmt(tally[n], 2) for n in names), "", ""))
    rows.append(("false people per frame (cam01, known people)", _fmt(tally["false_per_frame"], 2), "", ""))
    for video, res in results["label_free"].items():
        ppl = res["people"]
        rows.append((f"{video}: tracks of >= {MIN_TRACK_FRAMES} frames / of < 5 frames", f"{ppl['tracks']} / "
                     f"{ppl['tracks_under_5_frames']}", "", ""))
        rows.append((f"  {video}: people per frame (max)", f"{ppl['people_per_frame']:.2f} ({ppl['max_people']})",
                     "", ""))
        for label, key in (("limb-length CV (%)", "limb_length_cv_pct"), ("left/right asymmetry (%)", "asymmetry_pct"),
                           ("joint-limit violations (%)", "limit_violations_pct"),
                           ("acceleration (mm/frame^2)", "acceleration_mm")):
            rows.append((f"  {video}: {label}", _fmt(res["petr"].get(key)), _fmt(res["blaze"].get(key)), ""))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[c]) for c, cell in enumerate(r)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="lifter checkpoint to score (default: the shipped one)")
    ap.add_argument("--model-complexity", type=int, default=1, help="BlazePose model complexity (both answers)")
    ap.add_argument("--pose2sim-frames", type=int, default=100, help="cam01 frames (of 100; all are labelled)")
    ap.add_argument("--sports2d-frames", type=int, default=120, help="Sports2D demo frames (0: skip)")
    ap.add_argument("--vtest-frames", type=int, default=150, help="vtest.avi frames (0: skip)")
    ap.add_argument("--stride", type=int, default=1, help="use every n-th frame of the label-free videos")
    ap.add_argument("--output", default=None, help="also write the figures as JSON here")
    ap.add_argument("--predictions", default=None, help="also write cam01's matched 3D per frame (npz: petr, blaze, "
                    "reference root-relative joints and placed pelvis, metres, NaN = not found / not valid)")
    args = ap.parse_args(argv)
    if args.stride < 1:
        ap.error("--stride must be >= 1")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        ap.error(f"--checkpoint {args.checkpoint}: file not found")

    t_start = time.perf_counter()
    runner = frame_runner(args.checkpoint, args.model_complexity)
    ref = load_reference()
    lifter = Path(args.checkpoint).name if args.checkpoint else "shipped"
    results: dict = {"lifter": lifter, "model_complexity": args.model_complexity, "label_free": {}}
    try:
        frames, fps = read_frames(ASSETS / "pose2sim_multi" / "cam01.mp4", args.pose2sim_frames)
        K = Intrinsics.from_k(ref["K_cam01"].reshape(-1), *(int(v) for v in ref["image_size_cam01"]))
        cam01 = run_video(runner, "pose2sim_cam01", frames, fps, K)
        names, boxes = known_boxes(ref, len(frames))
        matched, tally = match_reference(cam01, names, boxes)
        disagreement = reference_disagreement_px(frames, ref, runner.peer_2d) if runner.peer_2d else None
        results["pose2sim_cam01"] = {"labelled": labelled_scores(cam01, ref, matched, runner.lift_2d, disagreement),
                                     "people": tally.summary(),
                                     "seconds": cam01.seconds}
        if args.predictions:
            seqs, pelvis = matched_sequences(cam01, ref, matched)
            truth = np.where(ref["valid"][0, : len(frames), :, None], ref["joints_cam01"][0, : len(frames)], np.nan)
            with atomic_path(args.predictions, suffix=".npz") as tmp:
                np.savez_compressed(tmp, petr=seqs["petr"], blaze=seqs["blaze"], reference=truth - truth[:, :1],
                                    petr_pelvis=pelvis["petr"], blaze_pelvis=pelvis["blaze"],
                                    reference_pelvis=truth[:, 0], frame_index=np.arange(len(frames)))
        exclude = {(f, i) for f, i in enumerate(matched) if i is not None}
        results["label_free"]["pose2sim cam01, other people"] = track_measures(cam01, exclude)
        for name, path, count in (("sports2d", ASSETS / "sports2d_demo.mp4", args.sports2d_frames),
                                  ("vtest", ASSETS / "vtest.avi", args.vtest_frames)):
            if count <= 0:
                continue
            frames, fps = read_frames(path, count, args.stride)
            video = run_video(runner, name, frames, fps / args.stride)
            results["label_free"][name] = track_measures(video)
            results["label_free"][name]["seconds"] = video.seconds
    finally:
        runner.close()
    results["seconds"] = time.perf_counter() - t_start
    print(table(results))
    print(f"\n{results['seconds']:.0f} s in all; P-MPJPE, MPJPE and bone directions on frames where all 17 reference "
          "joints are valid; BlazePose world landmarks from its own run on each reported person's crop.\n"
          f"(*) BlazePose's own pelvis on the reference's box within {MAX_DISAGREEMENT_PX:.0f} px of the reference "
          "pelvis projected into cam01; elsewhere the reference, triangulated from the views that agreed, lies off her "
          "in this view.")
    if args.output:
        write_text(args.output, json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
