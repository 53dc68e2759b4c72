"""HRNet-W32 backbone by PyTorch inference form (eager, BatchNorm folded, branch-parallel, TorchScript, compile),
interleaved, under one or more OpenMP wait policies (prints one table; not a test).

    python benchmarks/benchmark_backbone.py [--threads 2] [--batch 1] [--repeats 9] [--rounds 2]
        [--policies PASSIVE default] [--forms eager fused parallel jit] [--compile] [--runtimes] [--unpacked]

libgomp reads OMP_WAIT_POLICY once, when torch is loaded, so every policy runs in a fresh process; with two or
more policies the processes alternate over `--rounds` (A B A B), each timing every form interleaved (eager,
fused, ... eager, fused, ...). `default` means libgomp's default wait (the variable unset, PETR_OMP_DEFAULT_WAIT=1
in scripts/env.sh). Ratios are against PyTorch eager in the same process. `--compile` adds torch.compile
(inductor; about a minute of compiling per process on two cores), `--runtimes` ONNX Runtime and OpenVINO where
installed, `--unpacked` the branch-parallel form without its prepacked oneDNN convolutions (`parallel-unpacked`:
the form before they were added, for a same-run comparison). `benchmarks/benchmark_model.py --only backbone`
runs this in its own process (its policy). HRNet runs
with random weights (the cost does not depend on the values); the load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMS = ["eager", "fused", "parallel", "jit"]


def measure(threads: int, batch: int, repeats: int, forms: list[str], runtimes: bool, unpacked: bool = False) -> dict:
    """Build each form and time them interleaved in this process; returns the figures (ms) as a dict."""
    import torch

    sys.path.insert(0, str(ROOT))
    from petr_ros.model import inference
    from petr_ros.model.hrnet import HRNetW32
    from petr_ros.model.inference import optimise
    from petr_ros.model.runtime import build_runtime, installed

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HRNetW32().eval()
    example = torch.zeros(batch, 3, 256, 192)
    runs, built = {}, {}
    for form in forms:
        t0 = time.perf_counter()
        opt = optimise(model, form, example)
        built[form] = {"seconds": time.perf_counter() - t0, "form": opt.form, "reason": opt.reason}
        runs[form] = opt
    if unpacked:  # the branch-parallel form as it was before prepacking (packing_available() False)
        available = inference.packing_available
        inference.packing_available = lambda: False
        try:
            t0 = time.perf_counter()
            opt = optimise(model, "parallel", example)
        finally:
            inference.packing_available = available
        built["parallel-unpacked"] = {"seconds": time.perf_counter() - t0, "form": "parallel-unpacked",
                                      "reason": opt.reason}
        runs["parallel-unpacked"] = opt
    if runtimes:
        for name in ("onnxruntime", "openvino"):
            if installed(name):
                t0 = time.perf_counter()
                rt = build_runtime(model, name, example)
                if rt.name == name:
                    runs[name] = rt
                    built[name] = {"seconds": time.perf_counter() - t0, "form": name, "reason": rt.reason}
    x = torch.randn(batch, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    load_start = os.getloadavg()[0]
    with torch.inference_mode():
        reference = model(x)
        diffs = {n: float((r(x) - reference).abs().max()) for n, r in runs.items()}
        for r in runs.values():  # warm-up
            r(x)
        times: dict[str, list[float]] = {n: [] for n in runs}
        for _ in range(repeats):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run(x)
                times[name].append((time.perf_counter() - t0) * 1000.0)
    return {"policy": os.environ.get("OMP_WAIT_POLICY", "default"), "threads": torch.get_num_threads(),
            "load": [load_start, os.getloadavg()[0]], "times": times, "diffs": diffs, "built": built,
            "heatmap_max": float(reference.abs().max())}


def _child(args: argparse.Namespace, policy: str) -> dict:
    env = dict(os.environ)
    if policy == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--child", "--threads", str(args.threads), "--batch", str(args.batch),
           "--repeats", str(args.repeats), "--forms", *args.forms]
    cmd += ["--runtimes"] if args.runtimes else []
    cmd += ["--unpacked"] if args.unpacked else []
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{policy}: child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def print_table(results: list[dict]) -> None:
    by_policy: dict[str, dict[str, list[float]]] = {}
    loads: dict[str, list[float]] = {}
    first: dict[str, dict] = {}
    for r in results:
        first.setdefault(r["policy"], r)
        loads.setdefault(r["policy"], []).extend(r["load"])
        for name, ts in r["times"].items():
            by_policy.setdefault(r["policy"], {}).setdefault(name, []).extend(ts)
    r0 = results[0]
    print(f"\nHRNet-W32 256x192 backbone, batch {r0.get('batch', 1)}, {r0['threads']} threads, forms interleaved "
          f"in each process, {len(results)} process(es)")
    print(f"{'policy':<10} {'form':<18} {'median ms':>10} {'best ms':>9} {'vs eager':>9} {'max |diff|':>10} "
          f"{'build s':>8}  load avg")
    for policy, forms in by_policy.items():
        eager = statistics.median(forms["eager"]) if "eager" in forms else None
        load = loads[policy]
        for name, ts in forms.items():
            med = statistics.median(ts)
            ratio = f"{eager / med:8.2f}x" if eager else "        -"
            b = first[policy]["built"].get(name, {})
            shown = name if b.get("form", name) == name else f"{name}->{b['form']}"
            print(f"{policy:<10} {shown:<18} {med:10.1f} {min(ts):9.1f} {ratio} {first[policy]['diffs'][name]:10.2e} "
                  f"{b.get('seconds', 0.0):8.1f}  {min(load):.2f}-{max(load):.2f}")
    print(f"(heatmaps up to {r0['heatmap_max']:.3g}; max |diff| against eager on the same input)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9, help="timed runs of each form per process")
    ap.add_argument("--rounds", type=int, default=2, help="processes per policy, alternating")
    ap.add_argument("--policies", nargs="+", default=None,
                    help="OMP_WAIT_POLICY values (PASSIVE, ACTIVE, default); default: this process's policy only")
    ap.add_argument("--forms", nargs="+", default=FORMS, choices=["eager", "fused", "parallel", "jit", "compile"])
    ap.add_argument("--compile", action="store_true", help="add the torch.compile form (slow to build)")
    ap.add_argument("--runtimes", action="store_true", help="add ONNX Runtime / OpenVINO where installed")
    ap.add_argument("--unpacked", action="store_true",
                    help="add the branch-parallel form without prepacked convolutions (parallel-unpacked)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compile and "compile" not in args.forms:
        args.forms = [*args.forms, "compile"]
    if "eager" not in args.forms:
        args.forms = ["eager", *args.forms]
    if args.child:
        r = measure(args.threads, args.batch, args.repeats, args.forms, args.runtimes, args.unpacked)
        r["batch"] = args.batch
        print(json.dumps(r))
        return
    if not args.policies:
        r = measure(args.threads, args.batch, args.repeats, args.forms, args.runtimes, args.unpacked)
        r["batch"] = args.batch
        for name, b in r["built"].items():
            print(f"{name}: {b['reason']}")
        print_table([r])
        return
    print(f"load average at start {os.getloadavg()[0]:.2f}; policies {args.policies}, {args.rounds} round(s)")
    results = []
    for _ in range(args.rounds):
        for policy in args.policies:
            results.append(_child(args, policy))
    for name, b in results[0]["built"].items():
        print(f"{name}: {b['reason']}")
    print_table(results)


if __name__ == "__main__":
    main()
