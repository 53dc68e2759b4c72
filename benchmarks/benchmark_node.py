"""petr_node end to end vs the same work without ROS ("model-only"), with the camera on its own core (prints a table).

    python benchmarks/benchmark_node.py [--backend mediapipe|hrnet] [--threads 1] [--width 1280] [--seconds 10]

Three processes per mode, all started once and kept warm, measured A B A B (--rounds):
* model-only (A): `FramePipeline.process` in a process of its own, built exactly as petr_node builds it (the node's
  parameter defaults plus this benchmark's overrides -> `settings_from_parameters` -> `load_estimator` ->
  `FramePipeline`, the same torch threads), fed the same decoded frames back to back, stamps 1/30 s apart. That is
  everything the node does per frame except ROS: estimate, reject, track, lift, smooth, place. Frames/s, and CPU
  seconds per frame of that process.
* node (B): petr_node in its own process (`python -m petr_ros.ros.node`, config/petr.yaml + the same overrides),
  fed by a camera-like best-effort publisher in a third process ("camera", which also subscribes to the node's
  skeletons, markers, poses and /diagnostics, as RViz and a recorder would). Frames/s = SkeletonArray messages out
  per second in the steady state; the node process's CPU seconds per processed frame; from /diagnostics the
  inference time, the node's own work after inference and images received per processed frame.
* Modes: `pinned` (the target's condition: camera process on CPU 1, node on CPU 0, model-only on CPU 0 as well,
  so both get one core) and `unpinned` (every process may use every core; the camera shares them with the node).
  Ratio node / model-only per mode, from the interleaved segments (goal >= 0.95 pinned), with a 90 % bootstrap
  interval over the rounds (more --rounds narrow it).
* Camera rate (--camera-hz): 30 Hz, or 1.25x the model-only rate when that is higher, so the camera outpaces the
  model on average (after a frame shorter than its period the node still waits; see Idle); images are the first
  --frames frames of assets/sports2d_demo.mp4 at --width (1280x720 rgb8, 2.7 MB).
* Latency: at the end of each mode, frames at half the model rate (the node idle when each arrives): time from
  publish (header stamp, wall clock) to the MarkerArray back in the camera process, p50 / p95.
* Idle (pinned): the share of time the node's core was idle in each segment (/proc/stat): model-only never waits;
  the node waits for the camera's next image after a frame shorter than the camera's period.
* Publishing: a second table, in this process, of the CPU it takes to build and publish the node's three outputs
  for 1, 2, 4 and 8 people, with rclpy message objects and with the CDR writers the node uses (`publish_cost`).
Fast DDS: the shipped config/fastdds_shm.xml in the camera and the node (--dds default: Fast DDS's own transports,
which lose most best-effort frames of this size over UDP). On a machine shared with other jobs the fps move with
their load; the ratio of interleaved segments and the CPU ms per frame move far less. `uptime` is printed.
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
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


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


def node_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The parameters this benchmark gives petr_node (model-only gets the same)."""
    return {"lifter_checkpoint": args.lifter, "backend": args.backend, "hrnet_weights": args.hrnet or "",
            "device": args.device, "torch_threads": args.threads, "min_person_score": 0.0, "tracking": True,
            "input_reliability": args.input_reliability}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of process `pid` (threads of one name summed; digits dropped; Python's own
    threads are all "python" except the main thread, "main")."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip().rstrip("0123456789.").rstrip("_-.") or "?"
            if task.name == str(pid):
                name = "main"  # a Python process's main thread (the node's executor)
        except OSError:  # the thread ended
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S
    return out


def cpu_idle_s(cpu: int) -> float:
    """Seconds CPU `cpu` has been idle (idle + iowait, /proc/stat): in pinned mode, the node's core waiting for
    work (a frame faster than the camera's period waits for the next image)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                fields = line.split()
                return (int(fields[4]) + int(fields[5])) * CLOCK_TICK_S
    return float("nan")


def per_frame_ms(before: dict[str, float], after: dict[str, float], frames: int) -> dict[str, float]:
    return {k: 1e3 * (after[k] - before.get(k, 0.0)) / frames for k in after if after[k] > before.get(k, 0.0)}


def ratio_interval(a_fps: np.ndarray, b_fps: np.ndarray, level: float = 0.90,
                   draws: int = 10_000) -> tuple[float, float]:
    """Bootstrap interval of mean(node fps) / mean(model-only fps), resampling the A B rounds as pairs: the machine's
    drift between segments (MediaPipe's own time moves by several percent here) is what makes one run's ratio
    uncertain, and a round's two segments share it."""
    if len(a_fps) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a_fps), size=(draws, len(a_fps)))
    ratios = b_fps[idx].mean(axis=1) / a_fps[idx].mean(axis=1)
    tail = 50 * (1 - level)
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


def reply(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# --- model-only server (A) --------------------------------------------------------------------------------------
def model_server(args: argparse.Namespace) -> None:
    """Builds the pipeline as petr_node does, then answers `run SECONDS` lines on stdin with one JSON line."""
    import torch

    from petr_ros.pipeline import FramePipeline, load_estimator
    from petr_ros.ros.node import PARAMS, settings_from_parameters

    frames = load_frames(args.width, args.frames)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    values = {p.name: p.default for p in PARAMS}
    values.update(node_overrides(args))
    settings = settings_from_parameters(values)
    pipeline = FramePipeline(settings, estimator=load_estimator(settings))
    n = 0
    for _ in range(5):  # warm-up
        pipeline.process(frames[n % len(frames)], n / 30.0)
        n += 1
    reply({"ready": True})
    for line in sys.stdin:
        if not line.startswith("run"):
            break
        seconds = float(line.split()[1])
        count, c0, t0, th0 = 0, time.process_time(), time.perf_counter(), thread_cpu_s(os.getpid())
        idle0 = cpu_idle_s(args.node_cpu)
        while time.perf_counter() - t0 < seconds:
            pipeline.process(frames[n % len(frames)], n / 30.0)
            n += 1
            count += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        reply({"fps": count / wall, "cpu_ms_per_frame": 1e3 * cpu / count, "frames": count,
               "threads_ms": per_frame_ms(th0, thread_cpu_s(os.getpid()), count),
               "node_cpu_idle": (cpu_idle_s(args.node_cpu) - idle0) / wall})
    pipeline.close()


# --- camera + probe (drives B) ----------------------------------------------------------------------------------
def camera_server(args: argparse.Namespace) -> None:
    """A camera-like publisher and a subscriber to the node's outputs. Commands on stdin: `run HZ SECONDS`
    (throughput), `latency HZ SECONDS`; one JSON line each."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from petr_ros_msgs.msg import SkeletonArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray

    from petr_ros.ros.messages import output_stamp_ns, rgb_to_image_msg, stamp_from_ns

    frames = load_frames(args.width, args.frames)
    rclpy.init(domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    probe = rclpy.create_node("benchmark_camera")
    ex = SingleThreadedExecutor()
    ex.add_node(probe)
    out: list[float] = []  # arrival (monotonic) of each SkeletonArray
    window: list[tuple[float, float, dict[str, float]]] = []  # (time, node CPU s, per thread) at the window's ends
    latencies: list[float] = []
    counts = {"poses": 0}
    node_pid = args.node_pid
    probe.create_subscription(SkeletonArray, "/petr_node/skeletons", lambda m: out.append(time.monotonic()), 50)

    def on_markers(m: MarkerArray) -> None:
        if m.markers:
            latencies.append(time.time_ns() - output_stamp_ns(m))

    probe.create_subscription(MarkerArray, "/petr_node/markers", on_markers, 50)
    probe.create_subscription(PoseArray, "/petr_node/poses", lambda m: counts.__setitem__("poses", counts["poses"] + 1),
                              50)
    diags: list[dict[str, str]] = []
    probe.create_subscription(DiagnosticArray, "/diagnostics",
                              lambda m: diags.append({kv.key: kv.value for kv in m.status[0].values}), 10)
    pub = probe.create_publisher(Image, "image", qos_profile_sensor_data)  # what camera drivers offer
    msgs = [rgb_to_image_msg(f) for f in frames]
    for m in msgs:
        m.header.frame_id = "camera_optical_frame"

    def publish(i: int) -> None:
        m = msgs[i % len(msgs)]
        m.header.stamp = stamp_from_ns(time.time_ns())
        pub.publish(m)

    def snapshot() -> None:
        window.append((time.monotonic(), process_cpu_s(node_pid), thread_cpu_s(node_pid), cpu_idle_s(args.node_cpu)))

    def run(rate: float, seconds: float, steady_after: float = 1.5) -> int:
        """Publish at `rate` for `seconds`; the node's CPU is read `steady_after` s in and at the end."""
        t0, i = time.monotonic(), 0
        window.clear()
        while time.monotonic() < t0 + seconds:
            if not window and time.monotonic() >= t0 + steady_after:
                snapshot()
            if time.monotonic() >= t0 + i / rate:
                publish(i)
                i += 1
            ex.spin_once(timeout_sec=min(0.005, max(0.0, t0 + i / rate - time.monotonic())))
        snapshot()
        return i

    def settle(seconds: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() < t0 + seconds:
            ex.spin_once(timeout_sec=0.05)

    def latest_diag() -> dict[str, str]:
        diags.clear()
        t0 = time.monotonic()
        while not diags and time.monotonic() < t0 + 3.0:
            ex.spin_once(timeout_sec=0.05)
        return dict(diags[-1]) if diags else {}

    try:
        deadline = time.monotonic() + 180
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.1)
        run(5.0, 3.0)  # warm-up of the whole path
        settle(1.0)
        reply({"ready": pub.get_subscription_count() > 0})
        for line in sys.stdin:
            cmd, rate, seconds = line.split()[0], float(line.split()[1]), float(line.split()[2])
            if cmd == "run":
                d0 = latest_diag()
                out.clear()
                sent = run(rate, seconds)
                settle(0.3)
                d1 = latest_diag()
                (ta, ca, tha, ia), (tb, cb, thb, ib) = window[0], window[-1]
                steady = [t for t in out if ta < t <= tb]
                fps = len(steady) / (tb - ta) if steady else float("nan")
                cpu_ms = 1e3 * (cb - ca) / len(steady) if steady else float("nan")
                received = int(d1.get("received", 0)) - int(d0.get("received", 0))
                processed = int(d1.get("processed", 0)) - int(d0.get("processed", 0))
                reply({"fps": fps, "cpu_ms_per_frame": cpu_ms, "sent": sent, "outputs": len(steady),
                       "node_cpu_idle": (ib - ia) / (tb - ta),
                       "threads_ms": per_frame_ms(tha, thb, max(len(steady), 1)), "poses": counts["poses"],
                       "received_per_processed": received / processed if processed else float("nan"),
                       "lost_input": int(d1.get("lost_input", 0)) - int(d0.get("lost_input", 0)),
                       "inference_ms": float(d1.get("inference_mean_ms", "nan")),
                       "own_work_ms": float(d1.get("postprocess_mean_ms", "nan")),
                       "stages_ms": {k[len("stage_"):-len("_mean_ms")]: float(v) for k, v in d1.items()
                                     if k.startswith("stage_") and k.endswith("_mean_ms")}})
            else:  # latency
                settle(1.0)
                latencies.clear()
                run(rate, seconds)
                settle(1.0)
                lat = np.array(latencies) / 1e6
                reply({"latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                       "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
                       "latency_n": int(lat.size)})
    finally:
        ex.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown()


# --- publishing cost ----------------------------------------------------------------------------------------------
def publish_cost(domain_id: int, people_counts: tuple[int, ...] = (1, 2, 4, 8), frames: int = 300) -> list[tuple]:
    """CPU ms per frame (this thread) to build and publish the node's three outputs for N people, with message
    objects (messages.skeleton_array / pose_array / marker_array) and with the CDR writers the node uses where
    messages.cdr_matches_rclpy; one rclpy publisher each, no reader (a reader in another process adds about 0.05 ms
    a message in Fast DDS, either way). Rows: (people, objects ms, CDR ms)."""
    import rclpy
    from geometry_msgs.msg import PoseArray
    from petr_ros_msgs.msg import SkeletonArray
    from std_msgs.msg import Header
    from visualization_msgs.msg import MarkerArray

    from petr_ros.kinematics import joint_rotations, matrix_to_quaternion, winter_rest_pose
    from petr_ros.results import PersonResult
    from petr_ros.ros import messages

    rest = winter_rest_pose(1.75)
    quats = np.asarray(matrix_to_quaternion(joint_rotations(rest)), np.float64)
    rng = np.random.default_rng(0)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node("benchmark_publish_cost", context=context)
    pubs = [node.create_publisher(t, f"~/{n}", 10)
            for t, n in ((SkeletonArray, "skeletons"), (PoseArray, "poses"), (MarkerArray, "markers"))]
    header = Header(frame_id="camera_optical_frame")
    rows = []
    try:
        for n in people_counts:
            people = [PersonResult(person_id=i, joints3d=rest, joints3d_camera=rest + rng.normal(0, 0.5, 3) + (0, 0, 3),
                                   rotations=quats, keypoints2d=rng.uniform(0, 500, (17, 2)),
                                   confidences=rng.uniform(0.3, 1.0, 17), box=np.array([10.0, 20.0, 300.0, 500.0]),
                                   score=0.8, metric=True) for i in range(n)]

            def objects(people: list = people) -> list:
                parts = messages.joint_parts(people)
                return [messages.skeleton_array(header, people, parts), messages.pose_array(header, people, parts),
                        messages.marker_array(header, people, parts=parts)]

            def cdr(people: list = people) -> list:
                return [messages.skeleton_array_cdr(header, people), messages.pose_array_cdr(header, people),
                        messages.marker_array_cdr(header, people)]

            costs = []
            for build in (objects, cdr):
                t0 = 0.0
                for i in range(20 + frames):  # 20 warm-up frames
                    if i == 20:
                        t0 = time.thread_time()
                    for pub, msg in zip(pubs, build(), strict=True):
                        pub.publish(msg)
                costs.append(1e3 * (time.thread_time() - t0) / frames)
            rows.append((n, *costs))
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return rows


# --- orchestration ----------------------------------------------------------------------------------------------
class Server:
    """A child process that answers one JSON line per command line."""

    def __init__(self, cmd: list[str], env: dict[str, str], cpus: set[int] | None, log: Path) -> None:
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     text=True, preexec_fn=_affinity(cpus))

    def ask(self, line: str | None) -> dict:
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        for out in self.proc.stdout:
            if out.startswith("{"):
                return json.loads(out)
        raise RuntimeError(f"{self.proc.args[2:4]} ended (rc {self.proc.wait()}); see {self.log}:\n"
                           f"{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(20)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            self.proc.kill()
        self._err.close()


def _affinity(cpus: set[int] | None):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def start_node(args: argparse.Namespace, env: dict[str, str], cpus: set[int] | None, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "petr_ros.ros.node", "--ros-args", "--params-file", str(REPO / "config/petr.yaml")]
    for k, v in node_overrides(args).items():
        if v != "":  # an empty value cannot be written as -p name:= (the params file has the default anyway)
            cmd += ["-p", f"{k}:={v}"]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            preexec_fn=_affinity(cpus))


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(2)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_mode(args: argparse.Namespace, mode: str, tmp: Path) -> dict:
    all_cpus = set(os.sched_getaffinity(0))
    cpus_node = cpus_model = {args.node_cpu} if mode == "pinned" else all_cpus
    cpus_camera = {args.camera_cpu} if mode == "pinned" else all_cpus
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(tmp / "ros_log"), OMP_NUM_THREADS=str(max(args.threads, 1)))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if args.dds == "shm":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
    common = ["--lifter", args.lifter, "--backend", args.backend, "--device", args.device, "--threads",
              str(args.threads), "--width", str(args.width), "--frames", str(args.frames), "--input-reliability",
              args.input_reliability, "--node-cpu", str(args.node_cpu)]
    common += ["--hrnet", args.hrnet] if args.hrnet else []
    model = Server([sys.executable, __file__, "--role", "model", *common], env, cpus_model, tmp / f"model_{mode}.log")
    node = start_node(args, env, cpus_node, tmp / f"node_{mode}.log")
    camera = None
    try:
        camera = Server([sys.executable, __file__, "--role", "camera", "--node-pid", str(node.pid), *common], env,
                        cpus_camera, tmp / f"camera_{mode}.log")
        model.ask(None)
        if not camera.ask(None).get("ready"):
            raise RuntimeError(f"the node never subscribed; see {tmp / f'node_{mode}.log'}")
        a_runs, b_runs = [], []
        for r in range(args.rounds):
            a_runs.append(model.ask(f"run {args.seconds}"))
            model_fps = float(np.mean([a["fps"] for a in a_runs]))
            rate = args.camera_hz or max(30.0, 1.25 * model_fps)
            b_runs.append(camera.ask(f"run {rate} {args.seconds}"))
            print(f"  {mode} round {r + 1}: model-only {a_runs[-1]['fps']:.2f} fps, node {b_runs[-1]['fps']:.2f} fps "
                  f"(camera {rate:.1f} Hz)", flush=True)
        lat = camera.ask(f"latency {0.5 * model_fps} {min(args.seconds, 8.0)}")
    finally:
        if camera is not None:
            camera.close()
        stop(node)
        model.close()
    return {"mode": mode, "a": a_runs, "b": b_runs, "latency": lat, "camera_hz": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="mediapipe", choices=("mediapipe", "hrnet"),
                        help="hrnet runs with random weights (cost does not depend on them)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, model-only and node alike")
    parser.add_argument("--width", type=int, default=1280, help="frame width (height keeps the video's aspect)")
    parser.add_argument("--frames", type=int, default=60, help="distinct video frames to cycle through")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement segment")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (model-only, node) per mode")
    parser.add_argument("--modes", default="pinned,unpinned", help="pinned, unpinned or both (comma-separated)")
    parser.add_argument("--camera-hz", type=float, default=0.0,
                        help="camera rate (0: 30 Hz, or 1.25x the model-only rate when higher)")
    parser.add_argument("--node-cpu", type=int, default=0, help="pinned mode: the node's and model-only's core")
    parser.add_argument("--camera-cpu", type=int, default=1, help="pinned mode: the camera's core")
    parser.add_argument("--dds", default="shm", choices=("shm", "default"),
                        help="shm: config/fastdds_shm.xml in camera and node; default: Fast DDS's transports")
    parser.add_argument("--domain-id", type=int, default=97)
    parser.add_argument("--input-reliability", default="best_effort", choices=("best_effort", "reliable"),
                        help="QoS of the node's image subscription")
    parser.add_argument("--role", default="", help=argparse.SUPPRESS)
    parser.add_argument("--node-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lifter", help=argparse.SUPPRESS)
    parser.add_argument("--hrnet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "model":
        model_server(args)
        return
    if args.role == "camera":
        camera_server(args)
        return

    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="petr_bench_node_"))
    frames = load_frames(args.width, 1)
    args.lifter = lifter_path(tmp)
    args.hrnet = hrnet_path(tmp) if args.backend == "hrnet" else None
    h, w = frames[0].shape[:2]
    cpus = sorted(os.sched_getaffinity(0))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if len(cpus) < 2 or args.node_cpu not in cpus or args.camera_cpu not in cpus or args.node_cpu == args.camera_cpu:
        print(f"(CPUs {cpus}: no separate cores for node {args.node_cpu} and camera {args.camera_cpu}; pinned skipped)")
        modes = [m for m in modes if m != "pinned"]
    print(f"frames: {args.frames} of {ASSETS / 'sports2d_demo.mp4'} at {w}x{h} rgb8; backend {args.backend}, device "
          f"{args.device}, {args.threads} torch thread(s), OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
          f", CPUs {cpus}, DDS {args.dds}, node input QoS {args.input_reliability}; load before: "
          f"{os.getloadavg()[0]:.2f}")
    results = []
    for mode in modes:
        try:
            results.append(run_mode(args, mode, tmp))
        except RuntimeError as exc:
            print(f"{mode}: failed: {exc}")
    load = os.getloadavg()

    print()
    print("| mode | model-only fps | node fps | ratio node/model | CPU ms/frame model-only / node (ratio) | node: "
          "inference, own work after inference (ms/frame) | images in per frame out | latency p50 / p95 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        a_fps = np.array([a["fps"] for a in r["a"]])
        b_fps = np.array([b["fps"] for b in r["b"]])
        ratios = b_fps / a_fps
        low, high = ratio_interval(a_fps, b_fps)
        interval = f"90 % interval {low:.3f}-{high:.3f}" if np.isfinite(low) else "one round: no interval"
        a_cpu = np.mean([a["cpu_ms_per_frame"] for a in r["a"]])
        b_cpu = np.mean([b["cpu_ms_per_frame"] for b in r["b"]])
        last = r["b"][-1]
        where = (f"camera CPU {args.camera_cpu}, node + model-only CPU {args.node_cpu}" if r["mode"] == "pinned"
                 else "all on every CPU")
        print(f"| {r['mode']} ({where}; camera {r['camera_hz']:.0f} Hz) | {a_fps.mean():.2f} "
              f"({', '.join(f'{x:.1f}' for x in a_fps)}) | {b_fps.mean():.2f} ({', '.join(f'{x:.1f}' for x in b_fps)}) "
              f"| **{b_fps.mean() / a_fps.mean():.3f}** ({interval}; per round "
              f"{', '.join(f'{x:.2f}' for x in ratios)}) "
              f"| {a_cpu:.1f} / {b_cpu:.1f} ({a_cpu / b_cpu:.3f}) "
              f"| {last['inference_ms']:.1f}, {last['own_work_ms']:.2f} "
              f"| {np.mean([b['received_per_processed'] for b in r['b']]):.2f} "
              f"(lost {sum(b['lost_input'] for b in r['b'])}) "
              f"| {r['latency']['latency_p50_ms']:.1f} / {r['latency']['latency_p95_ms']:.1f} |")
    for r in results:
        for label, runs in (("model-only", r["a"]), ("node", r["b"])):
            names = sorted({k for x in runs for k in x.get("threads_ms", {})},
                           key=lambda k: -sum(x.get("threads_ms", {}).get(k, 0.0) for x in runs))
            per = {k: np.mean([x.get("threads_ms", {}).get(k, 0.0) for x in runs]) for k in names}
            print(f"{r['mode']}: CPU ms/frame by thread, {label}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in per.items() if v >= 0.05))
    for r in results:
        if r["mode"] == "pinned":
            idle_a, idle_b = (100 * np.mean([x["node_cpu_idle"] for x in r[k]]) for k in ("a", "b"))
            print(f"pinned: CPU {args.node_cpu} idle while model-only runs {idle_a:.1f} %, while the node runs "
                  f"{idle_b:.1f} % (the node waiting for the camera's next image after frames shorter than its "
                  f"period)")
    for r in results:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["b"][-1].get("stages_ms", {}).items())
        print(f"{r['mode']}: pipeline stages in the node (mean ms/frame): {stages or 'n/a'}")
    print("CPU ratio: model-only CPU per frame / the node's (all its threads): the fps ratio the node reaches when "
          "nothing else wants its core")
    print()
    print("| people | outputs built and published, message objects (ms/frame) | CDR writers (node default) | ratio |")
    print("|---|---|---|---|")
    for n, objects_ms, cdr_ms in publish_cost(args.domain_id + 1):
        print(f"| {n} | {objects_ms:.3f} | {cdr_ms:.3f} | {objects_ms / cdr_ms:.1f}x |")
    print("goal: ratio >= 0.95 pinned, at the speed issue's 960x540 (--width 960; larger frames cost the node more "
          f"to take). Load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{time.monotonic() - t_start:.0f} s; logs in {tmp}")


if __name__ == "__main__":
    main()
