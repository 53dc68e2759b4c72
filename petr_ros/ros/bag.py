"""rosbag2 MCAP bags without rosbag2_py: play images into the graph, record topics, write and read bags.

Built on `rosbags` for reading and for the message definitions (Stores.ROS2_KILTED typestore; our own petr_ros_msgs
types are registered from their installed .msg files) and rclpy serialisation, so payloads go through byte for byte
(pixel-exact). Bags are written in place and are readable at every moment: metadata.yaml comes first, every
message is appended to the MCAP file together with a fresh footer, so a recorder killed by SIGKILL, the OOM killer
or a crash leaves a bag of everything received up to the kill (`petr_bag_record --recover` then rebuilds the
index and the exact counts; a power loss can cost the last second, the fsync period).

Entry points:
    petr_bag_play BAG [--topics T ...] [--rate R] [--loop] [--remap FROM:=TO ...] [--clock]
    petr_bag_record OUT --topics T ... [--duration S] [--max-messages N]
    petr_bag_record --recover BAG
Functions (also used by the demo): write_bag, write_image_bag, read_bag, play_bag, record_bag, recover_bag.
"""

from __future__ import annotations

import argparse
import importlib
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from petr_ros.fileio import atomic_path, remove_stale_temporaries, write_text

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DISCOVERY_SETTLE_S = 0.5
CLOCK_HZ = 100.0  # /clock messages per second of playback with --clock
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
MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
_OP_MESSAGE_INDEX, _OP_CHUNK_INDEX, _OP_STATISTICS, _OP_METADATA = 0x07, 0x08, 0x0B, 0x0C
_OP_METADATA_INDEX, _OP_SUMMARY_OFFSET, _OP_DATA_END = 0x0D, 0x0E, 0x0F
BAG_FORMAT_VERSION = 9
METADATA_EVERY_S = 1.0  # how often a recording refreshes metadata.yaml and fsyncs (power-loss window)


def _record(op: int, body: bytes) -> bytes:
    return struct.pack("<BQ", op, len(body)) + body


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


def _footer(summary_start: int = 0, summary_offset_start: int = 0) -> bytes:
    return _record(_OP_FOOTER, struct.pack("<QQI", summary_start, summary_offset_start, 0)) + MCAP_MAGIC


@dataclass(slots=True)  # one per message of a recording: kept small
class _ChunkInfo:
    start: int  # file offset of the chunk record
    length: int  # bytes of the chunk record
    index_length: int  # bytes of its message index record
    t_ns: int
    channel_id: int
    records_size: int  # bytes of the message record inside


class McapAppender:
    """An MCAP file that is complete after every append, so a SIGKILL, an OOM kill or a crash of the writer at any
    moment leaves a file `mcap` and `rosbags` can read: every write puts the new records where the previous footer
    began and a fresh footer after them, in one `pwritev` (a kill inside that one call is what `recover_bag` is for).

    Each message is a chunk of its own (uncompressed, with its message index), so nothing waits in memory; schemas
    and channels are written as they come. `close()` adds the indexed summary (chunk indexes, statistics) that fast
    seeking readers use; until then readers scan the data linearly.
    """

    def __init__(self, path: Path, profile: str = "ros2", exclusive: bool = True) -> None:
        """exclusive: the file must not exist yet (False: an existing file, e.g. a temporary, is truncated)."""
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        self._fd = os.open(self.path, flags, 0o644)
        self._end = 0  # where the next record goes (the current footer's offset)
        self.schemas: dict[int, tuple[str, str, bytes]] = {}  # id -> (name, encoding, data)
        self.channels: dict[int, tuple[int, str, str, bytes]] = {}  # id -> (schema id, topic, encoding, metadata)
        self.chunks: list[_ChunkInfo] = []
        self.message_counts: dict[int, int] = {}
        self._metadata: bytes | None = None
        self._closed = False
        self._append(MCAP_MAGIC + _record(_OP_HEADER, _string(profile) + _string("petr_ros")))

    def _write_all(self, parts: list[bytes | memoryview], offset: int) -> int:
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        total = 0
        while views:
            n = os.pwritev(self._fd, views, offset + total)
            total += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
        return total

    def _append(self, *parts: bytes | memoryview) -> None:
        self._end += self._write_all([*parts, _footer()], self._end) - len(_footer())

    def add_schema(self, schema_id: int, name: str, encoding: str, data: bytes) -> None:
        self.schemas[schema_id] = (name, encoding, data)
        self._append(self._schema_record(schema_id))

    def _schema_record(self, schema_id: int) -> bytes:
        name, encoding, data = self.schemas[schema_id]
        return _record(_OP_SCHEMA, struct.pack("<H", schema_id) + _string(name) + _string(encoding)
                       + struct.pack("<I", len(data)) + data)

    def add_channel(self, channel_id: int, schema_id: int, topic: str, encoding: str, metadata: dict[str, str]) -> None:
        meta = b"".join(_string(k) + _string(v) for k, v in metadata.items())
        self.channels[channel_id] = (schema_id, topic, encoding, struct.pack("<I", len(meta)) + meta)
        self.message_counts[channel_id] = 0
        self._append(self._channel_record(channel_id))

    def _channel_record(self, channel_id: int) -> bytes:
        schema_id, topic, encoding, meta = self.channels[channel_id]
        return _record(_OP_CHANNEL, struct.pack("<HH", channel_id, schema_id) + _string(topic) + _string(encoding)
                       + meta)

    def write(self, channel_id: int, t_ns: int, data: bytes | memoryview) -> None:
        """Append one message (log and publish time `t_ns`) as a chunk of its own."""
        seq = self.message_counts[channel_id]
        message_head = struct.pack("<BQHIQQ", _OP_MESSAGE, 22 + len(data), channel_id, seq & 0xFFFFFFFF, t_ns, t_ns)
        records_size = len(message_head) + len(data)
        chunk_fields = struct.pack("<QQQI", t_ns, t_ns, records_size, 0) + _string("") + struct.pack("<Q", records_size)
        chunk_head = struct.pack("<BQ", _OP_CHUNK, len(chunk_fields) + records_size) + chunk_fields
        index = _record(_OP_MESSAGE_INDEX, struct.pack("<HIQQ", channel_id, 16, t_ns, 0))
        start = self._end
        self._append(chunk_head, message_head, data, index)
        self.chunks.append(_ChunkInfo(start, len(chunk_head) + records_size, len(index), t_ns, channel_id,
                                      records_size))
        self.message_counts[channel_id] = seq + 1

    def set_metadata(self, name: str, values: dict[str, str]) -> None:
        """A metadata record written at close (rosbag2 keeps its serialised metadata.yaml there)."""
        meta = b"".join(_string(k) + _string(v) for k, v in values.items())
        self._metadata = _record(_OP_METADATA, _string(name) + struct.pack("<I", len(meta)) + meta)
        self._metadata_name = name

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        """Write the summary section (schemas, channels, chunk indexes, statistics) and the final footer."""
        if self._closed:
            return
        self._closed = True
        data: list[bytes] = []
        pos = self._end
        metadata_at = pos
        if self._metadata is not None:
            data.append(self._metadata)
            pos += len(self._metadata)
        data.append(_record(_OP_DATA_END, struct.pack("<I", 0)))
        pos += len(data[-1])
        summary_start = pos
        groups: list[tuple[int, int, int]] = []  # (opcode, start, length)

        def group(op: int, records: list[bytes]) -> None:
            nonlocal pos
            if records:
                blob = b"".join(records)
                groups.append((op, pos, len(blob)))
                data.append(blob)
                pos += len(blob)

        group(_OP_SCHEMA, [self._schema_record(i) for i in self.schemas])
        group(_OP_CHANNEL, [self._channel_record(i) for i in self.channels])
        group(_OP_CHUNK_INDEX, [
            _record(_OP_CHUNK_INDEX, struct.pack("<QQQQI", c.t_ns, c.t_ns, c.start, c.length, 10)
                    + struct.pack("<HQ", c.channel_id, c.start + c.length)
                    + struct.pack("<Q", c.index_length) + _string("") + struct.pack("<QQ", c.records_size,
                                                                                     c.records_size))
            for c in self.chunks])
        if self._metadata is not None:
            group(_OP_METADATA_INDEX, [_record(_OP_METADATA_INDEX, struct.pack("<QQ", metadata_at, len(self._metadata))
                                               + _string(self._metadata_name))])
        times = [c.t_ns for c in self.chunks]
        counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(self.message_counts.items()))
        group(_OP_STATISTICS, [_record(_OP_STATISTICS, struct.pack(
            "<QHIIIIQQI", sum(self.message_counts.values()), len(self.schemas), len(self.channels), 0,
            int(self._metadata is not None), len(self.chunks), min(times, default=0), max(times, default=0),
            len(counts)) + counts)])
        summary_offset_start = pos
        data.append(b"".join(_record(_OP_SUMMARY_OFFSET, struct.pack("<BQQ", op, start, length))
                             for op, start, length in groups))
        data.append(_footer(summary_start, summary_offset_start))
        self._write_all(data, self._end)
        os.fsync(self._fd)
        os.close(self._fd)

    def abandon(self) -> None:
        """Close the file descriptor as it is (what a kill would leave: readable, without a summary)."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)


class BagWriter:
    """A rosbag2 MCAP bag (`<path>/metadata.yaml` + `<path>/<name>_0.mcap`) written in place and readable at every
    moment: `with BagWriter(path) as bag: bag.write(topic, msg, t_ns)`.

    metadata.yaml is written when the bag opens and rewritten (atomically) as topics are added, by `flush()` and at
    close; the MCAP file is complete after every message (McapAppender). After a kill the bag reads as it was at
    the last message; `recover_bag` (`petr_bag_record --recover`) adds the summary and exact counts.
    Leaving the `with` block by an exception still closes the bag properly, with what was written.
    """

    def __init__(self, path: str | os.PathLike, msgtypes: Iterable[str] = ()) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists (choose another name or remove it)")
        self._store = typestore_for(msgtypes)
        self._mcap: McapAppender | None = None
        self._topics: dict[str, tuple[int, str, str]] = {}  # topic -> (channel id, msgtype, type hash)
        self._schema_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._first_ns: int | None = None
        self._last_ns = 0
        self.counts: dict[str, int] = {}

    @property
    def mcap_path(self) -> Path:
        return self.path / f"{self.path.name}_0.mcap"

    def __enter__(self) -> BagWriter:
        self.path.mkdir(parents=True)  # FileExistsError when someone made it since __init__
        self._mcap = McapAppender(self.mcap_path)
        self.flush()
        return self

    def add_topic(self, topic: str, msgtype: str) -> None:
        with self._lock:
            self._add_topic(topic, msgtype)

    def _add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._topics:
            return
        assert self._mcap is not None, "open the bag first (with BagWriter(...) as bag)"
        register_type(self._store, msgtype)
        if msgtype not in self._schema_ids:
            msgdef, _ = self._store.generate_msgdef(msgtype, ros_version=2)
            self._schema_ids[msgtype] = len(self._schema_ids) + 1
            self._mcap.add_schema(self._schema_ids[msgtype], msgtype, "ros2msg", msgdef.encode())
        channel_id = len(self._topics) + 1
        self._mcap.add_channel(channel_id, self._schema_ids[msgtype], topic, "cdr", {"offered_qos_profiles": "[]"})
        self._topics[topic] = (channel_id, msgtype, self._store.hash_rihs01(msgtype))
        self.counts[topic] = 0
        self._write_metadata()

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Write an rclpy message (serialised here) or already-serialised CDR bytes (then add_topic first)."""
        with self._lock:
            assert self._mcap is not None, "open the bag first (with BagWriter(...) as bag)"
            if not isinstance(msg, (bytes, bytearray, memoryview)):
                self._add_topic(topic, message_type_name(msg))
                msg = serialize_message(msg)
            t_ns = int(t_ns)
            self._mcap.write(self._topics[topic][0], t_ns, msg)
            self.counts[topic] += 1
            self._first_ns = t_ns if self._first_ns is None else min(self._first_ns, t_ns)
            self._last_ns = max(self._last_ns, t_ns)

    def flush(self) -> None:
        """Rewrite metadata.yaml with the current counts and fsync the MCAP file (power-loss safety)."""
        with self._lock:
            if self._mcap is not None:
                self._mcap.fsync()
            self._write_metadata()

    def _write_metadata(self) -> None:
        topics = [(topic, msgtype, digest, self.counts[topic]) for topic, (_, msgtype, digest) in self._topics.items()]
        write_text(self.path / "metadata.yaml",
                   bag_metadata_yaml(self.mcap_path.name, topics, self._first_ns, self._last_ns))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        with self._lock:
            assert self._mcap is not None
            self._mcap.set_metadata("rosbag2", {"serialized_metadata": self._metadata_text()})
            self._mcap.close()
            self._write_metadata()

    def _metadata_text(self) -> str:
        topics = [(topic, msgtype, digest, self.counts[topic]) for topic, (_, msgtype, digest) in self._topics.items()]
        info = yaml.safe_load(bag_metadata_yaml(self.mcap_path.name, topics, self._first_ns, self._last_ns))
        return yaml.safe_dump(info["rosbag2_bagfile_information"], sort_keys=False)


def bag_metadata_yaml(mcap_name: str, topics: Sequence[tuple[str, str, str, int]], first_ns: int | None,
                      last_ns: int, qos: dict[str, Any] | None = None) -> str:
    """rosbag2 metadata.yaml (format version 9) of one MCAP file; topics as (name, type, type hash, count);
    qos: topic -> its offered_qos_profiles (default none recorded)."""
    count = sum(t[3] for t in topics)
    start = first_ns if first_ns is not None and count else 0
    duration = max(0, last_ns - start) if count else 0
    info = {
        "version": BAG_FORMAT_VERSION,
        "storage_identifier": "mcap",
        "relative_file_paths": [mcap_name],
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": count,
        "topics_with_message_count": [
            {"topic_metadata": {"name": name, "type": msgtype, "serialization_format": "cdr",
                                "offered_qos_profiles": (qos or {}).get(name, []), "type_description_hash": digest},
             "message_count": n}
            for name, msgtype, digest, n in topics],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": mcap_name, "starting_time": {"nanoseconds_since_epoch": start},
                   "duration": {"nanoseconds": duration}, "message_count": count}],
        "custom_data": None,
        "ros_distro": os.environ.get("ROS_DISTRO", "kilted"),
    }
    return yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)


# --- recovery ----------------------------------------------------------------------------------------------------
@dataclass
class _Scan:
    schemas: dict[int, tuple[str, str, bytes]]
    channels: dict[int, tuple[int, str, str, dict[str, str]]]
    messages: list[tuple[int, int, int, int]]  # (channel id, log time, offset of the payload in the file, length)
    end: int  # bytes of the file that hold complete records
    in_memory: list[tuple[int, bytes]]  # (message number, payload) of messages from compressed chunks


def _read_map(buf: memoryview, pos: int) -> dict[str, str]:
    size = struct.unpack_from("<I", buf, pos)[0]
    out, p, end = {}, pos + 4, pos + 4 + size
    while p < end:
        klen = struct.unpack_from("<I", buf, p)[0]
        key = bytes(buf[p + 4:p + 4 + klen]).decode()
        p += 4 + klen
        vlen = struct.unpack_from("<I", buf, p)[0]
        out[key] = bytes(buf[p + 4:p + 4 + vlen]).decode()
        p += 4 + vlen
    return out


def _scan_mcap(data: memoryview) -> _Scan:
    """Every complete record of an MCAP file, stopping at the first one cut short or damaged (what a kill leaves)."""
    scan = _Scan({}, {}, [], 0, [])
    if bytes(data[:8]) != MCAP_MAGIC:
        raise ValueError("not an MCAP file (bad magic)")

    def records(buf: memoryview, pos: int, end: int, base: int | None) -> int:
        """Parse records in buf[pos:end]; return where the complete ones end. base: file offset of buf (None for
        a decompressed chunk, whose payloads are then kept in memory)."""
        while pos + 9 <= end:
            op, length = struct.unpack_from("<BQ", buf, pos)
            body, nxt = pos + 9, pos + 9 + length
            if nxt > end or op == 0 or op > 0x0F:
                break
            if op == _OP_FOOTER or op == _OP_DATA_END:
                return pos
            try:
                if op == _OP_SCHEMA:
                    sid = struct.unpack_from("<H", buf, body)[0]
                    nlen = struct.unpack_from("<I", buf, body + 2)[0]
                    name = bytes(buf[body + 6:body + 6 + nlen]).decode()
                    p = body + 6 + nlen
                    elen = struct.unpack_from("<I", buf, p)[0]
                    encoding = bytes(buf[p + 4:p + 4 + elen]).decode()
                    p += 4 + elen
                    dlen = struct.unpack_from("<I", buf, p)[0]
                    scan.schemas[sid] = (name, encoding, bytes(buf[p + 4:p + 4 + dlen]))
                elif op == _OP_CHANNEL:
                    cid, sid = struct.unpack_from("<HH", buf, body)
                    tlen = struct.unpack_from("<I", buf, body + 4)[0]
                    topic = bytes(buf[body + 8:body + 8 + tlen]).decode()
                    p = body + 8 + tlen
                    elen = struct.unpack_from("<I", buf, p)[0]
                    encoding = bytes(buf[p + 4:p + 4 + elen]).decode()
                    scan.channels[cid] = (sid, topic, encoding, _read_map(buf, p + 4 + elen))
                elif op == _OP_MESSAGE:
                    cid, _, log_time, _ = struct.unpack_from("<HIQQ", buf, body)
                    if cid not in scan.channels:
                        break
                    if base is None:
                        scan.in_memory.append((len(scan.messages), bytes(buf[body + 22:nxt])))
                        scan.messages.append((cid, log_time, -1, nxt - body - 22))
                    else:
                        scan.messages.append((cid, log_time, base + body + 22, nxt - body - 22))
                elif op == _OP_CHUNK and base is not None:
                    _, _, size, _ = struct.unpack_from("<QQQI", buf, body)
                    clen = struct.unpack_from("<I", buf, body + 28)[0]
                    compression = bytes(buf[body + 32:body + 32 + clen]).decode()
                    p = body + 32 + clen
                    rlen = struct.unpack_from("<Q", buf, p)[0]
                    if p + 8 + rlen > nxt:
                        break
                    if compression == "":
                        inner_end = records(buf, p + 8, p + 8 + rlen, base)
                        if inner_end != p + 8 + rlen:
                            break
                    else:
                        raw = _decompress(bytes(buf[p + 8:p + 8 + rlen]), compression, size)
                        records(memoryview(raw), 0, len(raw), None)
            except (struct.error, UnicodeDecodeError, ValueError):
                break
            pos = nxt
        return pos

    scan.end = records(data, 8, len(data), 0)
    return scan


def _decompress(raw: bytes, compression: str, size: int) -> bytes:
    if compression == "zstd":
        import zstandard  # a dependency of rosbags

        return zstandard.ZstdDecompressor().decompress(raw, max_output_size=size)
    if compression == "lz4":
        try:
            import lz4.frame
        except ImportError as exc:
            raise ValueError("an lz4-compressed chunk needs the lz4 package") from exc
        return lz4.frame.decompress(raw)
    raise ValueError(f"unknown chunk compression '{compression}'")


def _copy_complete_records(source: Path, out: McapAppender) -> tuple[_Scan, int | None, int]:
    """Every complete schema, channel and message of `source` into `out`; returns (scan, first, last time)."""
    import mmap

    with open(source, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            scan = _scan_mcap(view)
            for sid, (name, encoding, data) in scan.schemas.items():
                out.add_schema(sid, name, encoding, data)
            for cid, (sid, topic, encoding, meta) in scan.channels.items():
                out.add_channel(cid, sid, topic, encoding, meta)
            in_memory = dict(scan.in_memory)
            first, last, payload = None, 0, None
            for i, (cid, t_ns, offset, length) in enumerate(scan.messages):
                payload = in_memory[i] if offset < 0 else view[offset:offset + length]
                out.write(cid, t_ns, payload)
                first, last = t_ns if first is None else min(first, t_ns), max(last, t_ns)
            payload = None  # no view into the map may outlive it
        finally:
            view.release()
    return scan, first, last


def recover_bag(path: str | os.PathLike) -> dict[str, int]:
    """Make a bag whose recorder was killed complete again, in place: every complete message of its MCAP file is
    kept (a last record cut short is dropped), the summary and index are rebuilt and metadata.yaml is rewritten with
    exact counts. `path`: the bag directory (also a folder the old recorder left, `.<name>.partial-*/<name>`, which
    has no metadata.yaml) or its .mcap file. Returns the message count per topic. Safe to run again."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    files = [path] if path.is_file() else sorted(folder.glob("*.mcap"))
    if not files:
        raise FileNotFoundError(f"no .mcap file in {folder}")
    if len(files) > 1:
        raise ValueError(f"{folder} holds {len(files)} MCAP files; recover one at a time: {[f.name for f in files]}")
    source = files[0]
    remove_stale_temporaries(folder, source.name)  # of an earlier recovery that was itself killed
    with atomic_path(source, suffix=".recovering") as tmp:  # the original stays until the new file is complete
        out = McapAppender(tmp, exclusive=False)
        try:
            scan, first, last = _copy_complete_records(source, out)
            topics, qos = [], {}
            for cid, (sid, topic, _, meta) in scan.channels.items():
                msgtype = scan.schemas[sid][0] if sid in scan.schemas else ""
                try:
                    digest = typestore_for([msgtype]).hash_rihs01(msgtype)
                except (ValueError, KeyError):
                    digest = ""  # a type this environment does not know: the bag stays readable without it
                topics.append((topic, msgtype, digest, out.message_counts[cid]))
                qos[topic] = yaml.safe_load(meta.get("offered_qos_profiles", "[]")) or []
            text = bag_metadata_yaml(source.name, topics, first, last, qos)
            out.set_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(
                yaml.safe_load(text)["rosbag2_bagfile_information"], sort_keys=False)})
            out.close()
        finally:
            out.abandon()
    write_text(folder / "metadata.yaml", text)
    return {t[0]: t[3] for t in topics}


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
    clock: bool = False,
) -> int:
    """Publish a bag's messages (by default its Image/CompressedImage topics) with their recorded timing scaled by
    `rate` (0: as fast as possible). The serialised bytes are published as they are. Returns messages published.

    wait_for_subscribers: seconds to wait for each topic to have a subscriber before starting (0: don't wait).
    clock: also publish the bag's time on /clock (rosgraph_msgs/Clock, CLOCK_HZ and before every message), so
    nodes with use_sim_time follow the recording.
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
    clock_pub = None
    if clock:
        from rosgraph_msgs.msg import Clock

        clock_pub = node.create_publisher(Clock, "/clock", 10)

    def tick(t_ns: int) -> None:
        if clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
            clock_pub.publish(msg)

    stop = stop or threading.Event()
    deadline = time.monotonic() + wait_for_subscribers
    while wait_for_subscribers > 0 and time.monotonic() < deadline and not stop.is_set():
        if all(p.get_subscription_count() > 0 for p in [*pubs.values(), *([clock_pub] if clock_pub else [])]):
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
                due = start_wall + (m.t_ns - start_bag) / 1e9 / rate
                while (delay := due - time.monotonic()) > 0 and not stop.is_set():
                    if clock_pub is None:
                        stop.wait(delay)
                    else:  # the clock runs on between messages
                        tick(start_bag + int((time.monotonic() - start_wall) * rate * 1e9))
                        stop.wait(min(delay, 1.0 / CLOCK_HZ))
                if stop.is_set():
                    break
            tick(m.t_ns)
            pubs[m.topic].publish(m.raw)
            published += 1
            if on_publish is not None:
                on_publish(m.topic, published)
        if not loop:
            break
    if clock_pub is not None:
        node.destroy_publisher(clock_pub)
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
    last_ns = [0]
    with BagWriter(path, types.values()) as bag:
        for topic, msgtype in types.items():
            bag.add_topic(topic, msgtype)

            def callback(raw: bytes, topic: str = topic) -> None:
                # Receive times, never decreasing (the wall clock may step back): readers that scan an unindexed
                # bag after a kill expect time order.
                last_ns[0] = max(time.time_ns(), last_ns[0])
                bag.write(topic, raw, last_ns[0])

            qos = _topic_qos(node, topic)
            subs.append(node.create_subscription(message_class(msgtype), topic, callback, qos, raw=True))
            reliability = "reliable" if qos.reliability == ReliabilityPolicy.RELIABLE else "best effort"
            node.get_logger().info(f"recording {topic} ({msgtype}, {reliability}) to {path}")
        end = None if duration is None else time.monotonic() + duration
        next_flush = time.monotonic() + METADATA_EVERY_S
        while not stop.is_set():
            if time.monotonic() >= next_flush:
                bag.flush()
                next_flush = time.monotonic() + METADATA_EVERY_S
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
    parser.add_argument("--clock", action="store_true",
                        help="publish the bag's time on /clock (for nodes with use_sim_time:=true)")
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
                     wait_for_subscribers=args.wait_for_subscribers, clock=args.clock)
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
    """petr_bag_record: record topics to a new MCAP bag (readable even when the recorder is killed), or
    --recover a bag whose recorder was killed (rebuilds its index and exact counts)."""
    parser = argparse.ArgumentParser(prog="petr_bag_record", description=record_main.__doc__)
    parser.add_argument("output", help="bag directory to create (must not exist); with --recover: the bag to repair")
    parser.add_argument("--topics", nargs="+", help="absolute topic names to record")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--max-messages", type=int, help="stop after this many messages in all")
    parser.add_argument("--discovery-timeout", type=float, default=10.0,
                        help="seconds to wait for the topics' publishers to appear")
    parser.add_argument("--recover", action="store_true",
                        help="repair OUTPUT in place (after a kill): keep every complete message, rebuild the index "
                             "and metadata.yaml")
    args, argv = _parse(parser, argv)
    if args.recover:
        try:
            counts = recover_bag(args.output)
        except (OSError, ValueError) as exc:
            print(f"petr_bag_record: cannot recover {args.output}: {exc}", file=sys.stderr)
            return 1
        print(f"petr_bag_record: recovered {sum(counts.values())} messages {counts} in {args.output}")
        return 0
    if not args.topics:
        parser.error("--topics is required (unless --recover)")
    rclpy.init(args=argv)
    node = rclpy.create_node("petr_bag_record")
    code = 0
    try:
        counts = record_bag(node, args.output, args.topics, args.duration, args.max_messages,
                            discovery_timeout=args.discovery_timeout)
        if node.context.ok():
            node.get_logger().info(f"recorded {counts} to {args.output}")
        else:  # Ctrl-C shut the context down: its rosout publisher is gone, a log call would print an error
            print(f"[petr_bag_record] recorded {counts} to {args.output}", file=sys.stderr)
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
