"""Training throughput (samples/s): the lifter and the end-to-end image model, one process vs torchrun DDP.

Runs the real training loop (`petr_train train`) on generated Human3.6M-layout data for a few batches and
reads the samples/s of the last epoch from its log (the first epoch warms up). On a CPU machine the single
process uses all `--cores` threads and DDP uses `--cores` processes of one thread each, so both get the same
hardware (a 1-thread single process is shown too: on a busy machine OpenMP threads wait for each other); on
CUDA the single-process GPU figure is added.

    python benchmarks/benchmark_training.py [--cores 2] [--quick] [--lifter-only]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    """A TCP port nobody listens on now (concurrent test suites on one machine must not share torchrun's)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_rate(output: Path) -> float:
    with open(output / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    return float(rows[-1]["samples_per_second"])


def run(args: list[str], output: Path, processes: int, threads: int, device: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    # every case reuses the folder: --overwrite says so (a run refuses to replace another one's results otherwise)
    common = [*args, "--output", str(output), "--threads", str(threads), "--device", device, "--epochs", "2",
              "--quiet", "--overwrite"]
    if processes == 1:
        cmd = [sys.executable, "-m", "training.cli", "train", *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(_free_port()), "-m", "training.cli", "train", *common]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return _last_rate(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2, help="CPU cores to use (threads of one process = processes)")
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--lifter-only", action="store_true", help="skip the (slow on CPU) end-to-end image model")
    opts = parser.parse_args()
    import torch

    from training.prepare import prepare
    from training.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = generate_dataset(tmp / "data", subjects=("S1", "S5", "S9"), frames=200, seed=0, videos=True,
                                video_scale=0.5, video_frames=40)
        index = prepare(data["data_3d"], data["data_2d"], data["videos"], tmp / "crops", ["S1", "S5", "S9"],
                        stride=2, progress=False)
        lifter_batches = "40" if opts.quick else "200"
        image_batches = "2" if opts.quick else "4"
        lifter = ["--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects", "S1",
                  "S5", "--test-subjects", "S9", "--test-stride", "20", "--batch-size", "256", "--max-batches",
                  lifter_batches]
        image = ["--mode", "image", "--index", str(index), "--train-subjects", "S1", "S5", "--test-subjects", "S9",
                 "--test-stride", "40", "--batch-size", "8", "--max-batches", image_batches]
        cases = [
            ("lifter (PETR, batch 256)", lifter),
            ("end-to-end, frozen HRNet-W32 (batch 8)", image),
            ("end-to-end, fine-tuned HRNet-W32 (batch 8)", [*image, "--backbone-lr", "1e-5"]),
        ]
        print(f"torch {torch.__version__}, {opts.cores} CPU cores, CUDA: {torch.cuda.is_available()}")
        if opts.lifter_only:
            cases = cases[:1]
        print(f"{'model':<44}{'1 proc x1 thr':>15}{f'1 proc x{opts.cores} thr':>15}{f'DDP {opts.cores}x1 thr':>15}"
              f"{'CUDA':>10}   (samples/s)")
        for name, args in cases:
            one = run(args, tmp / "one", 1, 1, "cpu")
            single = run(args, tmp / "single", 1, opts.cores, "cpu")
            ddp = run(args, tmp / "ddp", opts.cores, 1, "cpu")
            gpu = run(args, tmp / "gpu", 1, opts.cores, "cuda") if torch.cuda.is_available() else float("nan")
            print(f"{name:<44}{one:>15.1f}{single:>15.1f}{ddp:>15.1f}{gpu:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
