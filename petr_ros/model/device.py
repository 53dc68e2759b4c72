"""Device and precision choice shared by the estimator, the front ends and the benchmark."""

from __future__ import annotations

import contextlib
import re

import torch

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "auto"
_DEVICE_SPEC = re.compile(r"auto|cpu|cuda(?::(\d+))?")


def device_spec_error(spec: str) -> str | None:
    """Why `spec` is not a device name this package takes ('auto', 'cpu', 'cuda', 'cuda:N'), or None when it is.
    Only the spelling is checked (whether that CUDA device exists is `resolve_device`'s question)."""
    if _DEVICE_SPEC.fullmatch(str(spec).strip().lower()):
        return None
    return f"device must be auto, cpu, cuda or cuda:N, got '{spec}'"


def resolve_device(spec: str | torch.device = DEFAULT_DEVICE) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu', 'cuda', 'cuda:N' are checked (ValueError when unusable)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    reason = device_spec_error(text)
    if reason is not None:
        raise ValueError(f"unknown device {spec!r}: {reason}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _DEVICE_SPEC.fullmatch(text)
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available (torch {torch.__version__}); use 'cpu'")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """'auto' -> fp16 autocast on CUDA, fp32 (None: no autocast) on CPU; fp16 is CUDA-only, bf16 works on both."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast for `dtype`, or a no-op context for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
