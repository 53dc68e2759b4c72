"""People found / missed / false per frame on real video, per person detector and ghost filter.

The Pose2Sim Demo_MultiPerson cam01 video (1088x1920, 100 frames, three people in full view: the woman of the
triangulated reference, a man on the treadmill partly behind her, a bystander at the top left) has a box for each
of them in every frame: hers from the reference (`box_cam01`), the other two from
`test/data/pose2sim_cam01_people.npz` (BlazePose on crops of each with the woman painted out; checked by eye).
A found person is a published skeleton whose keypoint box overlaps one of those boxes (IoU >= 0.3, one-to-one);
every other published skeleton is a false person. The Sports2D demo video (960x540, 230 frames, no boxes) shows
at most two people; by eye (every frame near the changes), the man's whole body is in view in frames 0-219 (from
222 he is behind the tree at the right; in 169-178 he is upside down mid-backflip against the sun) and the woman's
in 42-195 (she walks in from behind the tree and out at the left edge); partly visible, the man in 0-227 and the
woman in 36-200. Every skeleton beyond the people partly visible in a frame is a false person (a lower bound:
`beyond_in_view`), every one short of those wholly in view a missed one (`missed_in_view`; `found_in_view` =
1 - missed / wholly in view). The other three Pose2Sim views (`pose2sim_cam02` .. `cam04`, no
per-person boxes) show the same three people at most, counted the same way (`beyond_in_view` only).
Rows: each ghost filter alone, and the full filter followed by the pipeline's tracker, whose tentative tracks
(a new skeleton touching a tracked person, not yet seen 3 frames in a row) are not published: what FramePipeline
publishes.

  python benchmarks/benchmark_people.py [--frames N] [--detectors hog blazepose]   (default: whole videos)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from petr_ros.detection import PeopleTally  # noqa: E402
from petr_ros.plausibility import PlausibilitySettings, reject_implausible  # noqa: E402
from petr_ros.tracking import TENTATIVE, PersonTracker  # noqa: E402

ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
POSE2SIM_DIRS = (ASSETS / "pose2sim_multi", REPO / "benchmarks" / "data",
                 REPO.parent / "shared" / "data" / "pose2sim_multi")
PEOPLE_BOXES = REPO / "test" / "data" / "pose2sim_cam01_people.npz"
PERSON_NAMES = ("woman", "man", "bystander")
# Sports2D demo: frames (first, last) in which each person's whole body is in view (by eye, see the docstring).
SPORTS2D_IN_VIEW = {"man": (0, 219), "woman": (42, 195)}
SPORTS2D_VISIBLE = {"man": (0, 227), "woman": (36, 200)}  # some of the body in view


def sports2d_people(frames: int, intervals: dict[str, tuple[int, int]] = SPORTS2D_IN_VIEW) -> np.ndarray:
    """(frames,) number of people in each Sports2D frame by `intervals` (wholly in view by default)."""
    index = np.arange(frames)
    return sum(((index >= a) & (index <= b)).astype(int) for a, b in intervals.values())


def find_file(name: str) -> Path:
    for folder in POSE2SIM_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} not found in {[str(d) for d in POSE2SIM_DIRS]} (run scripts/fetch_assets.sh)")


def read_frames(path: Path, limit: int, width: int | None = None) -> list[np.ndarray]:
    """Up to `limit` RGB frames of a video, optionally resized to `width`."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < limit:
            ok, bgr = cap.read()
            if not ok:
                break
            if width is not None and bgr.shape[1] != width:
                bgr = cv2.resize(bgr, (width, round(bgr.shape[0] * width / bgr.shape[1])), interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"could not read any frame of {path}")
    return frames


def pose2sim_truth() -> np.ndarray:
    """(F, 3, 4) boxes of the woman, the man and the bystander in cam01 pixels."""
    with np.load(find_file("reference_h36m17.npz")) as ref:
        woman = ref["box_cam01"][0]
    with np.load(PEOPLE_BOXES) as people:
        return np.stack([woman, people["man"], people["bystander"]], axis=1).astype(np.float32)


def run_video(estimator, frames: list[np.ndarray], truth: np.ndarray | None,  # noqa: ANN001
              settings: dict[str, PlausibilitySettings], visible: np.ndarray | int = 2,
              in_view: np.ndarray | None = None) -> dict[str, dict]:
    """Every frame through the estimator, then each ghost filter, and the last filter's people through the
    pipeline's tracker (what FramePipeline publishes: tentative tracks held back); tallies per filter and the mean
    frame time."""
    estimator.reset()
    tracked = f"{list(settings)[-1]} + tracker"
    names = [*settings, tracked]
    tallies = {name: PeopleTally(PERSON_NAMES) for name in names}
    counts: dict[str, list[int]] = {name: [] for name in names}
    rejected: dict[str, dict[str, int]] = {name: {} for name in names}
    tracker = PersonTracker()
    unconfirmed = 0
    times = []
    for f, rgb in enumerate(frames):
        t0 = time.perf_counter()
        people = estimator.estimate(rgb)
        times.append(time.perf_counter() - t0)
        for name, s in settings.items():
            kept, why = reject_implausible(people, s, rgb.shape[:2])
            for reason, n in why.items():
                rejected[name][reason] = rejected[name].get(reason, 0) + n
            _count(kept, f, name, counts, tallies, truth)
        published = [p for p in tracker.update(kept) if p.person_id != TENTATIVE]
        unconfirmed += len(kept) - len(published)
        _count(published, f, tracked, counts, tallies, truth)
    rejected[tracked] = {**rejected[list(settings)[-1]], "unconfirmed": unconfirmed}
    out = {}
    for name in names:
        row = tallies[name].summary() if truth is not None else {"frames": len(frames)}
        row["people_per_frame"] = np.bincount(counts[name]).tolist()
        if truth is None:
            n = np.asarray(counts[name])
            row["beyond_in_view"] = int(np.clip(n - visible, 0, None).sum())
            if in_view is not None:
                missed = int(np.clip(in_view - n, 0, None).sum())
                row["missed_in_view"] = missed
                row["found_in_view"] = 1.0 - missed / max(int(np.sum(in_view)), 1)
        row["rejected"] = {k: v for k, v in rejected[name].items() if v}
        row["frame_ms"] = 1e3 * float(np.mean(times[1:] if len(times) > 1 else times))
        out[name] = row
    return out


def _count(kept: list, f: int, name: str, counts: dict, tallies: dict, truth: np.ndarray | None) -> None:
    counts[name].append(len(kept))
    if truth is not None:
        tallies[name].add(np.array([_keypoint_box(p) for p in kept], np.float32).reshape(-1, 4), truth[f])


def _keypoint_box(person) -> np.ndarray:  # noqa: ANN001
    good = person.confidences >= 0.3
    pts = person.keypoints2d[good] if good.sum() >= 2 else person.keypoints2d
    return np.array([*pts.min(axis=0), *pts.max(axis=0)], np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=0, help="frames per video (0: all)")
    parser.add_argument("--detectors", nargs="+", default=["hog", "blazepose"])
    parser.add_argument("--videos", nargs="+", default=["pose2sim_cam01", "sports2d"])
    args = parser.parse_args(argv)
    from petr_ros.estimator import PoseEstimator

    settings = {"v1 (score only)": PlausibilitySettings.scores_only(), "full filter": PlausibilitySettings()}
    for video in args.videos:
        visible, in_view, limit = 3, None, args.frames or 10**6
        if video == "pose2sim_cam01":
            frames = read_frames(find_file("cam01.mp4"), limit)
            truth = pose2sim_truth()[: len(frames)]
        elif video.startswith("pose2sim_cam"):
            frames, truth = read_frames(find_file(video.removeprefix("pose2sim_") + ".mp4"), limit), None
        elif video == "sports2d":
            frames, truth = read_frames(ASSETS / "sports2d_demo.mp4", limit, width=960), None
            visible, in_view = sports2d_people(len(frames), SPORTS2D_VISIBLE), sports2d_people(len(frames))
        else:
            raise SystemExit(f"unknown video {video!r}: pose2sim_cam01..04 or sports2d")
        for detector in args.detectors:
            est = PoseEstimator(backend="mediapipe", frontend_options={"detector": detector})
            try:
                results = run_video(est, frames, truth, settings, visible, in_view)
            finally:
                est.close()
            for name, row in results.items():
                print(f"{video:15s} detector={detector:10s} filter={name:17s} " +
                      " ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)
    return 0


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v).replace(" ", "")


if __name__ == "__main__":
    sys.exit(main())
