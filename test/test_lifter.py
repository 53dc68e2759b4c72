"""Lifters: normalisation invariances, PETR/PEBRT shapes and contracts, batching, gradients, config checks."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from petr_ros.model.lifter import (
    LifterConfig,
    LifterOutput,
    PEBRTLifter,
    PETRLifter,
    build_lifter,
    normalize_keypoints_2d,
)
from petr_ros.model.size import count_parameters
from petr_ros.skeleton import BONES, NUM_JOINTS

torch.set_num_threads(2)


def _keypoints(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, NUM_JOINTS, 2)) * 40 + [320, 240]).astype(np.float32)


def test_normalisation_invariances_numpy_and_torch() -> None:
    kp = _keypoints(4)
    norm = normalize_keypoints_2d(kp)
    assert norm.shape == kp.shape
    np.testing.assert_allclose(norm[:, 0], 0.0, atol=1e-6)
    # unit RMS distance to the root
    np.testing.assert_allclose(np.sqrt((norm**2).sum(-1).mean(-1)), 1.0, rtol=1e-5)
    # independent of translation and person scale
    moved = kp * 3.7 + np.array([100.0, -50.0], dtype=np.float32)
    np.testing.assert_allclose(normalize_keypoints_2d(moved), norm, atol=1e-5)
    # torch gives the same numbers and keeps gradients
    t = torch.tensor(kp, requires_grad=True)
    out = normalize_keypoints_2d(t)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), norm, atol=1e-5)
    out.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    # a degenerate pose (everything on the root) stays finite
    assert np.isfinite(normalize_keypoints_2d(np.zeros((17, 2)))).all()


def test_normalisation_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 2\)"):
        normalize_keypoints_2d(np.zeros((2, 16, 2)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 2\)"):
        normalize_keypoints_2d(torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="NaN"):
        normalize_keypoints_2d(np.full((17, 2), np.nan))


def test_petr_contract() -> None:
    torch.manual_seed(0)
    cfg = LifterConfig(output_scale=1.5)
    model = build_lifter(cfg).eval()
    assert isinstance(model, PETRLifter)
    x = torch.as_tensor(normalize_keypoints_2d(_keypoints(5)))
    with torch.inference_mode():
        out = model(x)
    assert isinstance(out, LifterOutput)
    assert out.joints3d.shape == (5, 17, 3)
    assert out.rotations is None and out.local_rotations is None and out.constraint_weights is None
    assert torch.all(out.joints3d[:, 0] == 0)  # root forced to the origin
    assert out.joints3d.abs().max() <= 1.5  # tanh * output_scale
    # batched == one at a time (no cross-sample mixing), eval is deterministic
    with torch.inference_mode():
        one = model(x[2:3]).joints3d
        again = model(x).joints3d
    torch.testing.assert_close(one[0], out.joints3d[2], atol=1e-5, rtol=1e-5)
    assert torch.equal(again, out.joints3d)
    # thesis size: 2 layers of d_model 34 with a 2048-wide feed-forward, tens of thousands of parameters... ~0.3 M
    assert 100_000 < count_parameters(model) < 400_000


def test_petr_trains_and_other_widths() -> None:
    torch.manual_seed(0)
    model = build_lifter(LifterConfig(num_layers=1, d_model=64, nhead=4, dim_feedforward=64, dropout=0.0))
    x = torch.as_tensor(normalize_keypoints_2d(_keypoints(16)))
    target = torch.randn(16, 17, 3) * 0.2
    target[:, 0] = 0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = (model(x).joints3d - target).norm(dim=-1).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first  # every parameter is wired to the output


def test_pebrt_contract() -> None:
    from petr_ros import kinematics

    torch.manual_seed(0)
    cfg = LifterConfig(variant="pebrt", body_height=1.6)
    model = build_lifter(cfg).eval()
    assert isinstance(model, PEBRTLifter)
    x = torch.as_tensor(normalize_keypoints_2d(_keypoints(3)))
    with torch.inference_mode():
        out = model(x)
    assert out.joints3d.shape == (3, 17, 3)
    assert out.rotations.shape == (3, 17, 3, 3)
    assert out.local_rotations.shape == (3, 16, 3, 3)
    assert out.constraint_weights.shape == (3, 16)
    assert torch.all(out.constraint_weights >= 1)
    torch.testing.assert_close(out.joints3d[:, 0], torch.zeros(3, 3))
    # rotations are in SO(3)
    eye = torch.eye(3).expand(3, 16, 3, 3)
    torch.testing.assert_close(out.local_rotations @ out.local_rotations.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(out.rotations), torch.ones(3, 17), atol=1e-5, rtol=0)
    # bone lengths are the Winter model's for the configured height
    lengths = np.asarray(kinematics.winter_bone_lengths(1.6), dtype=np.float32)
    got = np.stack([(out.joints3d[:, c] - out.joints3d[:, p]).norm(dim=-1).numpy() for c, p in BONES], axis=-1)
    np.testing.assert_allclose(got, np.broadcast_to(lengths, got.shape), atol=1e-5)
    # globals map each rest direction onto the produced bone; locals are parent-relative; the root is the body frame
    rest = torch.tensor(np.array(kinematics.REST_DIRECTIONS), dtype=torch.float32)
    for b, (c, p) in enumerate(BONES):
        bone = out.joints3d[:, c] - out.joints3d[:, p]
        torch.testing.assert_close((out.rotations[:, c] @ rest[c]) * float(lengths[b]), bone, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.rotations[:, p].transpose(-1, -2) @ out.rotations[:, c],
                                   out.local_rotations[:, b], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.rotations[:, 0], kinematics.joint_rotations(out.joints3d)[:, 0], atol=1e-5, rtol=0)
    weights, _ = kinematics.kinematic_constraint_weights(out.local_rotations)
    torch.testing.assert_close(out.constraint_weights, weights)
    # gradients reach the transformer through Gram-Schmidt and FK
    model.train()
    loss = model(x).joints3d.square().sum()
    loss.backward()
    assert model.encoder.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0


def test_config_validation_and_json() -> None:
    cfg = LifterConfig(variant="pebrt", num_layers=4)
    assert LifterConfig.from_dict(json.loads(json.dumps(asdict(cfg)))) == cfg
    for bad in ({"variant": "vit"}, {"num_layers": 0}, {"num_layers": 9}, {"d_model": 34, "nhead": 4},
                {"dropout": 1.0}, {"normalisation": "bbox"}, {"output_scale": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_lifter(LifterConfig(**bad))
    with pytest.raises(ValueError, match="unknown lifter config keys"):
        LifterConfig.from_dict({"variant": "petr", "layers": 3})


def test_lifter_rejects_bad_input() -> None:
    model = build_lifter(LifterConfig())
    with pytest.raises(ValueError, match=r"\(B, 17, 2\)"):
        model(torch.zeros(2, 34))


def _sequence_config(variant: str, window: int = 9) -> LifterConfig:
    return LifterConfig(variant=variant, architecture="sequence", window=window, num_layers=2, d_model=32, nhead=4,
                        dim_feedforward=64, dropout=0.0, output_scale=2.0)


@pytest.mark.parametrize("variant", ["petr", "bones", "pebrt"])
def test_sequence_lifter_is_causal_masks_missing_frames_and_lifts_single_frames(variant) -> None:
    from petr_ros.model.temporal import SequenceLifter

    torch.manual_seed(0)
    model = build_lifter(_sequence_config(variant)).eval()
    assert isinstance(model, SequenceLifter)
    windows = torch.as_tensor(normalize_keypoints_2d(_keypoints(3 * 9).reshape(3, 9, 17, 2)))
    with torch.inference_mode():
        out = model(windows)
        assert out.joints3d.shape == (3, 17, 3)
        torch.testing.assert_close(out.joints3d[:, 0], torch.zeros(3, 3))
        # the output depends on the earlier frames (it is temporal) ...
        changed = windows.clone()
        changed[:, 0] += 0.5
        assert not torch.allclose(model(changed).joints3d, out.joints3d, atol=1e-4)
        # ... but missing (all-zero) frames are not looked at: a young track = the same frames with zeros before
        young = windows.clone()
        young[:, :5] = 0.0
        torch.testing.assert_close(model(young).joints3d, model(windows[:, 5:]).joints3d, atol=1e-5, rtol=1e-5)
        # a single (B, 17, 2) frame is a window of one; longer windows keep their last `window` frames
        torch.testing.assert_close(model(windows[:, -1]).joints3d, model(windows[:, -1:]).joints3d)
        longer = torch.cat([torch.randn(3, 4, 17, 2), windows], dim=1)
        torch.testing.assert_close(model(longer).joints3d, out.joints3d)
        # batched == one at a time
        torch.testing.assert_close(model(young[1:2]).joints3d[0], model(young).joints3d[1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, T, 17, 2\)"):
        model(torch.zeros(2, 3, 17, 3))


def test_bones_head_is_a_plausible_symmetric_skeleton() -> None:
    from petr_ros.bone_lengths import BONE_FRACTION_RANGES, MIRROR_BONE
    from petr_ros.model.temporal import STATURE_SPAN

    torch.manual_seed(1)
    cfg = _sequence_config("bones")
    model = build_lifter(cfg).eval()
    with torch.no_grad():  # drive the head to extreme outputs: the lengths must still be a plausible human's
        model.head.bias.mul_(0).add_(torch.randn_like(model.head.bias) * 20)
    x = torch.as_tensor(normalize_keypoints_2d(_keypoints(4)))
    with torch.inference_mode():
        out = model(x)
    got = np.stack([(out.joints3d[:, c] - out.joints3d[:, p]).norm(dim=-1).numpy() for c, p in BONES], axis=-1)
    np.testing.assert_allclose(got, out.bone_lengths.numpy(), atol=1e-5)
    np.testing.assert_allclose(got, got[:, MIRROR_BONE], atol=1e-6)  # left = right
    stature_max = cfg.body_height * STATURE_SPAN[1]
    stature_min = cfg.body_height * STATURE_SPAN[0]
    assert (got <= BONE_FRACTION_RANGES[:, 1] * stature_max + 1e-5).all()
    assert (got >= BONE_FRACTION_RANGES[:, 0] * stature_min - 1e-5).all()


def test_sequence_config_checks() -> None:
    for bad in ({"architecture": "rnn"}, {"architecture": "sequence", "window": 0},
                {"architecture": "sequence", "window": 500}):
        with pytest.raises(ValueError, match="architecture" if "rnn" in bad.values() else "window"):
            build_lifter(LifterConfig(**bad))
    with pytest.raises(ValueError, match="architecture='sequence'"):
        build_lifter(LifterConfig(window=27))
    with pytest.raises(ValueError, match="architecture='sequence'"):
        build_lifter(LifterConfig(variant="bones"))
    cfg = _sequence_config("bones", window=27)
    assert LifterConfig.from_dict(json.loads(json.dumps(asdict(cfg)))) == cfg
