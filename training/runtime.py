"""The training run's runtime: processes (single or torchrun DDP), device, seeds, RNG state, stop signals.

The device choice is the package's one rule (`petr_ros.model.device.resolve_device`); the only torchrun-specific
part is which GPU an unindexed CUDA device ('auto', 'cuda') means: this process's LOCAL_RANK one.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from petr_ros.model.device import resolve_device

DIST_BACKENDS = ("auto", "nccl", "gloo")  # TrainConfig.dist_backend


@dataclass
class Runtime:
    """Where this process runs: its rank among `world_size` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""  # process-group backend ("" for one process)
    owns_group: bool = False  # this module created the process group (and so tears it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_device(spec: str, local_rank: int = 0) -> torch.device:
    """`resolve_device(spec)`, with an unindexed CUDA device pinned to this process's GPU (torchrun LOCAL_RANK)."""
    device = resolve_device(spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_runtime(device_spec: str = "auto", dist_backend: str = "auto") -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else run as one process.

    dist_backend: 'auto' (NCCL on CUDA, gloo on the CPU), 'nccl' or 'gloo'.
    """
    if dist_backend not in DIST_BACKENDS:
        raise ValueError(f"dist_backend must be one of {DIST_BACKENDS}, got {dist_backend!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = process_device(device_spec, local_rank)
    if world <= 1:
        return Runtime(device=device)
    backend = dist_backend if dist_backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("dist_backend 'nccl' needs CUDA devices; use 'gloo' on the CPU")
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        owns = True
    return Runtime(rank, world, local_rank, device, backend, owns)


def shutdown(rt: Runtime) -> None:
    """Wait for every process, then leave the process group this module created."""
    if rt.distributed:
        dist.barrier()
        if rt.owns_group:
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the legacy global generator
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch RNG state (CPU, and its CUDA device's)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def all_rng_states(rt: Runtime) -> list[dict[str, Any]]:
    """Every process's RNG state, in rank order (collective under DDP: all processes must call it)."""
    if not rt.distributed:
        return [rng_state(rt.device)]
    states: list[Any] = [None] * rt.world_size
    dist.all_gather_object(states, rng_state(rt.device))
    return states


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop polls after every batch (installed only in the main thread)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.signum is not None


class TrainingInterrupted(RuntimeError):
    """Raised after a signal stopped training; the last completed epoch's checkpoint is intact."""

    def __init__(self, signum: int, checkpoint: Path | None, epoch: int) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.epoch = epoch
        super().__init__(
            f"training stopped by signal {signum} during epoch {epoch + 1}; "
            + (f"resume with --resume {checkpoint}" if checkpoint else "no epoch had completed")
        )
