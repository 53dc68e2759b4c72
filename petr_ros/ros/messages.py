"""The one translation between petr_ros results and ROS messages, both ways. Shared by the node, the demo, the
benchmarks and the tests.

Builders (results -> messages): SkeletonArray, PoseArray, MarkerArray, diagnostics, rgb8 Image (TF: `ros/tf.py`).
Decoders (messages -> arrays): images -> RGB, SkeletonArray -> PersonResults, MarkerArray -> marker primitives,
PoseArray -> joint frames, DiagnosticArray -> key/values. Stamps: `stamp_to_ns` / `stamp_from_ns` / `stamp_to_sec`.
"""

from __future__ import annotations

import array
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.bone_lengths import measure_bone_lengths
from petr_ros.image_codec import check_raw_header, decode_compressed, decode_raw
from petr_ros.render import MarkerPrimitive, person_colours
from petr_ros.results import PersonResult
from petr_ros.skeleton import BONES, JOINT_NAMES, NUM_JOINTS, PARENTS, ROOT, joint_side

try:  # cv_bridge where a ROS install has it; the numpy codec otherwise (same results for the encodings we take)
    from cv_bridge import CvBridge

    _BRIDGE: Any = CvBridge()
except Exception:  # noqa: BLE001 - ImportError, or a cv_bridge built against another numpy/OpenCV
    _BRIDGE = None

try:
    from petr_ros_msgs.msg import Skeleton, SkeletonArray
except ImportError as exc:  # pragma: no cover - only without the built interfaces
    raise ImportError(
        "petr_ros_msgs is not built: run ./scripts/setup_env.sh (or colcon build the msg/ package)"
    ) from exc


def uses_cv_bridge() -> bool:
    """Whether image conversion goes through cv_bridge (a ROS install) or the numpy codec."""
    return _BRIDGE is not None


def image_msg_to_rgb(msg: Image | CompressedImage | SerializedImage) -> np.ndarray:
    """An Image, CompressedImage or SerializedImage -> (H, W, 3) uint8 RGB. Raises image_codec.ImageDecodeError
    with the reason. rgb8 without row padding from a SerializedImage is a read-only view of its bytes."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    if isinstance(msg, SerializedImage):
        return decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)
    # The header checks always run (cv_bridge trusts step and data length); conversion via cv_bridge if present.
    check_raw_header(msg.encoding, msg.width, msg.height, msg.step, len(msg.data))
    if _BRIDGE is not None and msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)


class SerializedImage:
    """The fields of a CDR-serialised sensor_msgs/Image read in place (`image_from_cdr`): `data` is a view into
    the serialised bytes, so taking an image costs no copy beyond the one rclpy makes of the sample."""

    __slots__ = ("data", "encoding", "header", "height", "is_bigendian", "step", "width")

    def __init__(self, header: Header, height: int, width: int, encoding: str, is_bigendian: int, step: int,
                 data: np.ndarray) -> None:
        self.header, self.height, self.width, self.encoding = header, height, width, encoding
        self.is_bigendian, self.step, self.data = is_bigendian, step, data


_CDR_BYTE_ORDER = {b"\x00\x00": ">", b"\x00\x01": "<"}  # classic CDR (XCDR1) big / little endian, ROS 2's


def image_from_cdr(raw: bytes) -> SerializedImage | None:
    """A sensor_msgs/Image from its serialised bytes (what a `raw=True` subscription receives), without
    deserialising `data`: the header fields are read in place and `data` becomes a numpy view of the rest.
    None for an encapsulation other than classic CDR (the caller then deserialises the message normally);
    ValueError when the bytes are not a whole Image."""
    order = _CDR_BYTE_ORDER.get(bytes(raw[:2]))
    if order is None:
        return None
    u32 = struct.Struct(order + "I")
    end = len(raw)
    pos = 4  # after the encapsulation header; CDR aligns relative to here

    def uint32() -> int:
        nonlocal pos
        pos += -(pos - 4) % 4
        if pos + 4 > end:
            raise ValueError("serialised Image cut short")
        (value,) = u32.unpack_from(raw, pos)
        pos += 4
        return value

    def string() -> str:
        nonlocal pos
        n = uint32()  # length including the terminating NUL
        if n == 0 or pos + n > end:
            raise ValueError("serialised Image has a bad string")
        text = bytes(raw[pos:pos + n - 1]).decode("utf-8", "replace")
        pos += n
        return text

    sec = uint32()
    sec = sec - (1 << 32) if sec >= 1 << 31 else sec  # int32
    nanosec = uint32()
    frame_id = string()
    height, width = uint32(), uint32()
    encoding = string()
    if pos + 1 > end:
        raise ValueError("serialised Image cut short")
    is_bigendian = raw[pos]
    pos += 1
    step = uint32()
    n = uint32()
    if pos + n > end:
        raise ValueError(f"serialised Image has {end - pos} data bytes, its length says {n}")
    data = np.frombuffer(raw, np.uint8, n, pos)
    return SerializedImage(Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id), height, width,
                           encoding, is_bigendian, step, data)


def image_from_serialized(raw: bytes) -> SerializedImage | Image:
    """A serialised sensor_msgs/Image read in place (`image_from_cdr`), or deserialised by rclpy where its
    encapsulation is not classic CDR."""
    msg = image_from_cdr(raw)
    if msg is None:
        from rclpy.serialization import deserialize_message

        return deserialize_message(raw, Image)
    return msg


def rgb_to_image_msg(rgb: np.ndarray, header: Header | None = None) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got shape {rgb.shape}")
    h, w, _ = rgb.shape
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.data = rgb.tobytes()
    if header is not None:
        msg.header = header
    return msg


NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact: the key to match outputs with their input)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_from_ns(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> builtin_interfaces/Time."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def stamp_to_sec(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def output_stamp_ns(msg: Any) -> int | None:
    """The input image's stamp an output message carries (a MarkerArray's is in its markers; None when empty)."""
    if isinstance(msg, MarkerArray):
        return stamp_to_ns(msg.markers[0].header.stamp) if msg.markers else None
    header = getattr(msg, "header", None)
    return None if header is None else stamp_to_ns(header.stamp)


def _duration(seconds: float) -> Duration:
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def unit_quaternions(q: np.ndarray) -> np.ndarray:
    """(..., 4) x y z w -> (N, 4) float64 unit quaternions with w >= 0 (the convention); a zero, tiny or
    non-finite one becomes the identity."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        n = np.sqrt(np.einsum("ij,ij->i", q, q))
        out = q / n[:, None]
    bad = ~np.isfinite(n) | (n < 1e-9)
    out[bad] = (0.0, 0.0, 0.0, 1.0)
    out[out[:, 3] < 0] *= -1.0
    return out


class JointParts:
    """One person's 17 joint positions as `Point`s and global rotations as unit `Quaternion`s, built once per frame
    and shared by the SkeletonArray, the PoseArray and the markers of that frame (the messages only read them:
    publishing serialises the values)."""

    __slots__ = ("points", "quaternions")

    def __init__(self, person: PersonResult) -> None:
        xyz = np.asarray(person.joints3d_camera, np.float64).reshape(NUM_JOINTS, 3).tolist()
        self.points = [Point(x=x, y=y, z=z) for x, y, z in xyz]
        xyzw = unit_quaternions(person.rotations).tolist()
        self.quaternions = [Quaternion(x=x, y=y, z=z, w=w) for x, y, z, w in xyzw]


def joint_parts(persons: Sequence[PersonResult]) -> list[JointParts]:
    """The shared joint `Point`s and `Quaternion`s of each person (pass them to the builders below)."""
    return [JointParts(p) for p in persons]


_JOINT_NAMES = list(JOINT_NAMES)
_PARENTS = [int(p) for p in PARENTS]
_BONE_POINTS = [j for child, parent in BONES for j in (parent, child)]  # LINE_LIST: parent, child per bone
_JOINT_SIDES = [joint_side(j) for j in range(NUM_JOINTS)]
_BONE_SIDES = [joint_side(child) for child, _ in BONES for _ in range(2)]


def _float32_array(values: Any) -> array.array:
    return array.array("f", np.ascontiguousarray(values, np.float32).reshape(-1).tobytes())


def _placement(person: PersonResult) -> int:
    return Skeleton.PLACEMENT_INTRINSICS if person.metric else Skeleton.PLACEMENT_DEFAULT_DEPTH


def skeleton_array(header: Header, persons: Sequence[PersonResult],
                   parts: Sequence[JointParts] | None = None) -> SkeletonArray:
    """The custom per-frame message: one Skeleton per person, all in the input image's header
    (`skeleton_array_cdr` writes the same message serialised)."""
    out = SkeletonArray(header=header)
    parts = joint_parts(persons) if parts is None else parts
    skeletons = []
    for person, part in zip(persons, parts, strict=True):
        s = Skeleton(header=header, person_id=int(person.person_id), score=float(person.score))
        s.placement = _placement(person)
        s.joint_names = list(_JOINT_NAMES)
        s.parents = _PARENTS
        s.positions = list(part.points)
        s.orientations = list(part.quaternions)
        s.confidences = _float32_array(person.confidences)
        s.bone_lengths = _float32_array(measure_bone_lengths(person.joints3d_camera))
        s.keypoints_2d = _float32_array(person.keypoints2d)
        s.box = np.asarray(person.box, np.float32).reshape(4)
        skeletons.append(s)
    out.skeletons = skeletons
    return out


def pose_array(header: Header, persons: Sequence[PersonResult],
               parts: Sequence[JointParts] | None = None) -> PoseArray:
    """17 joint frames per person (position + global rotation), persons one after another (`pose_array_cdr`
    writes the same message serialised)."""
    parts = joint_parts(persons) if parts is None else parts
    msg = PoseArray(header=header)
    msg.poses = [Pose(position=pt, orientation=q)
                 for part in parts for pt, q in zip(part.points, part.quaternions, strict=True)]
    return msg


# --- the node's outputs written straight to CDR bytes ---------------------------------------------------------------
# rclpy's publish() takes a message's serialised bytes as well as the message. Building Point and Quaternion objects
# for every joint and having rclpy convert them back field by field was most of what publishing a frame cost the
# node: with these writers (about 0.02-0.04 ms a person each) its publishing went from 1.13 to 0.73 ms of the
# worker's CPU a frame (benchmark_node, 960x540, 1.2 people a frame; the rest is rclpy and Fast DDS handing the
# bytes over). `cdr_matches_rclpy` checks them against rclpy's own serialisation once, at activation: the node
# uses them only where rclpy reads them back as its own.
_CDR_LE = b"\x00\x01\x00\x00"  # encapsulation header: classic CDR, little endian (what rmw_fastrtps writes)


class _CdrWriter:
    """Little-endian classic CDR into a bytearray; alignment counts from the end of the encapsulation header."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray(_CDR_LE)

    def align(self, n: int) -> None:
        self.buf += bytes(-(len(self.buf) - 4) % n)

    def pack(self, fmt: str, *values: Any) -> None:
        """Values of one size (`fmt` like '<iI' or '<7d'), aligned to it."""
        self.align(struct.calcsize("<" + fmt.lstrip("<0123456789")[0]))
        self.buf += struct.pack(fmt, *values)

    def string(self, text: str) -> None:
        data = text.encode("utf-8")
        self.pack("<I", len(data) + 1)
        self.buf += data + b"\x00"

    def header(self, header: Header) -> None:
        self.pack("<iI", int(header.stamp.sec), int(header.stamp.nanosec))
        self.string(header.frame_id)

    def array(self, values: np.ndarray, dtype: str, sequence: bool = True) -> None:
        """A sequence (length first) or a fixed-size array of one primitive type, e.g. '<f8'."""
        data = np.ascontiguousarray(values, dtype).reshape(-1)
        if sequence:
            self.pack("<I", data.size)
        if data.size:
            self.align(data.itemsize)
            self.buf += data.tobytes()

    def structs(self, rows: np.ndarray) -> None:
        """A sequence of structs of float64 fields only (Point, Pose), one row per struct."""
        rows = np.asarray(rows)
        self.pack("<I", rows.shape[0])
        self.array(rows, "<f8", sequence=False)


def _names_cdr() -> bytes:
    w = _CdrWriter()
    w.buf = bytearray()  # written from offset 0 (mod 4); inserted at a 4-aligned offset: the same padding inside
    w.pack("<I", len(_JOINT_NAMES))
    for name in _JOINT_NAMES:
        w.string(name)
    return bytes(w.buf)


_JOINT_NAMES_CDR = _names_cdr()  # string[] joint_names: the same bytes for every skeleton
_PARENTS_I16 = np.asarray(_PARENTS, "<i2")


def skeleton_array_cdr(header: Header, persons: Sequence[PersonResult]) -> bytes:
    """`skeleton_array(header, persons)` serialised (classic CDR, little endian), written with numpy."""
    w = _CdrWriter()
    w.header(header)
    w.pack("<I", len(persons))
    for person in persons:
        w.header(header)
        w.pack("<if", int(person.person_id), float(person.score))
        w.buf.append(_placement(person))
        w.align(4)
        w.buf += _JOINT_NAMES_CDR
        w.array(_PARENTS_I16, "<i2")
        w.structs(np.asarray(person.joints3d_camera, np.float64).reshape(NUM_JOINTS, 3))
        w.structs(unit_quaternions(person.rotations))
        w.array(person.confidences, "<f4")
        w.array(measure_bone_lengths(person.joints3d_camera), "<f4")
        w.array(person.keypoints2d, "<f4")
        w.array(np.asarray(person.box, np.float32).reshape(4), "<f4", sequence=False)
    return bytes(w.buf)


def pose_array_cdr(header: Header, persons: Sequence[PersonResult]) -> bytes:
    """`pose_array(header, persons)` serialised (classic CDR, little endian), written with numpy."""
    w = _CdrWriter()
    w.header(header)
    rows = [np.concatenate([np.asarray(p.joints3d_camera, np.float64).reshape(NUM_JOINTS, 3),
                            unit_quaternions(p.rotations)], axis=1) for p in persons]
    w.structs(np.concatenate(rows) if rows else np.zeros((0, 7)))
    return bytes(w.buf)


def _sample_persons() -> list[PersonResult]:
    """Two people with values in every field (none round in float32), for `cdr_matches_rclpy`."""
    values = np.sin(np.arange(1.0, 1.0 + 2 * NUM_JOINTS * 10)).reshape(2, NUM_JOINTS, 10)
    return [PersonResult(person_id=3 + 4 * i, joints3d=v[:, :3], joints3d_camera=v[:, :3] + 2.5, rotations=v[:, 3:7],
                         keypoints2d=100.0 * v[:, 7:9], confidences=np.abs(v[:, 9]), box=10.0 * np.abs(v[:4, 0]),
                         score=0.7 + 0.1 * i, metric=bool(i)) for i, v in enumerate(values)]


def cdr_matches_rclpy(persons: Sequence[PersonResult] | None = None) -> bool:
    """Whether `skeleton_array_cdr`, `pose_array_cdr` and `marker_array_cdr` write what rclpy serialises for these
    people: the same length, and rclpy reads them back as it reads its own serialisation of the builders' message
    (the bytes may differ only in padding, which rclpy leaves uninitialised), with frame ids of every length modulo
    8 (each shifts the alignment of what follows)."""
    from rclpy.serialization import deserialize_message, serialize_message

    persons = _sample_persons() if persons is None else persons

    def markers(build: Any) -> Any:
        return lambda header, people: build(header, people, 0.04, 0.015, 0.75, 0.8, deleted=(2, 11))

    checks = ((skeleton_array_cdr, skeleton_array, SkeletonArray), (pose_array_cdr, pose_array, PoseArray),
              (markers(marker_array_cdr), markers(marker_array), MarkerArray))
    for frame_id in ("", "c", "ca", "cam", "came", "camer", "camera", "camera_"):
        header = Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id=frame_id)
        for people in (persons, list(persons)[:1], []):
            for write, build, msg_type in checks:
                data, reference = write(header, people), serialize_message(build(header, people))
                try:
                    if (len(data) != len(reference)
                            or deserialize_message(data, msg_type) != deserialize_message(reference, msg_type)):
                        return False
                except Exception:  # noqa: BLE001 - bytes rclpy cannot read: not a match
                    return False
    return True


def marker_ns(person_id: int) -> str:
    """The RViz namespace of a person's markers (`marker_array`: joints id 0, bones id 1)."""
    return f"person_{int(person_id)}"


MARKER_IDS = (0, 1)  # a person's SPHERE_LIST of joints, LINE_LIST of bones


def _side_rgba(person_id: int, alpha: float) -> dict[str, tuple[float, float, float, float]]:
    return {side: (float(c[0]), float(c[1]), float(c[2]), float(alpha))
            for side, c in person_colours(int(person_id)).items()}


def marker_array(
    header: Header,
    persons: Sequence[PersonResult],
    joint_radius: float = 0.03,
    bone_width: float = 0.02,
    lifetime_s: float = 0.5,
    alpha: float = 1.0,
    parts: Sequence[JointParts] | None = None,
    deleted: Sequence[int] = (),
) -> MarkerArray:
    """RViz markers: per person a namespace `person_<id>` with the joints as one SPHERE_LIST (id 0) and the bones
    as one LINE_LIST (id 1), coloured per person and side; a lifetime so stale skeletons vanish; a single
    DELETEALL marker when nobody is seen; DELETE markers for the `deleted` person ids (tracks that ended while
    others go on) (`marker_array_cdr` writes the same message serialised)."""
    msg = MarkerArray()
    if not persons:
        msg.markers.append(Marker(header=header, action=Marker.DELETEALL))
        return msg
    parts = joint_parts(persons) if parts is None else parts
    lifetime = _duration(lifetime_s)
    diameter = 2.0 * float(joint_radius)
    markers = []
    for person, part in zip(persons, parts, strict=True):
        ns = marker_ns(person.person_id)
        colours = {side: ColorRGBA(r=r, g=g, b=b, a=a)
                   for side, (r, g, b, a) in _side_rgba(person.person_id, alpha).items()}
        points = part.points
        joints = Marker(header=header, ns=ns, id=MARKER_IDS[0], type=Marker.SPHERE_LIST, action=Marker.ADD,
                        lifetime=lifetime)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = diameter
        joints.points = list(points)
        joints.colors = [colours[side] for side in _JOINT_SIDES]
        joints.color = colours["centre"]
        bones = Marker(header=header, ns=ns, id=MARKER_IDS[1], type=Marker.LINE_LIST, action=Marker.ADD,
                       lifetime=lifetime)
        bones.pose.orientation.w = 1.0
        bones.scale.x = float(bone_width)
        bones.points = [points[j] for j in _BONE_POINTS]
        bones.colors = [colours[side] for side in _BONE_SIDES]
        bones.color = colours["centre"]
        markers += (joints, bones)
    markers += [Marker(header=header, ns=marker_ns(pid), id=marker_id, action=Marker.DELETE)
                for pid in deleted for marker_id in MARKER_IDS]
    msg.markers = markers
    return msg


def _marker_cdr(w: _CdrWriter, header: Header, ns: str = "", marker_id: int = 0, marker_type: int = 0,
                action: int = 0, scale: tuple[float, float, float] = (0.0, 0.0, 0.0),
                colour: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0), lifetime: Duration | None = None,
                points: np.ndarray | None = None, colours: Sequence[tuple[float, ...]] | None = None) -> None:
    """One visualization_msgs/Marker, its other fields at their defaults."""
    w.header(header)
    w.string(ns)
    w.pack("<iii", marker_id, marker_type, action)
    w.pack("<10d", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, *scale)  # pose (the identity; Quaternion's default w), scale
    w.pack("<4f", *colour)
    w.pack("<iI", *((lifetime.sec, lifetime.nanosec) if lifetime is not None else (0, 0)))
    w.buf.append(0)  # frame_locked
    w.structs(np.zeros((0, 3)) if points is None else points)
    w.pack("<I", 0 if colours is None else len(colours))
    if colours is not None and len(colours):
        w.buf += np.ascontiguousarray(colours, "<f4").tobytes()
    w.buf += _MARKER_TAIL


def _marker_tail() -> bytes:
    """A Marker's fields after `colors`, all at their defaults: the same bytes after every marker (they start
    4-aligned, after the colours' float32s, and hold nothing aligned to more than 4)."""
    w = _CdrWriter()
    w.string("")  # texture_resource
    w.pack("<iI", 0, 0)  # texture: sensor_msgs/CompressedImage (header, format, data), empty
    w.string("")
    w.string("")
    w.pack("<II", 0, 0)  # texture.data, uv_coordinates: empty sequences
    w.string("")  # text
    w.string("")  # mesh_resource
    w.string("")  # mesh_file.filename
    w.pack("<I", 0)  # mesh_file.data
    w.buf.append(0)  # mesh_use_embedded_materials
    return bytes(w.buf[len(_CDR_LE):])


_MARKER_TAIL = _marker_tail()


def marker_array_cdr(header: Header, persons: Sequence[PersonResult], joint_radius: float = 0.03,
                     bone_width: float = 0.02, lifetime_s: float = 0.5, alpha: float = 1.0,
                     deleted: Sequence[int] = ()) -> bytes:
    """`marker_array(...)` serialised (classic CDR, little endian), written with numpy."""
    w = _CdrWriter()
    if not persons:
        w.pack("<I", 1)
        _marker_cdr(w, header, action=Marker.DELETEALL)
        return bytes(w.buf)
    lifetime = _duration(lifetime_s)
    diameter = 2.0 * float(joint_radius)
    w.pack("<I", 2 * len(persons) + len(MARKER_IDS) * len(deleted))
    for person in persons:
        ns = marker_ns(person.person_id)
        rgba = _side_rgba(person.person_id, alpha)
        joints = np.asarray(person.joints3d_camera, np.float64).reshape(NUM_JOINTS, 3)
        _marker_cdr(w, header, ns, MARKER_IDS[0], Marker.SPHERE_LIST, Marker.ADD, (diameter,) * 3,
                    rgba["centre"], lifetime, joints, [rgba[side] for side in _JOINT_SIDES])
        _marker_cdr(w, header, ns, MARKER_IDS[1], Marker.LINE_LIST, Marker.ADD, (float(bone_width), 0.0, 0.0),
                    rgba["centre"], lifetime, joints[_BONE_POINTS], [rgba[side] for side in _BONE_SIDES])
    for pid in deleted:
        for marker_id in MARKER_IDS:
            _marker_cdr(w, header, marker_ns(pid), marker_id, action=Marker.DELETE)
    return bytes(w.buf)


def diagnostic_array(
    stamp: Time, name: str, level: bytes, message: str, values: Mapping[str, Any], hardware_id: str = ""
) -> DiagnosticArray:
    """One DiagnosticStatus (level: DiagnosticStatus.OK/WARN/ERROR) in a DiagnosticArray; values are written as
    strings (floats with 3 decimals)."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    for key, value in values.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        status.values.append(KeyValue(key=key, value=text))
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def diagnostic_values(msg: DiagnosticArray, name_suffix: str = "") -> dict[str, str]:
    """The key/value pairs of the first status whose name ends with `name_suffix` (for tests and tools)."""
    for status in msg.status:
        if status.name.endswith(name_suffix):
            return {kv.key: kv.value for kv in status.values}
    return {}


# --- decoders: messages -> arrays (the inverse of the builders above) -------------------------------------------
def _points(points: Sequence[Any]) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points], np.float64).reshape(-1, 3)


def _quaternions(quats: Sequence[Any]) -> np.ndarray:
    return np.array([[q.x, q.y, q.z, q.w] for q in quats], np.float64).reshape(-1, 4)


def persons_from_skeleton_array(msg: SkeletonArray) -> list[PersonResult]:
    """The people of a SkeletonArray as PersonResults (joints3d: the positions minus the root's)."""
    out = []
    for s in msg.skeletons:
        positions = _points(s.positions)
        if positions.shape != (NUM_JOINTS, 3):
            raise ValueError(f"a Skeleton must have {NUM_JOINTS} positions, got {len(s.positions)}")
        out.append(PersonResult(
            person_id=int(s.person_id),
            joints3d=positions - positions[ROOT],
            joints3d_camera=positions,
            rotations=_quaternions(s.orientations),
            keypoints2d=np.asarray(s.keypoints_2d, np.float64).reshape(NUM_JOINTS, 2),
            confidences=np.asarray(s.confidences, np.float64),
            box=np.asarray(s.box, np.float64).reshape(4),
            score=float(s.score),
            metric=s.placement == Skeleton.PLACEMENT_INTRINSICS,
        ))
    return out


def primitives_from_marker_array(msg: MarkerArray) -> list[MarkerPrimitive]:
    """The sphere and line lists of a MarkerArray as marker primitives (DELETEALL and other markers skipped)."""
    out = []
    for m in msg.markers:
        if m.action != Marker.ADD or not m.points or m.type not in (Marker.SPHERE_LIST, Marker.LINE_LIST):
            continue
        colours = [m.colors[i] for i in range(len(m.colors))] if m.colors else [m.color]
        rgba = np.array([[c.r, c.g, c.b, c.a] for c in colours], np.float64)
        kind = "spheres" if m.type == Marker.SPHERE_LIST else "lines"
        out.append(MarkerPrimitive(kind, _points(m.points), rgba, float(m.scale.x), m.ns))
    return out


def joint_frames_from_pose_array(msg: PoseArray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, 3) and rotations (N, 4) x y z w of a PoseArray's poses."""
    return _points([p.position for p in msg.poses]), _quaternions([p.orientation for p in msg.poses])
