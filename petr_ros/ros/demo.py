"""The main job: a real video through the real `petr_node` over real DDS, recorded and drawn.

`python -m petr_ros.ros.demo --output outputs/demo` (or `petr_demo`, or `make demo`):

1. reads frames of a video a registry package ships (default `$PETR_ASSETS/sports2d_demo.mp4`, from the
   sports2d wheel), evenly spread over the clip and downscaled (960 px wide);
2. starts `petr_node` as a subprocess on a private ROS_DOMAIN_ID (Fast DDS shared-memory profile on both sides);
3. publishes each frame as sensor_msgs/Image with the video's own time stamps, one at a time at the node's
   processing rate (the next frame goes out when the node has answered the previous one, so the node's
   one-slot input never drops a frame), and subscribes to its MarkerArray, PoseArray and SkeletonArray;
4. records those topics (plus a JPEG copy of each input frame and /diagnostics) to an MCAP rosbag2;
5. writes pictures drawn only from what the node published (decoded by `petr_ros.ros.messages`): `demo.png`
   (contact sheet) and `demo.gif`, each panel the frame with the 2D keypoints beside the 3D skeletons with their
   joint axes, drawn like RViz from the MarkerArray and PoseArray; and `summary.json` / `summary.txt` (frames,
   people, rates, latency) (`petr_ros.tools.demo_report`).

This module is the player (`NodePlayer`: publish a frame, wait for its answer, record); ROS is imported only
inside the functions that talk to the graph. Video reading, pictures and summary are pure (`petr_ros.tools`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petr_ros.ros.process import NodeProcess
from petr_ros.tools.demo_report import DemoFrame, render_outputs, summarise, write_summary
from petr_ros.tools.video import read_frames

LOG = logging.getLogger("petr_demo")
REPO = Path(__file__).resolve().parents[2]
NODE_NAME = "petr_node"
IMAGE_TOPIC = "/demo/camera/image_raw"
RECORDED_IMAGE_TOPIC = "/demo/camera/image_raw/compressed"
OUTPUT_TOPICS = {
    "skeletons": (f"/{NODE_NAME}/skeletons", "petr_ros_msgs/msg/SkeletonArray"),
    "markers": (f"/{NODE_NAME}/markers", "visualization_msgs/msg/MarkerArray"),
    "poses": (f"/{NODE_NAME}/poses", "geometry_msgs/msg/PoseArray"),
}
DIAGNOSTICS_TOPIC = ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")
FRAME_ID = "camera_optical_frame"
CAMERA_INFO_TOPIC = "/demo/camera/camera_info"
# The Sports2D demo video's camera, from Sports2D/Demo/Calib_demo.toml in the same wheel: fx = fy = 2520.09 px at
# 1768x994, principal point at the image centre, no distortion (`--focal-px 2520.09`). With intrinsics the node
# places each skeleton metrically (root depth from the 2D keypoints): the people are then 9-13 m away and small in
# the 3D overview, which is why the default run sends no CameraInfo (skeletons on their camera rays at 3 m).
SPORTS2D_FOCAL_PX = 2520.0897058227038


def default_video() -> Path:
    return Path(os.environ.get("PETR_ASSETS", REPO / "assets")) / "sports2d_demo.mp4"


def share_file(relative: str) -> Path | None:
    """A file of the package's share folder: the source tree's, else the installed one (ament index)."""
    local = REPO / relative
    if local.is_file():
        return local
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("petr_ros")) / relative
        return installed if installed.is_file() else None
    except Exception:  # noqa: BLE001 - no ament index: the profile is an optimisation only
        return None


@dataclass
class DemoConfig:
    video: Path = field(default_factory=default_video)
    output: Path = Path("outputs/demo")
    frames: int = 60
    first_frame: int = 0
    last_frame: int = -1  # -1: the end of the video
    width: int = 960
    domain_id: int = -1  # -1: a private one derived from the process id
    node_params: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 120.0
    frame_timeout_s: float = 5.0
    focal_px: float | None = None  # focal length in pixels at the video's own width; None: no CameraInfo
    gif_frames: int = 30
    sheet_frames: int = 6
    record_images: bool = True
    from_bag: Path | None = None  # only draw the pictures from this bag


# --- the node process -------------------------------------------------------------------------------------------
def private_domain_id() -> int:
    """A ROS domain id of this run's own (150..199), away from 0 and from the test suite's 61 and 70..119."""
    return 150 + os.getpid() % 50


def node_environment(cfg: DemoConfig, out: Path) -> tuple[dict[str, str], int]:
    """Environment of the node process (and of this one's ROS context): a private domain, localhost discovery,
    the shared-memory Fast DDS profile on both sides."""
    domain = cfg.domain_id if cfg.domain_id >= 0 else private_domain_id()
    env = dict(os.environ)
    env.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "PYTHONUNBUFFERED": "1"})
    env.setdefault("ROS_LOG_DIR", str(out / "ros_log"))
    profile = share_file("config/fastdds_shm.xml")
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)  # this process too: SHM needs both ends
    return env, domain


def start_node(cfg: DemoConfig, out: Path) -> tuple[NodeProcess, int]:
    """Start petr_node (it loads its model while the demo reads the video)."""
    env, domain = node_environment(cfg, out)
    params = {"torch_threads": "1", "diagnostics_period": "1.0"}
    params.update(cfg.node_params)
    LOG.info("starting %s on ROS_DOMAIN_ID=%d (params: %s)", NODE_NAME, domain,
             ", ".join(f"{k}={v}" for k, v in params.items()))
    remaps = {"image": IMAGE_TOPIC, "camera_info": CAMERA_INFO_TOPIC}
    return NodeProcess(env, out / "node.log", params, remaps=remaps), domain


def camera_info_msg(focal_px: float, video_width: int, width: int, height: int) -> Any:
    """sensor_msgs/CameraInfo of a pinhole camera with focal length `focal_px` at `video_width`, scaled to the
    published width x height, principal point at the centre, no distortion."""
    from sensor_msgs.msg import CameraInfo

    f = focal_px * width / float(video_width)
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.frame_id = FRAME_ID
    msg.k = [f, 0.0, width / 2.0, 0.0, f, height / 2.0, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, width / 2.0, 0.0, 0.0, f, height / 2.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.d = [0.0] * 5
    return msg


# --- the player -------------------------------------------------------------------------------------------------
class NodePlayer:
    """The demo's side of the graph: publishes frames to the node, records its outputs (and the inputs as JPEG)
    into an MCAP bag, and matches each output to its frame by the header stamp. `close()` closes the bag (a run
    that failed before `complete` was set leaves a valid partial bag) and leaves the graph."""

    def __init__(self, domain: int, node_proc: NodeProcess, bag_path: Path, frames: list[DemoFrame],
                 record_images: bool, record_camera_info: bool) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from petr_ros.ros.bag import BagWriter, message_class

        self.node_proc = node_proc
        self.record_images = record_images
        self.by_stamp = {f.stamp_ns: f for f in frames}
        self.diagnostics: list[Any] = []
        self.complete = False
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("petr_demo_player", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        if bag_path.exists():
            shutil.rmtree(bag_path)  # the previous run's bag: this folder is the demo's own output
        self.bag_path = bag_path
        self.recorder = BagWriter(bag_path).__enter__()
        reliable = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, IMAGE_TOPIC, reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, reliable)
        if record_camera_info:
            self.recorder.add_topic(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo")
        if record_images:
            self.recorder.add_topic(RECORDED_IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage")
        for key, (topic, msgtype) in [*OUTPUT_TOPICS.items(), ("diagnostics", DIAGNOSTICS_TOPIC)]:
            self.recorder.add_topic(topic, msgtype)
            cls = message_class(msgtype)
            self.node.create_subscription(cls, topic, self._receiver(key, topic, cls), reliable, raw=True)

    def _receiver(self, key: str, topic: str, cls: type) -> Callable[[bytes], None]:
        from rclpy.serialization import deserialize_message

        from petr_ros.ros.messages import output_stamp_ns

        def receive(raw: bytes) -> None:
            now = time.monotonic()
            self.recorder.write(topic, raw, time.time_ns())  # serialised, straight into the bag
            msg = deserialize_message(raw, cls)
            if key == "diagnostics":
                self.diagnostics.append(msg)
                return
            frame = self.by_stamp.get(output_stamp_ns(msg))
            if frame is None:
                return
            frame.messages[key] = msg
            if key == "skeletons" and frame.answered_s is None:
                frame.answered_s = now

        return receive

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin until predicate() holds, the timeout passes or the node process ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if not self.node_proc.alive():
                return predicate()
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def node_ready(self) -> bool:
        """The node subscribes to the images and publishes every output."""
        return self.image_pub.get_subscription_count() > 0 and all(
            self.node.count_publishers(topic) > 0 for topic, _ in OUTPUT_TOPICS.values())

    def send_camera_info(self, msg: Any, stamp_ns: int | None = None) -> None:
        from petr_ros.ros.messages import stamp_from_ns

        if stamp_ns is None:  # before the stream: resend until the node says it took it (a sample sent while
            # discovery is still matching the node's reader is lost; the first frame must already be metric)
            self.spin_until(lambda: self.info_pub.get_subscription_count() > 0, 5.0)
            deadline = time.monotonic() + 10.0
            while "camera intrinsics received" not in self.node_proc.log() and time.monotonic() < deadline:
                self.info_pub.publish(msg)
                self.spin_until(lambda: False, 0.2)
            return
        msg.header.stamp = stamp_from_ns(stamp_ns)  # with each frame, its stamp (the bag gets a copy)
        self.info_pub.publish(msg)
        self.recorder.write(CAMERA_INFO_TOPIC, msg, stamp_ns)

    def play(self, frame: DemoFrame, timeout_s: float) -> bool:
        """Publish one frame (and record a JPEG copy) and wait for its SkeletonArray; True when it came."""
        from sensor_msgs.msg import CompressedImage
        from std_msgs.msg import Header

        from petr_ros.image_codec import encode_compressed
        from petr_ros.ros.messages import rgb_to_image_msg, stamp_from_ns

        header = Header(frame_id=FRAME_ID, stamp=stamp_from_ns(frame.stamp_ns))
        msg = rgb_to_image_msg(frame.rgb, header)
        frame.published_s = time.monotonic()
        self.image_pub.publish(msg)
        if self.record_images:  # the bag alone replays video + skeletons
            jpeg = encode_compressed(frame.rgb, "jpeg", quality=80)
            self.recorder.write(RECORDED_IMAGE_TOPIC, CompressedImage(header=header, format="jpeg", data=jpeg),
                                frame.stamp_ns)
        answered = self.spin_until(lambda: frame.answered_s is not None, timeout_s)
        if not self.node_proc.alive():
            raise RuntimeError(f"{NODE_NAME} exited during the run; its log ({self.node_proc.log_path}):\n"
                               + "\n".join(self.node_proc.log().splitlines()[-25:]))
        return answered

    def close(self) -> None:
        # An incomplete run is reported to the writer as an error: it closes the bag with what was written.
        self.recorder.__exit__(None if self.complete else RuntimeError, None, None)
        self.executor.shutdown()
        self.node.destroy_node()
        import rclpy

        rclpy.try_shutdown(context=self.context)


def run_through_node(cfg: DemoConfig, frames: list[DemoFrame], out: Path, node_proc: NodeProcess, domain: int,
                     t_start: float, video_width: int) -> dict[str, Any]:
    """Stream the frames to the running node one at a time and record its outputs; fills each frame's messages.
    Stops the node at the end (or on any error)."""
    from petr_ros.ros.messages import diagnostic_values

    player = NodePlayer(domain, node_proc, out / "demo_bag", frames, cfg.record_images, bool(cfg.focal_px))
    try:
        LOG.info("waiting for the node to load the model and subscribe to %s ...", IMAGE_TOPIC)
        if not player.spin_until(player.node_ready, cfg.startup_timeout_s):
            tail = "\n".join(node_proc.log().splitlines()[-25:])
            raise RuntimeError(f"{NODE_NAME} did not come up within {cfg.startup_timeout_s:.0f} s "
                               f"(exit code {node_proc.proc.poll()}); its log ({node_proc.log_path}):\n{tail}")
        startup_s = time.monotonic() - t_start
        model_line = next((ln for ln in node_proc.log().splitlines() if "model ready" in ln), "")
        LOG.info("node ready after %.1f s%s", startup_s, f": {model_line.split(']: ')[-1]}" if model_line else "")
        camera_info = None
        if cfg.focal_px:
            camera_info = camera_info_msg(cfg.focal_px, video_width, frames[0].rgb.shape[1], frames[0].rgb.shape[0])
            player.send_camera_info(camera_info)  # intrinsics first: the first frame is already placed metrically
            LOG.info("camera intrinsics: fx = fy = %.1f px at %dx%d (from %.1f px at the video's width)",
                     camera_info.k[0], camera_info.width, camera_info.height, cfg.focal_px)
        t_stream = time.monotonic()
        for i, frame in enumerate(frames):
            if camera_info is not None:
                player.send_camera_info(camera_info, frame.stamp_ns)
            if not player.play(frame, cfg.frame_timeout_s):
                LOG.warning("frame %d (video frame %d): no answer within %.1f s", i, frame.index, cfg.frame_timeout_s)
            if i % 10 == 0 or i == len(frames) - 1:
                people = len(frame.messages["skeletons"].skeletons) if "skeletons" in frame.messages else 0
                LOG.info("frame %2d/%d (video frame %3d): %d people, %.0f ms", i + 1, len(frames), frame.index,
                         people, 1000 * ((frame.answered_s or time.monotonic()) - frame.published_s))
        stream_s = time.monotonic() - t_stream
        # Markers and poses of the last frame, and a /diagnostics message sent after it (counts of every frame).
        seen = len(player.diagnostics)
        player.spin_until(lambda: all(k in frames[-1].messages for k in OUTPUT_TOPICS) and len(player.diagnostics)
                          > seen, 2.5 * float(cfg.node_params.get("diagnostics_period", 1.0)))
        player.complete = True
    finally:
        player.close()
        LOG.info("node stopped (exit code %s)", node_proc.stop())
    return {
        "domain_id": domain,
        "node_startup_s": startup_s,
        "stream_s": stream_s,
        "bag_counts": dict(player.recorder.counts),
        "bag": str(player.bag_path),
        "node_diagnostics": diagnostic_values(player.diagnostics[-1]) if player.diagnostics else {},
        "node_log": str(node_proc.log_path),
        "node_model_line": model_line.split("]: ")[-1] if model_line else "",
    }


# --- from messages to pictures ----------------------------------------------------------------------------------
def decode_frame(frame: DemoFrame) -> None:
    """Fill a frame's people (its SkeletonArray) and 3D primitives (its MarkerArray's sphere and line lists plus
    the PoseArray's joint axes) from the messages the node sent for it."""
    from petr_ros.render import axis_primitive
    from petr_ros.ros.messages import (
        joint_frames_from_pose_array,
        persons_from_skeleton_array,
        primitives_from_marker_array,
    )

    msgs = frame.messages
    frame.persons = persons_from_skeleton_array(msgs["skeletons"]) if "skeletons" in msgs else None
    frame.primitives = primitives_from_marker_array(msgs["markers"]) if "markers" in msgs else []
    if "poses" in msgs and msgs["poses"].poses:
        frame.primitives.insert(0, axis_primitive(*joint_frames_from_pose_array(msgs["poses"]), length=0.12))


def frames_from_bag(bag: Path, image_topic: str = RECORDED_IMAGE_TOPIC) -> tuple[list[DemoFrame], float]:
    """Frames (input JPEG + the node's outputs, matched by header stamp) of a bag the demo (or petr_bag_record,
    with a CompressedImage topic) recorded, decoded; returns them with the frame rate estimated from the stamps."""
    from petr_ros.ros.bag import read_bag
    from petr_ros.ros.messages import image_msg_to_rgb, output_stamp_ns

    topics = {topic: key for key, (topic, _) in OUTPUT_TOPICS.items()}
    frames: dict[int, DemoFrame] = {}
    outputs: list[tuple[str, int | None, Any]] = []
    for m in read_bag(bag, topics=[image_topic, *topics]):
        stamp = output_stamp_ns(m.msg)
        if m.topic == image_topic:
            frames[stamp] = DemoFrame(len(frames), stamp, image_msg_to_rgb(m.msg))
        else:
            outputs.append((topics[m.topic], stamp, m.msg))
    if not frames:
        raise ValueError(f"bag {bag} has no {image_topic} messages to draw the skeletons over")
    for key, stamp, msg in outputs:
        if stamp in frames:
            frames[stamp].messages[key] = msg
    ordered = [frames[k] for k in sorted(frames)]
    for i, frame in enumerate(ordered):
        frame.index = i
        decode_frame(frame)
    steps = np.diff([f.stamp_ns for f in ordered]) / 1e9
    fps = float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 10.0
    return ordered, fps


def render_bag(cfg: DemoConfig, bag: Path) -> dict[str, str]:
    """Only the pictures, from a recorded bag (no node run): demo.png and demo.gif in cfg.output."""
    cfg.output.mkdir(parents=True, exist_ok=True)
    frames, fps = frames_from_bag(bag)
    LOG.info("%d frames in %s (%.1f fps)", len(frames), bag, fps)
    return render_outputs(frames, cfg.output, fps, cfg.sheet_frames, cfg.gif_frames)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """The whole job; returns the summary (also written to cfg.output)."""
    t0 = time.monotonic()
    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    if cfg.frames < 1:
        raise ValueError(f"frames must be >= 1, got {cfg.frames}")
    if not cfg.video.is_file():
        raise FileNotFoundError(f"video {cfg.video} not found (scripts/fetch_assets.sh fetches the demo video)")
    node_proc, domain = start_node(cfg, out)
    try:
        LOG.info("reading %d frames of %s while the node starts ...", cfg.frames, cfg.video)
        raw, fps, size = read_frames(cfg.video, cfg.frames, cfg.width, cfg.first_frame, cfg.last_frame)
        start_ns = time.time_ns() // 1_000_000 * 1_000_000  # a realistic stamp base; frame times follow the video
        frames = [DemoFrame(i, start_ns + round(i * 1e9 / fps), rgb) for i, rgb in raw]
        LOG.info("%d frames (video frames %d..%d of a %dx%d, %.0f fps clip), published at %dx%d",
                 len(frames), frames[0].index, frames[-1].index, size[0], size[1], fps,
                 frames[0].rgb.shape[1], frames[0].rgb.shape[0])
        run = run_through_node(cfg, frames, out, node_proc, domain, t0, size[0])
    finally:
        node_proc.stop()  # no-op when it already stopped; never leave the node behind
    for frame in frames:
        decode_frame(frame)
    pictures = render_outputs(frames, out, fps, cfg.sheet_frames, cfg.gif_frames)
    summary = summarise(frames, run, fps, size, pictures, time.monotonic() - t0, str(cfg.video), cfg.focal_px)
    text = write_summary(out, summary)
    LOG.info("done in %.1f s\n%s", summary["total_s"], text)
    return summary


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    parser = argparse.ArgumentParser(prog="petr_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--video", type=Path, default=default_video(), help="video file (any OpenCV can read)")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--frames", type=int, default=60, help="frames to send, evenly spread over the video")
    parser.add_argument("--first-frame", type=int, default=0, help="first video frame to sample")
    parser.add_argument("--last-frame", type=int, default=-1, help="last video frame to sample (-1: the end)")
    parser.add_argument("--width", type=int, default=960, help="downscale frames to this width (px) before sending")
    parser.add_argument("--domain-id", type=int, default=-1, help="ROS_DOMAIN_ID (-1: a private one)")
    parser.add_argument("--focal-px", type=float, default=0.0,
                        help="also publish CameraInfo with this focal length (pixels at the video's own width), so "
                        f"the node places people metrically; Sports2D's calibration of its video: "
                        f"{SPORTS2D_FOCAL_PX:.2f}; 0: no CameraInfo (skeletons at the node's default depth)")
    parser.add_argument("--gif-frames", type=int, default=30, help="frames in demo.gif")
    parser.add_argument("--sheet-frames", type=int, default=6, help="panels in demo.png")
    parser.add_argument("--frame-timeout", type=float, default=5.0, help="seconds to wait for each answer")
    parser.add_argument("--from-bag", type=Path, default=None,
                        help="only draw demo.png/demo.gif from a bag this demo recorded (no node run)")
    parser.add_argument("--no-record-images", action="store_true", help="do not put the input frames in the bag")
    parser.add_argument("--lifter-checkpoint", default="", help="lifter .pt (default: the one shipped)")
    parser.add_argument("--hrnet-weights", default="", help="HRNet-W32 COCO weights: use the hrnet backend")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra petr_node parameter, e.g. -p smoothing:=true (repeatable)")
    args = parser.parse_args(argv)
    params: dict[str, str] = {}
    if args.lifter_checkpoint:
        params["lifter_checkpoint"] = str(Path(args.lifter_checkpoint).resolve())
    if args.hrnet_weights:
        params["hrnet_weights"] = str(Path(args.hrnet_weights).resolve())
    for item in args.param:
        if ":=" not in item:
            parser.error(f"--param expects NAME:=VALUE, got {item!r}")
        key, value = item.split(":=", 1)
        params[key.strip()] = value.strip()
    if args.focal_px < 0:
        parser.error(f"--focal-px must be >= 0, got {args.focal_px}")
    return DemoConfig(video=args.video, output=args.output, frames=args.frames, width=args.width,
                      focal_px=args.focal_px or None, first_frame=args.first_frame, last_frame=args.last_frame,
                      domain_id=args.domain_id, node_params=params, frame_timeout_s=args.frame_timeout,
                      gif_frames=args.gif_frames, sheet_frames=args.sheet_frames,
                      record_images=not args.no_record_images, from_bag=args.from_bag)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[petr_demo %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    cfg = parse_args(argv)
    try:
        if cfg.from_bag is not None:
            render_bag(cfg, cfg.from_bag)
        else:
            run_demo(cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        LOG.error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
