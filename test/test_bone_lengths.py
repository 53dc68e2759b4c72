"""Per-person bone lengths: robust, steady, symmetric, anthropometric; poses rebuilt with exactly those lengths."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros import kinematics
from petr_ros.bone_lengths import (
    BONE_FRACTION_RANGES,
    MIRROR_BONE,
    BoneLengthEstimator,
    BoneLengthSettings,
    estimate_stature,
    measure_bone_lengths,
    plausible_bone_lengths,
    with_bone_lengths,
)
from petr_ros.skeleton import BONES, FLIP_PERMUTATION


def _person(height: float = 1.75) -> np.ndarray:
    """A plausible rest pose: the centre of every anthropometric range, scaled to `height`."""
    pose = kinematics.winter_rest_pose(height)
    return with_bone_lengths(pose, BONE_FRACTION_RANGES.mean(axis=1) * height)


def test_mirror_bones_pair_left_and_right() -> None:
    for b, m in enumerate(MIRROR_BONE):
        assert BONES[m][0] == FLIP_PERMUTATION[BONES[b][0]]
        assert MIRROR_BONE[m] == b


def test_with_bone_lengths_keeps_directions_and_sets_lengths() -> None:
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(5, 17, 3))
    lengths = rng.uniform(0.05, 0.5, (5, 16))
    out = with_bone_lengths(poses, lengths)
    np.testing.assert_allclose(measure_bone_lengths(out), lengths, atol=1e-12)
    np.testing.assert_allclose(out[:, 0], poses[:, 0])
    before = kinematics.bone_vectors(poses)
    after = kinematics.bone_vectors(out)
    cos = (before * after).sum(-1) / np.linalg.norm(before, axis=-1) / np.linalg.norm(after, axis=-1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    # one set of lengths for a batch
    np.testing.assert_allclose(measure_bone_lengths(with_bone_lengths(poses, lengths[0])), np.tile(lengths[0], (5, 1)))
    with pytest.raises(ValueError, match="16"):
        with_bone_lengths(poses, lengths[:, :15])


def test_plausible_lengths_are_symmetric_and_inside_the_ranges() -> None:
    person = measure_bone_lengths(_person(1.75))
    assert estimate_stature(person) == pytest.approx(1.75)
    np.testing.assert_allclose(plausible_bone_lengths(person), person, atol=1e-12)  # already plausible: unchanged
    bad = person.copy()
    bad[12] *= 0.5  # a 10 cm forearm
    bad[2] *= 1.2  # right shank longer than the left
    fixed = plausible_bone_lengths(bad)
    np.testing.assert_allclose(fixed, fixed[MIRROR_BONE])
    stature = estimate_stature(0.5 * (bad + bad[MIRROR_BONE]))  # the stature the (symmetric) input implies
    assert (fixed >= BONE_FRACTION_RANGES[:, 0] * stature - 1e-12).all()
    assert (fixed <= BONE_FRACTION_RANGES[:, 1] * stature + 1e-12).all()
    # a giant is brought back to the tallest stature allowed
    assert estimate_stature(plausible_bone_lengths(person * 3)) <= 2.1 + 1e-9
    with pytest.raises(ValueError, match="finite"):
        plausible_bone_lengths(np.full(16, np.nan))


def test_estimator_is_steady_robust_and_ignores_unseen_bones() -> None:
    rng = np.random.default_rng(1)
    truth = _person(1.70)
    true_lengths = measure_bone_lengths(truth)
    est = BoneLengthEstimator(BoneLengthSettings(history=60))
    assert est.lengths is None
    np.testing.assert_allclose(est.apply(truth), truth)  # nothing known yet: passed through
    outputs = []
    for t in range(120):
        # the lifter's per-frame guess: each bone 10 % off at random, and every 10th frame a wild forearm
        noisy = with_bone_lengths(truth, true_lengths * rng.uniform(0.9, 1.1, 16))
        if t % 10 == 0:
            noisy = with_bone_lengths(noisy, np.where(np.arange(16) == 12, 0.6, measure_bone_lengths(noisy)))
        est.update(noisy)
        outputs.append(measure_bone_lengths(est.apply(noisy)))
    assert est.frames == 120
    late = np.array(outputs[60:])
    assert (late.std(0) / late.mean(0)).max() < 0.02  # held steady
    np.testing.assert_allclose(est.lengths, true_lengths, rtol=0.04)  # and right, despite the outliers
    np.testing.assert_allclose(late, late[:, MIRROR_BONE], atol=1e-12)
    # a bone whose joints were not seen (low confidence) is not measured
    before = est.lengths
    conf = np.ones(17)
    conf[13] = 0.0  # left wrist unseen: the left forearm measurement is dropped
    est.update(with_bone_lengths(truth, np.where(np.arange(16) == 12, 0.9, true_lengths)), conf)
    assert est.lengths[12] == pytest.approx(before[12], rel=0.02)
    est.reset()
    assert est.lengths is None and est.frames == 0


def test_update_measured_is_update() -> None:
    rng = np.random.default_rng(2)
    truth = _person(1.75)
    a, b = BoneLengthEstimator(BoneLengthSettings(history=20)), BoneLengthEstimator(BoneLengthSettings(history=20))
    for t in range(50):
        pose = with_bone_lengths(truth, measure_bone_lengths(truth) * rng.uniform(0.9, 1.1, 16))
        conf = rng.uniform(0.0, 1.0, 17) if t % 3 else None
        if t == 7:
            conf = np.zeros(17)  # nothing seen: nothing measured
        out_a, out_b = a.update(pose, conf), b.update_measured(measure_bone_lengths(pose), conf)
        assert (out_a is None and out_b is None) or np.array_equal(out_a, out_b)
    assert a.frames == b.frames


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="history"):
        BoneLengthSettings(history=0)
    with pytest.raises(ValueError, match="min_confidence"):
        BoneLengthSettings(min_confidence=2.0)
