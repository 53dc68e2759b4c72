"""FramePipeline on real frames: the shipped lifter and the real MediaPipe front end on the Sports2D video (two
people) and the Messi photo; the contract of `process`, tracking, rejection counts, placement with and without
intrinsics, the per-track 2D history a temporal lifter reads, reset and configure."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS, messi_rgb

from petr_ros.camera import DEFAULT_DEPTH_M, Intrinsics, project, solve_root_translation
from petr_ros.pipeline import (
    REJECTION_REASONS,
    UNCONFIRMED,
    FramePipeline,
    PipelineSettings,
    SingleFrameLifter,
    TrackHistory,
    TrackLifter,
)
from petr_ros.plausibility import PlausibilitySettings
from petr_ros.results import PersonResult
from petr_ros.skeleton import EXTRAPOLATED_JOINTS, NUM_JOINTS

# Video frames 72..100, every 4th: the man on the box (jumping jacks, facing the camera) and the woman walking.
FRAME_INDICES = tuple(range(72, 101, 4))
FPS = 30.0
# Sports2D's calibration of its video: fx = fy = 2520.09 px at 1768 px wide.
SPORTS2D_FOCAL_PX = 2520.0897058227038


def video_frames(indices: Sequence[int] = FRAME_INDICES, width: int = 960) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(ASSETS / "sports2d_demo.mp4"))
    frames, index = [], 0
    try:
        for target in indices:
            while index < target:
                assert cap.grab(), f"sports2d_demo.mp4 ended before frame {target}"
                index += 1
            ok, bgr = cap.read()
            index += 1
            assert ok, f"could not read frame {target} of {ASSETS / 'sports2d_demo.mp4'} (run scripts/setup_env.sh)"
            h, w = bgr.shape[:2]
            bgr = cv2.resize(bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return video_frames()


@pytest.fixture(scope="module")
def shared() -> FramePipeline:
    """One real pipeline (shipped lifter, MediaPipe, CPU) for the module; each test resets or reconfigures it."""
    return FramePipeline(PipelineSettings(backend="mediapipe", device="cpu"))


@pytest.fixture
def pipeline(shared: FramePipeline) -> FramePipeline:
    shared.configure(PipelineSettings(backend="mediapipe", device="cpu"))
    shared.reset()
    return shared


def run(pipeline: FramePipeline, frames: list[np.ndarray], intrinsics: Intrinsics | None = None,
        start_s: float = 100.0) -> list[list[PersonResult]]:
    return [pipeline.process(rgb, start_s + (i * 4) / FPS, intrinsics) for i, rgb in enumerate(frames)]


def check_contract(person: PersonResult, width: int, height: int) -> None:
    assert isinstance(person.person_id, int) and person.person_id >= 0
    for name, shape in (("joints3d", (NUM_JOINTS, 3)), ("joints3d_camera", (NUM_JOINTS, 3)),
                        ("rotations", (NUM_JOINTS, 4)), ("keypoints2d", (NUM_JOINTS, 2)),
                        ("confidences", (NUM_JOINTS,)), ("box", (4,))):
        value = getattr(person, name)
        assert value.shape == shape and np.all(np.isfinite(value)), (name, value.shape)
    np.testing.assert_allclose(person.joints3d[0], 0.0, atol=1e-4)  # root-relative: the pelvis at the origin
    # Placement is a translation of the root-relative skeleton (the same for every joint), in front of the camera.
    shift = person.joints3d_camera - person.joints3d
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4)
    assert np.all(person.joints3d_camera[:, 2] > 0.1)
    np.testing.assert_allclose(np.linalg.norm(person.rotations, axis=1), 1.0, atol=1e-4)
    assert np.all((person.confidences >= 0) & (person.confidences <= 1))
    assert person.score == pytest.approx(float(np.mean(person.confidences)), abs=1e-5)
    kp = person.keypoints2d
    assert np.all(kp > -0.25 * np.array([width, height])) and np.all(kp < 1.25 * np.array([width, height]))


def test_default_construction_is_the_shipped_lifter_and_auto_front_end() -> None:
    from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH

    pipeline = FramePipeline()
    try:
        assert pipeline.estimator.lifter_path == DEFAULT_LIFTER_PATH
        assert pipeline.estimator.backend_name == "mediapipe"  # auto without HRNet weights
        # The shipped lifter decides the track lifter: a sequence lifter reads each track's history.
        from petr_ros.sequence_lifting import SequenceTrackLifter, is_sequence_lifter

        sequence = is_sequence_lifter(pipeline.estimator.lifter)
        assert isinstance(pipeline.lifter, SequenceTrackLifter if sequence else SingleFrameLifter)
        assert isinstance(pipeline.lifter, TrackLifter) and pipeline.lifter.history_length >= 1
        rgb = messi_rgb()
        people = pipeline.process(rgb, 1.0)
        assert len(people) == 1
        check_contract(people[0], rgb.shape[1], rgb.shape[0])
    finally:
        pipeline.close()


def test_two_people_tracked_through_the_clip_and_placed_at_the_default_depth(pipeline, frames) -> None:
    height, width = frames[0].shape[:2]
    results = run(pipeline, frames)
    for people in results:
        assert len(people) == 2
        assert [p.score for p in people] == sorted((p.score for p in people), reverse=True)  # best first
        for person in people:
            check_contract(person, width, height)
            # No intrinsics: the pelvis on its ray through the default intrinsics, at the default depth.
            assert not person.metric
            assert person.joints3d_camera[0, 2] == pytest.approx(DEFAULT_DEPTH_M)
            np.testing.assert_allclose(project(person.joints3d_camera[0], Intrinsics.default(width, height)),
                                       person.keypoints2d[0], atol=1e-3)
    # Stable ids: the same two ids in every frame, each following the same person (the man is higher up).
    assert all({p.person_id for p in people} == {0, 1} for people in results)
    on_box_ids = {min(people, key=lambda p: p.box[1]).person_id for people in results}
    assert len(on_box_ids) == 1
    report = pipeline.last_report
    assert report.detected == 2 and report.published == 2 and report.dropped_over_max == 0
    assert set(report.rejected) == set(REJECTION_REASONS) and sum(report.rejected.values()) == 0
    assert set(report.timings_s) == {"estimate", "reject", "track", "lift", "smooth", "place"}
    assert all(t >= 0 for t in report.timings_s.values()) and report.timings_s["estimate"] > 0


def test_a_second_guess_over_a_tracked_person_is_not_published() -> None:
    # Frames 44..75 at 960 px: in frame 51 the landmark model also returns a partial skeleton stretched out from
    # the man on the box, for one frame. Published at once (confirm_hits 1) it is a third person in a two-person
    # video; by default a new track touching a tracked person waits for confirmation and this one never comes back.
    frames = video_frames(range(44, 76))
    counts = {}
    for hits in (1, PipelineSettings().tracking_confirm_hits):
        pipeline = FramePipeline(PipelineSettings(backend="mediapipe", device="cpu", tracking_confirm_hits=hits))
        try:
            people, unconfirmed = [], 0
            for i, rgb in enumerate(frames):
                people.append(pipeline.process(rgb, 100.0 + i / FPS))
                unconfirmed += pipeline.last_report.rejected[UNCONFIRMED]
        finally:
            pipeline.close()
        counts[hits] = ([len(p) for p in people], unconfirmed, {r.person_id for p in people for r in p})
    published, unconfirmed, ids = counts[1]
    assert max(published) == 3 and unconfirmed == 0 and len(ids) == 3
    published, unconfirmed, ids = counts[PipelineSettings().tracking_confirm_hits]
    assert published == [2] * len(frames) and unconfirmed >= 1 and ids == {0, 1}


def test_with_intrinsics_people_are_placed_metrically(pipeline, frames) -> None:
    height, width = frames[0].shape[:2]
    f = SPORTS2D_FOCAL_PX * width / 1768.0
    k = Intrinsics(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=width, height=height)
    for people in run(pipeline, frames[:3], k):
        assert len(people) == 2
        for person in people:
            check_contract(person, width, height)
            assert person.metric
            measured = person.confidences.copy()
            measured[list(EXTRAPOLATED_JOINTS)] = 0.0  # the extrapolated head top is not fitted
            expected = solve_root_translation(person.keypoints2d, person.joints3d, k, measured)
            np.testing.assert_allclose(person.joints3d_camera[0], expected, atol=1e-6)
            assert 5.0 < person.joints3d_camera[0, 2] < 20.0  # both people are 9-13 m from the camera


def test_settings_reject_limit_and_number_people(pipeline, frames) -> None:
    # min_score 1.0: nobody is that sure of every joint; everyone is rejected and counted as low_score.
    pipeline.configure(PipelineSettings(plausibility=PlausibilitySettings(min_score=1.0)))
    assert pipeline.process(frames[0], 1.0) == []
    report = pipeline.last_report
    assert report.detected == 2 and report.rejected["low_score"] == 2 and report.published == 0
    # max_persons 1: the best-scoring person only.
    # (reset before each: the same front-end state, so the same detections)
    pipeline.configure(PipelineSettings(max_persons=1, tracking=False))
    pipeline.reset()
    one = pipeline.process(frames[1], 2.0)
    assert len(one) == 1 and pipeline.last_report.dropped_over_max == 1
    pipeline.configure(PipelineSettings(tracking=False))
    pipeline.reset()
    both = pipeline.process(frames[1], 3.0)
    assert one[0].score == pytest.approx(max(p.score for p in both), abs=1e-3)
    # Without tracking, ids are the rank in the frame.
    assert [p.person_id for p in both] == [0, 1]
    with pytest.raises(ValueError, match="max_persons"):
        PipelineSettings(max_persons=0)
    with pytest.raises(ValueError, match="default_depth"):
        PipelineSettings(default_depth=0.0)


def test_reset_and_new_tracker_settings_restart_the_ids(pipeline, frames) -> None:
    run(pipeline, frames[:2])
    # The people leave (an empty frame) for longer than max_missed: new ids when they come back.
    empty = np.zeros_like(frames[0])
    for i in range(pipeline.settings.tracking_max_missed + 1):
        assert pipeline.process(empty, 200.0 + i) == []
    assert {p.person_id for p in pipeline.process(frames[2], 300.0)} == {2, 3}
    pipeline.reset()
    assert {p.person_id for p in pipeline.process(frames[3], 400.0)} == {0, 1}
    pipeline.process(frames[4], 401.0)
    pipeline.configure(dataclasses.replace(pipeline.settings, tracking_iou_threshold=0.5))  # a fresh tracker
    assert {p.person_id for p in pipeline.process(frames[5], 402.0)} == {0, 1}


class RecordingLifter:
    """A TrackLifter with a 3-frame history: records what it is given, returns the single-frame joints doubled
    (so the test sees that the pipeline publishes what the track lifter says)."""

    history_length = 3

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, np.ndarray, np.ndarray]]] = []

    def lift_tracks(self, histories: Sequence[TrackHistory]) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append([(h.person_id, *h.arrays()[:2]) for h in histories])
        return (np.stack([2.0 * h.latest.joints3d for h in histories]),
                np.stack([h.latest.rotations for h in histories]))


def test_track_histories_feed_a_temporal_lifter(shared, frames) -> None:
    lifter = RecordingLifter()
    assert isinstance(lifter, TrackLifter)
    pipeline = FramePipeline(PipelineSettings(), estimator=shared.estimator, lifter=lifter)
    pipeline.reset()
    stamps = [10.0, 10.1, 10.2, 10.3]
    outputs = [pipeline.process(rgb, t) for rgb, t in zip(frames[:4], stamps, strict=True)]
    reference = FramePipeline(PipelineSettings(), estimator=shared.estimator, lifter=SingleFrameLifter())
    reference.reset()
    plain = [reference.process(rgb, t) for rgb, t in zip(frames[:4], stamps, strict=True)]
    for frame, (call, people) in enumerate(zip(lifter.calls, outputs, strict=True)):
        assert [pid for pid, _, _ in call] == [p.person_id for p in people]
        for (_, times, keypoints), person in zip(call, people, strict=True):
            n = min(frame + 1, 3)  # the history grows to the lifter's length, then slides
            np.testing.assert_allclose(times, stamps[frame + 1 - n: frame + 1])
            assert keypoints.shape == (n, NUM_JOINTS, 2)
            np.testing.assert_allclose(keypoints[-1], person.keypoints2d, atol=1e-4)  # newest last
    for people, ref in zip(outputs, plain, strict=True):  # what the lifter returned is what comes out
        for person, single in zip(people, ref, strict=True):
            np.testing.assert_allclose(person.joints3d, 2.0 * single.joints3d, atol=1e-5)
    # Time going back (a replayed bag) starts every history afresh.
    pipeline.process(frames[4], 5.0)
    assert all(len(times) == 1 for _, times, _ in lifter.calls[-1])


def test_boxes_and_bad_input(pipeline, frames) -> None:
    rgb = frames[0]
    # A box outside the image finds nobody.
    assert pipeline.process(rgb, 1.0, boxes=np.array([[-500.0, -500.0, -400.0, -400.0]], np.float32)) == []
    with pytest.raises(ValueError, match="stamp_s"):
        pipeline.process(rgb, float("nan"))
    with pytest.raises(TypeError, match="Intrinsics"):
        pipeline.process(rgb, 2.0, intrinsics=(500.0, 500.0, 320.0, 240.0))
    with pytest.raises(ValueError):
        pipeline.process(rgb[:, :, :2], 3.0)
    with pytest.raises(TypeError, match="TrackLifter"):
        FramePipeline(estimator=pipeline.estimator, lifter=object())


def test_hrnet_runtime_reaches_the_hrnet_front_end_only(tmp_path: Path) -> None:
    import torch

    from petr_ros.model.hrnet import HRNetW32

    torch.manual_seed(0)
    weights = tmp_path / "random_hrnet_w32.pth"
    torch.save(HRNetW32().state_dict(), weights)
    pipeline = FramePipeline(PipelineSettings(backend="hrnet", hrnet_weights=str(weights), device="cpu",
                                              hrnet_runtime="onnxruntime"))
    assert pipeline.estimator.backend_name == "hrnet"
    assert "onnxruntime" in pipeline.estimator.frontend.runtime.reason  # used, or the reason it fell back
    rgb = messi_rgb()
    for person in pipeline.process(rgb, 1.0):  # random weights: any number of people, but valid ones
        check_contract(person, rgb.shape[1], rgb.shape[0])
    with pytest.raises(ValueError, match="hrnet_runtime"):
        PipelineSettings(hrnet_runtime="tensorrt")
    with pytest.raises(FileNotFoundError, match="hrnet_weights file not found"):
        FramePipeline(PipelineSettings(backend="hrnet", hrnet_weights=str(tmp_path / "missing.pth")))
