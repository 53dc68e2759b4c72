"""The one checkpoint format (lifter, or full PETR model): self-describing, written atomically, read with clear errors.

A checkpoint is a `torch.save`d dict::

    {"format": "petr_ros.lifter", "format_version": 2,
     "config": asdict(LifterConfig), "state_dict": {...},
     "metadata": {...},            # data, epochs, metrics, ... (plain Python values)
     "training_state": {...}|None, # optimiser / scheduler / epoch for resuming
     "backbone": {...}|None}       # full PETR models: the 2D backbone the lifter was trained on (below)

A full PETR checkpoint (image mode: HRNet-W32 -> soft-argmax -> lifter, trained end to end) also names its
backbone, ``{"kind": "hrnet_w32", "decoder": {...front-end decoder options...}}`` plus EITHER its weights
(``"state_dict"``: a fine-tuned backbone) OR, for a frozen one, a reference to the unchanged weights file
(``"weights_file"`` and its ``"sha256"``), so the 118 MB backbone is not stored again in every checkpoint.
`load_backbone` rebuilds it (the reference is checked against the file's hash). Version 1 files (lifter only)
still load.

Only plain containers, numbers, strings and tensors are stored, so it loads with `torch.load(weights_only=True)`
(no arbitrary code runs when reading a file).
"""

from __future__ import annotations

import hashlib
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
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
BACKBONE_KINDS = ("hrnet_w32",)
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
    backbone: dict[str, Any] | None = None  # full PETR checkpoints: see the module's doc

    @property
    def is_full_model(self) -> bool:
        """True when the checkpoint carries its own 2D backbone (runs end to end on images)."""
        return self.backbone is not None


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
    backbone: Mapping[str, Any] | None = None,
) -> Path:
    """Write a lifter checkpoint atomically (temp file in the same folder, fsync, os.replace); return the path.

    A crash mid-write leaves the previous file intact. Tensors are stored on the CPU. backbone: a full PETR
    model's backbone entry (module doc; `backbone_reference` for a frozen one).
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
        "backbone": None if backbone is None else _check_backbone(path, _plain(dict(backbone), "backbone")),
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
    backbone = obj.get("backbone")
    return Checkpoint(
        path=path,
        config=config,
        state_dict=state_dict,
        metadata=metadata,
        training_state=obj.get("training_state"),
        format_version=int(version),
        backbone=None if backbone is None else _check_backbone(path, backbone),
    )


def _check_backbone(path: Path, entry: Any) -> dict[str, Any]:
    """The backbone entry, checked: a known kind with either weights or a hashed weights-file reference."""
    if not isinstance(entry, dict) or entry.get("kind") not in BACKBONE_KINDS:
        kind = entry.get("kind") if isinstance(entry, dict) else type(entry).__name__
        raise CheckpointError(f"{path}: backbone kind {kind!r} is not one of {BACKBONE_KINDS}")
    has_weights = isinstance(entry.get("state_dict"), dict)
    has_reference = isinstance(entry.get("weights_file"), str) and isinstance(entry.get("sha256"), str)
    if has_weights == has_reference:
        raise CheckpointError(
            f"{path}: the backbone entry must hold either 'state_dict' or 'weights_file' + 'sha256', not "
            f"{'both' if has_weights else 'neither'}"
        )
    if not isinstance(entry.get("decoder", {}), dict):
        raise CheckpointError(f"{path}: the backbone's decoder options must be a dict")
    return entry


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backbone_reference(weights_file: str | os.PathLike) -> dict[str, str]:
    """The reference a checkpoint stores for an unchanged (frozen) backbone: absolute path and SHA-256."""
    path = Path(weights_file).resolve()
    return {"weights_file": str(path), "sha256": file_sha256(path)}


def resolve_backbone_file(ckpt: Checkpoint) -> Path:
    """The weights file a frozen-backbone checkpoint refers to: its stored path, else the same file name beside
    the checkpoint; FileNotFoundError naming both, CheckpointError when the file is not the one trained with."""
    entry = ckpt.backbone or {}
    stored = Path(entry["weights_file"])
    candidates = [stored, ckpt.path.parent / stored.name]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"{ckpt.path} uses the frozen backbone weights {stored.name}, found at neither {candidates[0]} nor "
            f"{candidates[1]}: put that file (sha256 {entry['sha256'][:12]}...) at one of them"
        )
    digest = file_sha256(found)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"{ckpt.path} was trained on backbone weights with sha256 {entry['sha256'][:12]}..., but {found} has "
            f"{digest[:12]}...: not the same weights"
        )
    return found


def load_backbone(ckpt: Checkpoint, device: str | torch.device = "cpu") -> nn.Module:
    """The 2D backbone of a full PETR checkpoint (eval mode, on `device`); ValueError for a lifter-only one."""
    if ckpt.backbone is None:
        raise CheckpointError(f"{ckpt.path} is a lifter-only checkpoint: it carries no 2D backbone")
    from petr_ros.model.hrnet import HRNetW32, load_hrnet_weights

    if "state_dict" in ckpt.backbone:
        model = HRNetW32()
        try:
            model.load_state_dict(ckpt.backbone["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{ckpt.path}: its backbone weights do not fit HRNet-W32: {exc}") from exc
    else:
        model = load_hrnet_weights(resolve_backbone_file(ckpt))
    return model.to(device).eval()


def backbone_frontend_options(ckpt: Checkpoint) -> dict[str, Any]:
    """Front-end options (decoder settings) the backbone was trained with, for `make_frontend('hrnet', ...)`."""
    return dict((ckpt.backbone or {}).get("decoder", {}))


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
