"""Training for real on generated Human3.6M-layout data: learning, bit-for-bit resume, interruption, DDP (gloo,
2 processes), evaluate, animate, prepare and image mode, CLI help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from petr_ros import metrics
from petr_ros.model.checkpoint import load_checkpoint, load_lifter
from training import h36m
from training.cli import build_parser, main
from training.config import TrainConfig
from training.evaluate import evaluate_checkpoint, evaluate_predictions, run_lifter
from training.synthetic import generate_dataset
from training.train import build_model, predict, train

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("h36m"), subjects=("S1", "S5", "S9"), frames=60, seed=1)


def _free_port() -> int:
    """A TCP port nobody listens on now (concurrent test suites on one machine must not share torchrun's)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cfg(data: dict[str, Path], output: Path, **kw) -> TrainConfig:
    base = dict(
        data_3d=str(data["data_3d"]), data_2d=str(data["data_2d"]), train_subjects=["S1", "S5"],
        test_subjects=["S9"], dim_feedforward=128, batch_size=64, lr=1e-3, epochs=3, threads=1, output=str(output),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[TrainConfig, object]:
    cfg = _cfg(data, tmp_path_factory.mktemp("run"), epochs=8, scheduler="cosine", dropout=0.0)
    return cfg, train(cfg, progress=False)


def test_training_learns_far_below_untrained_and_mean_pose(data, trained) -> None:
    cfg, result = trained
    val = h36m.load_h36m_samples(data["data_3d"], data["data_2d"], ["S9"])
    train_set = h36m.load_h36m_samples(data["data_3d"], data["data_2d"], ["S1", "S5"])
    torch.manual_seed(0)
    untrained = predict(build_model(cfg), _as_dataset(val), torch.device("cpu"))
    learned = predict(result.model, _as_dataset(val), torch.device("cpu"))
    mean_pose = np.broadcast_to(train_set.joints3d.mean(0), val.joints3d.shape)
    err_untrained = metrics.mpjpe(untrained, val.joints3d) * 1000
    err_mean = metrics.mpjpe(mean_pose, val.joints3d) * 1000
    err = metrics.mpjpe(learned, val.joints3d) * 1000
    assert err < 0.25 * err_untrained, (err, err_untrained)
    assert err < 0.8 * err_mean, (err, err_mean)
    # the log, the curve and the checkpoints are there, and the checkpoint reproduces the model's numbers
    out = Path(cfg.output)
    assert (out / "loss_curve.png").stat().st_size > 1000
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + cfg.epochs and rows[0].startswith("epoch,train_loss,val_mpjpe_mm")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.metadata["train_config"]["epochs"] == cfg.epochs and ckpt.training_state["epoch"] == cfg.epochs
    assert ckpt.config.dim_feedforward == 128
    model, _ = load_lifter(out / "last.pt")
    again, _ = run_lifter(model, val.keypoints2d)
    assert np.allclose(again, learned, atol=1e-5)
    assert abs(result.history[-1]["val_mpjpe_mm"] - err) < 1e-3


def _as_dataset(samples: h36m.Samples):
    from training.train import PoseDataset

    return PoseDataset(samples.keypoints2d, samples.joints3d)


def test_resume_continues_the_exact_loss_sequence(data, tmp_path) -> None:
    # dropout and flip augmentation on: the RNG state must be restored too
    full = train(_cfg(data, tmp_path / "full", epochs=3, dropout=0.1), progress=False)
    part = train(_cfg(data, tmp_path / "part", epochs=2, dropout=0.1), progress=False)
    resumed = train(_cfg(data, tmp_path / "part", epochs=3, dropout=0.1, resume=str(tmp_path / "part" / "last.pt"),
                         allow_changes=["epochs"]), progress=False)
    assert part.batch_losses + resumed.batch_losses == full.batch_losses
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert resumed.history[-1]["val_mpjpe_mm"] == full.history[-1]["val_mpjpe_mm"]
    a, b = full.model.lifter.state_dict(), resumed.model.lifter.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="lifter config"):
        train(_cfg(data, tmp_path / "x", epochs=4, num_layers=3, resume=str(tmp_path / "part" / "last.pt")))


def test_sigterm_loses_at_most_the_current_epoch_and_resume_finishes(data, tmp_path) -> None:
    out = tmp_path / "run"
    base = ["train", "--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects", "S1",
            "S5", "--test-subjects", "S9", "--dim-feedforward", "64", "--batch-size", "16", "--threads", "1",
            "--output", str(out), "--quiet"]
    args = [sys.executable, "-m", "training.cli", *base, "--epochs", "400"]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "last.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (out / "last.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in 60 s"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "resume with --resume" in err
    done = load_checkpoint(out / "last.pt").training_state["epoch"]
    assert 1 <= done < 400
    resume = ["--resume", str(out / "last.pt"), "--allow-changes", "epochs"]
    assert main([*base, "--epochs", str(done + 1), *resume]) == 0
    assert load_checkpoint(out / "last.pt").training_state["epoch"] == done + 1


def test_ddp_two_processes_give_the_single_process_losses(data, tmp_path) -> None:
    common = ["--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects", "S1", "S5",
              "--test-subjects", "S9", "--dim-feedforward", "64", "--batch-size", "64", "--epochs", "2",
              "--max-batches", "6", "--dropout", "0", "--lr", "1e-3", "--threads", "1", "--quiet", "--dist-backend",
              "gloo"]
    single = train(_cfg(data, tmp_path / "single", dim_feedforward=64, epochs=2, max_batches=6, dropout=0.0),
                   progress=False)
    port = str(_free_port())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "training.cli", "train", *common, "--output", str(tmp_path / "ddp")]
    run = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert len(ddp.training_state["rng"]) == 2  # one RNG state per process
    for a, b in zip(single.history, ddp.training_state["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-7)
        assert a["val_mpjpe_mm"] == pytest.approx(b["val_mpjpe_mm"], rel=1e-4)


def test_evaluate_scores_checkpoints_and_other_methods_predictions(data, trained, tmp_path, capsys) -> None:
    cfg, result = trained
    ckpt = Path(cfg.output) / "best.pt"
    res = evaluate_checkpoint(ckpt, data["data_3d"], data["data_2d"], ["S9"], stride=2,
                              save_predictions=tmp_path / "pred.npz")
    assert set(res["per_action"]) == {"Walking", "Waving", "Reaching", "Squat"}
    assert res["num_poses"] == 4 * 4 * 30
    for key in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpbve", "rotation_error_deg"):
        assert np.isfinite(res[key]) and res[key] > 0
    assert res["p_mpjpe"] <= res["mpjpe"]
    # the saved predictions, scored as "another method", give the same numbers
    other = evaluate_predictions(tmp_path / "pred.npz", data["data_3d"], ["S9"], stride=2)
    assert other["mpjpe"] == pytest.approx(res["mpjpe"], rel=1e-5)
    assert main(["evaluate", "--predictions", str(tmp_path / "pred.npz"), "--data-3d", str(data["data_3d"]),
                 "--subjects", "S9", "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "Walking" in table and "P-MPJPE" in table and (tmp_path / "r.json").exists()
    # a perfect method scores zero
    world = h36m.load_positions_3d(data["data_3d"])["S9"]
    truth = {"S9": {action: h36m.camera_frame_poses(w, "S9") for action, w in world.items()}}
    h36m.save_positions_3d(tmp_path / "perfect.npz", truth)
    assert evaluate_predictions(tmp_path / "perfect.npz", data["data_3d"], ["S9"])["mpjpe"] < 1e-3
    assert main(["evaluate", "--predictions", str(tmp_path / "perfect.npz"), "--data-3d", str(data["data_3d"]),
                 "--subjects", "S1"]) == 2
    assert "missing S1 (all 4 actions)" in capsys.readouterr().err


def test_animate_writes_a_gif(data, trained, tmp_path) -> None:
    from PIL import Image

    cfg, _ = trained
    out = tmp_path / "a.gif"
    assert main(["animate", "--checkpoint", str(Path(cfg.output) / "best.pt"), "--data-3d", str(data["data_3d"]),
                 "--data-2d", str(data["data_2d"]), "--subject", "S9", "--action", "Waving 1", "--frames", "4",
                 "--step", "3", "--output", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size[0] > gif.size[1]


def test_prepare_then_image_mode_end_to_end(tmp_path) -> None:
    paths = generate_dataset(tmp_path / "d", subjects=("S1", "S9"), actions=("Walking 1",), frames=12, seed=2,
                             videos=True, video_scale=0.3)
    args = ["prepare", "--data-3d", str(paths["data_3d"]), "--data-2d", str(paths["data_2d"]), "--videos",
            str(paths["videos"]), "--output", str(tmp_path / "crops"), "--subjects", "S1", "S9", "--stride", "4",
            "--quiet"]
    assert main(args) == 0
    from training.prepare import load_index

    index = load_index(tmp_path / "crops" / "index.npz")
    assert len(index["crop"]) == 2 * 4 * 3  # subjects x cameras x frames (0, 4, 8)
    crop = tmp_path / "crops" / index["crop"][0]
    import cv2

    assert cv2.imread(str(crop)).shape == (256, 192, 3)
    # the person's joints fall inside the crop
    inside = np.einsum("nij,nkj->nki", index["affine"][:, :, :2], index["keypoints2d"]) + index["affine"][:, None, :, 2]
    assert ((inside > 0) & (inside < [192, 256])).all()
    part = next((tmp_path / "crops" / "parts").rglob("*.npz"))
    stamp = part.stat().st_mtime_ns
    assert main(args) == 0 and part.stat().st_mtime_ns == stamp  # finished videos are skipped
    (paths["videos"] / "S9" / "Videos" / "Walking 1.60457274.mp4").unlink()
    (tmp_path / "crops" / "parts" / "S9" / "Walking 1.60457274.npz").unlink()
    with pytest.raises(FileNotFoundError, match="Walking 1.60457274.mp4"):
        from training.prepare import prepare

        prepare(paths["data_3d"], paths["data_2d"], paths["videos"], tmp_path / "crops", ["S9"], 4, progress=False)

    cfg = TrainConfig(mode="image", index=str(tmp_path / "crops" / "index.npz"), train_subjects=["S1"],
                      test_subjects=["S1"], test_stride=6, dim_feedforward=32, batch_size=4, epochs=1, max_batches=2,
                      threads=1, output=str(tmp_path / "img"))
    torch.manual_seed(0)
    before = build_model(cfg)
    result = train(cfg, progress=False)
    backbone_before = before.backbone.state_dict()
    backbone_after = result.model.backbone.state_dict()
    assert all(torch.equal(backbone_before[k], backbone_after[k]) for k in backbone_before)  # frozen, BN stats too
    lifter_before, lifter_after = before.lifter.state_dict(), result.model.lifter.state_dict()
    assert any(not torch.equal(lifter_before[k], lifter_after[k]) for k in lifter_before)
    assert "backbone_state_dict" not in load_checkpoint(tmp_path / "img" / "last.pt").training_state  # frozen


def test_pebrt_variant_trains(data, tmp_path) -> None:
    result = train(_cfg(data, tmp_path / "pebrt", variant="pebrt", epochs=2, max_batches=10), progress=False)
    assert all(np.isfinite(result.batch_losses)) and result.history[-1]["val_mpjpe_mm"] < 1000


def test_cli_help_explains_every_option(capsys) -> None:
    parser = build_parser()
    for command in ("train", "shipped", "heldout", "synth", "evaluate", "animate", "prepare"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = capsys.readouterr().out
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            explained = (action.help or "").split("(default:")[0].strip()  # not just the default value
            assert explained, f"{command} {action.option_strings} has no help"
        assert "usage" in text
    assert main(["train", "--epochs", "0", "--data-3d", "x", "--data-2d", "y"]) == 2
    assert "epochs must be >= 1" in capsys.readouterr().err


def test_yaml_config_then_flags(tmp_path, capsys) -> None:
    from training.cli import config_from_args

    (tmp_path / "run.yaml").write_text("epochs: 7\nlr: 0.002\ntrain_subjects: [S1]\nvariant: pebrt\n")
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["train", "--config", str(tmp_path / "run.yaml"), "--lr", "0.003"]))
    assert (cfg.epochs, cfg.lr, cfg.train_subjects, cfg.variant) == (7, 0.003, ["S1"], "pebrt")
    assert cfg.lr_drop == 10 and cfg.weight_decay == 1e-5 and cfg.seed == 0  # thesis defaults
    (tmp_path / "bad.yaml").write_text("epocs: 7\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown settings ['epocs']" in capsys.readouterr().err
    assert main(["train", "--data-3d", str(tmp_path / "none.npz"), "--data-2d", str(tmp_path / "none2.npz")]) == 2
    assert "none.npz: file not found" in capsys.readouterr().err


def test_heldout_command_scores_a_checkpoint_on_the_shipped_held_out_motion(tmp_path, capsys) -> None:
    from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH

    assert main(["heldout", str(DEFAULT_LIFTER_PATH), "--json", str(tmp_path / "held_out.json")]) == 0
    table = capsys.readouterr().out
    assert "01_03" in table and "MPJPE" in table
    import json

    results = json.loads((tmp_path / "held_out.json").read_text())
    assert list(results) == [str(DEFAULT_LIFTER_PATH)]
    per_sequence = results[str(DEFAULT_LIFTER_PATH)]
    assert any("01_03" in name for name in per_sequence)
    for figures in per_sequence.values():
        assert 20 < figures["detector_noise_2d"]["mpjpe"] < 400  # mm: a trained lifter, not a unit slip
