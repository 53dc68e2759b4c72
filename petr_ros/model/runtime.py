"""Optimised CPU runtimes for a network: ONNX export, ONNX Runtime or OpenVINO inference, PyTorch fallback.

`build_runtime(model, runtime, example)` returns an `InferenceRuntime`: a callable (N, ...) tensor -> tensor, with
the `name` of what runs it, the PyTorch `form` and the `reason` it was chosen (the sentence the front end logs).
`runtime` is 'torch' (PyTorch in `petr_ros.model.inference.default_form`: BatchNorm folded into the convolutions,
channels_last, and for HRNet on the CPU its branches on two threads), 'torch-eager' (the module as trained),
'torch-fused' (folded only), 'torch-parallel', 'torch-jit' (folded + TorchScript frozen), 'torch-compile' (folded +
torch.compile; a minute at start-up), 'onnxruntime', 'openvino' or 'auto' (the fastest one that is installed, by
the measurement in docs/model.md, else PyTorch). The PyTorch forms run on any device, under
autocast to `precision` when given; the CPU runtimes take (N, ...) float32 CPU tensors. Anything that keeps a
runtime from being used (package not installed, a device other than the CPU, a precision other than fp32, a failed
export, trace or compile, or a numerical disagreement with PyTorch eager at build time) falls back to PyTorch's
default form with that reason; nothing is downloaded.

Both runtimes are optional packages (`pip install .[cpu-runtime]`, requirements/cpu-runtime.txt). The export is
the TorchScript-based `torch.onnx.export(dynamo=False)` (opset 17): it needs only the `onnx` package, whose
versions that accept protobuf 4 (mediapipe's) still work with it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from petr_ros.model.inference import default_form, optimise

LOG = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime", "openvino", "auto", "torch-eager", "torch-fused", "torch-parallel", "torch-jit",
            "torch-compile")
DEFAULT_RUNTIME = "torch"
# PyTorch runtimes -> petr_ros.model.inference forms ('torch': `default_form`, branch-parallel HRNet on the CPU)
TORCH_FORMS = {"torch": None, "torch-eager": "eager", "torch-fused": "fused", "torch-parallel": "parallel",
               "torch-jit": "jit", "torch-compile": "compile"}
# 'auto' order: fastest first, by `benchmark_model.py --only runtimes` on the development machine (docs/model.md).
AUTO_ORDER = ("onnxruntime", "openvino")
ONNX_OPSET = 17
# Largest |runtime - torch| accepted at build time, relative to the largest |torch output| on the check input:
# fp32 kernels that sum in another order differ by ~1e-6 relative; a wrong graph differs by O(1).
AGREEMENT_TOLERANCE = 1e-3
_PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


@dataclass
class InferenceRuntime:
    """A network ready to run: `run(x)` (N, ...) float32 CPU tensor -> float32 CPU tensor."""

    name: str  # 'torch', 'onnxruntime' or 'openvino'
    reason: str  # why this one (the sentence to log)
    run: Callable[[torch.Tensor], torch.Tensor]
    max_abs_difference: float | None = None  # |runtime - PyTorch eager| on the build-time check input
    form: str | None = None  # PyTorch's inference form (inference.FORMS: 'eager', 'parallel', ...); None otherwise

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def installed(runtime: str) -> bool:
    """Whether the optional package of `runtime` ('onnxruntime' | 'openvino') can be imported (torch: always)."""
    if runtime == "torch":
        return True
    return importlib.util.find_spec(_PACKAGE[runtime]) is not None


def export_onnx(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, dynamic_batch: bool = True) -> Path:
    """Write `model` (eval mode, one tensor in, one tensor out) to an ONNX file at `path` (opset 17), with a
    dynamic batch dimension unless `dynamic_batch=False`. Raises RuntimeError naming the cause when it fails."""
    if importlib.util.find_spec("onnx") is None:
        raise RuntimeError("the 'onnx' package is not installed (pip install .[cpu-runtime])")
    path = Path(path)
    was_training = model.training
    fast_path = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    # nn.TransformerEncoder's fused inference op has no ONNX form: export the plain path (the same arithmetic)
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer's notes on shape checks it freezes and the exporter's deprecation note say nothing here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None,
            )
    except Exception as err:  # the exporter raises many kinds; the caller needs one, with the cause
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RuntimeError(f"ONNX export of {type(model).__name__} failed: {type(err).__name__}: {first_line}") from err
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        model.train(was_training)
    return path


def _onnxruntime_runner(onnx_path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads steal the cores the camera driver and the node's other threads need (the same
    # reason as OMP_WAIT_POLICY for PyTorch, docs/model.md "Threads").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"input": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)

    return run


def _openvino_runner(onnx_path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import openvino as ov

    core = ov.Core()
    # No pinning of its threads to cores: the cores are shared with the camera driver and the node's other threads
    # (pinned, it was 1.86x PyTorch eager at load 2.9 but 0.21x at load 9.8; unpinned 1.66x at load 2.9).
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
              "ENABLE_CPU_PINNING": False}
    compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

    return run


def _torch_runtime(model: nn.Module, why: str, example: torch.Tensor, device: torch.device | str,
                   precision: torch.dtype | None, form: str | None = None) -> InferenceRuntime:
    """PyTorch in inference form `form` (None: `default_form`; simpler forms if it cannot be built), where the
    model is."""
    first = next(iter(model.parameters()), None)
    where = torch.device(device) if first is None else first.device
    optimised = optimise(model, form or default_form(model, where), example.to(where), precision)
    reason = f"runtime: PyTorch {optimised.form} ({why}; {optimised.reason})"
    return InferenceRuntime(name="torch", reason=reason, run=optimised.run,
                            max_abs_difference=optimised.max_abs_difference, form=optimised.form)


def build_runtime(
    model: nn.Module,
    runtime: str,
    example: torch.Tensor,
    device: torch.device | str = "cpu",
    precision: torch.dtype | None = None,
    threads: int | None = None,
) -> InferenceRuntime:
    """`model` run by `runtime` ('torch' | 'onnxruntime' | 'openvino' | 'auto'); see the module docstring.

    `example` is one input of the size the network will see (its batch may differ later, except for
    'torch-compile', which recompiles for every new shape: run it at the example's). `device` and `precision`
    (an autocast dtype or None for fp32) are those the caller runs PyTorch with: the CPU runtimes serve only the
    CPU in fp32. `threads` defaults to torch.get_num_threads(). An unknown runtime name
    is a ValueError; everything else that stands in the way falls back to PyTorch with the reason. The runtime
    runs a snapshot of the weights taken now: load new weights into `model` afterwards and build it again."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {RUNTIMES}")

    def fallback(why: str, form: str | None = None) -> InferenceRuntime:
        return _torch_runtime(model, why, example, device, precision, form)

    if runtime in TORCH_FORMS:
        return fallback("asked for", TORCH_FORMS[runtime])
    if torch.device(device).type != "cpu":
        return fallback(f"{runtime} serves only the CPU; device is {device}")
    if precision is not None:
        return fallback(f"{runtime} runs fp32 only; precision is {precision}")
    if runtime == "auto":
        candidates = [r for r in AUTO_ORDER if installed(r)]
        if not candidates:
            return fallback("auto: neither openvino nor onnxruntime is installed")
    else:
        if not installed(runtime):
            chosen = fallback(f"{runtime} is not installed: pip install .[cpu-runtime]")
            LOG.warning("%s", chosen.reason)
            return chosen
        candidates = [runtime]
    threads = int(threads or torch.get_num_threads())
    failures = []
    with tempfile.TemporaryDirectory(prefix="petr_onnx_") as tmp:
        try:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", example)
        except RuntimeError as err:
            chosen = fallback(f"{runtime}: {err}")
            LOG.warning("%s", chosen.reason)
            return chosen
        # checked on seeded noise of the example's shape (a blank crop gives a constant map that hides errors)
        check = torch.randn(example.shape, generator=torch.Generator().manual_seed(0), dtype=example.dtype)
        with torch.inference_mode():
            reference = model(check).float()
        for name in candidates:
            try:
                run = (_openvino_runner if name == "openvino" else _onnxruntime_runner)(onnx_path, threads)
                diff = float((run(check) - reference).abs().max())
            except Exception as err:  # a runtime's own errors (unsupported op, bad install): fall back, say why
                failures.append(f"{name} failed: {type(err).__name__}: {err}")
                continue
            scale = max(float(reference.abs().max()), 1e-6)
            if not diff <= AGREEMENT_TOLERANCE * scale:
                failures.append(f"{name} disagrees with PyTorch by {diff:.3g} (outputs up to {scale:.3g})")
                continue
            how = "auto: fastest installed" if runtime == "auto" else "asked for"
            reason = f"runtime: {name} ({how}; {threads} threads; max |difference| to PyTorch {diff:.2e})"
            return InferenceRuntime(name=name, reason=reason, run=run, max_abs_difference=diff)
    chosen = fallback("; ".join(failures))
    LOG.warning("%s", chosen.reason)
    return chosen
