"""Lifter checkpoints: round trip, atomic writes, and a clear error for every kind of bad file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from petr_ros.model.checkpoint import (
    DEFAULT_LIFTER_PATH,
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    backbone_reference,
    load_backbone,
    load_checkpoint,
    load_lifter,
    save_checkpoint,
)
from petr_ros.model.lifter import LifterConfig, build_lifter, normalize_keypoints_2d

torch.set_num_threads(2)


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, LifterConfig]:
    torch.manual_seed(0)
    cfg = LifterConfig(num_layers=3, dim_feedforward=256)
    model = build_lifter(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randn(2, 17, 2)).joints3d.sum().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "ckpts" / "lifter.pt",
        model.state_dict(),
        cfg,
        metadata={"data": "cmu 01_01", "epochs": 3, "metrics": {"mpjpe_mm": np.float32(61.5)}, "split": ("a", "b"),
                  "torch": torch.__version__},  # a str subclass: stored as a plain str
        training_state={"epoch": 3, "optimizer": opt.state_dict()},
    )
    return path, model, cfg


def test_round_trip(saved: tuple[Path, torch.nn.Module, LifterConfig]) -> None:
    path, model, cfg = saved
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.config == cfg and ckpt.format_version == FORMAT_VERSION and not ckpt.is_full_model
    assert ckpt.metadata["epochs"] == 3 and ckpt.metadata["data"] == "cmu 01_01"
    assert type(ckpt.metadata["torch"]) is str and ckpt.metadata["torch"] == str(torch.__version__)
    assert ckpt.metadata["metrics"]["mpjpe_mm"] == pytest.approx(61.5)  # numpy scalar stored as a float
    assert ckpt.training_state["epoch"] == 3
    assert set(ckpt.training_state["optimizer"]) == {"state", "param_groups"}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ckpt.state_dict[k], v)

    loaded, ckpt2 = load_lifter(path)
    assert not loaded.training and ckpt2.config == cfg
    x = torch.as_tensor(normalize_keypoints_2d(np.random.default_rng(0).normal(size=(4, 17, 2)).astype(np.float32)))
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x).joints3d, model(x).joints3d)
    # the file is plain data: weights_only loading works directly
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["config"]["num_layers"] == 3


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(
    saved: tuple[Path, torch.nn.Module, LifterConfig],
) -> None:
    path, model, cfg = saved
    before = path.read_bytes()
    with pytest.raises(TypeError, match="metadata"):
        save_checkpoint(path, model.state_dict(), cfg, metadata={"bad": object()})
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["lifter.pt"]  # no temp files left behind
    # overwrite works and replaces content
    save_checkpoint(path, model.state_dict(), cfg, metadata={"epochs": 4})
    assert load_checkpoint(path).metadata == {"epochs": 4}
    assert sorted(os.listdir(path.parent)) == ["lifter.pt"]


def test_errors(tmp_path: Path, saved: tuple[Path, torch.nn.Module, LifterConfig]) -> None:
    path, model, cfg = saved
    with pytest.raises(FileNotFoundError, match="missing.pt.*petr_train"):
        load_checkpoint(tmp_path / "missing.pt")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(garbage)

    bare = tmp_path / "bare_state_dict.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a petr_ros lifter checkpoint"):
        load_checkpoint(bare)

    raw = torch.load(path, weights_only=True)
    future = tmp_path / "future.pt"
    torch.save({**raw, "format_version": 7}, future)
    with pytest.raises(CheckpointError, match="format_version 7"):
        load_checkpoint(future)

    mismatch = tmp_path / "mismatch.pt"
    torch.save({**raw, "config": {**raw["config"], "num_layers": 2}}, mismatch)
    with pytest.raises(CheckpointError, match=r"unexpected \['encoder\.layers\.2\."):
        load_checkpoint(mismatch)

    wrong_shape = tmp_path / "wrong_shape.pt"
    torch.save({**raw, "config": {**raw["config"], "dim_feedforward": 128}}, wrong_shape)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.0\.linear1\.weight: \(256, 34\) vs \(128, 34\)"):
        load_checkpoint(wrong_shape)

    bad_config = tmp_path / "bad_config.pt"
    torch.save({**raw, "config": {**raw["config"], "variant": "hmr"}}, bad_config)
    with pytest.raises(CheckpointError, match="invalid lifter config.*variant"):
        load_checkpoint(bad_config)


def test_backbone_entries_are_checked(tmp_path: Path, saved: tuple[Path, torch.nn.Module, LifterConfig]) -> None:
    path, model, cfg = saved
    weights = tmp_path / "backbone.pth"
    weights.write_bytes(b"stand-in weights file")
    reference = backbone_reference(weights)
    assert reference["sha256"] == hashlib.sha256(b"stand-in weights file").hexdigest()
    full = save_checkpoint(tmp_path / "full.pt", model.state_dict(), cfg, backbone={"kind": "hrnet_w32", **reference})
    assert load_checkpoint(full).is_full_model and load_checkpoint(full).backbone["weights_file"] == str(weights)
    for entry, message in (({"kind": "resnet", **reference}, "backbone kind 'resnet'"),
                           ({"kind": "hrnet_w32"}, "not neither"),
                           ({"kind": "hrnet_w32", "state_dict": {}, **reference}, "not both")):
        with pytest.raises(CheckpointError, match=message):
            save_checkpoint(tmp_path / "bad.pt", model.state_dict(), cfg, backbone=entry)
        raw = torch.load(full, weights_only=True)
        torch.save({**raw, "backbone": entry}, tmp_path / "bad_file.pt")
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / "bad_file.pt")
    with pytest.raises(CheckpointError, match="lifter-only"):
        load_backbone(load_checkpoint(path))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="backbone.pth, found at neither"):
        load_backbone(load_checkpoint(full))


def test_default_path_is_in_the_package() -> None:
    assert DEFAULT_LIFTER_PATH.name == "petr_lifter_cmu.pt"
    assert DEFAULT_LIFTER_PATH.parent.name == "data" and DEFAULT_LIFTER_PATH.parent.parent.name == "petr_ros"
