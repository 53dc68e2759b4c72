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
    low, at, high = rest_person(0.29), rest_person(0.3), rest_person(0.8)
    kept, counts = reject_implausible([low, at, high], PlausibilitySettings(min_score=0.3), IMAGE_SHAPE)
    assert kept == [at, high]  # input order kept
    assert counts["low_score"] == 1
    kept, counts = reject_implausible([low, at, high], PlausibilitySettings(min_score=0.5), IMAGE_SHAPE)
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
