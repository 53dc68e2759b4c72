"""rosbag2 MCAP bags without rosbag2_py: play images into the graph, record topics, write and read bags.

Built on `rosbags` (Stores.ROS2_KILTED typestore; our own petr_ros_msgs types are registered from their installed
.msg files) and rclpy serialisation, so payloads go through byte for byte (pixel-exact). Bags are written into a
temporary directory and renamed into place when complete: an interrupted recording never leaves a half bag under
the requested name.

Entry points:
    petr_bag_play BAG [--topics T ...] [--rate R] [--loop] [--remap FROM:=TO ...]
    petr_bag_record OUT --topics T ... [--duration S] [--max-messages N]
Functions (also used by the demo): write_bag, write_image_bag, read_bag, play_bag, record_bag.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DISCOVERY_SETTLE_S = 0.5
ACK_TIMEOUT_S = 5.0


# --- types -------------------------------------------------------------------------------------------------------
def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the rclpy message class. ValueError when it is not importable here."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"not a ROS 2 message type name: '{msgtype}' (expected pkg/msg/Name)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type '{msgtype}' is not available in this environment ({exc})") from exc


def message_type_name(msg_or_class: Any) -> str:
    """The 'pkg/msg/Name' string of an rclpy message (class or instance)."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def _msg_file(msgtype: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    pkg, _, name = msgtype.split("/")
    try:
        share = Path(get_package_share_directory(pkg))
    except PackageNotFoundError as exc:
        raise ValueError(f"cannot record '{msgtype}': package {pkg} not found on AMENT_PREFIX_PATH") from exc
    path = share / "msg" / f"{name}.msg"
    if not path.is_file():
        raise ValueError(f"cannot record '{msgtype}': its definition {path} is missing")
    return path


_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
               "int64", "uint64", "string", "wstring", "time", "duration"}


def _dependencies(msgtype: str, text: str) -> list[str]:
    """The message types a .msg definition refers to, as pkg/msg/Name."""
    pkg = msgtype.split("/")[0]
    deps = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line.split()[1 if len(line.split()) > 1 else 0]:
            continue  # blank, comment or constant
        base = line.split()[0].split("[")[0].split("<=")[0]
        if base in _PRIMITIVES:
            continue
        if base == "Header":
            deps.append("std_msgs/msg/Header")
        elif "/" in base:
            p, name = base.split("/")[0], base.split("/")[-1]
            deps.append(f"{p}/msg/{name}")
        else:
            deps.append(f"{pkg}/msg/{base}")
    return deps


def register_type(store: Any, msgtype: str) -> None:
    """Teach a rosbags typestore `msgtype` (and what it depends on) from the installed .msg files."""
    if msgtype in store.fielddefs:
        return
    text = _msg_file(msgtype).read_text()
    for dep in _dependencies(msgtype, text):
        if dep != msgtype:
            register_type(store, dep)
    store.register(get_types_from_msg(text, msgtype))


def typestore_for(msgtypes: Iterable[str]) -> Any:
    """A Kilted typestore that also knows `msgtypes` (custom ones registered from installed .msg files)."""
    store = get_typestore(Stores.ROS2_KILTED)
    for msgtype in msgtypes:
        register_type(store, msgtype)
    return store


# --- writing -----------------------------------------------------------------------------------------------------
class BagWriter:
    """A rosbag2 MCAP bag written atomically: `with BagWriter(path) as bag: bag.write(topic, msg, t_ns)`."""

    def __init__(self, path: str | os.PathLike, msgtypes: Iterable[str] = ()) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists (choose another name or remove it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        self._store = typestore_for(msgtypes)
        self._writer = Writer(self._tmpdir / self.path.name, version=9, storage_plugin=StoragePlugin.MCAP)
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            return
        register_type(self._store, msgtype)
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self.counts[topic] = 0

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Write an rclpy message (serialised here) or already-serialised CDR bytes (then add_topic first)."""
        with self._lock:
            if not isinstance(msg, (bytes, bytearray, memoryview)):
                self.add_topic(topic, message_type_name(msg))
                msg = serialize_message(msg)
            self._writer.write(self._connections[topic], int(t_ns), bytes(msg))
            self.counts[topic] += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._writer.close()
        if exc_type is None:
            os.replace(self._tmpdir / self.path.name, self.path)
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def write_bag(path: str | os.PathLike, messages: Iterable[tuple[str, Any, int]]) -> Path:
    """Write (topic, rclpy message, timestamp ns) tuples to a new MCAP bag; return its path."""
    with BagWriter(path) as bag:
        for topic, msg, t_ns in messages:
            bag.write(topic, msg, t_ns)
    return Path(path)


def write_image_bag(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    topic: str = "/camera/image_raw",
    rate_hz: float = 30.0,
    frame_id: str = "camera_optical_frame",
    compressed: str | None = None,
    start_ns: int = 1_700_000_000_000_000_000,
) -> Path:
    """RGB frames -> a bag of sensor_msgs/Image rgb8 (or CompressedImage when `compressed` is 'jpeg'/'png'),
    stamped `rate_hz` apart from `start_ns` (header stamp = bag timestamp)."""
    from sensor_msgs.msg import CompressedImage

    from petr_ros.image_codec import encode_compressed
    from petr_ros.ros.messages import rgb_to_image_msg

    def messages() -> Iterator[tuple[str, Any, int]]:
        for i, rgb in enumerate(frames):
            t_ns = start_ns + int(round(i * 1e9 / rate_hz))
            if compressed:
                msg = CompressedImage(format=compressed, data=encode_compressed(rgb, compressed))
            else:
                msg = rgb_to_image_msg(rgb)
            msg.header.frame_id = frame_id
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
            yield topic, msg, t_ns

    return write_bag(path, messages())


# --- reading -----------------------------------------------------------------------------------------------------
@dataclass
class BagMessage:
    topic: str
    msgtype: str
    t_ns: int
    raw: bytes

    @property
    def msg(self) -> Any:
        """The deserialised rclpy message."""
        return deserialize_message(self.raw, message_class(self.msgtype))


def bag_topics(path: str | os.PathLike) -> dict[str, str]:
    """topic -> message type of a bag."""
    with Reader(Path(path)) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_bag(path: str | os.PathLike, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """The messages of a rosbag2 bag (MCAP or SQLite) in time order, optionally only some topics."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    with Reader(path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, t_ns, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, int(t_ns), bytes(raw))


# --- play --------------------------------------------------------------------------------------------------------
def play_bag(
    node: Node,
    path: str | os.PathLike,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    remap: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    wait_for_subscribers: float = 0.0,
    on_publish: Callable[[str, int], None] | None = None,
) -> int:
    """Publish a bag's messages (by default its Image/CompressedImage topics) with their recorded timing scaled by
    `rate` (0: as fast as possible). The serialised bytes are published as they are. Returns messages published.

    wait_for_subscribers: seconds to wait for each topic to have a subscriber before starting (0: don't wait).
    """
    if not rate >= 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    available = bag_topics(path)
    wanted = {t: ty for t, ty in available.items() if (t in topics if topics else ty in IMAGE_TYPES)}
    if not wanted:
        raise ValueError(f"bag {path} has none of the topics to play (has: {available})")
    remap = remap or {}
    qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    pubs = {t: node.create_publisher(message_class(ty), remap.get(t, t), qos) for t, ty in wanted.items()}
    stop = stop or threading.Event()
    deadline = time.monotonic() + wait_for_subscribers
    while wait_for_subscribers > 0 and time.monotonic() < deadline and not stop.is_set():
        if all(p.get_subscription_count() > 0 for p in pubs.values()):
            # The publisher knowing the subscriber does not mean the subscriber knows the publisher yet (discovery
            # runs both ways); a volatile subscriber drops what arrives before that, so give it a moment.
            stop.wait(DISCOVERY_SETTLE_S)
            break
        time.sleep(0.05)
    published = 0
    while not stop.is_set():
        start_wall, start_bag = time.monotonic(), None
        for m in read_bag(path, list(wanted)):
            if stop.is_set():
                break
            start_bag = m.t_ns if start_bag is None else start_bag
            if rate > 0:
                delay = start_wall + (m.t_ns - start_bag) / 1e9 / rate - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            pubs[m.topic].publish(m.raw)
            published += 1
            if on_publish is not None:
                on_publish(m.topic, published)
        if not loop:
            break
    for p in pubs.values():
        # Reliable delivery may still be resending the last (fragmented) messages: wait for the acknowledgements
        # before the publisher goes away, or a subscriber that lost a fragment never gets that message.
        p.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        node.destroy_publisher(p)
    return published


# --- record ------------------------------------------------------------------------------------------------------
def _topic_qos(node: Node, topic: str) -> QoSProfile:
    """Reliable when every publisher offers it (outputs), else best effort (sensor streams), like ros2 bag."""
    infos = node.get_publishers_info_by_topic(topic)
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    return QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


def record_bag(
    node: Node,
    path: str | os.PathLike,
    topics: Sequence[str],
    duration: float | None = None,
    max_messages: int | None = None,
    stop: threading.Event | None = None,
    discovery_timeout: float = 10.0,
    executor: Any = None,
) -> dict[str, int]:
    """Record `topics` (absolute names) into a new MCAP bag with raw subscriptions until `duration` seconds pass,
    `max_messages` are written, or `stop` is set. Spins `node` itself (or `executor` when given). Returns the
    message count per topic. Topics whose type cannot be discovered within `discovery_timeout` are an error."""
    if not topics:
        raise ValueError("record_bag needs at least one topic")
    stop = stop or threading.Event()

    def spin(timeout: float) -> None:
        if executor is not None:
            executor.spin_once(timeout_sec=timeout)
        else:
            rclpy.spin_once(node, timeout_sec=timeout)

    types: dict[str, str] = {}
    deadline = time.monotonic() + discovery_timeout
    while len(types) < len(topics) and time.monotonic() < deadline and not stop.is_set():
        graph = dict(node.get_topic_names_and_types())
        types = {t: graph[t][0] for t in topics if t in graph and graph[t]}
        if len(types) < len(topics):
            spin(0.1)
    missing = [t for t in topics if t not in types]
    if missing:
        raise TimeoutError(f"no publisher of {missing} appeared within {discovery_timeout} s (cannot learn the type)")

    subs = []
    with BagWriter(path, types.values()) as bag:
        for topic, msgtype in types.items():
            bag.add_topic(topic, msgtype)

            def callback(raw: bytes, topic: str = topic) -> None:
                bag.write(topic, raw, time.time_ns())

            qos = _topic_qos(node, topic)
            subs.append(node.create_subscription(message_class(msgtype), topic, callback, qos, raw=True))
            reliability = "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best effort"
            node.get_logger().info(f"recording {topic} ({msgtype}, {reliability}) to {path}")
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            if end is not None and time.monotonic() >= end:
                break
            if max_messages is not None and sum(bag.counts.values()) >= max_messages:
                break
            try:
                spin(0.05)
            except (KeyboardInterrupt, ExternalShutdownException):
                break  # Ctrl-C is how a recording normally ends: keep what was recorded
        if node.context.ok():
            for sub in subs:
                node.destroy_subscription(sub)
        counts = dict(bag.counts)
    return counts


# --- entry points ------------------------------------------------------------------------------------------------
def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if argv is None else argv
    return parser.parse_args(remove_ros_args(argv)[1:]), argv


def play_main(argv: list[str] | None = None) -> int:
    """petr_bag_play: play a bag's image topics into the graph."""
    parser = argparse.ArgumentParser(prog="petr_bag_play", description=play_main.__doc__)
    parser.add_argument("bag", help="rosbag2 directory (MCAP or SQLite)")
    parser.add_argument("--topics", nargs="+", help="topics to play (default: every Image/CompressedImage topic)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (0: as fast as possible)")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish FROM under TO")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for a subscriber on every topic before playing")
    args, argv = _parse(parser, argv)
    remap = {}
    for item in args.remap:
        if ":=" not in item:
            parser.error(f"--remap takes FROM:=TO, got '{item}'")
        src, dst = item.split(":=", 1)
        remap[src] = dst
    rclpy.init(args=argv)
    node = rclpy.create_node("petr_bag_play")
    code = 0
    try:
        n = play_bag(node, args.bag, args.topics, args.rate, args.loop, remap,
                     wait_for_subscribers=args.wait_for_subscribers)
        node.get_logger().info(f"played {n} messages from {args.bag}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError) as exc:
        print(f"petr_bag_play: {exc}", file=sys.stderr)
        code = 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


def record_main(argv: list[str] | None = None) -> int:
    """petr_bag_record: record topics to a new MCAP bag."""
    parser = argparse.ArgumentParser(prog="petr_bag_record", description=record_main.__doc__)
    parser.add_argument("output", help="bag directory to create (must not exist)")
    parser.add_argument("--topics", nargs="+", required=True, help="absolute topic names to record")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--max-messages", type=int, help="stop after this many messages in all")
    parser.add_argument("--discovery-timeout", type=float, default=10.0,
                        help="seconds to wait for the topics' publishers to appear")
    args, argv = _parse(parser, argv)
    rclpy.init(args=argv)
    node = rclpy.create_node("petr_bag_record")
    code = 0
    try:
        counts = record_bag(node, args.output, args.topics, args.duration, args.max_messages,
                            discovery_timeout=args.discovery_timeout)
        node.get_logger().info(f"recorded {counts} to {args.output}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, TimeoutError, FileExistsError) as exc:
        print(f"petr_bag_record: {exc}", file=sys.stderr)
        code = 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(play_main())
