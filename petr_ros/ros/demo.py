"""The main job: a real video through the real `petr_node` over real DDS, recorded and drawn.

`python -m petr_ros.ros.demo --output outputs/demo` (or `petr_demo`, or `make demo`):

1. reads frames of a video a registry package ships (default `$PETR_ASSETS/sports2d_demo.mp4`, from the
   sports2d wheel), evenly spread over the clip and downscaled (960 px wide);
2. starts `petr_node` as a subprocess on a private ROS_DOMAIN_ID (Fast DDS shared-memory profile on both sides);
3. publishes each frame as sensor_msgs/Image with the video's own time stamps, one at a time at the node's
   processing rate (the next frame goes out when the node has answered the previous one, so the node's
   one-slot input never drops a frame), and subscribes to its MarkerArray, PoseArray and SkeletonArray;
4. records those topics (plus a JPEG copy of each input frame and /diagnostics) to an MCAP rosbag2;
5. writes pictures drawn only from what the node published: `demo.png` (contact sheet) and `demo.gif`, each
   panel the frame with the 2D keypoints beside the 3D skeletons with their joint axes, drawn like RViz from the
   MarkerArray and PoseArray; and `summary.json` / `summary.txt` (frames, people, rates, latency).

ROS is imported only inside the functions that talk to the graph: the rendering and the summary are pure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petr_ros.ros.process import NodeProcess

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


@dataclass
class Frame:
    index: int  # frame number in the video
    stamp_ns: int  # the video's own time of the frame (start + index / fps)
    rgb: np.ndarray
    published_s: float = 0.0  # time.monotonic() at publish
    answered_s: float | None = None  # time.monotonic() when its SkeletonArray came back
    messages: dict[str, Any] = field(default_factory=dict)  # output key -> deserialised message


# --- video ------------------------------------------------------------------------------------------------------
def read_frames(path: Path, count: int, width: int, first: int = 0, last: int = -1) -> tuple[
    list[tuple[int, np.ndarray]], float, tuple[int, int]
]:
    """`count` frames evenly spread over video frames first..last (-1: the end), as RGB downscaled to `width` px
    (never upscaled). Returns ([(frame index, rgb)], fps, (original width, height))."""
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"video {path} not found (scripts/fetch_assets.sh fetches the demo video)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path} with OpenCV")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if total <= 0:
            raise ValueError(f"video {path} reports no frames")
        last = total - 1 if last < 0 else min(last, total - 1)
        if not 0 <= first <= last:
            raise ValueError(f"frame range {first}..{last} is empty or outside the video's 0..{total - 1}")
        span = last - first + 1
        wanted = sorted(set(np.linspace(first, last, min(count, span)).round().astype(int).tolist()))
        out: list[tuple[int, np.ndarray]] = []
        index = 0
        for target in wanted:
            while index < target:  # grab() skips without converting the frame
                if not cap.grab():
                    break
                index += 1
            ok, bgr = cap.read()
            index += 1
            if not ok:
                break
            h, w = bgr.shape[:2]
            if w > width:
                bgr = cv2.resize(bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            out.append((target, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
    finally:
        cap.release()
    if not out:
        raise ValueError(f"could not decode any frame of {path}")
    return out, fps, size


# --- the node process -------------------------------------------------------------------------------------------
def private_domain_id() -> int:
    """A ROS domain id of this run's own (150..199), away from 0 and from the test suite's 61 and 70..119."""
    return 150 + os.getpid() % 50


# --- the run ----------------------------------------------------------------------------------------------------
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
             ", ".join(f"{k}={v}" for k, v in params.items()))  # fmt: skip
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


def run_through_node(cfg: DemoConfig, frames: list[Frame], out: Path, node_proc: NodeProcess, domain: int,
                     t_start: float, video_width: int) -> dict[str, Any]:  # fmt: skip
    """Stream the frames to the running node one at a time and record its outputs; fills each Frame's messages.
    Stops the node at the end (or on any error)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from petr_ros_msgs.msg import SkeletonArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from std_msgs.msg import Header
    from visualization_msgs.msg import MarkerArray

    from petr_ros.image_codec import encode_compressed
    from petr_ros.ros.bag import BagWriter
    from petr_ros.ros.messages import rgb_to_image_msg

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    ros_node = rclpy.create_node("petr_demo_player", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(ros_node)
    bag_path = out / "demo_bag"
    if bag_path.exists():
        shutil.rmtree(bag_path)  # the previous run's bag: this folder is the demo's own output
    recorder = BagWriter(bag_path).__enter__()
    bag_ok = False
    by_stamp = {f.stamp_ns: f for f in frames}
    diagnostics: list[Any] = []
    try:
        reliable = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = ros_node.create_publisher(Image, IMAGE_TOPIC, reliable)
        info_pub = ros_node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, reliable)
        camera_info = None
        if cfg.focal_px:
            camera_info = camera_info_msg(cfg.focal_px, video_width, frames[0].rgb.shape[1], frames[0].rgb.shape[0])
            recorder.add_topic(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo")
        if cfg.record_images:
            recorder.add_topic(RECORDED_IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage")
        classes = {"skeletons": SkeletonArray, "markers": MarkerArray, "poses": PoseArray,
                   "diagnostics": DiagnosticArray}  # fmt: skip
        for key, (topic, msgtype) in list(OUTPUT_TOPICS.items()) + [("diagnostics", DIAGNOSTICS_TOPIC)]:
            recorder.add_topic(topic, msgtype)
            cls = classes[key]

            def on_raw(raw: bytes, key: str = key, topic: str = topic, cls: Any = cls) -> None:
                now = time.monotonic()
                recorder.write(topic, raw, time.time_ns())
                msg = deserialize_message(raw, cls)
                if key == "diagnostics":
                    diagnostics.append(msg)
                    return
                header = msg.markers[0].header if key == "markers" and msg.markers else getattr(msg, "header", None)
                if header is None:
                    return
                stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
                frame = by_stamp.get(stamp)
                if frame is None:
                    return
                frame.messages[key] = msg
                if key == "skeletons" and frame.answered_s is None:
                    frame.answered_s = now

            ros_node.create_subscription(cls, topic, on_raw, reliable, raw=True)

        def spin_until(predicate: Any, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate():
                    return True
                if not node_proc.alive():
                    return predicate()
                executor.spin_once(timeout_sec=0.01)
            return predicate()

        def ready() -> bool:
            return image_pub.get_subscription_count() > 0 and all(
                ros_node.count_publishers(topic) > 0 for topic, _ in OUTPUT_TOPICS.values())

        LOG.info("waiting for the node to load the model and subscribe to %s ...", IMAGE_TOPIC)
        if not spin_until(ready, cfg.startup_timeout_s):
            tail = "\n".join(node_proc.log().splitlines()[-25:])
            raise RuntimeError(f"{NODE_NAME} did not come up within {cfg.startup_timeout_s:.0f} s "
                               f"(exit code {node_proc.proc.poll()}); its log ({node_proc.log_path}):\n{tail}")
        startup_s = time.monotonic() - t_start
        model_line = next((ln for ln in node_proc.log().splitlines() if "model ready" in ln), "")
        LOG.info("node ready after %.1f s%s", startup_s, f": {model_line.split(']: ')[-1]}" if model_line else "")

        if camera_info is not None:
            # Intrinsics first, so that the first frame is already placed metrically.
            spin_until(lambda: info_pub.get_subscription_count() > 0, 5.0)
            info_pub.publish(camera_info)
            spin_until(lambda: False, 0.3)
            LOG.info("camera intrinsics: fx = fy = %.1f px at %dx%d (from %.1f px at the video's width)",
                     camera_info.k[0], camera_info.width, camera_info.height, cfg.focal_px)  # fmt: skip
        t_stream = time.monotonic()
        for i, frame in enumerate(frames):
            header = Header(frame_id=FRAME_ID)
            header.stamp.sec, header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
            msg = rgb_to_image_msg(frame.rgb, header)
            if camera_info is not None:
                camera_info.header = header
                info_pub.publish(camera_info)
                recorder.write(CAMERA_INFO_TOPIC, camera_info, frame.stamp_ns)
            frame.published_s = time.monotonic()
            image_pub.publish(msg)
            if cfg.record_images:  # a JPEG copy of the input, so the bag alone replays video + skeletons
                jpeg = encode_compressed(frame.rgb, "jpeg", quality=80)
                recorder.write(RECORDED_IMAGE_TOPIC, CompressedImage(header=header, format="jpeg", data=jpeg),
                               frame.stamp_ns)  # fmt: skip
            answered = spin_until(lambda f=frame: f.answered_s is not None, cfg.frame_timeout_s)
            if not node_proc.alive():
                raise RuntimeError(f"{NODE_NAME} exited during the run; its log ({node_proc.log_path}):\n"
                                   + "\n".join(node_proc.log().splitlines()[-25:]))
            people = len(frame.messages["skeletons"].skeletons) if answered else 0
            if not answered:
                LOG.warning("frame %d (video frame %d): no answer within %.1f s", i, frame.index, cfg.frame_timeout_s)
            if i % 10 == 0 or i == len(frames) - 1:
                LOG.info("frame %2d/%d (video frame %3d): %d people, %.0f ms", i + 1, len(frames), frame.index,
                         people, 1000 * ((frame.answered_s or time.monotonic()) - frame.published_s))  # fmt: skip
        stream_s = time.monotonic() - t_stream
        # Markers and poses of the last frame, and a /diagnostics message sent after it (counts of every frame).
        seen = len(diagnostics)
        spin_until(lambda: all(k in frames[-1].messages for k in OUTPUT_TOPICS) and len(diagnostics) > seen,
                   2.5 * float(cfg.node_params.get("diagnostics_period", 1.0)))  # fmt: skip
        bag_ok = True
    finally:
        # The bag goes into place only when complete (BagWriter renames it on a clean exit).
        recorder.__exit__(None if bag_ok else RuntimeError, None, None)
        executor.shutdown()
        ros_node.destroy_node()
        rclpy.try_shutdown(context=context)
        code = node_proc.stop()
        LOG.info("node stopped (exit code %s)", code)
    from petr_ros.ros.messages import diagnostic_values

    return {
        "domain_id": domain,
        "node_startup_s": startup_s,
        "stream_s": stream_s,
        "bag_counts": dict(recorder.counts),
        "placement": sorted({("intrinsics" if sk.placement == 1 else "default_depth")
                             for f in frames if "skeletons" in f.messages
                             for sk in f.messages["skeletons"].skeletons}),  # fmt: skip
        "bag": str(bag_path),
        "node_diagnostics": diagnostic_values(diagnostics[-1]) if diagnostics else {},
        "node_log": str(node_proc.log_path),
        "node_model_line": model_line.split("]: ")[-1] if model_line else "",
    }


# --- pictures from the node's messages --------------------------------------------------------------------------
def views_from_messages(frame: Frame) -> tuple[list[Any], list[Any]]:
    """The people (from the SkeletonArray) and the 3D marker primitives (the MarkerArray's sphere and line lists
    plus the PoseArray's joint axes) of one answered frame, decoded by `petr_ros.ros.messages`."""
    from petr_ros.render import axis_primitive
    from petr_ros.ros.messages import (
        joint_frames_from_pose_array,
        persons_from_skeleton_array,
        primitives_from_marker_array,
    )

    skeletons = frame.messages.get("skeletons")
    markers = frame.messages.get("markers")
    poses = frame.messages.get("poses")
    primitives = primitives_from_marker_array(markers) if markers is not None else []
    if poses is not None and poses.poses:
        primitives.insert(0, axis_primitive(*joint_frames_from_pose_array(poses), length=0.12))
    persons = persons_from_skeleton_array(skeletons) if skeletons is not None else []
    return persons, primitives


def render_outputs(cfg: DemoConfig, frames: list[Frame], out: Path, fps: float) -> dict[str, str]:
    """demo.png (contact sheet) and demo.gif from the answered frames."""
    from petr_ros.render import PanelRenderer, contact_sheet, save_gif, save_png, scene_limits

    answered = [f for f in frames if "skeletons" in f.messages]
    if not answered:
        raise RuntimeError("the node answered no frame: nothing to draw (see node.log)")
    all_positions = [np.array([[p.x, p.y, p.z] for p in sk.positions])
                     for f in answered for sk in f.messages["skeletons"].skeletons]  # fmt: skip
    limits = None
    if all_positions:
        # One view for the whole clip (no jumping axes), robust to a stray skeleton.
        pts = np.concatenate(all_positions)
        limits = scene_limits(np.stack([np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)]))
    renderer = PanelRenderer()
    t0_ns = frames[0].stamp_ns - round(frames[0].index * 1e9 / fps)

    def panel(frame: Frame) -> np.ndarray:
        views, prims = views_from_messages(frame)
        seconds = (frame.stamp_ns - t0_ns) / 1e9
        title = (f"frame {frame.index} (t = {seconds:.2f} s): {len(views)} "
                 f"{'person' if len(views) == 1 else 'people'}   |   3D: camera frame, joint axes x/y/z = r/g/b")
        return renderer.render(frame.rgb, views, title=title, primitives=prims, limits=limits)

    with_people = [f for f in answered if f.messages["skeletons"].skeletons] or answered
    pick = np.linspace(0, len(with_people) - 1, min(cfg.sheet_frames, len(with_people))).round().astype(int)
    sheet = contact_sheet([panel(with_people[i]) for i in sorted(set(pick.tolist()))], columns=2)
    png = save_png(out / "demo.png", sheet)
    LOG.info("wrote %s (%dx%d)", png, sheet.shape[1], sheet.shape[0])
    pick = np.linspace(0, len(answered) - 1, min(cfg.gif_frames, len(answered))).round().astype(int)
    gif_frames = [panel(answered[i]) for i in sorted(set(pick.tolist()))]
    span = (answered[-1].index - answered[0].index) / fps
    gif_fps = max(2.0, min(15.0, len(gif_frames) / max(span, 1e-3)))  # about real time
    gif = save_gif(out / "demo.gif", gif_frames, fps=gif_fps, scale=0.75)
    LOG.info("wrote %s (%d frames)", gif, len(gif_frames))
    return {"png": str(png), "gif": str(gif)}


def frames_from_bag(bag: Path, image_topic: str = RECORDED_IMAGE_TOPIC) -> tuple[list[Frame], float]:
    """Frames (input JPEG + the node's outputs, matched by header stamp) of a bag the demo (or petr_bag_record,
    with a CompressedImage topic) recorded; returns them with the frame rate estimated from the stamps."""
    from petr_ros.image_codec import decode_compressed
    from petr_ros.ros.bag import read_bag

    topics = {topic: key for key, (topic, _) in OUTPUT_TOPICS.items()}
    frames: dict[int, Frame] = {}
    outputs: list[tuple[str, int, Any]] = []
    for m in read_bag(bag, topics=[image_topic, *topics]):
        msg = m.msg
        if m.topic == image_topic:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            frames[stamp] = Frame(len(frames), stamp, decode_compressed(msg.format, msg.data))
        else:
            header = msg.markers[0].header if m.topic.endswith("markers") and msg.markers else getattr(
                msg, "header", None)  # fmt: skip
            if header is not None:
                outputs.append((topics[m.topic], header.stamp.sec * 1_000_000_000 + header.stamp.nanosec, msg))
    if not frames:
        raise ValueError(f"bag {bag} has no {image_topic} messages to draw the skeletons over")
    for key, stamp, msg in outputs:
        if stamp in frames:
            frames[stamp].messages[key] = msg
    ordered = [frames[k] for k in sorted(frames)]
    for i, frame in enumerate(ordered):
        frame.index = i
    steps = np.diff([f.stamp_ns for f in ordered]) / 1e9
    fps = float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 10.0
    return ordered, fps


# --- summary ----------------------------------------------------------------------------------------------------
def summarise(cfg: DemoConfig, frames: list[Frame], run: dict[str, Any], fps: float, size: tuple[int, int],
              pictures: dict[str, str], total_s: float) -> dict[str, Any]:  # fmt: skip
    answered = [f for f in frames if f.answered_s is not None]
    latencies = np.array([f.answered_s - f.published_s for f in answered]) * 1000.0
    people = [len(f.messages["skeletons"].skeletons) for f in answered]
    ids = sorted({sk.person_id for f in answered for sk in f.messages["skeletons"].skeletons})
    stream_s = max(run["stream_s"], 1e-6)
    first, last = frames[0].index, frames[-1].index
    return {
        "video": str(cfg.video),
        "video_size": list(size),
        "video_fps": round(fps, 3),
        "published_size": [int(frames[0].rgb.shape[1]), int(frames[0].rgb.shape[0])],
        "frames_published": len(frames),
        "frames_answered": len(answered),
        "video_frames_spanned": [first, last],
        "people_per_frame": {"max": max(people, default=0), "mean": round(float(np.mean(people)), 3) if people else 0,
                             "frames_with_people": int(sum(p > 0 for p in people))},
        "person_ids": ids,
        "input_rate_hz": round(len(frames) / stream_s, 3),
        "processed_rate_hz": round(len(answered) / stream_s, 3),
        "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
                       "p95": round(float(np.percentile(latencies, 95)), 1) if len(latencies) else None,
                       "max": round(float(latencies.max()), 1) if len(latencies) else None,
                       "what": "image published -> SkeletonArray received (decode, 2D, lift, publish, DDS both ways)"},
        "node_startup_s": round(run["node_startup_s"], 2),
        "stream_s": round(stream_s, 2),
        "total_s": round(total_s, 2),
        "backend": run["node_diagnostics"].get("backend", ""),
        "device": run["node_diagnostics"].get("device", ""),
        "node_model_line": run["node_model_line"],
        "node_diagnostics": run["node_diagnostics"],
        "camera_info": (f"fx = fy = {cfg.focal_px:.2f} px at {size[0]}x{size[1]}, centred" if cfg.focal_px
                        else "none (node default: 60 degree field of view, pelvis at default_depth)"),
        "placement": run["placement"],
        "ros_domain_id": run["domain_id"],
        "bag": run["bag"],
        "bag_messages": run["bag_counts"],
        "pictures": pictures,
        "node_log": run["node_log"],
    }


def summary_text(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    ppf = s["people_per_frame"]
    d = s["node_diagnostics"]
    lines = [
        "petr_ros demo: a real video through petr_node over DDS",
        f"video        {s['video']} ({s['video_size'][0]}x{s['video_size'][1]} @ {s['video_fps']:g} fps), "
        f"frames {s['video_frames_spanned'][0]}..{s['video_frames_spanned'][1]}",
        f"published    {s['frames_published']} frames at {s['published_size'][0]}x{s['published_size'][1]} rgb8, "
        f"one at a time at the node's pace",
        f"answered     {s['frames_answered']} frames; people per frame max {ppf['max']}, mean {ppf['mean']}, "
        f"{ppf['frames_with_people']} frames with people; ids {s['person_ids']}",
        f"rates        input {s['input_rate_hz']:.2f} Hz, processed {s['processed_rate_hz']:.2f} Hz",
        f"latency      p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms ({lat['what']})",
        f"node         {s['node_model_line'] or s['backend']} (ready after {s['node_startup_s']} s)",
        f"camera       {s['camera_info']}; skeletons placed by {', '.join(s['placement']) or '-'}",
        f"node counts  received {d.get('received', '?')}, processed {d.get('processed', '?')}, dropped stale "
        f"{d.get('dropped_stale', '?')}, invalid {d.get('dropped_invalid', '?')}, errors {d.get('errors', '?')}; "
        f"inference p50 {d.get('inference_p50_ms', '?')} ms",
        f"outputs      {s['pictures'].get('png')}, {s['pictures'].get('gif')}, bag {s['bag']} "
        f"({sum(s['bag_messages'].values())} messages)",
        f"total        {s['total_s']} s",
    ]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write a text file through a temporary file and os.replace (never a half-written summary)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def render_bag(cfg: DemoConfig, bag: Path) -> dict[str, str]:
    """Only the pictures, from a recorded bag (no node run): demo.png and demo.gif in cfg.output."""
    cfg.output.mkdir(parents=True, exist_ok=True)
    frames, fps = frames_from_bag(bag)
    LOG.info("%d frames in %s (%.1f fps)", len(frames), bag, fps)
    return render_outputs(cfg, frames, cfg.output, fps)


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
        frames = [Frame(i, start_ns + round(i * 1e9 / fps), rgb) for i, rgb in raw]
        LOG.info("%d frames (video frames %d..%d of a %dx%d, %.0f fps clip), published at %dx%d",
                 len(frames), frames[0].index, frames[-1].index, size[0], size[1], fps,
                 frames[0].rgb.shape[1], frames[0].rgb.shape[0])  # fmt: skip
        run = run_through_node(cfg, frames, out, node_proc, domain, t0, size[0])
    finally:
        node_proc.stop()  # no-op when it already stopped; never leave the node behind
    pictures = render_outputs(cfg, frames, out, fps)
    summary = summarise(cfg, frames, run, fps, size, pictures, time.monotonic() - t0)
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    text = summary_text(summary)
    _write_atomic(out / "summary.txt", text)
    LOG.info("done in %.1f s\n%s", summary["total_s"], text)
    return summary


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    parser = argparse.ArgumentParser(prog="petr_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
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
                        help="extra petr_node parameter, e.g. -p smoothing:=true (repeatable)")  # fmt: skip
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
    focal = args.focal_px
    if focal < 0:
        parser.error(f"--focal-px must be >= 0, got {focal}")
    return DemoConfig(video=args.video, output=args.output, frames=args.frames, width=args.width,
                      focal_px=focal or None,
                      first_frame=args.first_frame, last_frame=args.last_frame,
                      domain_id=args.domain_id, node_params=params, frame_timeout_s=args.frame_timeout,
                      gif_frames=args.gif_frames, sheet_frames=args.sheet_frames,
                      record_images=not args.no_record_images, from_bag=args.from_bag)  # fmt: skip


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
