"""Optimiser and learning-rate schedule of a run.

The schedule is a function of the epoch and the run's total `epochs` (LambdaLR), not a recursion over the previous
lr: a run resumed with more epochs (`--resume ... --epochs N --allow-changes epochs`) continues on the schedule of
the new total, e.g. a cosine extended from 2 to 3 epochs trains epoch 3 at 1/4 of the initial lr instead of 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from training.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the lifter (lr) and, unless frozen (backbone_lr 0), the image backbone (backbone_lr)."""
    groups = [{"params": list(model.lifter.parameters()), "lr": cfg.lr, "name": "lifter"}]
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        frozen = cfg.backbone_lr == 0
        model.freeze_backbone(frozen)
        if not frozen:
            groups.append({"params": list(backbone.parameters()), "lr": cfg.backbone_lr, "name": "backbone"})
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Epoch -> multiplier of the initial lr: StepLR (x lr_gamma every lr_drop epochs) or cosine to 0 at `epochs`."""
    if cfg.scheduler == "cosine":
        total = cfg.epochs
        return lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / total))
    drop, gamma = cfg.lr_drop, cfg.lr_gamma
    return lambda epoch: gamma ** (epoch // drop)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    # A plain function (not a callable object) so the state dict stores no schedule: it always comes from cfg.
    factor = lr_factor(cfg)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factor(epoch))


def apply_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set every group's lr for the scheduler's epoch from this run's schedule (after loading a resumed state)."""
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The lifter's learning rate now (the one the next batch uses)."""
    return float(optimizer.param_groups[0]["lr"])
