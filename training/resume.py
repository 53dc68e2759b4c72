"""A run's files and its continuation: the output folder, the per-epoch checkpoint pair, resuming.

- A new run refuses an output folder that already holds a run's results (`--resume` continues it, `--overwrite`
  replaces it); temporaries a killed writer left are removed at the start.
- Every epoch writes best.pt (when improved) BEFORE last.pt: a kill between the two writes leaves best.pt at or
  ahead of what last.pt records as best, never behind it, and resuming from last.pt redoes that epoch exactly.
- `--resume` compares the checkpoint's stored settings with this run's and refuses the changes that would break
  the resumed run, naming them; `epochs` may grow when allowed explicitly (`--allow-changes epochs`).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petr_ros import fileio
from petr_ros.model.checkpoint import Checkpoint, file_sha256, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.optim import apply_schedule
from training.run_log import TENSORBOARD_DIR
from training.runtime import Runtime, set_rng_state

LAST, BEST = "last.pt", "best.pt"
RESULT_FILES = (LAST, BEST, "log.csv")  # a folder holding any of these holds a run
RUN_FILES = (*RESULT_FILES, "loss_curve.png", "config.yaml")
# Settings that do not change what is computed (where things are, how fast): they may differ on --resume.
FREE_ON_RESUME = frozenset({"resume", "output", "overwrite", "allow_changes", "init", "num_workers", "threads",
                            "device", "dist_backend"})
# Data files are compared by content (SHA-256 stored in the checkpoint), so a moved file is fine, a changed one not.
DATA_FILES = ("data_3d", "data_2d", "index")
# Settings a resumed run may change when the user says so (--allow-changes NAME), with what it means.
EXTENDABLE = {"epochs": "more epochs: the lr schedule is re-planned for the new total"}


def check_output(output: Path, cfg: TrainConfig) -> None:
    """Refuse to replace an earlier run's results in `output` unless resuming or `overwrite` (before any work)."""
    existing = [output / name for name in RESULT_FILES if (output / name).exists()]
    if existing and not cfg.resume and not cfg.overwrite:
        raise ValueError(
            f"{output} already holds a training run ({', '.join(p.name for p in existing)}); continue it with "
            f"--resume {output / LAST}, replace it with --overwrite, or choose another --output"
        )


def prepare_output(output: Path, cfg: TrainConfig) -> list[Path]:
    """Make the output folder ready (rank 0 only, once the data loaded): `check_output`; with `overwrite` delete
    the earlier run's files; always delete orphan temporaries. Returns the removed temporaries."""
    check_output(output, cfg)
    output.mkdir(parents=True, exist_ok=True)
    if cfg.overwrite and not cfg.resume:
        for name in RUN_FILES:
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / TENSORBOARD_DIR, ignore_errors=True)
    removed: list[Path] = []
    for name in RUN_FILES:
        removed += fileio.remove_stale_temporaries(output, name)
    return removed


def data_fingerprints(cfg: TrainConfig) -> dict[str, str]:
    """SHA-256 of each data file the run reads (stored in every checkpoint, compared on resume)."""
    return {name: file_sha256(getattr(cfg, name)) for name in DATA_FILES if getattr(cfg, name)}


def _differences(
    stored: Mapping[str, Any], cfg: TrainConfig, stored_data: Mapping[str, str] | None = None
) -> dict[str, tuple[Any, Any]]:
    """Settings whose value differs between a checkpoint's stored train_config and `cfg` (missing = default).
    With the stored data fingerprints, data files count as different when their content differs."""
    now = cfg.to_dict()
    defaults = TrainConfig().to_dict()
    out = {}
    by_content = set()
    if stored_data is not None:
        current = data_fingerprints(cfg)
        for name in DATA_FILES:
            if name in stored_data or name in current:
                by_content.add(name)
                if stored_data.get(name) != current.get(name):
                    before = f"{stored.get(name, '')} (sha256 {str(stored_data.get(name, '-'))[:12]})"
                    out[name] = (before, f"{now[name]} (sha256 {str(current.get(name, '-'))[:12]})")
    for f in fields(TrainConfig):
        if f.name in FREE_ON_RESUME or f.name in by_content:
            continue
        before = stored.get(f.name, defaults[f.name])
        if before != now[f.name]:
            out[f.name] = (before, now[f.name])
    return out


def check_resume_settings(ckpt: Checkpoint, cfg: TrainConfig, epochs_done: int) -> list[str]:
    """Refuse a resume whose settings break the stored run (ValueError naming each change); return notes on the
    allowed ones."""
    stored = ckpt.metadata.get("train_config")
    if not isinstance(stored, Mapping):
        raise ValueError(f"{ckpt.path} records no train_config: cannot check that this run continues it")
    stored_data = ckpt.metadata.get("data_sha256")
    changed = _differences(stored, cfg, stored_data if isinstance(stored_data, Mapping) else None)
    allowed = set(cfg.allow_changes)
    unknown = sorted(allowed - set(EXTENDABLE))
    if unknown:
        raise ValueError(f"--allow-changes accepts {sorted(EXTENDABLE)}, got {unknown}")
    breaking = {k: v for k, v in changed.items() if k not in allowed}
    if breaking:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in breaking.items())
        extendable = [k for k in breaking if k in EXTENDABLE]
        hint = (
            f" (allow {', '.join(extendable)} with --allow-changes {' '.join(extendable)})" if extendable else ""
        )
        raise ValueError(
            f"--resume {ckpt.path}: this run's settings differ from the ones it was trained with: {listed}{hint}. "
            "Resume with the same settings, or start a new run from its weights with --init"
        )
    notes = []
    if "epochs" in changed:
        before, now = changed["epochs"]
        if now < epochs_done:
            raise ValueError(f"--epochs {now} is fewer than the {epochs_done} epochs {ckpt.path} already trained")
        notes.append(f"resume: epochs {before} -> {now}: {EXTENDABLE['epochs']}")
    return notes


@dataclass
class RunState:
    """What the loop carries from epoch to epoch and a checkpoint stores."""

    start_epoch: int = 0
    best_val_mpjpe_mm: float = math.inf
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def training_state(
    epochs_done: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    rng_states: list[dict[str, Any]],
    run: RunState,
) -> dict[str, Any]:
    """What a checkpoint stores to continue the run bit for bit (`restore` reads it back)."""
    return {
        "epoch": epochs_done,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states,
        "history": run.history,
        "best_val_mpjpe_mm": run.best_val_mpjpe_mm,
        "best_epoch": run.best_epoch,
    }


def restore(
    cfg: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    rt: Runtime,
) -> RunState:
    """Load everything `cfg.resume` holds into the fresh objects (bit-for-bit continuation); checks first."""
    ckpt = load_checkpoint(cfg.resume)
    state = ckpt.training_state
    if not state:
        raise ValueError(f"{cfg.resume} holds no training state (a released model?): cannot resume from it")
    if ckpt.config.to_dict() != cfg.lifter_config().to_dict():
        raise ValueError(
            f"{cfg.resume} was trained with lifter config {ckpt.config.to_dict()}, "
            f"this run asks for {cfg.lifter_config().to_dict()}"
        )
    epochs_done = int(state["epoch"])
    notes = check_resume_settings(ckpt, cfg, epochs_done)
    rng_states = state["rng"]
    if len(rng_states) != rt.world_size:
        raise ValueError(
            f"{cfg.resume} was written by {len(rng_states)} process(es); resume it with the same number "
            f"(this run has {rt.world_size}) to continue bit for bit"
        )
    model.lifter.load_state_dict(ckpt.state_dict)
    if getattr(model, "backbone", None) is not None:
        restore_backbone(ckpt, model, cfg)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    apply_schedule(scheduler)  # the lr of the next epoch on THIS run's schedule (epochs may have grown)
    scaler.load_state_dict(state.get("scaler", {}) or scaler.state_dict())
    set_rng_state(rng_states[rt.rank], rt.device)
    return RunState(
        start_epoch=epochs_done,
        best_val_mpjpe_mm=float(state.get("best_val_mpjpe_mm", math.inf)),
        best_epoch=int(state.get("best_epoch", 0)),
        history=[dict(row) for row in state["history"]],
        notes=notes,
    )


def restore_backbone(ckpt: Checkpoint, model: nn.Module, cfg: TrainConfig) -> None:
    """Image mode: the fine-tuned backbone's weights, or the check that a frozen one is still the same file."""
    entry = ckpt.backbone or {}
    if "state_dict" in entry:
        model.backbone.load_state_dict(entry["state_dict"])
    elif "sha256" in entry:
        now = file_sha256(cfg.hrnet_weights) if cfg.hrnet_weights else "none"
        if now != entry["sha256"]:
            raise ValueError(
                f"{ckpt.path} was trained on the frozen backbone {entry['weights_file']} (sha256 "
                f"{entry['sha256'][:12]}...); --hrnet-weights {cfg.hrnet_weights or '(none)'} is not that file"
            )
    elif ckpt.training_state and "backbone_state_dict" in ckpt.training_state:  # written before format 2
        model.backbone.load_state_dict(ckpt.training_state["backbone_state_dict"])


def save_epoch(
    output: Path,
    model: nn.Module,
    cfg: TrainConfig,
    metadata: dict[str, Any],
    training_state: dict[str, Any],
    improved: bool,
    backbone: dict[str, Any] | None = None,
) -> None:
    """Write this epoch's checkpoints: best.pt first (when improved), then last.pt (see the module's doc).
    backbone: image mode's backbone entry (full PETR checkpoints)."""
    lifter_config = cfg.lifter_config()
    weights = model.lifter.state_dict()
    if improved:
        save_checkpoint(output / BEST, weights, lifter_config, metadata, training_state, backbone)
    save_checkpoint(output / LAST, weights, lifter_config, metadata, training_state, backbone)
