"""The one lifter checkpoint format: self-describing, written atomically, read with clear errors.

A checkpoint is a `torch.save`d dict::

    {"format": "petr_ros.lifter", "format_version": 1,
     "config": asdict(LifterConfig), "state_dict": {...},
     "metadata": {...},            # data, epochs, metrics, ... (plain Python values)
     "training_state": {...}|None} # optimiser / scheduler / epoch for resuming

Only plain containers, numbers, strings and tensors are stored, so it loads with `torch.load(weights_only=True)`
(no arbitrary code runs when reading a file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from petr_ros.fileio import atomic_open
from petr_ros.model.lifter import LifterConfig, build_lifter

FORMAT = "petr_ros.lifter"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DEFAULT_LIFTER_PATH = Path(__file__).resolve().parent.parent / "data" / "petr_lifter_cmu.pt"
MAKE_LIFTER_HINT = (
    "make the shipped default with `petr_train shipped` (python -m training.cli shipped), train one with "
    "`petr_train train` (see docs/training.md), or pass lifter_checkpoint=<path>"
)


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (corrupt, wrong format/version, config mismatch)."""


@dataclass
class Checkpoint:
    """A loaded lifter checkpoint."""

    path: Path
    config: LifterConfig
    state_dict: dict[str, Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION


def _plain(value: Any, where: str) -> Any:
    """Convert to what weights_only loading accepts: tensors, numbers, str, bool, None, lists/tuples/dicts."""
    if value is None or isinstance(value, Tensor) or type(value) in (bool, int, float, str):
        return value
    # Subclasses (torch.__version__ is a str subclass, IntEnum an int) would be refused by weights_only loading.
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, (int, str)) else k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"cannot store {where} of type {type(value).__name__} in a checkpoint (plain values only)")


def save_checkpoint(
    path: str | os.PathLike,
    state_dict: Mapping[str, Tensor],
    config: LifterConfig | Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a lifter checkpoint atomically (temp file in the same folder, fsync, os.replace); return the path.

    A crash mid-write leaves the previous file intact. Tensors are stored on the CPU.
    """
    path = Path(path)
    if isinstance(config, LifterConfig):
        # only the lifter's own fields: a subclass (training.config.TrainConfig) carries a whole training run
        cfg = LifterConfig(**{f.name: getattr(config, f.name) for f in fields(LifterConfig)})
    else:
        cfg = LifterConfig.from_dict(dict(config))
    cfg.validate()
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in state_dict.items()},
        "metadata": _plain(dict(metadata or {}), "metadata"),
        "training_state": None if training_state is None else _plain(dict(training_state), "training_state"),
    }
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a lifter checkpoint.

    FileNotFoundError when missing; CheckpointError (a ValueError) when truncated/garbage, not this format, of an
    unknown version, or when its state dict does not fit its config (the message names the keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lifter checkpoint not found: {path}; {MAKE_LIFTER_HINT}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickles of disallowed classes...
        raise CheckpointError(
            f"cannot read lifter checkpoint {path} (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a petr_ros lifter checkpoint (format {found!r}, expected {FORMAT!r})")
    version = obj.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format_version {version!r}; this petr_ros reads {SUPPORTED_VERSIONS}"
        )
    missing_fields = [k for k in ("config", "state_dict") if not isinstance(obj.get(k), dict)]
    if missing_fields:
        raise CheckpointError(f"{path} lacks the checkpoint field(s) {missing_fields}")
    try:
        config = LifterConfig.from_dict(obj["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid lifter config: {exc}") from exc
    state_dict = obj["state_dict"]
    _check_state_dict(path, config, state_dict)
    metadata = obj.get("metadata") or {}
    return Checkpoint(
        path=path,
        config=config,
        state_dict=state_dict,
        metadata=metadata,
        training_state=obj.get("training_state"),
        format_version=int(version),
    )


def _check_state_dict(path: Path, config: LifterConfig, state_dict: Mapping[str, Any]) -> None:
    expected = build_lifter(config).state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: {tuple(getattr(state_dict[k], 'shape', ()))} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and (not isinstance(state_dict[k], Tensor) or state_dict[k].shape != v.shape)
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: state dict does not match its config ({config.variant}, {config.num_layers} layers, "
            f"d_model {config.d_model}): missing {missing[:6]}, unexpected {unexpected[:6]}, shape mismatch {wrong[:6]}"
        )


def load_lifter(path: str | os.PathLike = DEFAULT_LIFTER_PATH, device: str | torch.device = "cpu") -> tuple[
    nn.Module, Checkpoint
]:
    """Build the lifter a checkpoint describes, load its weights, move it to `device`, eval mode."""
    ckpt = load_checkpoint(path, map_location="cpu")
    model = build_lifter(ckpt.config)
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.to(device).eval(), ckpt
