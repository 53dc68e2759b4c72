"""OpenMP wait policy and thread count per 2D front end, under the load the node meets (prints figures; not a test).

    python benchmarks/benchmark_threads.py [--backends hrnet hrnet-eager mediapipe] [--policies unset PASSIVE ...]
        [--threads 1 2] [--rounds 3] [--frames 8] [--load camera|none]

libgomp reads OMP_WAIT_POLICY once, when torch loads it, so every configuration runs in a fresh process. The
configurations are interleaved (round 1: every configuration once, round 2: again, ...) so that drift in the
machine's load falls on all of them alike; the figure is the median frame time over all rounds, and each is
also given relative to the fastest configuration of its backend (the ratio is what to trust on a shared machine).

A frame is the estimator's whole `estimate()` (crops, 2D model, decoding, lifter, joint rotations) on frames of
assets/sports2d_demo.mp4: HRNet-W32 (random weights: the cost does not depend on them) on one person box per frame
(batch 1, 256x192) in the front end's default inference form (`hrnet`: BatchNorm folded, branch-parallel on
>= 2 threads) or as the module was trained (`hrnet-eager`: runtime torch-eager), MediaPipe BlazePose with its own
person detection and tracking.

--load camera runs a stand-in for the camera driver beside it, as on a robot: a process that decodes the same
video at 30 frames/s and copies every frame once (what a driver's publish costs), paced in real time.
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

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
VIDEO = ASSETS / "sports2d_demo.mp4"
WIDTH, HEIGHT = 960, 540  # the frame size the figures were taken at


def _frames(count: int) -> list:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (WIDTH, HEIGHT)), cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise SystemExit(f"cannot read {VIDEO}: run scripts/fetch_assets.sh")
    return frames


def worker(backend: str, threads: int, frames: int) -> None:
    """One configuration in this (fresh) process: print one JSON line of per-frame milliseconds."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from petr_ros.estimator import PoseEstimator

    torch.set_num_threads(threads)
    images = _frames(frames + 1)
    if backend.startswith("hrnet"):
        runtime = "torch-eager" if backend == "hrnet-eager" else "torch"
        est = PoseEstimator(backend="hrnet", allow_random_hrnet=True, device="cpu",
                            frontend_options={"tracking": False, "runtime": runtime})
        box = np.array([[WIDTH * 0.40, HEIGHT * 0.15, WIDTH * 0.60, HEIGHT * 0.95]], dtype=np.float32)
    else:
        est = PoseEstimator(backend="mediapipe", device="cpu")
        box = None
    est.warmup()
    est.estimate(images[0], box)
    times = []
    for image in images[1:]:
        t0 = time.perf_counter()
        est.estimate(image, box)
        times.append((time.perf_counter() - t0) * 1000.0)
    est.close()
    print("RESULT " + json.dumps({"ms": times, "threads": torch.get_num_threads()}), flush=True)


def camera_load() -> None:
    """Stand-in for a camera driver: decode at 30 frames/s, copy each frame once, until killed."""
    import cv2

    period = 1.0 / 30.0
    capture = cv2.VideoCapture(str(VIDEO))
    next_t = time.monotonic()
    while True:
        ok, bgr = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        bytes(cv2.resize(bgr, (WIDTH, HEIGHT)).data)  # the driver's serialisation copy
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))


def run_configuration(backend: str, policy: str, threads: int, frames: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    if policy.startswith("spin:"):  # libgomp's own knob: spin this many iterations, then sleep
        env["GOMP_SPINCOUNT"] = policy[len("spin:"):]
    elif policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--worker", backend, "--threads", str(threads), "--frames", str(frames)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])["ms"]
    raise RuntimeError(f"{backend} {policy} {threads}: no result (exit {out.returncode}): {out.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["hrnet", "mediapipe"],
                    choices=["hrnet", "hrnet-eager", "mediapipe"])
    ap.add_argument("--policies", nargs="+", default=["unset", "PASSIVE", "ACTIVE"],
                    help="unset | PASSIVE | ACTIVE | spin:N (policy unset, GOMP_SPINCOUNT=N)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=8, help="timed frames per configuration and round")
    ap.add_argument("--load", choices=["camera", "none"], default="camera")
    ap.add_argument("--config", nargs="+", help="exact backend:policy:threads combinations, e.g. hrnet:PASSIVE:2")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--camera-load", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.camera_load:
        camera_load()
        return
    if args.worker:
        worker(args.worker, args.threads[0], args.frames)
        return

    for policy in args.policies:
        if policy not in ("unset", "PASSIVE", "ACTIVE") and not (policy.startswith("spin:") and policy[5:].isdigit()):
            ap.error(f"unknown policy {policy!r}")
    # --config backend:policy:threads picks exact combinations instead of the full product
    configs = [(b, p, t) for b in args.backends for p in args.policies for t in args.threads]
    if args.config:
        configs = [(c.split(":")[0], ":".join(c.split(":")[1:-1]), int(c.split(":")[-1])) for c in args.config]
    loader = None
    if args.load == "camera":
        loader = subprocess.Popen([sys.executable, __file__, "--camera-load"], stdout=subprocess.DEVNULL)
    results: dict[tuple[str, str, int], list[float]] = {c: [] for c in configs}
    loads: list[float] = []
    started = time.monotonic()
    try:
        for r in range(args.rounds):
            for config in configs:
                loads.append(os.getloadavg()[0])
                results[config] += run_configuration(*config, args.frames)
            # the table so far after every round: a run cut short still leaves its figures
            print_table(args, configs, results, loads, r + 1, time.monotonic() - started)
    finally:
        if loader is not None:
            loader.kill()
            loader.wait()


def print_table(args: argparse.Namespace, configs: list[tuple[str, str, int]],
                results: dict[tuple[str, str, int], list[float]], loads: list[float], rounds: int,
                seconds: float) -> None:
    print(f"\nafter {rounds} of {args.rounds} interleaved rounds ({seconds:.0f} s) x {args.frames} frames, "
          f"{WIDTH}x{HEIGHT}; {os.cpu_count()} CPUs, load {args.load}; load average during the run "
          f"{min(loads):.2f}-{max(loads):.2f} (mean {statistics.mean(loads):.2f})")
    print(f"{'backend':<10} {'OMP_WAIT_POLICY':<16} {'threads':>7} {'median ms':>10} {'p90 ms':>8} {'frames/s':>9} "
          f"{'vs best':>8}")
    for backend in dict.fromkeys(c[0] for c in configs):
        rows = [(c, statistics.median(results[c])) for c in configs if c[0] == backend]
        best = min(ms for _, ms in rows)
        for (_, policy, threads), ms in rows:
            p90 = statistics.quantiles(results[(backend, policy, threads)], n=10)[-1]
            print(f"{backend:<10} {policy:<16} {threads:>7} {ms:10.1f} {p90:8.1f} {1000.0 / ms:9.2f} "
                  f"{ms / best:7.2f}x")
    sys.stdout.flush()

if __name__ == "__main__":
    main()
