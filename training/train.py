"""The training run: single process or torchrun DDP, resumable bit for bit, interrupt-safe.

The parts live by concern: `runtime` (processes, device, seeds, signals), `sources` (data), `objective` (model,
mirror augmentation, losses), `optim` (optimiser, lr schedule), `epoch` (one epoch, validation), `resume` (output
folder, checkpoint pair, resuming) and `run_log` (CSV, PNG, TensorBoard, printed lines). `train` puts them together:

- A checkpoint (model, optimiser, scheduler, AMP scaler, epoch, every process's RNG state, history) is written
  atomically at the end of every epoch by rank 0; resuming restores all of it, so the continued run reproduces
  the uninterrupted one exactly (on the same machine and software).
- SIGINT/SIGTERM stop after the current batch without writing a partial epoch: at most that epoch is lost.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petr_ros import fileio
from training.config import TrainConfig
from training.epoch import epoch_loader, epoch_row, predict, run_epoch, show_progress, validation_metrics
from training.objective import PixelLifter, backbone_entry, build_model
from training.optim import current_lr, make_optimizer, make_scheduler
from training.resume import (
    BEST,
    LAST,
    RunState,
    check_output,
    data_fingerprints,
    prepare_output,
    restore,
    save_epoch,
    training_state,
)
from training.run_log import TensorBoardLog, describe_start, echo, epoch_line, write_log
from training.runtime import (
    StopFlag,
    TrainingInterrupted,
    all_rng_states,
    init_runtime,
    seed_everything,
    shutdown,
)
from training.sources import DataSource, PoseDataset, make_source, targets_of

# The shipped recipe and older callers import these from here.
__all__ = ["DataSource", "PixelLifter", "PoseDataset", "TrainResult", "TrainingInterrupted", "predict", "train"]


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    checkpoint: Path | None
    best_checkpoint: Path | None
    batch_losses: list[float]
    model: nn.Module


def init_weights(model: nn.Module, cfg: TrainConfig) -> str:
    """`--init`: start from a checkpoint's weights (fine-tuning); its model config must be this run's."""
    from petr_ros.model.checkpoint import load_backbone, load_checkpoint

    ckpt = load_checkpoint(cfg.init)
    if ckpt.config.to_dict() != cfg.lifter_config().to_dict():
        theirs, ours = ckpt.config.to_dict(), cfg.lifter_config().to_dict()
        differ = {k: (theirs.get(k), ours[k]) for k in ours if theirs.get(k) != ours[k]}
        raise ValueError(f"--init {cfg.init}: its lifter differs from this run's in {differ} (checkpoint, run)")
    model.lifter.load_state_dict(ckpt.state_dict)
    if getattr(model, "backbone", None) is not None and ckpt.is_full_model:  # image mode from a full checkpoint
        model.backbone.load_state_dict(load_backbone(ckpt).state_dict())
        return f"init: lifter and backbone weights from {cfg.init}"
    return f"init: weights from {cfg.init}"


def train(
    cfg: TrainConfig,
    source: DataSource | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run (or resume) training as `cfg` says; returns the history and the checkpoint paths (rank 0).

    progress: print the settings, one line per epoch and (on a terminal) a progress bar.
    """
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rt = init_runtime(cfg.device, cfg.dist_backend)
    if cfg.batch_size % rt.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {rt.world_size} processes")
    output = Path(cfg.output)
    notes: list[str] = []
    if rt.is_main:
        check_output(output, cfg)  # before loading anything; files are replaced only once the data loaded
    seed_everything(cfg.seed)
    source = source or make_source(cfg)
    if rt.is_main:
        removed = prepare_output(output, cfg)
        notes += [f"removed {len(removed)} orphan temporary file(s) of a killed run"] if removed else []

    model = build_model(cfg).to(rt.device)
    if cfg.init and not cfg.resume:
        notes.append(init_weights(model, cfg))
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and rt.device.type == "cuda")
    run = RunState()
    if cfg.resume:
        run = restore(cfg, model, optimizer, scheduler, scaler, rt)
        notes += run.notes
    net: nn.Module = model
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    data_info = source.describe()
    meta = {"data": data_info, "train_config": cfg.to_dict(), **(metadata or {})}
    if rt.is_main:
        meta["data_sha256"] = data_fingerprints(cfg)
    val = source.val_set()
    val_target = targets_of(val) if rt.is_main else None
    tensorboard = TensorBoardLog(output) if rt.is_main else None
    if rt.is_main:
        import yaml

        fileio.write_text(output / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if progress:
            notes.append(f"TensorBoard events: {output / 'tensorboard'}" if tensorboard.active else
                         "TensorBoard not installed: log.csv and loss_curve.png only")
            echo(describe_start(cfg.to_dict(), data_info, [f"processes: {rt.world_size} on {rt.device}", *notes]))
    last_path, best_path = output / LAST, output / BEST
    backbone = backbone_entry(model, cfg) if rt.is_main else None  # a frozen one's file is hashed once
    batch_losses: list[float] = []
    try:
        with StopFlag() as stop:
            for epoch in range(run.start_epoch, cfg.epochs):
                t0 = time.perf_counter()
                loader = epoch_loader(source.train_set(epoch), cfg, rt, epoch)
                lr_used = current_lr(optimizer)
                done = run_epoch(net, model, optimizer, scaler, loader, cfg, rt, epoch, stop,
                                 progress=show_progress(progress, rt))
                batch_losses += done.batch_losses
                if done.stopped:
                    signum = stop.signum or signal.SIGTERM
                    raise TrainingInterrupted(signum, last_path if last_path.exists() else None, epoch)
                scheduler.step()
                row = epoch_row(epoch, done, lr_used, time.perf_counter() - t0)
                rng_states = all_rng_states(rt)  # collective: every process's state goes into the checkpoint
                if not rt.is_main:
                    run.history.append(row)
                    continue
                pred = predict(model, val, rt.device, batch_size=1024 if cfg.mode == "lifter" else cfg.batch_size)
                row.update(validation_metrics(pred, val_target))
                run.history.append(row)
                improved = row["val_mpjpe_mm"] < run.best_val_mpjpe_mm
                if improved:
                    run.best_val_mpjpe_mm, run.best_epoch = row["val_mpjpe_mm"], epoch + 1
                state = training_state(epoch + 1, optimizer, scheduler, scaler, rng_states, run)
                if backbone is None or "state_dict" in backbone:  # a trained backbone changes every epoch
                    backbone = backbone_entry(model, cfg)
                epoch_meta = {**meta, "epochs_trained": epoch + 1, "val_mpjpe_mm": row["val_mpjpe_mm"],
                              "val_p_mpjpe_mm": row["val_p_mpjpe_mm"]}
                save_epoch(output, model, cfg, epoch_meta, state, improved, backbone)
                write_log(output, run.history)
                tensorboard.add_epoch(row)
                if progress:
                    echo(epoch_line(row, cfg.epochs))
                if on_epoch is not None:
                    on_epoch(row)
    finally:
        if tensorboard is not None:
            tensorboard.close()
    shutdown(rt)
    return TrainResult(
        history=run.history,
        checkpoint=last_path if rt.is_main else None,
        best_checkpoint=best_path if rt.is_main and best_path.exists() else None,
        batch_losses=batch_losses,
        model=model,
    )
