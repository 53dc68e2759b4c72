"""The per-frame ghost filter (petr_ros.plausibility) on real skeletons: the Winter rest pose and BlazePose output."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from petr_ros import kinematics
from petr_ros.estimator import PersonPose
from petr_ros.plausibility import REASONS, PlausibilitySettings, reject_implausible

IMAGE_SHAPE = (540, 960)


def rest_person(score: float = 0.9, centre: tuple[float, float] = (480.0, 270.0), height_px: float = 400.0,
                person_id: int = -1) -> PersonPose:
    """The Winter rest pose seen from the front, `height_px` tall, centred at `centre`."""
    joints = kinematics.winter_rest_pose().astype(np.float32)  # (17, 3) metres, y down
    extent = float(joints[:, 1].max() - joints[:, 1].min())
    kp = joints[:, :2] * (height_px / extent)
    kp = kp - kp.mean(axis=0) + np.asarray(centre, np.float32)
    conf = np.full(17, score, np.float32)
    box = np.array([*kp.min(axis=0), *kp.max(axis=0)], np.float32)
    rotations = np.tile(np.array([0, 0, 0, 1], np.float32), (17, 1))
    return PersonPose(joints3d=joints, rotations=rotations, keypoints2d=kp.astype(np.float32), confidences=conf,
                      box=box, score=float(conf.mean()), person_id=person_id)


def test_keeps_a_plausible_person_and_counts_every_reason() -> None:
    person = rest_person()
    kept, counts = reject_implausible([person], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [person]
    assert set(counts) == set(REASONS) and sum(counts.values()) == 0


def test_default_min_score_is_the_nodes() -> None:
    from petr_ros.ros.node import PARAM_BY_NAME

    assert PlausibilitySettings().min_score == PARAM_BY_NAME["min_person_score"].default


@pytest.mark.parametrize("field", ["joints3d", "keypoints2d", "rotations", "confidences"])
def test_non_finite_values_are_rejected(field: str) -> None:
    good = rest_person()
    bad_array = np.array(getattr(good, field), copy=True)
    bad_array.flat[3] = np.nan if field != "keypoints2d" else np.inf
    bad = dataclasses.replace(good, **{field: bad_array})
    kept, counts = reject_implausible([bad, good], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [good]
    assert counts["non_finite"] == 1 and counts["low_score"] == 0


def test_score_below_min_score_is_rejected_at_the_threshold_kept() -> None:
    low, at, high = (rest_person(s, centre=(x, 270.0), height_px=200) for s, x in ((0.29, 200), (0.3, 480), (0.8, 760)))
    kept, counts = reject_implausible([low, at, high], PlausibilitySettings.scores_only(0.3), IMAGE_SHAPE)
    assert kept == [at, high]  # input order kept
    assert counts["low_score"] == 1
    kept, counts = reject_implausible([low, at, high], PlausibilitySettings.scores_only(0.5), IMAGE_SHAPE)
    assert kept == [high] and counts["low_score"] == 2


def test_nan_score_counts_as_non_finite_not_low() -> None:
    person = dataclasses.replace(rest_person(), score=float("nan"))
    kept, counts = reject_implausible([person], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [] and counts["non_finite"] == 1 and counts["low_score"] == 0


def test_bad_settings_and_image_shape_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="min_score"):
        PlausibilitySettings(min_score=1.5)
    with pytest.raises(ValueError, match="min_score"):
        PlausibilitySettings(min_score=float("nan"))
    with pytest.raises(ValueError, match="image_shape"):
        reject_implausible([rest_person()], PlausibilitySettings(), (0, 640))
    assert reject_implausible([], PlausibilitySettings(), IMAGE_SHAPE) == ([], dict.fromkeys(REASONS, 0))


def test_rest_pose_has_winter_proportions() -> None:
    from petr_ros.plausibility import bone_length_ratios

    np.testing.assert_allclose(bone_length_ratios(kinematics.winter_rest_pose()), 1.0, atol=1e-6)
    np.testing.assert_allclose(bone_length_ratios(kinematics.winter_rest_pose(1.4)), 1.0, atol=1e-6)  # scale-free


def test_few_confident_joints_are_rejected() -> None:
    person = rest_person()
    conf = np.full(17, 0.9, np.float32)
    conf[5:] = 0.2  # 5 confident joints, mean 0.41: passes min_score
    partial = dataclasses.replace(person, confidences=conf, score=float(conf.mean()))
    kept, counts = reject_implausible([partial, person], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [person] and counts["few_joints"] == 1
    kept, _ = reject_implausible([partial], PlausibilitySettings(min_confident_joints=5), IMAGE_SHAPE)
    assert kept == [partial]


def test_tiny_and_outside_people_are_rejected_but_kept_without_the_checks() -> None:
    tiny = rest_person(height_px=30)
    outside = rest_person(centre=(480.0, 900.0))  # below a 540-pixel-high image
    kept, counts = reject_implausible([tiny, outside], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [] and counts["too_small"] == 1 and counts["outside_image"] == 1
    kept, counts = reject_implausible([tiny, outside], PlausibilitySettings.scores_only(), IMAGE_SHAPE)
    assert kept == [tiny, outside] and sum(counts.values()) == 0
    lenient = PlausibilitySettings(min_size_px=20, min_size_fraction=0.02)
    assert reject_implausible([tiny], lenient, IMAGE_SHAPE)[0] == [tiny]
    # 30 px is under 8 % of a 960-pixel-wide image: too small by the relative floor alone
    assert reject_implausible([tiny], PlausibilitySettings(min_size_px=20), IMAGE_SHAPE)[1]["too_small"] == 1


def test_flat_2d_skeleton_of_an_upright_body_is_rejected_a_lying_one_kept() -> None:
    person = rest_person()
    joints = person.joints3d.copy()
    for shoulder, elbow, wrist in ((11, 12, 13), (14, 15, 16)):  # arms hanging down: taller than wide
        upper, lower = np.linalg.norm(joints[elbow] - joints[shoulder]), np.linalg.norm(joints[wrist] - joints[elbow])
        joints[elbow] = joints[shoulder] + np.array([0, upper, 0], np.float32)
        joints[wrist] = joints[elbow] + np.array([0, lower, 0], np.float32)
    person = dataclasses.replace(person, joints3d=joints)
    kp = person.keypoints2d.copy()
    kp[:, 1] = 270 + (kp[:, 1] - 270) * 0.05  # squashed to 20 px high, the 3D still upright
    kp[:, 0] = 480 + (kp[:, 0] - 480) * 3.0
    flat = dataclasses.replace(person, keypoints2d=kp)
    kept, counts = reject_implausible([flat], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [] and counts["flat"] == 1
    # Lying on the floor: wide in the image and in 3D alike (turned 90 degrees about the camera axis).
    turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    centred = person.keypoints2d - person.keypoints2d.mean(axis=0)
    lying = dataclasses.replace(person, joints3d=person.joints3d @ turn.T,
                                keypoints2d=(centred @ turn[:2, :2].T * 0.8 + np.array([480, 270])).astype(np.float32))
    kept, counts = reject_implausible([lying], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [lying], {k: v for k, v in counts.items() if v}


@pytest.mark.parametrize(("bone_end", "factor", "kept_expected"),
                         [(13, 10.0, False), (13, 0.1, False), (13, 1.5, True), (6, 5.5, False), (6, 2.5, True)])
def test_3d_proportions_far_from_winter_are_rejected(bone_end: int, factor: float, kept_expected: bool) -> None:
    from petr_ros.skeleton import PARENTS

    person = rest_person()
    joints = person.joints3d.copy()
    # Stretch one bone (13: left forearm, 6: left shank) and move its end joint with it.
    parent = PARENTS[bone_end]
    joints[bone_end] = joints[parent] + (joints[bone_end] - joints[parent]) * factor
    odd = dataclasses.replace(person, joints3d=joints)
    kept, counts = reject_implausible([odd], PlausibilitySettings(), IMAGE_SHAPE)
    assert (kept == [odd]) == kept_expected, counts
    assert counts["proportions"] == int(not kept_expected)


def test_duplicate_of_a_surer_person_is_rejected_someone_behind_kept() -> None:
    front = rest_person(score=0.9)
    again = dataclasses.replace(rest_person(score=0.6), keypoints2d=front.keypoints2d + 4.0)
    behind = rest_person(score=0.8, centre=(560.0, 230.0), height_px=350)
    kept, counts = reject_implausible([again, front, behind], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [front, behind] and counts["duplicate"] == 1
    kept, counts = reject_implausible([again, front], PlausibilitySettings(duplicates=False), IMAGE_SHAPE)
    assert kept == [again, front] and counts["duplicate"] == 0


def test_settings_validation_names_the_field() -> None:
    for field, value in (("joint_score", 2.0), ("min_confident_joints", 18), ("min_size_px", -1.0),
                         ("max_bone_ratio", 0.5), ("max_asymmetry", float("inf"))):
        with pytest.raises(ValueError, match=field):
            PlausibilitySettings(**{field: value})
    assert PlausibilitySettings().replaced(min_size_px=10.0).min_size_px == 10.0


def test_skeleton_attached_to_a_surer_person_is_rejected() -> None:
    real = rest_person(score=0.95)
    # A second guess on the same body: half its joints on the real person's joints (other labels), the rest
    # stretched out beside them.
    kp = real.keypoints2d.copy()[::-1].copy()
    kp[:8] = kp[:8] + np.array([250.0, 0.0], np.float32)
    ghost = dataclasses.replace(rest_person(score=0.7), keypoints2d=kp)
    kept, counts = reject_implausible([ghost, real], PlausibilitySettings(), IMAGE_SHAPE)
    assert kept == [real] and counts["duplicate"] == 1
    kept, counts = reject_implausible([ghost, real], PlausibilitySettings(attached_fraction=0.0), IMAGE_SHAPE)
    assert len(kept) == 2 and counts["duplicate"] == 0


def test_real_people_pass_the_default_filter() -> None:
    """The default thresholds keep every real person the shipped lifter sees in the photos and video frames the
    package ships (a guard against limits tighter than the lifter's own proportions)."""
    import os
    from pathlib import Path

    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    from petr_ros.estimator import PoseEstimator

    assets = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))
    estimator = PoseEstimator(backend="mediapipe", device="cpu")
    try:
        for name, people in (("messi5.jpg", 1), ("basketball1.png", 1)):
            bgr = cv2.imread(str(assets / name), cv2.IMREAD_COLOR)
            assert bgr is not None, f"missing asset {assets / name}: run scripts/fetch_assets.sh"
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            estimator.reset()
            found = estimator.estimate(rgb)
            kept, counts = reject_implausible(found, PlausibilitySettings(), rgb.shape[:2])
            assert len(found) == len(kept) == people, (name, {k: v for k, v in counts.items() if v})
        # Sports2D frames 72-100: the man on the box and the woman walking, both in every frame.
        estimator.reset()
        cap = cv2.VideoCapture(str(assets / "sports2d_demo.mp4"))
        try:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 72)
            for _ in range(0, 29, 4):
                for _skip in range(3):
                    cap.grab()
                ok, bgr = cap.read()
                assert ok, "could not read sports2d_demo.mp4"
                bgr = cv2.resize(bgr, (960, round(bgr.shape[0] * 960 / bgr.shape[1])), interpolation=cv2.INTER_AREA)
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                kept, counts = reject_implausible(estimator.estimate(rgb), PlausibilitySettings(), rgb.shape[:2])
                assert len(kept) == 2, {k: v for k, v in counts.items() if v}
        finally:
            cap.release()
    finally:
        estimator.close()
