"""What a run reports (issue 12 item 10): per-epoch validation MPJPE and P-MPJPE, the lr each epoch trained with,
PEBRT's loss terms, the resolved settings and sample counts at the start, no progress-bar carriage returns in a
redirected log, and an explicit DDP backend."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import TrainConfig
from training.synthetic import generate_dataset
from training.train import train

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("h36m"), subjects=("S1", "S9"), frames=30, seed=8)


def test_log_rows_hold_what_h36m_users_compare(data, tmp_path) -> None:
    cfg = TrainConfig(data_3d=str(data["data_3d"]), data_2d=str(data["data_2d"]), train_subjects=["S1"],
                      test_subjects=["S9"], variant="pebrt", dim_feedforward=32, batch_size=32, epochs=2, lr=2e-3,
                      lr_drop=1, lr_gamma=0.5, threads=1, output=str(tmp_path / "run"), max_batches=4)
    result = train(cfg, progress=False)
    with open(tmp_path / "run" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == pytest.approx([2e-3, 1e-3])  # the lr used in that epoch
    for row, hist in zip(rows, result.history, strict=True):
        assert 0 < float(row["val_p_mpjpe_mm"]) <= float(row["val_mpjpe_mm"])
        assert float(row["loss_rotation"]) > 0 and float(row["loss_vector"]) > 0 and float(row["loss_mpjpe"]) > 0
        # the terms add up to the loss (weights 1): the columns are the loss's own parts
        total = hist["loss_mpjpe"] + hist["loss_rotation"] + hist["loss_vector"]
        assert hist["train_loss"] == pytest.approx(total, rel=1e-5)


def test_a_redirected_log_gets_the_settings_and_epoch_lines_without_carriage_returns(data, tmp_path) -> None:
    args = [sys.executable, "-m", "training.cli", "train", "--data-3d", str(data["data_3d"]), "--data-2d",
            str(data["data_2d"]), "--train-subjects", "S1", "--test-subjects", "S9", "--dim-feedforward", "32",
            "--batch-size", "16", "--epochs", "2", "--threads", "1", "--output", str(tmp_path / "run")]
    run = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    log = run.stderr
    assert "\r" not in log  # no progress bar when stderr is not a terminal
    assert "training with the resolved settings" in log and "batch_size: 16" in log and "epochs: 2" in log
    samples = 4 * 4 * 30  # actions x cameras x frames of S1
    assert f"train_samples {samples}" in log and f"val_samples {samples}" in log
    assert "epoch 1/2: loss" in log and "epoch 2/2: loss" in log and "P-MPJPE" in log and "lr 1.00e-04" in log
    assert "TensorBoard" in log  # where the event files go, or that tensorboard is not installed


def test_dist_backend_is_a_checked_choice() -> None:
    for backend in ("auto", "gloo", "nccl"):
        assert TrainConfig(dist_backend=backend).validate().dist_backend == backend
    with pytest.raises(ValueError, match="dist_backend must be one of"):
        TrainConfig(dist_backend="mpi").validate()
