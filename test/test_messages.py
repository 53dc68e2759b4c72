"""petr_ros.ros.messages without DDS: the builders (SkeletonArray, PoseArray, MarkerArray, diagnostics, rgb8 Image),
the CDR writers the node publishes with (against rclpy's own serialisation), the decoders that read them back,
stamps, the quaternion convention (unit, w >= 0), DELETE and DELETEALL. (TF frames: petr_ros.ros.tf and its
tests.)"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseArray
from petr_ros_msgs.msg import SkeletonArray
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.image_codec import ImageDecodeError, encode_compressed
from petr_ros.kinematics import joint_rotations, matrix_to_quaternion, winter_rest_pose
from petr_ros.render import joint_colours, person_colours
from petr_ros.results import PersonResult
from petr_ros.ros import messages
from petr_ros.skeleton import BONES, JOINT_NAMES, NUM_BONES, NUM_JOINTS, PARENTS

STAMP_NS = 1_700_000_123_456_789_012


def header() -> Header:
    return Header(frame_id="camera_optical_frame", stamp=messages.stamp_from_ns(STAMP_NS))


def person(person_id: int = 3, depth: float = 3.0, metric: bool = True) -> PersonResult:
    rest = winter_rest_pose(1.75)
    quats = np.asarray(matrix_to_quaternion(joint_rotations(rest)), np.float64)
    quats[1] = -quats[1]  # the same rotation with w < 0: published with w >= 0
    rng = np.random.default_rng(person_id)
    return PersonResult(person_id=person_id, joints3d=rest, joints3d_camera=rest + np.array([0.2, -0.1, depth]),
                        rotations=quats, keypoints2d=rng.uniform(0, 600, (NUM_JOINTS, 2)),
                        confidences=rng.uniform(0.3, 1.0, NUM_JOINTS), box=np.array([10.0, 20.0, 300.0, 500.0]),
                        score=0.75, metric=metric)


def test_stamps_round_trip_exactly() -> None:
    t = messages.stamp_from_ns(STAMP_NS)
    assert (t.sec, t.nanosec) == divmod(STAMP_NS, 1_000_000_000)
    assert messages.stamp_to_ns(t) == STAMP_NS
    assert messages.stamp_to_sec(Time(sec=12, nanosec=500_000_000)) == pytest.approx(12.5)
    assert messages.output_stamp_ns(MarkerArray()) is None  # empty: no header to read
    assert messages.output_stamp_ns(messages.marker_array(header(), [])) == STAMP_NS
    assert messages.output_stamp_ns(messages.pose_array(header(), [person()])) == STAMP_NS


def test_skeleton_array_round_trips_through_the_decoder() -> None:
    people = [person(3, metric=True), person(8, depth=5.0, metric=False)]
    msg = messages.skeleton_array(header(), people)
    assert msg.header.frame_id == "camera_optical_frame" and len(msg.skeletons) == 2
    s = msg.skeletons[0]
    assert list(s.joint_names) == list(JOINT_NAMES) and list(s.parents) == list(PARENTS)
    assert s.placement == s.PLACEMENT_INTRINSICS and msg.skeletons[1].placement == s.PLACEMENT_DEFAULT_DEPTH
    assert len(s.bone_lengths) == NUM_BONES
    pos = people[0].joints3d_camera
    np.testing.assert_allclose(s.bone_lengths, [np.linalg.norm(pos[c] - pos[p]) for c, p in BONES], atol=1e-5)
    back = messages.persons_from_skeleton_array(msg)
    for original, decoded in zip(people, back, strict=True):
        assert decoded.person_id == original.person_id and decoded.metric == original.metric
        np.testing.assert_allclose(decoded.joints3d_camera, original.joints3d_camera, atol=1e-9)
        np.testing.assert_allclose(decoded.joints3d, original.joints3d - original.joints3d[0], atol=1e-9)
        np.testing.assert_allclose(decoded.keypoints2d, original.keypoints2d, atol=1e-3)  # float32 on the wire
        np.testing.assert_allclose(decoded.confidences, original.confidences, atol=1e-6)
        np.testing.assert_allclose(decoded.box, original.box)
        assert decoded.score == pytest.approx(original.score)
        # Unit quaternions with w >= 0, the same rotations as given (q and -q).
        np.testing.assert_allclose(np.linalg.norm(decoded.rotations, axis=1), 1.0, atol=1e-9)
        assert np.all(decoded.rotations[:, 3] >= 0)
        dots = np.abs(np.sum(decoded.rotations * original.rotations, axis=1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-6)
    assert original.rotations[1, 3] < 0 <= decoded.rotations[1, 3]  # the sign flip happened


def test_degenerate_quaternions_become_identity() -> None:
    p = person()
    p.rotations[2] = 0.0
    p.rotations[4] = np.nan
    s = messages.skeleton_array(header(), [p]).skeletons[0]
    for j in (2, 4):
        q = s.orientations[j]
        assert (q.x, q.y, q.z, q.w) == (0.0, 0.0, 0.0, 1.0)


def test_pose_array_has_17_frames_per_person_in_order() -> None:
    people = [person(1), person(2, depth=4.0)]
    msg = messages.pose_array(header(), people)
    assert isinstance(msg, PoseArray) and len(msg.poses) == 2 * NUM_JOINTS
    positions, quats = messages.joint_frames_from_pose_array(msg)
    np.testing.assert_allclose(positions[NUM_JOINTS:], people[1].joints3d_camera, atol=1e-9)
    assert np.all(quats[:, 3] >= 0)


def test_markers_per_person_colours_lifetime_and_deleteall() -> None:
    people = [person(0), person(5)]
    msg = messages.marker_array(header(), people, joint_radius=0.05, bone_width=0.01, lifetime_s=1.25, alpha=0.5)
    assert len(msg.markers) == 4
    for p, (joints, bones) in zip(people, (msg.markers[0:2], msg.markers[2:4]), strict=True):
        assert joints.ns == bones.ns == f"person_{p.person_id}" and (joints.id, bones.id) == (0, 1)
        assert joints.type == Marker.SPHERE_LIST and bones.type == Marker.LINE_LIST
        assert joints.header.stamp == header().stamp and joints.action == Marker.ADD
        assert (joints.lifetime.sec, joints.lifetime.nanosec) == (1, 250_000_000)
        assert joints.scale.x == pytest.approx(0.1) and bones.scale.x == pytest.approx(0.01)
        assert len(joints.points) == NUM_JOINTS and len(bones.points) == 2 * NUM_BONES
        rgba = np.array([[c.r, c.g, c.b, c.a] for c in joints.colors])
        np.testing.assert_allclose(rgba, joint_colours(p.person_id, alpha=0.5), atol=1e-6)  # the one palette
    # Different people, different colours; left lighter than right.
    assert person_colours(0)["left"] != person_colours(5)["left"]
    assert sum(person_colours(0)["left"]) > sum(person_colours(0)["right"])
    prims = messages.primitives_from_marker_array(msg)
    assert [p.kind for p in prims] == ["spheres", "lines", "spheres", "lines"]
    np.testing.assert_allclose(prims[0].points, people[0].joints3d_camera, atol=1e-9)
    bone_points = prims[1].points.reshape(-1, 2, 3)
    np.testing.assert_allclose(bone_points[:, 1], people[0].joints3d_camera[[c for c, _ in BONES]], atol=1e-9)
    # Nobody seen: a single DELETEALL (with the frame's header), which decodes to no primitives.
    cleared = messages.marker_array(header(), [])
    assert [m.action for m in cleared.markers] == [Marker.DELETEALL]
    assert cleared.markers[0].header.stamp == header().stamp
    assert messages.primitives_from_marker_array(cleared) == []


def test_markers_of_ended_tracks_are_deleted() -> None:
    msg = messages.marker_array(header(), [person(3)], deleted=[5, 9])
    assert [(m.ns, m.id, m.action) for m in msg.markers[2:]] == [
        (f"person_{pid}", marker_id, Marker.DELETE) for pid in (5, 9) for marker_id in messages.MARKER_IDS]
    assert all(m.header.stamp == header().stamp for m in msg.markers)
    assert [m.ns for m in msg.markers[:2]] == [messages.marker_ns(3)] * 2


def test_cdr_writers_match_rclpy_on_this_middleware() -> None:
    # What petr_node checks at activation: where this holds it publishes the CDR writers' bytes.
    assert messages.cdr_matches_rclpy()


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_cdr_writers_serialise_what_the_builders_build(frame_id: str, count: int) -> None:
    people = [person(i, depth=2.0 + i, metric=i % 2 == 0) for i in range(1, count + 1)]
    h = Header(frame_id=frame_id, stamp=messages.stamp_from_ns(STAMP_NS))
    style = (0.045, 0.012, 0.3, 0.9)
    pairs = [
        (messages.skeleton_array_cdr(h, people), messages.skeleton_array(h, people), SkeletonArray),
        (messages.pose_array_cdr(h, people), messages.pose_array(h, people), PoseArray),
        (messages.marker_array_cdr(h, people, *style, deleted=[4, 8]),
         messages.marker_array(h, people, *style, deleted=[4, 8]), MarkerArray),
    ]
    for data, msg, msg_type in pairs:
        reference = serialize_message(msg)
        assert len(data) == len(reference)
        assert deserialize_message(data, msg_type) == deserialize_message(reference, msg_type)
    back = messages.persons_from_skeleton_array(deserialize_message(pairs[0][0], SkeletonArray))
    assert [p.person_id for p in back] == [p.person_id for p in people]
    for got, sent in zip(back, people, strict=True):
        np.testing.assert_allclose(got.joints3d_camera, sent.joints3d_camera, atol=1e-12)
        assert got.metric == sent.metric


def test_a_cdr_writer_that_disagrees_with_rclpy_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    write = messages.pose_array_cdr

    def last_value_changed(h: Header, people: list) -> bytes:  # same length, one float64 different
        data = write(h, people)
        return data[:-8] + struct.pack("<d", 0.5) if people else data

    monkeypatch.setattr(messages, "pose_array_cdr", last_value_changed)
    assert not messages.cdr_matches_rclpy()
    monkeypatch.setattr(messages, "pose_array_cdr", lambda h, people: write(h, people)[:-4])  # cut short
    assert not messages.cdr_matches_rclpy()


def test_diagnostics_values_are_strings() -> None:
    msg = messages.diagnostic_array(header().stamp, "petr_node: test", DiagnosticStatus.WARN, "no input images",
                                    {"rate_hz": 2.0 / 3.0, "received": 7, "backend": "mediapipe"}, hardware_id="x")
    status = msg.status[0]
    assert status.level == DiagnosticStatus.WARN and status.message == "no input images"
    assert messages.diagnostic_values(msg, "test") == {"rate_hz": "0.667", "received": "7", "backend": "mediapipe"}
    assert messages.diagnostic_values(msg, "other") == {}


def test_images_both_ways() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = messages.rgb_to_image_msg(rgb, header())
    assert (msg.width, msg.height, msg.encoding, msg.step) == (64, 48, "rgb8", 64 * 3)
    np.testing.assert_array_equal(messages.image_msg_to_rgb(msg), rgb)
    png = CompressedImage(format="png", data=encode_compressed(rgb, "png"))
    np.testing.assert_array_equal(messages.image_msg_to_rgb(png), rgb)
    with pytest.raises(ValueError, match="rgb must be"):
        messages.rgb_to_image_msg(rgb[:, :, 0])
    msg.data = msg.data[:-10]  # shorter than step * height
    with pytest.raises(ImageDecodeError):
        messages.image_msg_to_rgb(msg)


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera", "camera_optical_frame"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono16", "yuv422"])
def test_image_from_cdr_reads_every_field_in_place(frame_id: str, encoding: str) -> None:
    # The node's raw image subscription reads the serialised bytes itself: every field must come out as
    # rclpy's own deserialisation gives it, whatever the string lengths do to the CDR alignment.
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(len(frame_id))
    data = rng.integers(0, 256, 7 * 12 + 5, dtype=np.uint8).tobytes()  # an odd length
    msg = Image(height=7, width=4, encoding=encoding, is_bigendian=1, step=12, data=data)
    msg.header = Header(frame_id=frame_id, stamp=Time(sec=-5, nanosec=999_999_999))
    raw = serialize_message(msg)
    parsed = messages.image_from_cdr(raw)
    ref = deserialize_message(raw, Image)
    assert parsed is not None
    assert (parsed.header.stamp.sec, parsed.header.stamp.nanosec, parsed.header.frame_id) == \
        (ref.header.stamp.sec, ref.header.stamp.nanosec, ref.header.frame_id)
    assert (parsed.height, parsed.width, parsed.encoding, parsed.is_bigendian, parsed.step) == \
        (ref.height, ref.width, ref.encoding, ref.is_bigendian, ref.step)
    assert parsed.data.tobytes() == bytes(ref.data)
    assert np.shares_memory(parsed.data, np.frombuffer(raw, np.uint8))  # a view: no copy of the pixels


def test_image_from_cdr_decodes_like_the_message_and_refuses_bad_bytes() -> None:
    from rclpy.serialization import serialize_message

    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    msg = messages.rgb_to_image_msg(rgb, header())
    raw = serialize_message(msg)
    parsed = messages.image_from_cdr(raw)
    np.testing.assert_array_equal(messages.image_msg_to_rgb(parsed), rgb)
    np.testing.assert_array_equal(messages.image_msg_to_rgb(parsed), messages.image_msg_to_rgb(msg))
    assert messages.image_from_cdr(b"\x00\x07\x00\x00" + raw[4:]) is None  # not classic CDR: deserialise normally
    for cut in (3, 10, 40, len(raw) - 1):
        with pytest.raises(ValueError):
            messages.image_from_cdr(raw[:cut])
    padded = messages.SerializedImage(parsed.header, 6, 5, "rgb8", 0, 15, parsed.data[: 15 * 5])
    with pytest.raises(ImageDecodeError, match="expected step"):  # data shorter than step * height
        messages.image_msg_to_rgb(padded)
