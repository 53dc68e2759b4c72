"""Model size: the one parameter counter used by the models, their tests and the benchmarks."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of `model` (every tensor in `model.parameters()`, frozen ones included)."""
    return sum(p.numel() for p in model.parameters())
