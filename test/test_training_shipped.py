"""The shipped default lifter: it loads, lifts real held-out motion well, and its recipe is deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petr_ros import metrics, skeleton
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_checkpoint, load_lifter
from training.cmu import load_cmu_take
from training.evaluate import run_lifter
from training.shipped import ShippedRecipe, assets_dir, train_shipped
from training.virtual import project, random_views, to_camera


def test_shipped_checkpoint_is_documented_and_lifts_held_out_motion() -> None:
    ckpt = load_checkpoint(DEFAULT_LIFTER_PATH)
    assert ckpt.training_state is None  # a release: weights, config and metadata only
    meta = ckpt.metadata
    assert meta["data"]["held_out_takes"] == ["01_03.bvh"] and "petr_train shipped" in meta["command"]
    held_out = meta["held_out_metrics_mm_deg"]
    assert held_out["detector_noise_2d"]["mpjpe"] < held_out["mean_pose_baseline_mpjpe"]
    model, _ = load_lifter(DEFAULT_LIFTER_PATH)
    # real held-out motion (take 01_03, never trained on), a fresh set of cameras, the node's 2D conversion
    take = load_cmu_take(assets_dir() / "01_03.bvh", frame_step=30)
    rng = np.random.default_rng(123)
    world_h36m, world_coco = take.h36m.astype(np.float64), take.coco.astype(np.float64)
    rot, eye, intr = random_views(world_h36m, rng)
    kp2d, _ = skeleton.coco_to_h36m(project(to_camera(world_coco, rot, eye), intr))
    target = to_camera(world_h36m, rot, eye)
    target -= target[:, :1]
    pred, _ = run_lifter(model, kp2d.astype(np.float32))
    err = metrics.mpjpe(pred, target) * 1000
    baseline = metrics.mpjpe(np.broadcast_to(target.mean(0), target.shape), target) * 1000
    assert err < 200 and err < 0.6 * baseline, (err, baseline)
    # camera axes: the head is above the pelvis (y down) in upright frames
    upright = target[:, 10, 1] < -0.4
    assert (pred[upright, 10, 1] < 0).all()
    # the input is normalised: image position and person size do not change the output
    shifted, _ = run_lifter(model, (kp2d * 1.7 + np.array([300.0, -50.0])).astype(np.float32))
    assert np.allclose(shifted, pred, atol=1e-4)


def test_shipped_recipe_is_deterministic(tmp_path) -> None:
    recipe = ShippedRecipe(samples_per_epoch=1024, synthetic_frames=1000, test_frame_step=60, test_views=1)
    weights = []
    for run in ("a", "b"):
        report = train_shipped(output=tmp_path / run / "lifter.pt", work_dir=tmp_path / run, epochs=1,
                               progress=False, recipe=recipe)  # fmt: skip
        assert "MPJPE" in report
        weights.append(load_checkpoint(tmp_path / run / "lifter.pt").state_dict)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("name", ["01_01.bvh", "01_03.bvh"])
def test_shipped_training_assets_are_present(name) -> None:
    assert (assets_dir() / name).is_file(), f"run scripts/fetch_assets.sh: {assets_dir() / name} is missing"
