"""Cost of the PETR model pipeline, stage by stage (prints figures; not a test).

    python benchmarks/benchmark_model.py [--threads 2] [--device cpu|cuda] [--repeats 5] [--batches 1 8]

Stages per frame: pre-processing (affine crops + normalisation), backbone (HRNet-W32), decoding (soft-argmax +
back to image pixels), lifter (COCO->H3.6M, normalisation, transformer), post-processing (joint rotations,
quaternions, PersonPose objects). Also: parameters and FLOPs (torch.utils.flop_counter), peak memory, and our
HRNetW32 module against a plain functional forward of the same weights (F.conv2d / F.batch_norm, no nn.Module
tree): the module structure should cost nothing (goal: within 5%). HRNet runs with random weights (allowed for
benchmarks): the cost does not depend on the values.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Must precede the torch import (libgomp reads it once): PASSIVE, as scripts/env.sh sets it, unless the caller
# exported a policy or PETR_OMP_DEFAULT_WAIT=1 (libgomp's default; docs/model.md "Threads" has both measured).
if os.environ.get("PETR_OMP_DEFAULT_WAIT") == "1":
    os.environ.pop("OMP_WAIT_POLICY", None)
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petr_ros import kinematics  # noqa: E402
from petr_ros.estimator import PoseEstimator  # noqa: E402
from petr_ros.model.checkpoint import save_checkpoint  # noqa: E402
from petr_ros.model.device import resolve_device  # noqa: E402
from petr_ros.model.hrnet import HRNetW32  # noqa: E402
from petr_ros.model.lifter import LifterConfig, build_lifter  # noqa: E402
from petr_ros.model.size import count_parameters  # noqa: E402

ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


BEST: dict[str, float] = {}  # best (minimum) time of the last `timed` call, next to the median it returns


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> tuple[float, object]:
    """Median wall time in ms of `fn` over `repeats` runs after `warmup` runs; returns (ms, last result).
    The minimum is left in BEST["ms"] (on a shared machine other processes only ever add time)."""
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    BEST["ms"] = min(times)
    return statistics.median(times), out


def flops_of(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    # The fused inference fast path of nn.TransformerEncoderLayer is one op FlopCounterMode cannot see into:
    # count on the plain path (same arithmetic).
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(*inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops()


# --- a plain functional HRNet-W32 forward over the same state dict (the reference cost) ----------------------
def _cbr(sd: dict, x: torch.Tensor, conv: str, bn: str, stride: int = 1, relu: bool = True) -> torch.Tensor:
    w = sd[f"{conv}.weight"]
    x = F.conv2d(x, w, None, stride, w.shape[-1] // 2)
    x = F.batch_norm(x, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"], sd[f"{bn}.weight"], sd[f"{bn}.bias"],
                     False, 0.0, 1e-5)
    return F.relu(x) if relu else x


def functional_hrnet(sd: dict, x: torch.Tensor) -> torch.Tensor:
    x = _cbr(sd, x, "conv1", "bn1", 2)
    x = _cbr(sd, x, "conv2", "bn2", 2)
    for b in range(4):
        p = f"layer1.{b}"
        res = _cbr(sd, x, f"{p}.downsample.0", f"{p}.downsample.1", relu=False) if b == 0 else x
        y = _cbr(sd, x, f"{p}.conv1", f"{p}.bn1")
        y = _cbr(sd, y, f"{p}.conv2", f"{p}.bn2")
        x = F.relu(_cbr(sd, y, f"{p}.conv3", f"{p}.bn3", relu=False) + res)
    xs = [x]
    for stage, modules in ((2, 1), (3, 4), (4, 3)):
        nb = stage
        t = f"transition{stage - 1}"
        new = []
        for i in range(nb):
            if i < len(xs):
                new.append(_cbr(sd, xs[i], f"{t}.{i}.0", f"{t}.{i}.1") if f"{t}.{i}.0.weight" in sd else xs[i])
            else:
                new.append(_cbr(sd, xs[-1], f"{t}.{i}.0.0", f"{t}.{i}.0.1", 2))
        xs = new
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for i in range(nb):
                for k in range(4):
                    q = f"{p}.branches.{i}.{k}"
                    y = _cbr(sd, xs[i], f"{q}.conv1", f"{q}.bn1")
                    xs[i] = F.relu(_cbr(sd, y, f"{q}.conv2", f"{q}.bn2", relu=False) + xs[i])
            outs = nb if f"{p}.fuse_layers.1.0.0.0.weight" in sd else 1
            fused = []
            for i in range(outs):
                y = None
                for j in range(nb):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j == i:
                        z = xs[j]
                    elif j > i:
                        z = F.interpolate(_cbr(sd, xs[j], f"{f}.0", f"{f}.1", relu=False), scale_factor=2 ** (j - i),
                                          mode="nearest")
                    else:
                        z = xs[j]
                        for k in range(i - j):
                            last = k == i - j - 1
                            z = _cbr(sd, z, f"{f}.{k}.0", f"{f}.{k}.1", 2, relu=not last)
                    y = z if y is None else y + z
                fused.append(F.relu(y))
            xs = fused
    return F.conv2d(xs[0], sd["final_layer.weight"], sd["final_layer.bias"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--only", nargs="+", default=["stages", "3d", "runtimes", "functional", "mediapipe"],
                    choices=["stages", "3d", "runtimes", "backbone", "functional", "mediapipe"],
                    help="sections to run (backbone: PyTorch inference forms, benchmarks/benchmark_backbone.py)")
    ap.add_argument("--frames", type=int, default=60, help="video frames for --only mediapipe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine inflates CPU timings)")

    torch.manual_seed(0)
    hrnet = HRNetW32().eval()
    cfg = LifterConfig()
    tmp = Path(tempfile.mkdtemp())
    ckpt = save_checkpoint(tmp / "lifter.pt", build_lifter(cfg).state_dict(), cfg)
    est = PoseEstimator(ckpt, backend="hrnet", hrnet_model=hrnet, device=str(device), precision="auto",
                        frontend_options={"tracking": False})
    fe = est.frontend
    lifter = est.lifter

    # --- size and FLOPs
    x1 = torch.zeros(1, 3, 256, 192, device=device)
    hr_flops = flops_of(fe.model, x1)
    kp_norm = torch.zeros(1, 17, 2, device=device)
    kp_norm[:, 1:] = torch.randn(1, 16, 2, device=device)
    lf_flops = flops_of(lifter, kp_norm)
    print(f"HRNet-W32 256x192: {count_parameters(hrnet) / 1e6:.2f} M parameters, {hr_flops / 2e9:.2f} GMACs "
          f"({hr_flops / 1e9:.2f} GFLOPs) per person")
    print(f"PETR lifter (2 layers, d_model 34, ff 2048): {count_parameters(lifter):,} parameters, "
          f"{lf_flops / 1e6:.2f} MFLOPs per person")
    pebrt = build_lifter(LifterConfig(variant="pebrt")).to(device).eval()
    pebrt_flops = flops_of(pebrt, kp_norm)
    print(f"PEBRT lifter: {count_parameters(pebrt):,} parameters, {pebrt_flops / 1e6:.2f} MFLOPs "
          "(+ Gram-Schmidt/FK, not counted)")

    if "3d" in args.only:
        three_d_half(est, args.repeats)
    if "mediapipe" in args.only:
        mediapipe_path(args.frames)
    if "runtimes" in args.only and device.type == "cpu":
        cpu_runtimes(hrnet, args.batches, args.repeats)
    if "backbone" in args.only and device.type == "cpu":
        from benchmark_backbone import measure, print_table  # the forms, interleaved, under this process's policy

        for batch in args.batches:
            result = measure(args.threads, batch, max(5, args.repeats), ["eager", "fused", "parallel", "jit"], False)
            result["batch"] = batch
            print_table([result])
    if "stages" in args.only:
        stages(est, device, args)
    if "functional" in args.only:
        functional_comparison(hrnet, device, args)


def stages(est: PoseEstimator, device: torch.device, args: argparse.Namespace) -> None:
    """Per-stage times of `estimate` on the real photo, per batch size."""
    fe = est.frontend
    # --- stages on the real photo
    bgr = cv2.imread(str(ASSETS / "messi5.jpg"))
    if bgr is None:
        raise SystemExit(f"missing {ASSETS / 'messi5.jpg'}: run scripts/fetch_assets.sh")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    print(f"\nper-stage median ms over {args.repeats} runs on messi5.jpg ({w}x{h}); ms/frame and ms/person")
    print(f"{'batch':>5} {'stage':<16} {'ms/frame':>9} {'ms/person':>10} {'frames/s':>9} {'best ms':>9} "
          f"{'best f/s':>9}")
    for batch in args.batches:
        centres = rng.uniform([100, 100], [w - 100, h - 100], size=(batch, 2))
        boxes = np.concatenate([centres - [40, 90], centres + [40, 90]], axis=1).astype(np.float32)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        best = {}
        t_pre, prepared = timed(lambda b=boxes: fe.prepare(image, b), device, args.repeats)
        best["pre-processing"] = BEST["ms"]
        t_bb, heat = timed(lambda p=prepared: fe.heatmaps(p.images), device, args.repeats)
        best["backbone"] = BEST["ms"]
        t_dec, (kp, sc) = timed(lambda hm=heat, p=prepared: fe.decode(hm, p.affines), device, args.repeats)
        best["decoding"] = BEST["ms"]
        from petr_ros.skeleton import coco_to_h36m

        def lift(kp=kp, sc=sc):
            k36, c36 = coco_to_h36m(kp, sc)
            return est.lift_keypoints(k36)

        t_lift, (joints, rots) = timed(lift, device, args.repeats)
        best["lifter(+rot)"] = BEST["ms"]
        # the estimator's own post-processing (joint rotations for PETR) is inside lift_keypoints; report it apart
        t_rot, _ = timed(lambda j=joints: kinematics.joint_rotations(torch.from_numpy(j)), device, args.repeats)
        best["  of which rot."] = BEST["ms"]
        t_post, _ = timed(lambda r=rots: kinematics.matrix_to_quaternion(r.astype(np.float64)), device, args.repeats)
        best["post-processing"] = BEST["ms"]
        t_total, _ = timed(lambda b=boxes: est.estimate(image, b), device, args.repeats)
        best["end to end"] = BEST["ms"]
        rows = [("pre-processing", t_pre), ("backbone", t_bb), ("decoding", t_dec),
                ("lifter(+rot)", t_lift), ("  of which rot.", t_rot), ("post-processing", t_post),
                ("end to end", t_total)]
        for name, ms in rows:
            print(f"{batch:>5} {name:<16} {ms:9.2f} {ms / batch:10.2f} {1000.0 / ms:9.2f} {best[name]:9.2f} "
                  f"{1000.0 / best[name]:9.2f}")
        if device.type == "cuda":
            print(f"{batch:>5} peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def functional_comparison(hrnet: torch.nn.Module, device: torch.device, args: argparse.Namespace) -> None:
    """Our module vs a plain functional forward of the same weights."""
    sd = {k: v.to(device) for k, v in hrnet.state_dict().items()}
    with torch.inference_mode():
        for batch in args.batches:
            x = torch.randn(batch, 3, 256, 192, device=device)
            ref = functional_hrnet(sd, x)
            ours = hrnet(x)
            err = (ours.float() - ref.float()).abs().max().item()
            # interleave to share the machine's load fairly between the two
            # interleaved, best of N: other processes on a shared machine only ever add time
            t_ours, t_ref = [], []
            for _ in range(max(5, args.repeats)):
                t_ours.append(timed(lambda x=x: hrnet(x), device, 1, warmup=0)[0])
                t_ref.append(timed(lambda x=x: functional_hrnet(sd, x), device, 1, warmup=0)[0])
            a, b = min(t_ours), min(t_ref)
            print(f"backbone batch {batch} (best of {len(t_ours)}): HRNetW32 {a:.1f} ms, plain functional reference "
                  f"{b:.1f} ms ({100.0 * (a - b) / b:+.1f}%), max |difference| {err:.2e}; medians "
                  f"{statistics.median(t_ours):.1f} / {statistics.median(t_ref):.1f} ms")
        t_sq, _ = timed(lambda: hrnet(torch.zeros(1, 3, 256, 256, device=device)), device, args.repeats)
        print(f"thesis crop 256x256 (64x64 heatmaps), batch 1: {t_sq:.1f} ms")



def three_d_half(est: PoseEstimator, repeats: int) -> None:
    """The 3D half of a frame per person (issue 13 target: at most 1 ms per person on the CPU), as the pipeline
    runs it with the shipped sequence lifter: the estimator's single-frame lift without rotations (its joints feed
    the ghost filter's 3D checks; `FramePipeline` asks for no rotations there) + the track lift
    (`SequenceTrackLifter.lift_tracks`: the window of each track, the lifter, bone lengths, joint rotations with
    the limb twist, quaternions). Also the one-token lifter of `est` through `estimator.lift` with rotations."""
    from collections import deque

    from petr_ros.frontends import Detection2D
    from petr_ros.pipeline import TrackHistory
    from petr_ros.sequence_lifting import SequenceTrackLifter

    rng = np.random.default_rng(1)
    rest = kinematics.winter_rest_pose()
    shipped = PoseEstimator(frontend=est.frontend, device="cpu")  # the shipped sequence lifter
    tracks = SequenceTrackLifter(shipped.lifter)
    n = max(repeats, 50)
    print(f"\n3D half per frame with the shipped {shipped.checkpoint.config.architecture} lifter, median of {n} runs "
          f"(best in brackets), {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}; "
          f"network on {'numpy' if tracks._numpy_model is not None else 'PyTorch'}")
    print(f"{'people':>6} {'single-frame lift':>18} {'track lift':>12} {'3D half ms/frame':>17} "
          f"{'ms/person (best)':>17} {'one-token lift+rot ms/person':>29}")
    for people in (1, 2, 4, 8):
        detections, histories = [], []
        for pid in range(people):
            coco = rng.uniform(200, 400, size=(17, 2)) + rest[:17, :2] * 100
            detections.append(Detection2D(keypoints=coco, scores=rng.uniform(0.5, 1.0, 17), box=[0, 0, 640, 480]))
            frames = tracks.history_length  # a settled track: a full history, bone lengths known
            kps = [(rest[:, :2] * 200 + 300 + rng.normal(0, 3, (17, 2))).astype(np.float32) for _ in range(frames)]
            conf = [np.full(17, 0.9, np.float32) for _ in range(frames)]
            histories.append(TrackHistory(pid, deque(np.arange(frames) / 30.0), deque(kps), deque(conf), None))
        for _ in range(200):  # the bone-length estimators settle (history full; medians every 5th frame)
            tracks.lift_tracks(histories)
        single, track, whole, token = [], [], [], []
        for _ in range(5):
            shipped.lift(detections, rotations=False)
            est.lift(detections)
        for _ in range(n):  # interleaved: the load hits all alike
            t0 = time.perf_counter()
            shipped.lift(detections, rotations=False)
            t1 = time.perf_counter()
            tracks.lift_tracks(histories)
            t2 = time.perf_counter()
            est.lift(detections)
            t3 = time.perf_counter()
            single.append((t1 - t0) * 1e3)
            track.append((t2 - t1) * 1e3)
            whole.append((t2 - t0) * 1e3)
            token.append((t3 - t2) * 1e3)
        med = statistics.median
        print(f"{people:>6} {med(single):18.3f} {med(track):12.3f} {med(whole):17.3f} "
              f"{med(whole) / people:10.3f} ({min(whole) / people:.3f}) {med(token) / people:29.3f}")


def mediapipe_path(frames: int) -> None:
    """The default path (FramePipeline with the MediaPipe front end, default settings) per frame of the Sports2D
    video at 960x540, against the sum of its models' own forward times: every MediaPipe graph call (person
    detector, landmark model; each graph's own pre/post-processing included, as it cannot be separated) timed
    where the front end makes it. Issue 13's target: frame cost at most 1.2x that sum."""
    from mediapipe.python.solution_base import SolutionBase

    from petr_ros.pipeline import FramePipeline, PipelineSettings

    video = ASSETS / "sports2d_demo.mp4"
    cap = cv2.VideoCapture(str(video))
    images = []
    while len(images) < frames + 5:
        ok, bgr = cap.read()
        if not ok:
            break
        images.append(cv2.cvtColor(cv2.resize(bgr, (960, 540)), cv2.COLOR_BGR2RGB))
    if not images:
        raise SystemExit(f"cannot read {video}: run scripts/fetch_assets.sh")
    model_s: list[float] = []
    original = SolutionBase.process

    def timed_process(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        t0 = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            model_s.append(time.perf_counter() - t0)

    med = statistics.median
    # the default (landmark models of several people run concurrently, so their calls' times overlap and may sum to
    # more than the frame), then one worker: the calls one after the other, the plain overhead ratio
    for workers in (None, 1):
        options = {} if workers is None else {"workers": workers}
        estimator = PoseEstimator(backend="mediapipe", frontend_options=options)
        estimator.warmup()
        pipeline = FramePipeline(PipelineSettings(backend="mediapipe"), estimator=estimator)
        SolutionBase.process = timed_process
        try:
            frame_ms, models_ms, people, lift_ms = [], [], [], []
            for i, image in enumerate(images):
                model_s.clear()
                t0 = time.perf_counter()
                results = pipeline.process(image, i / 30.0)
                elapsed = time.perf_counter() - t0
                if i < 5:
                    continue  # warm-up: graphs start, tracks form
                frame_ms.append(elapsed * 1e3)
                models_ms.append(sum(model_s) * 1e3)
                people.append(len(results))
                lift_ms.append(pipeline.last_report.timings_s["lift"] * 1e3)
        finally:
            SolutionBase.process = original
            pipeline.close()
        used = getattr(estimator.frontend, "workers", 1)
        print(f"\ndefault MediaPipe path{'' if workers is None else ' with workers=1'} on {len(frame_ms)} frames of "
              f"{video.name} at 960x540 ({np.mean(people):.2f} people a frame; {used} landmark worker(s); "
              f"{torch.get_num_threads()} PyTorch thread(s)), load average {os.getloadavg()[0]:.2f}:")
        print(f"  frame (FramePipeline.process) median {med(frame_ms):.1f} ms, mean {np.mean(frame_ms):.1f} ms; "
              f"its models' forward calls median {med(models_ms):.1f} ms, mean {np.mean(models_ms):.1f} ms; "
              f"frame / models {sum(frame_ms) / sum(models_ms):.2f}x (target <= 1.2x); "
              f"track lift stage median {med(lift_ms):.2f} ms")


def cpu_runtimes(hrnet: torch.nn.Module, batches: list[int], repeats: int) -> None:
    """HRNet-W32 on PyTorch eager vs PyTorch's default form vs ONNX Runtime vs OpenVINO (the front end's `runtime`
    option), interleaved."""
    from petr_ros.model.runtime import build_runtime, installed

    example = torch.zeros(1, 3, 256, 192)
    runtimes = {"torch": build_runtime(hrnet, "torch-eager", example)}
    default = build_runtime(hrnet, "torch", example)  # PyTorch's default inference form (BatchNorm folded, ...)
    print(f"torch ({default.form}): {default.reason}")
    runtimes[f"torch {default.form}"] = default
    for name in ("onnxruntime", "openvino"):
        if not installed(name):
            print(f"{name}: not installed (pip install .[cpu-runtime])")
            continue
        t0 = time.perf_counter()
        built = build_runtime(hrnet, name, example)
        print(f"{name}: built in {time.perf_counter() - t0:.1f} s: {built.reason}")
        if built.name == name:
            runtimes[name] = built
    print(f"\nHRNet-W32 backbone by runtime, {torch.get_num_threads()} threads, interleaved, "
          f"load average {os.getloadavg()[0]:.2f}")
    for batch in batches:
        x = torch.randn(batch, 3, 256, 192, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            reference = hrnet(x)
            diffs = {n: float((r(x) - reference).abs().max()) for n, r in runtimes.items()}
            times: dict[str, list[float]] = {n: [] for n in runtimes}
            for _ in range(max(5, repeats)):
                for name, run in runtimes.items():
                    t0 = time.perf_counter()
                    run(x)
                    times[name].append((time.perf_counter() - t0) * 1000.0)
        base = statistics.median(times["torch"])
        for name in runtimes:
            med, best = statistics.median(times[name]), min(times[name])
            print(f"  batch {batch:>2} {name:<15} median {med:8.1f} ms (best {best:8.1f}), {base / med:4.2f}x PyTorch "
                  f"eager; max |heatmap difference| to PyTorch {diffs[name]:.2e}")


if __name__ == "__main__":
    main()
