"""The one translation between petr_ros results and ROS messages, both ways. Shared by the node, the demo, the
benchmarks and the tests.

Builders (results -> messages): SkeletonArray, PoseArray, MarkerArray, diagnostics, rgb8 Image (TF: `ros/tf.py`).
Decoders (messages -> arrays): images -> RGB, SkeletonArray -> PersonResults, MarkerArray -> marker primitives,
PoseArray -> joint frames, DiagnosticArray -> key/values. Stamps: `stamp_to_ns` / `stamp_from_ns` / `stamp_to_sec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.image_codec import check_raw_header, decode_compressed, decode_raw
from petr_ros.kinematics import bone_lengths
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


def image_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """An Image or CompressedImage -> (H, W, 3) uint8 RGB. Raises image_codec.ImageDecodeError with the reason."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    # The header checks always run (cv_bridge trusts step and data length); conversion via cv_bridge if present.
    check_raw_header(msg.encoding, msg.width, msg.height, msg.step, len(msg.data))
    if _BRIDGE is not None and msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)


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


def _quaternion(q: np.ndarray) -> Quaternion:
    q = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        return Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
    q = q / n
    if q[3] < 0:  # the convention: w >= 0
        q = -q
    return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _point(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def skeleton_array(header: Header, persons: Sequence[PersonResult]) -> SkeletonArray:
    """The custom per-frame message: one Skeleton per person, all in the input image's header."""
    out = SkeletonArray(header=header)
    for person in persons:
        s = Skeleton(header=header, person_id=int(person.person_id), score=float(person.score))
        s.placement = Skeleton.PLACEMENT_INTRINSICS if person.metric else Skeleton.PLACEMENT_DEFAULT_DEPTH
        s.joint_names = list(JOINT_NAMES)
        s.parents = [int(p) for p in PARENTS]
        s.positions = [_point(p) for p in person.joints3d_camera]
        s.orientations = [_quaternion(q) for q in person.rotations]
        s.confidences = np.asarray(person.confidences, np.float32).tolist()
        s.bone_lengths = bone_lengths(np.asarray(person.joints3d_camera, np.float64)).astype(np.float32).tolist()
        s.keypoints_2d = np.asarray(person.keypoints2d, np.float32).reshape(-1).tolist()
        s.box = np.asarray(person.box, np.float32).reshape(4)
        out.skeletons.append(s)
    return out


def pose_array(header: Header, persons: Sequence[PersonResult]) -> PoseArray:
    """17 joint frames per person (position + global rotation), persons one after another."""
    msg = PoseArray(header=header)
    for person in persons:
        for j in range(NUM_JOINTS):
            msg.poses.append(Pose(position=_point(person.joints3d_camera[j]),
                                  orientation=_quaternion(person.rotations[j])))
    return msg


def _colour(rgb: tuple[float, float, float], alpha: float) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def marker_array(
    header: Header,
    persons: Sequence[PersonResult],
    joint_radius: float = 0.03,
    bone_width: float = 0.02,
    lifetime_s: float = 0.5,
    alpha: float = 1.0,
) -> MarkerArray:
    """RViz markers: per person a namespace `person_<id>` with the joints as one SPHERE_LIST (id 0) and the bones
    as one LINE_LIST (id 1), coloured per person and side; a lifetime so stale skeletons vanish; a single
    DELETEALL marker when nobody is seen."""
    msg = MarkerArray()
    if not persons:
        msg.markers.append(Marker(header=header, action=Marker.DELETEALL))
        return msg
    lifetime = _duration(lifetime_s)
    for person in persons:
        ns = f"person_{int(person.person_id)}"
        colours = {side: _colour(c, alpha) for side, c in person_colours(int(person.person_id)).items()}
        joints = Marker(header=header, ns=ns, id=0, type=Marker.SPHERE_LIST, action=Marker.ADD, lifetime=lifetime)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = 2.0 * joint_radius
        joints.points = [_point(p) for p in person.joints3d_camera]
        joints.colors = [colours[joint_side(j)] for j in range(NUM_JOINTS)]
        joints.color = colours["centre"]
        bones = Marker(header=header, ns=ns, id=1, type=Marker.LINE_LIST, action=Marker.ADD, lifetime=lifetime)
        bones.pose.orientation.w = 1.0
        bones.scale.x = bone_width
        for child, parent in BONES:
            bones.points += [_point(person.joints3d_camera[parent]), _point(person.joints3d_camera[child])]
            bones.colors += [colours[joint_side(child)]] * 2
        bones.color = colours["centre"]
        msg.markers += [joints, bones]
    return msg


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
