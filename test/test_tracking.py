"""PersonTracker: stable ids on the real Sports2D video (two people) and on constructed hard cases."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from petr_ros.estimator import PersonPose
from petr_ros.skeleton import NUM_JOINTS, coco_to_h36m
from petr_ros.tracking import TENTATIVE, PersonTracker

ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))


def make_pose(keypoints2d: np.ndarray, confidences: np.ndarray | None = None) -> PersonPose:
    """A PersonPose around real or constructed 2D keypoints (3D fields are not used by the tracker)."""
    kp = np.asarray(keypoints2d, np.float32)
    conf = np.ones(len(kp), np.float32) if confidences is None else np.asarray(confidences, np.float32)
    box = np.array([*kp.min(0), *kp.max(0)], np.float32)
    quat = np.tile(np.array([0, 0, 0, 1], np.float32), (NUM_JOINTS, 1))
    return PersonPose(np.zeros((NUM_JOINTS, 3), np.float32), quat, kp, conf, box, float(conf.mean()))


def stick_figure(x: float, y: float, height: float = 170.0) -> np.ndarray:
    """17 keypoints of an upright figure (pelvis at (x, y)) filling a box `height` px tall and 0.3 of it wide."""
    rows = np.linspace(-0.5, 0.5, NUM_JOINTS)
    cols = np.where(np.arange(NUM_JOINTS) % 2 == 0, -0.15, 0.15)
    return np.stack([x + cols * height, y + rows * height], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def video_people() -> list[list[PersonPose]]:
    """MediaPipe detections (HOG + tracked crops) every 4th frame of the Sports2D clip, frames 40-136, where
    the man on the box and the walking woman are both in view."""
    cv2 = pytest.importorskip("cv2")
    from petr_ros.frontends.mediapipe import MediaPipeFrontEnd

    path = ASSETS / "sports2d_demo.mp4"
    assert path.is_file(), f"missing asset {path}: run scripts/fetch_assets.sh"
    front = MediaPipeFrontEnd(detector="hog")
    cap = cv2.VideoCapture(str(path))
    frames: list[list[PersonPose]] = []
    try:
        for index in range(137):
            ok, bgr = cap.read()
            assert ok, f"could not read frame {index} of {path}"
            if index < 40 or index % 4:
                continue
            rgb = np.ascontiguousarray(cv2.resize(bgr, (960, 540))[:, :, ::-1])
            people = []
            for det in front.detect(rgb, None):
                kp, sc = coco_to_h36m(det.keypoints, det.scores)
                people.append(make_pose(kp, sc))
            frames.append(people)
    finally:
        cap.release()
        front.close()
    return frames


def test_real_video_two_people_keep_their_ids(video_people: list[list[PersonPose]]) -> None:
    tracker = PersonTracker()
    ids_by_side: dict[str, list[int]] = {"box": [], "walker": []}
    for people in video_people:
        for pose in tracker.update(people):
            if pose.person_id == TENTATIVE:  # a second guess next to someone, not published
                continue
            # The man stands on the box in the upper left of the frame, the woman walks on the grass below.
            side = "box" if pose.box[3] < 300 else "walker"
            ids_by_side[side].append(pose.person_id)
    assert len(ids_by_side["box"]) >= 15 and len(ids_by_side["walker"]) >= 10
    for side, ids in ids_by_side.items():
        values, counts = np.unique(ids, return_counts=True)
        # One id carries the person through (at most a stray frame of another id, e.g. a duplicate crop).
        assert counts.max() >= 0.9 * len(ids), f"{side}: ids {dict(zip(values.tolist(), counts.tolist(), strict=True))}"
    assert np.bincount(ids_by_side["box"]).argmax() != np.bincount(ids_by_side["walker"]).argmax()


def test_crossing_people_keep_ids_by_motion() -> None:
    tracker = PersonTracker()
    for step in range(13):
        # Two look-alikes walk towards each other, overlap and swap sides; detections come in alternating
        # order, so only their motion (the tracker's constant-velocity guess) can tell them apart.
        a, b = make_pose(stick_figure(100 + 30 * step, 300)), make_pose(stick_figure(445 - 30 * step, 300))
        out = tracker.update([a, b] if step % 2 else [b, a])
        by_x = {float(p.keypoints2d[0, 0]): p.person_id for p in out}
        ids = (by_x[float(a.keypoints2d[0, 0])], by_x[float(b.keypoints2d[0, 0])])
        if step == 0:
            first = ids
        assert ids == first and sorted(ids) == [0, 1], f"step {step}: {by_x}"


def test_missed_frames_then_expiry() -> None:
    tracker = PersonTracker(max_missed=2)
    person = make_pose(stick_figure(200, 300))
    assert tracker.update([person])[0].person_id == 0
    assert tracker.update([]) == []
    assert tracker.update([])  == [] and tracker.tracked_ids == [0]
    assert tracker.update([person])[0].person_id == 0  # back within max_missed: same id
    for _ in range(3):
        tracker.update([])
    assert tracker.tracked_ids == []
    assert tracker.update([person])[0].person_id == 1  # gone too long: a new id


def test_far_jump_is_a_new_person_and_order_is_kept() -> None:
    tracker = PersonTracker()
    near, far = make_pose(stick_figure(100, 300)), make_pose(stick_figure(700, 300))
    assert [p.person_id for p in tracker.update([near])] == [0]
    out = tracker.update([far, near])
    assert [p.person_id for p in out] == [1, 0]
    np.testing.assert_array_equal(out[0].keypoints2d, far.keypoints2d)
    assert sorted(tracker.tracked_ids) == [0, 1]
    tracker.reset()
    assert tracker.tracked_ids == [] and tracker.update([far])[0].person_id == 0


def test_a_new_track_over_a_tracked_person_waits_for_confirmation() -> None:
    tracker = PersonTracker(confirm_hits=3)
    person = make_pose(stick_figure(200, 300))
    ghost = make_pose(stick_figure(220, 280, height=120))  # touches the person's box, too far to continue it
    away = make_pose(stick_figure(700, 300))
    assert [p.person_id for p in tracker.update([person])] == [0]  # the first frame: everyone at once
    # Seen once and gone: never gets an id, and ids count confirmed people only.
    assert [p.person_id for p in tracker.update([person, ghost])] == [0, TENTATIVE]
    assert tracker.tracked_ids == [0]
    assert [p.person_id for p in tracker.update([person])] == [0]
    assert [p.person_id for p in tracker.update([person, away])] == [0, 1]  # away from everyone: at once
    # One who stays is confirmed on the third frame in a row.
    ids = [[p.person_id for p in tracker.update([person, ghost, away])] for _ in range(4)]
    assert ids == [[0, TENTATIVE, 1], [0, TENTATIVE, 1], [0, 2, 1], [0, 2, 1]]
    assert sorted(tracker.tracked_ids) == [0, 1, 2]
    # A miss ends a tentative track: it starts again from one sighting.
    tracker.reset()
    tracker.update([person])
    tracker.update([person, ghost])
    tracker.update([person])
    assert [p.person_id for p in tracker.update([person, ghost])] == [0, TENTATIVE]
    # confirm_hits 1: every new track at once.
    tracker = PersonTracker(confirm_hits=1)
    tracker.update([person])
    assert [p.person_id for p in tracker.update([person, ghost])] == [0, 1]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        PersonTracker(iou_threshold=1.5)
    with pytest.raises(ValueError, match="max_missed"):
        PersonTracker(max_missed=-1)
    with pytest.raises(ValueError, match="confirm_hits"):
        PersonTracker(confirm_hits=0)
    bad = make_pose(stick_figure(100, 300))
    bad.box = np.array([10, 10, 5, 50], np.float32)
    with pytest.raises(ValueError, match="x1 >= x0"):
        PersonTracker().update([bad])


def test_keypoint_distances_of_all_pairs_match_the_pairwise_definition() -> None:
    from petr_ros.tracking import _keypoint_distance, _keypoint_distances

    rng = np.random.default_rng(3)
    for trial in range(50):
        n_tracks, n_poses = rng.integers(1, 5), rng.integers(1, 5)
        track_kps = [rng.uniform(0, 500, (17, 2)).astype(np.float32) for _ in range(n_tracks)]
        track_confs = [rng.uniform(0, 1, 17).astype(np.float32) for _ in range(n_tracks)]
        poses = []
        for _ in range(n_poses):
            conf = rng.uniform(0, 1, 17).astype(np.float32)
            if trial % 5 == 0:
                conf[: rng.integers(12, 17)] = 0.0  # few shared joints: inf
            poses.append(SimpleNamespace(keypoints2d=rng.uniform(0, 500, (17, 2)).astype(np.float32), confidences=conf))
        boxes = np.sort(rng.uniform(0, 600, (n_poses, 4)).astype(np.float32).reshape(-1, 2, 2), axis=1)
        boxes = boxes.transpose(0, 2, 1).reshape(-1, 4)[:, [0, 2, 1, 3]]
        got = _keypoint_distances(track_kps, track_confs, poses, boxes)
        want = np.array([[_keypoint_distance(tk, tc, p.keypoints2d, p.confidences, b)
                          for p, b in zip(poses, boxes, strict=True)]
                         for tk, tc in zip(track_kps, track_confs, strict=True)])
        np.testing.assert_array_equal(got, want)  # the same numbers, not just close: gates must not flip
    # A pose with another layout is never the same person.
    odd = [SimpleNamespace(keypoints2d=np.zeros((33, 2), np.float32), confidences=np.ones(33, np.float32))]
    assert np.isinf(_keypoint_distances(track_kps[:1], track_confs[:1], odd, boxes[:1])).all()
