"""The shipped default lifter: it loads, beats the previous one on every held-out sequence, lifts real held-out
motion through new cameras, and its recipe (windows of real motion) is deterministic."""

from __future__ import annotations

import numpy as np
import torch

from petr_ros import metrics
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_checkpoint, load_lifter
from training import motion
from training.shipped import (
    ShippedRecipe,
    WindowDataset,
    lift_windows,
    pool_weights,
    real_motion,
    synthetic_sequences,
    train_shipped,
    view_windows,
)


def test_shipped_checkpoint_is_documented_and_better_than_its_predecessor_everywhere() -> None:
    ckpt = load_checkpoint(DEFAULT_LIFTER_PATH)
    assert ckpt.training_state is None  # a release: weights, config and metadata only
    assert ckpt.config.architecture == "sequence" and ckpt.config.variant == "bones"
    meta = ckpt.metadata
    assert "petr_train shipped" in meta["command"]
    held_out = set(meta["data"]["held_out_sequences"])
    assert held_out == set(motion.sequence_names("held_out"))
    assert not held_out & set(meta["data"]["train_sequences"])  # whole sequences held out
    figures = meta["held_out_metrics_mm_deg"]
    assert set(figures["new"]) == held_out == set(figures["previous"])
    for name in held_out:
        new, old = figures["new"][name]["detector_noise_2d"], figures["previous"][name]["detector_noise_2d"]
        assert new["mpjpe"] < old["mpjpe"] and new["p_mpjpe"] < old["p_mpjpe"], name


def test_shipped_lifter_lifts_real_held_out_motion_through_new_cameras() -> None:
    model, _ = load_lifter(DEFAULT_LIFTER_PATH)
    seq = real_motion("cmu/01_03")  # never trained on
    rng = np.random.default_rng(123)
    last = np.arange(200, len(seq), 60)
    n = len(last)
    windows = view_windows(seq, last, np.full(n, 4), np.full(n, 27), 27, rng, None)  # 30 Hz, fresh cameras
    pred, _ = lift_windows(model, windows.keypoints2d)
    target = windows.joints3d.astype(np.float64)
    err = metrics.mpjpe(pred, target) * 1000
    baseline = metrics.mpjpe(np.broadcast_to(target.mean(0), target.shape), target) * 1000
    assert err < 200 and err < 0.6 * baseline, (err, baseline)
    upright = target[:, 10, 1] < -0.4  # camera axes: the head is above the pelvis (y down) in upright frames
    assert (pred[upright, 10, 1] < 0).all()
    # the input is normalised per frame: image position and person size do not change the output
    moved = np.where(windows.keypoints2d == 0, 0, windows.keypoints2d * 1.7 + np.array([300.0, -50.0]))
    shifted, _ = lift_windows(model, moved.astype(np.float32))
    np.testing.assert_allclose(shifted, pred, atol=1e-4)
    # the first frame of a track (a window of one) is lifted too, less well than with its history
    single, _ = lift_windows(model, windows.keypoints2d[:, -1:])
    assert metrics.mpjpe(single, target) * 1000 < 0.8 * baseline


def test_windows_mark_missing_frames_and_sources_share_equally() -> None:
    seq = real_motion("deepmimic/jump")
    rng = np.random.default_rng(0)
    last = np.array([0, 5, 60])
    w = view_windows(seq, last, np.array([1, 2, 2]), np.array([27, 27, 3]), 27, rng, None)
    missing = (w.keypoints2d == 0).all(axis=(-1, -2))
    assert missing[0, :26].all() and not missing[0, 26]  # the sequence's first frame: nothing before it
    assert missing[1].sum() == 24  # frames 5, 3, 1 exist at stride 2
    assert missing[2].sum() == 24  # a track cut to 3 frames
    np.testing.assert_allclose(w.joints3d[:, 0], 0.0)
    pool = [real_motion("cmu/01_01"), real_motion("deepmimic/jump"), real_motion("deepmimic/run")]
    pool += synthetic_sequences(np.random.default_rng(1), 2000)
    p = pool_weights(pool)
    assert np.isclose(p.sum(), 1.0)
    assert np.isclose(p[0], p[1] + p[2]) and np.isclose(p[0], p[3] + p[4])  # cmu = deepmimic = synthetic
    ds = WindowDataset(w.keypoints2d, w.joints3d)
    assert len(ds) == 3 and ds[0][0].shape == (27, 17, 2)


def test_shipped_recipe_is_deterministic(tmp_path) -> None:
    recipe = ShippedRecipe(train_sequences=("cmu/01_01", "deepmimic/jump"), held_out_sequences=("deepmimic/kick",),
                           samples_per_epoch=512, synthetic_frames=1000, perturbed_copies=1, test_views=1)
    weights = []
    for run in ("a", "b"):
        report = train_shipped(output=tmp_path / run / "lifter.pt", work_dir=tmp_path / run, epochs=1,
                               progress=False, recipe=recipe)
        assert "deepmimic/kick" in report and "mpjpe" in report
        weights.append(load_checkpoint(tmp_path / run / "lifter.pt").state_dict)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_window_bias_is_one_offset_per_joint_for_the_whole_window() -> None:
    seq = real_motion("deepmimic/jump")
    last = np.array([40, 80])
    args = (seq, last, np.array([1, 2]), np.array([27, 27]), 27)
    plain = view_windows(*args, np.random.default_rng(5), None)
    biased = view_windows(*args, np.random.default_rng(5), None, bias=(0.02, 0.02))  # same cameras
    shift = biased.keypoints2d - plain.keypoints2d
    seen = ~(plain.keypoints2d == 0).all(axis=(-1, -2))
    for w in range(2):
        frames = shift[w][seen[w]]
        np.testing.assert_allclose(frames, np.broadcast_to(frames[-1], frames.shape), atol=1e-3)
        size = np.ptp(plain.keypoints2d[w, -1, :, 1])
        assert 0.005 * size < np.abs(frames[-1]).mean() < 0.05 * size
    np.testing.assert_allclose(biased.joints3d, plain.joints3d)  # the 3D targets are untouched
