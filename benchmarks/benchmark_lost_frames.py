"""Frames lost between a camera and petr_node with the README's command, per image size and DDS profile.

    python benchmarks/benchmark_lost_frames.py [--sizes 1768x994 640x360] [--rate 30] [--seconds 10]

For each size and each profile (the default Fast DDS transports, and config/fastdds_shm.xml loaded by both
processes) a child process of this script starts petr_node exactly as the README says
(`--params-file config/petr.yaml -r image:=/camera/color/image_raw -r camera_info:=/camera/color/camera_info`),
publishes `rate` Hz rgb8 frames for `seconds` with a camera driver's QoS (sensor data: best effort), and reads the
node's own count of received images from /diagnostics. Lost = sent - received (what never reached the callback);
the node's own count of samples DDS reported lost (lost_input) is printed beside it.
Each run is a process of its own because Fast DDS reads its XML profile once per process.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHM_PROFILE = REPO / "config" / "fastdds_shm.xml"
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))


def _child(width: int, height: int, rate: float, seconds: float, log_dir: Path, profile: str) -> dict:
    import cv2
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from petr_ros.ros.node import DIAGNOSTIC_NAME
    from petr_ros.ros.process import NodeProcess

    bgr = cv2.imread(str(ASSETS / "messi5.jpg"), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height)))
    node_env = dict(os.environ)
    if profile == "shm_node":  # only the node loads the profile; the camera keeps Fast DDS's defaults
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    node = NodeProcess(node_env, log_dir / "node.log", params={"diagnostics_period": 0.5},
                       params_file=REPO / "config" / "petr.yaml",
                       remaps={"image": "/camera/color/image_raw", "camera_info": "/camera/color/camera_info"},
                       cwd=REPO)
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("lost_frames_camera", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    latest: dict[str, str] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == DIAGNOSTIC_NAME:
                latest.clear()
                latest.update({kv.key: kv.value for kv in status.values})

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    pub = probe.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data)

    def spin(seconds_: float) -> None:
        end = time.monotonic() + seconds_
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)

    try:
        deadline = time.monotonic() + 180
        while not (pub.get_subscription_count() > 0 and "received" in latest) and time.monotonic() < deadline:
            spin(0.1)
        if "received" not in latest:
            raise RuntimeError(f"node not ready:\n{node.log()[-3000:]}")
        spin(1.0)
        before = int(latest["received"])
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())
        msg.header.frame_id = "camera_color_optical_frame"
        sent, t0 = 0, time.monotonic()
        while sent < int(rate * seconds):
            due = t0 + sent / rate
            while time.monotonic() < due:
                executor.spin_once(timeout_sec=max(0.0, min(0.005, due - time.monotonic())))
            msg.header.stamp = probe.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
        spin(3.0)  # the last frames arrive, the next diagnostics report goes out
        received = int(latest["received"]) - before
        return {"size": f"{width}x{height}", "sent": sent, "received": received, "lost": sent - received,
                "reported_lost": latest.get("lost_input", "n/a"),
                "node_log_tail": node.log()[-600:] if received == 0 else ""}
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
        node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1768x994", "640x360"])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profiles", nargs="+", default=["default", "shm"], choices=["default", "shm", "shm_node"],
                        help="default: Fast DDS defaults everywhere; shm: config/fastdds_shm.xml in the camera and "
                             "the node; shm_node: in the node only")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "PROFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        w, h = (int(v) for v in args.child[0].split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            result = _child(w, h, args.rate, args.seconds, Path(tmp), args.child[1])
            print(json.dumps({"profile": args.child[1], **result}))
        return 0
    results = []
    for size in args.sizes:
        for profile in args.profiles:
            env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
            env.setdefault("ROS_DOMAIN_ID", "42")
            env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
            if profile == "shm":
                env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHM_PROFILE)
            with tempfile.TemporaryDirectory() as logs:
                env["ROS_LOG_DIR"] = logs
                out = subprocess.run([sys.executable, __file__, "--child", size, profile, "--rate", str(args.rate),
                                      "--seconds", str(args.seconds)], env=env, capture_output=True, text=True,
                                     timeout=600)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode != 0 or not lines:
                print(f"{size} {profile}: run failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(lines[-1])
            results.append(r)
            print(f"{r['size']:>10} {r['profile']:>8}: sent {r['sent']}, received {r['received']}, lost {r['lost']} "
                  f"(node's lost_input: {r['reported_lost']})"
                  + (f"\n{r['node_log_tail']}" if r["node_log_tail"] else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
