"""The training loop's smaller parts on their own: runtime (device, single process, signals), the lr schedule as
a function of the epoch, the run log files, and the data sources' checks."""

from __future__ import annotations

import csv
import math
import os
import signal

import numpy as np
import pytest
import torch

from training import run_log
from training.config import TrainConfig
from training.objective import PixelLifter, build_model
from training.optim import apply_schedule, lr_factor, make_optimizer, make_scheduler
from training.runtime import StopFlag, init_runtime, process_device
from training.sources import FixedSource, PoseDataset, keypoint_source, make_source, targets_of
from training.synthetic import generate_dataset


def test_runtime_single_process_device_and_choices(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rt = init_runtime("cpu", "auto")
    assert (rt.world_size, rt.rank, rt.is_main, rt.distributed, rt.device) == (1, 0, True, False, torch.device("cpu"))
    assert process_device("cpu", local_rank=3) == torch.device("cpu")
    with pytest.raises(ValueError, match="dist_backend must be one of"):
        init_runtime("cpu", "mpi")
    with pytest.raises(ValueError, match="unknown device"):
        init_runtime("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            process_device("cuda")


def test_stop_flag_catches_sigterm_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_lr_schedule_is_a_function_of_epoch_and_total() -> None:
    cosine = lr_factor(TrainConfig(scheduler="cosine", epochs=4))
    assert [cosine(e) for e in range(5)] == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(5)])
    step = lr_factor(TrainConfig(scheduler="step", lr_drop=2, lr_gamma=0.1))
    assert [step(e) for e in range(5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    model = build_model(TrainConfig(dim_feedforward=8))
    cfg = TrainConfig(scheduler="cosine", epochs=2, lr=1e-3, dim_feedforward=8)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    for _ in range(2):  # two epochs (no gradients: the step changes nothing but the order torch expects)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the end of a 2-epoch cosine
    state = sched.state_dict()
    longer = TrainConfig(scheduler="cosine", epochs=4, lr=1e-3, dim_feedforward=8)
    sched2 = make_scheduler(opt, longer)
    sched2.load_state_dict(state)
    apply_schedule(sched2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5e-3)  # epoch 2 of 4: half way down the new cosine
    assert "lr_lambdas" not in state or all(not fn for fn in state["lr_lambdas"])  # the schedule is not stored


def test_run_log_writes_csv_and_curve_atomically(tmp_path) -> None:
    history = [{"epoch": 1, "train_loss": 0.5, "val_mpjpe_mm": 90.0, "val_p_mpjpe_mm": 70.0, "lr": 1e-3,
                "loss_mpjpe": 0.5, "epoch_seconds": 1.0, "samples_per_second": 10.0},
               {"epoch": 2, "train_loss": 0.4, "val_mpjpe_mm": 80.0, "val_p_mpjpe_mm": 65.0, "lr": 5e-4,
                "loss_mpjpe": 0.4, "epoch_seconds": 1.0, "samples_per_second": 10.0}]
    run_log.write_log(tmp_path, history)
    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == run_log.LOG_COLUMNS and [float(r["lr"]) for r in rows] == [1e-3, 5e-4]
    assert rows[0]["loss_rotation"] == ""  # PETR: no rotation term
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "loss_curve.png"]
    line = run_log.epoch_line({**history[1], "loss_rotation": 0.1, "loss_vector": 0.2}, 5)
    assert line.startswith("epoch 2/5: loss 0.40000") and "P-MPJPE 65.0 mm" in line and "rotation 0.1000" in line


def test_sources_check_their_inputs(tmp_path) -> None:
    paths = generate_dataset(tmp_path / "d", subjects=("S1", "S9"), frames=10, seed=9)
    cfg = TrainConfig(data_3d=str(paths["data_3d"]), data_2d=str(paths["data_2d"]), train_subjects=["S1"],
                      test_subjects=["S9"])
    source = make_source(cfg)
    assert isinstance(source, FixedSource) and source.describe()["train_samples"] == 4 * 4 * 10
    assert source.describe()["layout_2d"] == "h36m" and set(source.val_actions) == {"Walking", "Waving", "Reaching",
                                                                                     "Squat"}
    assert np.array_equal(targets_of(source.val_set()), source.val_set().joints3d.numpy())
    with pytest.raises(ValueError, match=r"subjects \['S11'\] not in positions_3d"):
        keypoint_source(TrainConfig(data_3d=cfg.data_3d, data_2d=cfg.data_2d, train_subjects=["S1"],
                                    test_subjects=["S11"]))
    with pytest.raises(ValueError, match="lifter mode needs --data-3d and --data-2d"):
        make_source(TrainConfig())
    with pytest.raises(ValueError, match="image mode needs --index"):
        make_source(TrainConfig(mode="image"))
    with pytest.raises(ValueError, match="differ in length"):
        PoseDataset(np.zeros((3, 17, 2)), np.zeros((2, 17, 3)))
    assert isinstance(build_model(TrainConfig(dim_feedforward=8)), PixelLifter)
