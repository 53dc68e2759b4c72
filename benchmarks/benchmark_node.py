"""petr_node end to end vs its pipeline alone, and image-in -> markers-out latency per DDS profile (prints figures).

    python benchmarks/benchmark_node.py [--backend mediapipe|hrnet] [--threads 1] [--width 1280] [--seconds 20]

1. Pipeline only: `FramePipeline.process` (the node's per-frame work without ROS: estimate, reject, track, lift,
   smooth, place, with the node's settings) in this process on the benchmark frames, back to back -> frames/s.
2. Node: petr_node in its own process (same backend, lifter, threads), fed over DDS faster than the pipeline can
   go (2x its rate) with the same frames; SkeletonArray messages out per second in the steady state -> frames/s.
   Ratio node / pipeline (goal >= 0.95: the ROS plumbing costs < 5 %).
   The node's own work per frame (after inference: the pipeline's other stages, message building, publishing)
   and its pipeline stages (FramePipeline.last_report, via /diagnostics stage_<name>_mean_ms) are printed too.
3. Latency: frames at half the model rate (the node is idle when each arrives), time from publish (the header
   stamp, wall clock) to the MarkerArray arriving back here: p50 / p95, once with the default Fast DDS transports
   and once with the shipped config/fastdds_shm.xml (loaded by both processes).
Each DDS run is a child process of this script (Fast DDS reads its XML profile once per process).
Frames: the first frames of assets/sports2d_demo.mp4 (a person walking) resized to --width (default 1280x720).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
SHM_PROFILE = REPO / "config" / "fastdds_shm.xml"


def load_frames(width: int, count: int) -> list[np.ndarray]:
    from petr_ros.tools.video import read_frames

    path = ASSETS / "sports2d_demo.mp4"
    try:
        frames, _, _ = read_frames(path, count, width, first=0, last=count - 1)  # the first `count` frames
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"{exc} (run scripts/setup_env.sh)") from exc
    return [rgb for _, rgb in frames]


def lifter_path(tmp: Path) -> str:
    from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, save_checkpoint
    from petr_ros.model.lifter import LifterConfig, build_lifter

    if DEFAULT_LIFTER_PATH.is_file():
        return str(DEFAULT_LIFTER_PATH)
    import torch

    torch.manual_seed(0)
    path = tmp / "random_lifter.pt"
    save_checkpoint(path, build_lifter(LifterConfig()).state_dict(), LifterConfig())
    print(f"(no shipped lifter yet: a random one, {path}; cost does not depend on the weights)")
    return str(path)


def hrnet_path(tmp: Path) -> str:
    import torch

    from petr_ros.model.hrnet import HRNetW32

    path = tmp / "random_hrnet_w32.pth"
    torch.manual_seed(0)
    torch.save(HRNetW32().state_dict(), path)
    return str(path)


def pipeline_only(args: argparse.Namespace, frames: list[np.ndarray], lifter: str, hrnet: str | None) -> float:
    """Frames/s of FramePipeline.process with the node's settings of this benchmark (frames 1/30 s apart)."""
    import torch

    from petr_ros.pipeline import FramePipeline, PipelineSettings

    torch.set_num_threads(args.threads)
    core = PipelineSettings()
    settings = PipelineSettings(lifter_checkpoint=lifter, backend=args.backend, hrnet_weights=hrnet, device=args.device,
                                plausibility=core.plausibility.replaced(min_score=0.0), tracking=True)
    pipeline = FramePipeline(settings)
    for i, f in enumerate(frames[:3]):
        pipeline.process(f, i / 30.0)
    n, t0 = 3, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        pipeline.process(frames[n % len(frames)], n / 30.0)
        n += 1
    fps = (n - 3) / (time.perf_counter() - t0)
    pipeline.close()
    return fps


def child(args: argparse.Namespace) -> None:
    """One DDS run: start the node, measure throughput then latency, print one JSON line."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from petr_ros_msgs.msg import SkeletonArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray

    from petr_ros.ros.messages import output_stamp_ns, rgb_to_image_msg, stamp_from_ns

    frames = load_frames(args.width, args.frames)
    env = dict(os.environ)
    log = open(Path(args.tmp) / f"node_{args.profile}.log", "w")  # noqa: SIM115
    params = {"lifter_checkpoint": args.lifter, "backend": args.backend, "hrnet_weights": args.hrnet or "",
              "device": args.device, "torch_threads": args.threads, "min_person_score": 0.0, "tracking": True,
              "input_reliability": args.input_reliability}
    cmd = [sys.executable, "-m", "petr_ros.ros.node", "--ros-args", "--params-file", str(REPO / "config/petr.yaml")]
    for k, v in params.items():
        if v != "":  # an empty value cannot be written as -p name:= (the params file has the default anyway)
            cmd += ["-p", f"{k}:={v}"]
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
    probe = rclpy.create_node("benchmark_probe", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(probe)
    out_times: list[float] = []
    latencies: list[float] = []
    probe.create_subscription(SkeletonArray, "/petr_node/skeletons", lambda m: out_times.append(time.monotonic()), 50)

    def on_markers(m: MarkerArray) -> None:
        if m.markers:
            latencies.append(time.time_ns() - output_stamp_ns(m))

    probe.create_subscription(MarkerArray, "/petr_node/markers", on_markers, 50)
    diags: list[dict[str, str]] = []
    probe.create_subscription(DiagnosticArray, "/diagnostics",
                              lambda m: diags.append({kv.key: kv.value for kv in m.status[0].values}), 10)
    pub = probe.create_publisher(Image, "image", 10)
    msgs = [rgb_to_image_msg(f) for f in frames]
    for m in msgs:
        m.header.frame_id = "camera_optical_frame"

    def publish(i: int) -> None:
        m = msgs[i % len(msgs)]
        m.header.stamp = stamp_from_ns(time.time_ns())
        pub.publish(m)

    def run(rate: float, seconds: float) -> None:
        t0, i = time.monotonic(), 0
        while time.monotonic() < t0 + seconds:
            if time.monotonic() >= t0 + i / rate:
                publish(i)
                i += 1
            ex.spin_once(timeout_sec=min(0.005, max(0.0, t0 + i / rate - time.monotonic())))

    try:
        deadline = time.monotonic() + 120
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        run(5.0, 3.0)  # warm-up of the whole path
        # Throughput: 2x the model rate.
        out_times.clear()
        run(max(2.0 * args.model_fps, 5.0), args.seconds)
        t_end = time.monotonic()
        steady = [t for t in out_times if t > t_end - args.seconds + 2.0]
        node_fps = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0
        ex.spin_once(timeout_sec=1.0)
        busy = dict(diags[-1]) if diags else {}
        # Latency: half the model rate, the node idle when each frame arrives.
        ex.spin_once(timeout_sec=1.0)
        latencies.clear()
        run(0.5 * args.model_fps, args.seconds)
        t0 = time.monotonic()
        while time.monotonic() < t0 + 1.0:
            ex.spin_once(timeout_sec=0.05)
        lat = np.array(latencies) / 1e6
        print(json.dumps({"profile": args.profile, "node_fps": node_fps, "outputs": len(steady),
                          "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                          "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
                          "latency_n": int(lat.size), "node_inference_ms": float(busy.get("inference_mean_ms", "nan")),
                          "node_input_hz": float(busy.get("input_rate_hz", "nan")),
                          "node_postprocess_ms": float(busy.get("postprocess_mean_ms", "nan")),
                          "node_processed_hz": float(busy.get("processed_rate_hz", "nan")),
                          "node_stages_ms": {k[len("stage_"):-len("_mean_ms")]: float(v) for k, v in busy.items()
                                             if k.startswith("stage_") and k.endswith("_mean_ms")}}))
    finally:
        node.send_signal(2)
        try:
            node.wait(20)
        except subprocess.TimeoutExpired:
            node.kill()
        log.close()
        ex.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="mediapipe", choices=("mediapipe", "hrnet"),
                        help="hrnet runs with random weights (cost does not depend on them)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, model-only and node alike")
    parser.add_argument("--width", type=int, default=1280, help="frame width (height keeps the video's aspect)")
    parser.add_argument("--frames", type=int, default=60, help="distinct video frames to cycle through")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measurement")
    parser.add_argument("--domain-id", type=int, default=97)
    parser.add_argument("--input-reliability", default="best_effort", choices=("best_effort", "reliable"),
                        help="QoS of the node's image subscription")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--model-fps", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--lifter", help=argparse.SUPPRESS)
    parser.add_argument("--hrnet", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    tmp = Path(tempfile.mkdtemp(prefix="petr_bench_node_"))
    frames = load_frames(args.width, args.frames)
    lifter = lifter_path(tmp)
    hrnet = hrnet_path(tmp) if args.backend == "hrnet" else None
    h, w = frames[0].shape[:2]
    print(f"frames: {len(frames)} of {ASSETS / 'sports2d_demo.mp4'} at {w}x{h}; backend {args.backend}, "
          f"device {args.device}, {args.threads} torch thread(s), {os.cpu_count()} CPUs, node input QoS "
          f"{args.input_reliability}")
    model_fps = pipeline_only(args, frames, lifter, hrnet)
    print(f"pipeline only:         {model_fps:7.2f} frames/s ({1000 / model_fps:.1f} ms/frame)")

    results = {}
    for profile in ("default", "shm"):
        env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   ROS_LOG_DIR=str(tmp / "ros_log"), OMP_NUM_THREADS=str(args.threads))
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        if profile == "shm":
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
        cmd = [sys.executable, __file__, "--child", "--profile", profile, "--model-fps", str(model_fps),
               "--lifter", lifter, "--tmp", str(tmp), "--backend", args.backend, "--device", args.device,
               "--threads", str(args.threads), "--width", str(args.width), "--frames", str(args.frames),
               "--seconds", str(args.seconds), "--input-reliability", args.input_reliability]
        cmd += ["--hrnet", hrnet] if hrnet else []
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode != 0 or not lines:
            print(f"{profile}: run failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
            continue
        results[profile] = json.loads(lines[-1])

    for profile, r in results.items():
        label = "default Fast DDS" if profile == "default" else "SHM profile (16 MB)"
        print(f"node end to end ({label}): {r['node_fps']:7.2f} frames/s, ratio node/pipeline "
              f"{r['node_fps'] / model_fps:.3f} (goal >= 0.95); in the node: input {r['node_input_hz']:.1f} Hz, "
              f"inference {r['node_inference_ms']:.1f} ms/frame, node's own work {r['node_postprocess_ms']:.2f} "
              f"ms/frame, worker in inference {r['node_fps'] * r['node_inference_ms'] / 10:.0f} % of the time")
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.get("node_stages_ms", {}).items())
        print(f"    pipeline stages in the node (mean ms/frame): {stages or 'n/a'}")
    for profile, r in results.items():
        label = "default Fast DDS" if profile == "default" else "SHM profile (16 MB)"
        print(f"image in -> markers out ({label}): p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms "
              f"({r['latency_n']} frames)")
    print(f"(logs in {tmp})")


if __name__ == "__main__":
    main()
