"""One training epoch (batches, mirror augmentation, AMP, gradient clipping, stop polling) and validation."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from petr_ros import metrics
from training.config import TrainConfig
from training.objective import flip_batch, lifter_loss
from training.runtime import Runtime, StopFlag


@dataclass
class EpochResult:
    """What one epoch did: mean loss and loss terms over its batches, every batch's loss, samples seen."""

    mean_loss: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)  # mean of each loss term (mpjpe, rotation, vector)
    batch_losses: list[float] = field(default_factory=list)
    samples: int = 0
    stopped: bool = False  # a stop signal arrived (in any process): the epoch is incomplete


def epoch_row(epoch: int, done: EpochResult, lr_used: float, seconds: float) -> dict[str, Any]:
    """The log row of a finished epoch (validation metrics are added by rank 0)."""
    return {
        "epoch": epoch + 1,
        "train_loss": done.mean_loss,
        **{f"loss_{k}": v for k, v in done.terms.items()},
        "lr": lr_used,
        "epoch_seconds": round(seconds, 3),
        "samples_per_second": round(done.samples / max(seconds, 1e-9), 1),
    }


def epoch_loader(dataset: Dataset, cfg: TrainConfig, rt: Runtime, epoch: int) -> DataLoader:
    """This process's share of the epoch: a DistributedSampler seeded with (seed, epoch) in every mode (one
    process is the 1-replica case), so a global batch holds the same samples whatever the number of processes."""
    per_process = cfg.batch_size // rt.world_size
    sampler = DistributedSampler(
        dataset, num_replicas=rt.world_size, rank=rt.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    if len(sampler) < per_process:
        raise ValueError(f"the training set has {len(dataset)} samples, fewer than one batch of {cfg.batch_size}")
    return DataLoader(dataset, batch_size=per_process, sampler=sampler, drop_last=True, num_workers=cfg.num_workers)


def show_progress(requested: bool, rt: Runtime) -> bool:
    """Progress bars only where someone watches: asked for, rank 0, and stderr a terminal (no \\r in log files)."""
    return requested and rt.is_main and sys.stderr.isatty()


def run_epoch(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loader: DataLoader,
    cfg: TrainConfig,
    rt: Runtime,
    epoch: int,
    stop: StopFlag,
    progress: bool = False,
) -> EpochResult:
    """Train one epoch; stops after the current batch when a signal arrives (result.stopped)."""
    from tqdm import tqdm

    use_amp = cfg.amp and rt.device.type == "cuda"
    # Flip masks come from a (seed, epoch) generator drawn per GLOBAL batch, so each process takes its slice of
    # the same mask the single-process run uses.
    flip_gen = torch.Generator()
    flip_gen.manual_seed(cfg.seed * 1_000_003 + epoch)
    net.train()
    result = EpochResult()
    term_sums: dict[str, float] = {}
    flag = torch.zeros(1, device=rt.device)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False, file=sys.stderr)
    for b, (inputs, target) in enumerate(bar):
        if cfg.max_batches and b >= cfg.max_batches:
            break
        if cfg.flip_augmentation:
            global_mask = torch.rand(cfg.batch_size, generator=flip_gen) < 0.5
            mask = global_mask[rt.rank :: rt.world_size][: inputs.shape[0]]
            inputs, target = flip_batch(inputs, target, mask)
        inputs, target = inputs.to(rt.device), target.to(rt.device)
        with torch.autocast(device_type=rt.device.type, dtype=torch.float16, enabled=use_amp):
            out = net(inputs)
        loss, terms = lifter_loss(out, target.float(), cfg)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        value = loss.detach()
        flag = torch.tensor([float(stop.requested)], device=rt.device)
        if rt.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)  # gloo has no AVG
            value = value / rt.world_size
            dist.all_reduce(flag, op=dist.ReduceOp.SUM)
        result.batch_losses.append(float(value))
        for name, v in terms.items():
            term_sums[name] = term_sums.get(name, 0.0) + v  # this process's terms (rank 0's are logged)
        result.samples += inputs.shape[0] * rt.world_size
        bar.set_postfix(loss=f"{float(value):.4f}")
        if float(flag) > 0:
            break
    bar.close()
    result.stopped = stop.requested or (rt.distributed and float(flag) > 0)
    count = max(len(result.batch_losses), 1)
    result.mean_loss = sum(result.batch_losses) / count
    result.terms = {name: s / count for name, s in term_sums.items()}
    return result


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """Root-relative 3D predictions (N, 17, 3) of `model` (a PixelLifter/EndToEndModel) over `dataset`."""
    was_training = model.training
    model.eval()
    outs = []
    # Its own generator: evaluating must not advance the global RNG (resumed runs must match uninterrupted ones).
    for inputs, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator()):
        outs.append(model(inputs.to(device)).joints3d.float().cpu())
    model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 17, 3), np.float32)


def validation_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Protocol 1 and 2 errors in mm, what Human3.6M results are compared by."""
    return {
        "val_mpjpe_mm": float(metrics.mpjpe(pred, target)) * 1000.0,
        "val_p_mpjpe_mm": float(metrics.p_mpjpe(pred, target)) * 1000.0,
    }
