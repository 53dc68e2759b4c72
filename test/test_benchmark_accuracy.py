"""benchmarks/benchmark_accuracy.py's own functions on the real reference and a real image: matching, the
labelled measures (zero for the reference itself, invariances), the track measures and the world-landmark hook."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import REPO, messi_rgb

from petr_ros.camera import Intrinsics, project

_spec = importlib.util.spec_from_file_location("benchmark_accuracy", REPO / "benchmarks" / "benchmark_accuracy.py")
B = importlib.util.module_from_spec(_spec)
sys.modules["benchmark_accuracy"] = B
_spec.loader.exec_module(B)


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return B.load_reference()


def _reference_people(ref: dict[str, np.ndarray], shift: np.ndarray | None = None, scale: float = 1.0,
                      blaze: bool = True) -> B.VideoRun:
    """A VideoRun whose one person is the reference itself (invalid joints filled from the previous frame), placed
    at the reference's camera position, plus a far-away second person that matches nobody."""
    truth = ref["joints_cam01"][0].astype(np.float64)
    valid = ref["valid"][0]
    filled = truth.copy()
    for f in range(len(filled)):
        bad = ~valid[f]
        filled[f, bad] = filled[f - 1, bad] if f else filled[f, 0]
    K = Intrinsics.from_k(ref["K_cam01"].reshape(-1))
    frames = []
    for f in range(len(filled)):
        rel = scale * (filled[f] - filled[f, 0]) + (0 if shift is None else shift)
        rel = rel - rel[0]
        camera = rel + filled[f, 0]
        pixels = project(filled[f], K).astype(np.float32)
        answer = B.BlazePoseAnswer(rel.astype(np.float32), pixels, np.ones(17, np.float32)) if blaze else None
        person = B.Person(1, rel.astype(np.float32), camera, pixels, np.ones(17, np.float32), ref["box_cam01"][0, f],
                          answer)
        ghost = B.Person(2, rel.astype(np.float32), camera + 5.0, np.zeros((17, 2), np.float32),
                         np.ones(17, np.float32), np.array([0.0, 0.0, 20.0, 20.0], np.float32), None)
        frames.append([ghost, person])
    return B.VideoRun("reference", frames, 0.0, 60.0)


def test_the_reference_scores_zero_against_itself(ref: dict[str, np.ndarray]) -> None:
    video = _reference_people(ref)
    names, boxes = B.known_boxes(ref, 100)
    assert names[0] == "reference" and boxes.shape[1:] == (len(names), 4)
    matched, tally = B.match_reference(video, names, boxes)
    assert matched == [1] * 100  # the ghost box overlaps nobody
    summary = tally.summary()
    assert summary["found_reference"] == 1.0 and summary["false_per_frame"] == pytest.approx(1.0)
    scores = B.labelled_scores(video, ref, matched)
    for key in ("petr", "blaze"):
        s = scores[key]
        assert s["frames"] == scores["reference"]["frames"] == 48  # all 17 joints valid (REFERENCE.md)
        assert s["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3) and s["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
        assert s["bone_direction_deg"] == pytest.approx(0.0, abs=1e-3)
        assert s["acceleration_error_mm"] == pytest.approx(0.0, abs=1e-3)  # float32 poses
        assert s["size_ratio"] == pytest.approx(1.0)
    assert scores["petr"]["pelvis_error_m"] == pytest.approx(0.0, abs=1e-6)
    # BlazePose's pelvis is placed from the 2D and its skeleton with the intrinsics: the exact projection of the
    # true joints gives back the true position.
    assert scores["blaze"]["pelvis_error_m"] == pytest.approx(0.0, abs=2e-3)
    assert len(scores["petr"]["p_mpjpe_per_joint_mm"]) == 17
    # REFERENCE.md: limb CV <= 9.1 % per bone; the 8 limb bones average a few percent.
    assert 1.0 < scores["reference"]["limb_length_cv_pct"] < 9.1


def test_oracle_2d_row_lifts_the_reference_projection(ref: dict[str, np.ndarray]) -> None:
    """The lifter-alone row hands the lifter the reference's own projected 2D; a lifter that answers the truth
    scores zero, one that answers a mirror image does not."""
    full = ref["valid"][0].all(axis=1)
    truth = B._fill_missing(np.where(ref["valid"][0, ..., None], ref["joints_cam01"][0], np.nan).astype(np.float64))
    assert np.isfinite(truth).all()
    np.testing.assert_allclose(truth[full], ref["joints_cam01"][0][full])  # valid joints are left as they are
    K = Intrinsics.from_k(ref["K_cam01"].reshape(-1))
    seen: list[tuple[np.ndarray, float]] = []

    def perfect(pixels: np.ndarray, fps: float) -> np.ndarray:
        seen.append((pixels, fps))
        return truth - truth[:, :1]

    scores = B.labelled_scores(_reference_people(ref), ref, [1] * 100, perfect)["petr_oracle_2d"]
    assert seen[0][0].shape == (100, 17, 2) and seen[0][1] == 60.0  # every frame, as one track at 60 fps
    np.testing.assert_allclose(seen[0][0], project(truth, K), atol=1e-3)
    assert scores["frames"] == 48 and scores["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    mirrored = B.labelled_scores(_reference_people(ref), ref, [1] * 100,
                                 lambda px, fps: (truth - truth[:, :1]) * [-1.0, 1.0, 1.0])["petr_oracle_2d"]
    assert mirrored["p_mpjpe_mm"] > 20.0 and mirrored["bone_direction_deg"] > 10.0


def test_labelled_measures_see_shape_not_size(ref: dict[str, np.ndarray]) -> None:
    """A 20 % larger copy: P-MPJPE and bone directions stay zero, MPJPE and the size ratio do not."""
    scores = B.labelled_scores(_reference_people(ref, scale=1.2), ref, [1] * 100)["petr"]
    assert scores["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert scores["bone_direction_deg"] == pytest.approx(0.0, abs=1e-3)
    assert scores["mpjpe_mm"] > 20.0 and scores["size_ratio"] == pytest.approx(1.2, rel=1e-4)
    # Nobody found: nothing scored, no crash.
    none = B.labelled_scores(_reference_people(ref), ref, [None] * 100)
    assert none["petr"] == {"frames": 0}


def test_track_measures_of_a_rigid_reference_track(ref: dict[str, np.ndarray]) -> None:
    video = _reference_people(ref, blaze=False)
    out = B.track_measures(video)
    assert out["people"]["tracks"] == 2 and out["people"]["people_per_frame"] == 2.0
    assert out["petr"]["limit_violations_pct"] >= 0.0 and "limb_length_cv_pct" in out["petr"]
    assert out["blaze"] == {}  # no world landmarks given
    # Leaving the matched person out leaves the ghost's track only (the same skeleton, 5 m away).
    rest = B.track_measures(video, exclude={(f, 1) for f in range(100)})
    assert rest["people"]["tracks"] == 1
    assert rest["petr"]["limb_length_cv_pct"] == pytest.approx(out["petr"]["limb_length_cv_pct"])


def test_blazepose_world_answers_for_a_person_box() -> None:
    rgb = messi_rgb()
    blaze = B.BlazePoseWorld(model_complexity=1)
    try:
        answer = blaze.measure(rgb, np.array([150.0, 20.0, 420.0, 340.0]))  # the player in messi5.jpg
        assert answer is not None
        assert answer.world.shape == (17, 3) and np.isfinite(answer.world).all()
        assert np.allclose(answer.world[0], 0.0)  # root-relative
        assert 0.9 < np.linalg.norm(answer.world[10] - answer.world[[3, 6]].mean(0)) < 2.2  # metric, a person
        # Its own 2D lies in the full image, on the player, and projects its skeleton sensibly.
        assert answer.keypoints2d.shape == (17, 2)
        assert (answer.keypoints2d[:, 0] > 100).all() and (answer.keypoints2d[:, 0] < 470).all()
        assert blaze.measure(rgb, np.array([0.0, 0.0, 4.0, 4.0])) is None  # nothing to look at
    finally:
        blaze.close()


def test_the_runner_runs_the_default_pipeline_on_real_frames(ref: dict[str, np.ndarray]) -> None:
    frames, fps = B.read_frames(B.ASSETS / "pose2sim_multi" / "cam01.mp4", 3)
    assert fps == pytest.approx(60.0, rel=0.01) and frames[0].shape == (1920, 1088, 3)
    runner = B.frame_runner(None, 1)
    try:
        K = Intrinsics.from_k(ref["K_cam01"].reshape(-1), 1088, 1920)
        video = B.run_video(runner, "cam01", frames, fps, K)
        assert all(video.people) and len(video.tracks) >= 1
        matched, _ = B.match_reference(video, *B.known_boxes(ref, 3))
        assert all(i is not None for i in matched)  # she is found and matched in every frame
        person = video.people[0][matched[0]]
        assert person.joints3d.shape == (17, 3) and np.allclose(person.joints3d[0], 0.0, atol=1e-5)
        assert person.blaze is not None and person.blaze.world.shape == (17, 3)
        assert 1.5 < person.joints3d_camera[0, 2] < 4.0  # placed with the intrinsics: metres in front of cam01
        # The lifter alone on a track of given 2D: one root-relative pose per frame.
        pixels = np.asarray([p.keypoints2d for p in (video.people[f][matched[f]] for f in range(3))])
        lifted = runner.lift_2d(pixels, fps)
        assert lifted.shape == (3, 17, 3) and np.isfinite(lifted).all()
    finally:
        runner.close()


def test_reference_disagreement_with_the_image_and_the_pelvis_split(ref: dict[str, np.ndarray]) -> None:
    import cv2

    # Real frames: in frame 0 the reference projects 80-110 px off her in cam01 (cam01 was not among the views
    # that agreed), in frame 60 onto her.
    cap = cv2.VideoCapture(str(B.ASSETS / "pose2sim_multi" / "cam01.mp4"))
    frames = {}
    try:
        for f in range(61):
            ok, bgr = cap.read()
            assert ok, f"could not read frame {f} of cam01.mp4"
            if f in (0, 60):
                frames[f] = np.ascontiguousarray(bgr[:, :, ::-1])
    finally:
        cap.release()
    blaze = B.BlazePoseWorld(model_complexity=1)
    try:
        def peer_2d(rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
            answer = blaze.measure(rgb, box)
            return None if answer is None else answer.keypoints2d

        sub = {k: (v[:, [0, 60]] if k in ("joints_cam01", "box_cam01") else v) for k, v in ref.items()}
        far, near = B.reference_disagreement_px([frames[0], frames[60]], sub, peer_2d)
    finally:
        blaze.close()
    assert far > 60.0 and near < B.MAX_DISAGREEMENT_PX
    # The split of the pelvis error: frames by their disagreement, NaN-safe.
    video = _reference_people(ref)
    matched, _ = B.match_reference(video, *B.known_boxes(ref, 100))
    for f in range(30):  # placed 0.2 m off in the first 30 frames
        video.people[f][matched[f]].joints3d_camera[:] += np.array([0.2, 0.0, 0.0])
    disagreement = np.where(np.arange(100) < 30, 100.0, 5.0)
    disagreement[40] = np.nan  # BlazePose found nobody there: not an agreeing frame
    scores = B.labelled_scores(video, ref, matched, disagreement_px=disagreement)["petr"]
    assert scores["agreeing_frames"] == 69
    assert scores["pelvis_error_m"] == pytest.approx(0.06, abs=1e-6)
    assert scores["pelvis_error_agreeing_m"] == pytest.approx(0.0, abs=1e-6)
    assert scores["pelvis_error_disagreeing_m"] == pytest.approx(0.2 * 30 / 31, abs=1e-6)
    assert "agreeing_frames" not in B.labelled_scores(video, ref, matched)["petr"]
