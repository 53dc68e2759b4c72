"""GPU figures in one table: the CUDA tests' outcomes, HRNet-W32 frames/s and the lifter's per-person time.

    python benchmarks/benchmark_gpu.py [--junit cuda_tests.xml] [--budget-s 220] [--batches 1 8 32]

Run by benchmarks/device_check.sh after test/test_cuda.py (whose JUnit file gives the first rows). HRNet-W32
(random weights: the cost does not depend on them) at 256x192, per batch size: fp32 (NCHW), fp32 channels_last,
fp16 autocast channels_last (what the estimator runs on CUDA), fp16 weights channels_last, the same captured in
a CUDA graph (no per-kernel launch cost: eager PyTorch is launch-bound at batch 1) and torch.compile when it
works and the time budget allows. Times are CUDA-event medians after warm-up. Without a CUDA device every GPU
row says so and the script exits 0 (it is meant to run everywhere).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petr_ros import kinematics  # noqa: E402
from petr_ros.model.hrnet import HRNetW32  # noqa: E402
from petr_ros.model.lifter import LifterConfig, build_lifter  # noqa: E402

ROWS: list[tuple[str, str, str]] = []  # (what, result, note)


def row(what: str, result: str, note: str = "") -> None:
    ROWS.append((what, result, note))
    print(f"  {what}: {result} {note}".rstrip(), flush=True)


def junit_rows(path: Path) -> None:
    if not path.is_file():
        row("CUDA tests", "not run", f"(no {path})")
        return
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        seconds = float(case.get("time", 0.0))
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failed is not None:
            row(f"test {name}", "FAILED", (failed.get("message") or "")[:150])
        elif skipped is not None:
            row(f"test {name}", "skipped", (skipped.get("message") or "")[:150])
        else:
            row(f"test {name}", "passed", f"({seconds:.1f} s)")


def cuda_ms(fn: Callable[[], object], min_iters: int = 10, min_seconds: float = 0.5) -> float:
    """Median ms of fn() by CUDA events, after warm-up, over >= min_iters runs and >= min_seconds."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times: list[float] = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < min_iters or time.perf_counter() < t_end:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
        if len(times) >= 200:
            break
    return statistics.median(times)


def graphed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """fn(x) captured once in a CUDA graph; the returned callable replays it (same input buffer)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(x)

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def hrnet_rows(batches: list[int], deadline: float) -> None:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    nchw = HRNetW32().eval().to(device)
    channels_last = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    half = copy.deepcopy(nchw).half().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for batch in batches:
            x = torch.randn(batch, 3, 256, 192, device=device)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            x_half = x_cl.half()
            variants: list[tuple[str, Callable[[], object]]] = [
                ("fp32", lambda x=x: nchw(x)),
                ("fp32 channels_last", lambda x=x_cl: channels_last(x)),
                ("fp16 autocast channels_last (estimator)",
                 lambda x=x_cl: _autocast(channels_last, x)),
                ("fp16 weights channels_last", lambda x=x_half: half(x)),
            ]
            for name, fn in variants:
                ms = cuda_ms(fn)
                row(f"HRNet-W32 b{batch} {name}", f"{batch * 1000.0 / ms:,.0f} frames/s", f"({ms:.2f} ms/batch)")
            try:
                replay = graphed(half, x_half.clone())
                ms = cuda_ms(replay)
                ref = half(x_half).float()
                err = float((replay().float() - ref).abs().max())
                row(f"HRNet-W32 b{batch} fp16 CUDA graph", f"{batch * 1000.0 / ms:,.0f} frames/s",
                    f"({ms:.2f} ms/batch, max |diff| to eager {err:.1e})")
            except Exception as err:  # report and go on: one failing variant must not hide the others
                row(f"HRNet-W32 b{batch} fp16 CUDA graph", "failed", f"{type(err).__name__}: {err}"[:150])
    _compile_rows(half, batches, deadline)


def _autocast(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.float16):
        return model(x)


def _compile_rows(half: torch.nn.Module, batches: list[int], deadline: float) -> None:
    if deadline - time.monotonic() < 90:
        row("HRNet-W32 torch.compile", "skipped", "(less than 90 s of the time budget left)")
        return
    try:
        compiled = torch.compile(half, mode="max-autotune-no-cudagraphs")
    except Exception as err:
        row("HRNet-W32 torch.compile", "unavailable", f"{type(err).__name__}: {err}"[:150])
        return
    for batch in batches:
        if deadline - time.monotonic() < 60:
            row(f"HRNet-W32 b{batch} fp16 torch.compile", "skipped", "(time budget)")
            continue
        x = torch.randn(batch, 3, 256, 192, device="cuda").half().contiguous(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                t0 = time.perf_counter()
                compiled(x)
                torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                ms = cuda_ms(lambda x=x: compiled(x))
                err = float((compiled(x).float() - half(x).float()).abs().max())
            row(f"HRNet-W32 b{batch} fp16 torch.compile", f"{batch * 1000.0 / ms:,.0f} frames/s",
                f"({ms:.2f} ms/batch, compile {compile_s:.0f} s, max |diff| to eager {err:.1e})")
        except Exception as err:
            row(f"HRNet-W32 b{batch} fp16 torch.compile", "failed", f"{type(err).__name__}: {err}"[:150])


def lifter_rows() -> None:
    device = torch.device("cuda")
    lifter = build_lifter(LifterConfig()).to(device).eval()
    with torch.inference_mode():
        for people in (1, 8, 64):
            x = torch.randn(people, 17, 2, device=device)

            def lift(x=x) -> torch.Tensor:
                joints = lifter(x).joints3d
                return kinematics.joint_rotations(joints)

            ms = cuda_ms(lift)
            row(f"lifter + joint rotations, {people} people", f"{ms * 1000.0 / people:.0f} us/person",
                f"({ms:.2f} ms/call)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--junit", type=Path, default=None, help="JUnit XML of the test/test_cuda.py run")
    ap.add_argument("--budget-s", type=float, default=220.0, help="time for the measurements (torch.compile last)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    deadline = time.monotonic() + args.budget_s
    if args.junit is not None:
        junit_rows(args.junit)
    if not torch.cuda.is_available():
        reason = f"(no CUDA device: torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})"
        row("HRNet-W32 frames/s (fp32, fp16, channels_last, CUDA graph, torch.compile)", "skipped", reason)
        row("lifter per-person time on CUDA", "skipped", reason)
    else:
        props = torch.cuda.get_device_properties(0)
        row("device", props.name, f"({props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")
        try:
            hrnet_rows(args.batches, deadline)
        except Exception as err:
            row("HRNet-W32", "failed", f"{type(err).__name__}: {err}"[:150])
        try:
            lifter_rows()
        except Exception as err:
            row("lifter", "failed", f"{type(err).__name__}: {err}"[:150])
    width = max(len(w) for w, _, _ in ROWS)
    rwidth = max(len(r) for _, r, _ in ROWS)
    print("\n" + "=" * 30 + " device check " + "=" * 30)
    print(f"| {'what':<{width}} | {'result':<{rwidth}} | note")
    print(f"|{'-' * (width + 2)}|{'-' * (rwidth + 2)}|------")
    for what, result, note in ROWS:
        print(f"| {what:<{width}} | {result:<{rwidth}} | {note}")


if __name__ == "__main__":
    main()
