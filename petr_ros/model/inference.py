"""Inference-time forms of a convolutional network in PyTorch (the HRNet backbone's `torch*` runtimes).

A trained network in eval mode computes ``bn(conv(x))`` with fixed statistics: an affine map per channel that can
be folded into the convolution's weights and bias once (`fold_batchnorm`). That removes every BatchNorm kernel,
and on the CPU every OpenMP parallel region it opens, which is what `OMP_WAIT_POLICY=PASSIVE` (scripts/env.sh)
pays for: each region wakes the sleeping worker threads (docs/model.md "Threads"). The forms, fastest last on
the development machine (docs/model.md "CPU runtimes" has the figures):

* ``eager``: the module as trained (the reference).
* ``fused``: BatchNorm folded into the convolutions (a copy; the trained module and its state dict are left
  alone), channels_last memory format (oneDNN's native layout on the CPU, cuDNN's fast one on the GPU), run
  under ``torch.inference_mode``. Pure PyTorch modules, any device and dtype (autocast fp16 on CUDA works).
* ``jit``: ``fused`` traced, frozen and passed through ``torch.jit.optimize_for_inference`` (oneDNN fusions).
* ``compile``: ``fused`` compiled by ``torch.compile`` (inductor, with ``freezing``: constant folding, prepacked
  oneDNN convolutions with fused ReLU/add, generated C++ for the element-wise rest). Needs a C++ compiler and
  takes tens of seconds at start-up on two cores, and again for every new input shape, so it is opt-in and the
  caller runs a fixed shape (batch 1).

`optimise(model, form, example)` returns an `OptimisedModel`: a callable with the form that runs, the reason (the
sentence to log) and the largest |difference| to the eager module on a seeded check input. A form that cannot be
built (trace or compile error, numerical disagreement) falls back to the next simpler one with the reason.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from petr_ros.model.device import autocast

LOG = logging.getLogger(__name__)

FORMS = ("eager", "fused", "jit", "compile")
# The default on every device: the cheapest form that removes the BatchNorm regions; `jit` measured no faster on
# the CPU and `compile` costs a start-up compile per shape (docs/model.md "CPU runtimes").
DEFAULT_FORM = "fused"
_FALLBACK = {"compile": "fused", "jit": "fused", "fused": "eager"}
# Largest |form - eager| accepted, relative to the largest |eager output| on the check input: folding changes the
# order of fp32 operations (~1e-6 relative); a wrong graph differs by O(1).
AGREEMENT_TOLERANCE = 1e-3


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` (eval mode) in which every BatchNorm2d that directly follows a Conv2d is folded into it
    (the convolution gains a bias; the BatchNorm becomes nn.Identity). Returns (copy, number folded).

    "Follows" means: the next entry of the same nn.Sequential, or siblings named ``convK`` / ``bnK`` (the
    residual blocks' convention, e.g. HRNet's BasicBlock and Bottleneck). `model` is not modified."""
    folded_model = copy.deepcopy(model).eval()
    count = 0
    for module in list(folded_model.modules()):
        children = module._modules
        if isinstance(module, nn.Sequential):
            keys = list(children)
            for a, b in zip(keys, keys[1:], strict=False):
                conv, bn = children[a], children[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    children[a], children[b] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                    count += 1
        for name, bn in list(children.items()):
            if isinstance(bn, nn.BatchNorm2d) and name.startswith("bn"):
                conv_name = "conv" + name[2:]
                conv = children.get(conv_name)
                if isinstance(conv, nn.Conv2d):
                    children[conv_name], children[name] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                    count += 1
    return folded_model, count


def batchnorm_count(model: nn.Module) -> int:
    """How many BatchNorm layers `model` still holds."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class OptimisedModel:
    """`run(x)` -> the network's output, computed by `form`; `reason` says why that form (the sentence to log)."""

    form: str  # 'eager' | 'fused' | 'jit' | 'compile'
    reason: str
    run: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module  # what runs (the eager module itself, the folded copy, the frozen script module, ...)
    max_abs_difference: float = 0.0  # |form - eager| on the build-time check input
    build_seconds: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _runner(module: Callable[[torch.Tensor], torch.Tensor], channels_last: bool, device: torch.device,
            precision: torch.dtype | None, no_grad: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> module(x) under inference mode (no_grad for inductor's frozen graphs), autocast when `precision`,
    channels_last in and a contiguous result out when `channels_last`."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad() if no_grad else torch.inference_mode(), autocast(device, precision):
            if channels_last:
                return module(x.contiguous(memory_format=torch.channels_last)).contiguous()
            return module(x)

    return run


def _build(
    model: nn.Module, form: str, example: torch.Tensor, precision: torch.dtype | None
) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    device = example.device
    if form == "eager":
        return model, _runner(model, False, device, precision)
    channels_last = example.ndim == 4  # the memory format exists for 4-D (N, C, H, W) tensors only
    fused, _ = fold_batchnorm(model)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    x = example.contiguous(memory_format=torch.channels_last) if channels_last else example
    if form == "fused":
        return fused, _runner(fused, channels_last, device, precision)
    if form == "jit":
        if precision is not None:
            raise RuntimeError(f"the TorchScript form runs full precision only (precision is {precision})")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the input checks, constant for one shape
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of compile
            traced = torch.jit.trace(fused, x, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        run = _runner(frozen, channels_last, device, precision)
        run(example)  # the first two calls profile and specialise the graph
        run(example)
        return frozen, run
    if form == "compile":
        # freezing: the weights become constants (prepacked oneDNN convolutions); for this compile only
        compiled = torch.compile(fused, dynamic=False, options={"freezing": True})
        run = _runner(compiled, channels_last, device, precision, no_grad=True)
        run(example)  # compiles now, not on the first frame
        return fused, run
    raise ValueError(f"unknown inference form {form!r}; use one of {FORMS}")


def optimise(
    model: nn.Module, form: str, example: torch.Tensor, precision: torch.dtype | None = None
) -> OptimisedModel:
    """`model` (eval mode, one tensor in, one tensor out) in inference form `form` (see the module docstring),
    checked against the eager module on seeded noise of `example`'s shape, dtype and device (both under autocast
    to `precision` when it is given: fp16 / bf16; None is full precision). A form that fails
    to build or disagrees falls back to the next simpler one (compile/jit -> fused -> eager), with the reason.
    An unknown form is a ValueError. The form runs a snapshot of the weights taken now."""
    if form not in FORMS:
        raise ValueError(f"unknown inference form {form!r}; use one of {FORMS}")
    model = model.eval()
    check = torch.randn(example.shape, generator=torch.Generator().manual_seed(0), dtype=example.dtype)
    check = check.to(example.device)
    with torch.inference_mode(), autocast(check.device, precision):
        reference = model(check).float()
    scale = max(float(reference.abs().max()), 1e-6)
    failures: list[str] = []
    current: str | None = form
    while current is not None:
        t0 = time.perf_counter()
        try:
            module, run = _build(model, current, check, precision)
            diff = 0.0 if current == "eager" else float((run(check).float() - reference).abs().max())
        except Exception as err:  # tracing / compiling raise many kinds: fall back and say why
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            failures.append(f"{current} failed: {type(err).__name__}: {first[:200]}")
            current = _FALLBACK.get(current)
            continue
        seconds = time.perf_counter() - t0
        if not diff <= AGREEMENT_TOLERANCE * scale:
            failures.append(f"{current} disagrees with eager by {diff:.3g} (outputs up to {scale:.3g})")
            current = _FALLBACK.get(current)
            continue
        what = {"eager": "eager (the module as trained)",
                "fused": "BatchNorm folded into the convolutions, channels_last",
                "jit": "BatchNorm folded, channels_last, TorchScript frozen + optimize_for_inference",
                "compile": "BatchNorm folded, channels_last, torch.compile (inductor, freezing)"}[current]
        reason = f"{what}; built in {seconds:.1f} s; max |difference| to eager {diff:.2e}"
        if failures:
            reason += f" (fallback: {'; '.join(failures)})"
            LOG.warning("inference form: %s", reason)
        return OptimisedModel(form=current, reason=reason, run=run, module=module, max_abs_difference=diff,
                              build_seconds=seconds)
    raise AssertionError("unreachable: eager always builds")  # pragma: no cover
