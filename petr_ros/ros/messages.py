"""Builders from petr_ros results to ROS messages (MarkerArray, PoseArray, SkeletonArray, debug image, TF,
diagnostics) and from ROS image messages to RGB arrays. Shared by the node, the demo and the tests."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, TransformStamped
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.image_codec import check_raw_header, decode_compressed, decode_raw
from petr_ros.kinematics import bone_lengths
from petr_ros.render import draw_skeleton_cv2
from petr_ros.skeleton import BONES, JOINT_NAMES, NUM_JOINTS, PARENTS, joint_side

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


@dataclass
class PlacedPerson:
    """One person ready to publish: a PersonPose's fields with joints placed in the camera frame."""

    person_id: int
    positions: np.ndarray  # (17, 3) metres, camera optical frame (root-relative joints + root translation)
    rotations: np.ndarray  # (17, 4) global joint rotations (x, y, z, w)
    keypoints2d: np.ndarray  # (17, 2) pixels
    confidences: np.ndarray  # (17,)
    box: np.ndarray  # (4,)
    score: float
    metric: bool  # True: root from CameraInfo intrinsics; False: default depth


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


def stamp_to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


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


def skeleton_array(header: Header, persons: Sequence[PlacedPerson]) -> SkeletonArray:
    """The custom per-frame message: one Skeleton per person, all in the input image's header."""
    out = SkeletonArray(header=header)
    for person in persons:
        s = Skeleton(header=header, person_id=int(person.person_id), score=float(person.score))
        s.placement = Skeleton.PLACEMENT_INTRINSICS if person.metric else Skeleton.PLACEMENT_DEFAULT_DEPTH
        s.joint_names = list(JOINT_NAMES)
        s.parents = [int(p) for p in PARENTS]
        s.positions = [_point(p) for p in person.positions]
        s.orientations = [_quaternion(q) for q in person.rotations]
        s.confidences = np.asarray(person.confidences, np.float32).tolist()
        s.bone_lengths = bone_lengths(np.asarray(person.positions, np.float64)).astype(np.float32).tolist()
        s.keypoints_2d = np.asarray(person.keypoints2d, np.float32).reshape(-1).tolist()
        s.box = np.asarray(person.box, np.float32).reshape(4)
        out.skeletons.append(s)
    return out


def pose_array(header: Header, persons: Sequence[PlacedPerson]) -> PoseArray:
    """17 joint frames per person (position + global rotation), persons one after another."""
    msg = PoseArray(header=header)
    for person in persons:
        for j in range(NUM_JOINTS):
            msg.poses.append(Pose(position=_point(person.positions[j]), orientation=_quaternion(person.rotations[j])))
    return msg


def person_colours(person_id: int) -> dict[str, ColorRGBA]:
    """A hue per person (golden-ratio steps, so neighbours differ); left lighter, right darker, centre in between."""
    hue = (0.61803398875 * max(person_id, 0) + 0.08) % 1.0
    out = {}
    for side, (sat, val) in {"left": (0.45, 1.0), "centre": (0.75, 0.9), "right": (0.95, 0.6)}.items():
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        out[side] = ColorRGBA(r=r, g=g, b=b, a=1.0)
    return out


def marker_array(
    header: Header,
    persons: Sequence[PlacedPerson],
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
        colours = person_colours(int(person.person_id))
        for c in colours.values():
            c.a = float(alpha)
        joints = Marker(header=header, ns=ns, id=0, type=Marker.SPHERE_LIST, action=Marker.ADD, lifetime=lifetime)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = 2.0 * joint_radius
        joints.points = [_point(p) for p in person.positions]
        joints.colors = [colours[joint_side(j)] for j in range(NUM_JOINTS)]
        joints.color = colours["centre"]
        bones = Marker(header=header, ns=ns, id=1, type=Marker.LINE_LIST, action=Marker.ADD, lifetime=lifetime)
        bones.pose.orientation.w = 1.0
        bones.scale.x = bone_width
        for child, parent in BONES:
            bones.points += [_point(person.positions[parent]), _point(person.positions[child])]
            bones.colors += [colours[joint_side(child)]] * 2
        bones.color = colours["centre"]
        msg.markers += [joints, bones]
    return msg


def draw_keypoints(rgb: np.ndarray, persons: Sequence[PlacedPerson], min_confidence: float = 0.2) -> np.ndarray:
    """A copy of the image with each person's 2D skeleton and box drawn (the debug image)."""
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    thickness = max(1, round(max(out.shape[:2]) / 300))
    for person in persons:
        colours = {
            k: (int(c.r * 255), int(c.g * 255), int(c.b * 255)) for k, c in person_colours(person.person_id).items()
        }
        kp = np.asarray(person.keypoints2d, np.float64)
        conf = np.asarray(person.confidences, np.float64)
        if not np.all(np.isfinite(kp)):
            continue
        draw_skeleton_cv2(out, kp, colours, thickness, visible=conf >= min_confidence)
        x0, y0, x1, y1 = (int(round(v)) for v in np.asarray(person.box, np.float64))
        cv2.rectangle(out, (x0, y0), (x1, y1), colours["centre"], 1)
        cv2.putText(out, f"id {person.person_id}", (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    colours["centre"], 1, cv2.LINE_AA)
    return out


def body_frame(person_id: int) -> str:
    """REP-155 body frame name of a person."""
    return f"body_{person_id}"


def joint_frame(joint: int, person_id: int) -> str:
    """Per-joint TF frame name, REP-155 style: <joint name>_<person id>."""
    return f"{JOINT_NAMES[joint]}_{person_id}"


def tf_transforms(header: Header, persons: Sequence[PlacedPerson]) -> list[TransformStamped]:
    """Per person: `body_<id>` (pelvis position, root rotation) in the image frame, and one frame per joint
    (position, global rotation) in the image frame too (no chained parents: every rotation is global)."""
    out = []
    for person in persons:
        pid = int(person.person_id)
        for j in range(NUM_JOINTS):
            names = [joint_frame(j, pid)] + ([body_frame(pid)] if j == 0 else [])
            for name in names:
                t = TransformStamped(header=header, child_frame_id=name)
                p = person.positions[j]
                t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in p)
                t.transform.rotation = _quaternion(person.rotations[j])
                out.append(t)
    return out


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
