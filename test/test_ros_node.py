"""petr_node end to end over real DDS: a real photo in, markers / joint frames / skeletons / debug image out
(the shipped lifter, MediaPipe front end)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
from conftest import SHM_PROFILE, diagnostics_values, image_msg, messi_rgb
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from petr_ros_msgs.msg import PersonBoxes, Skeleton, SkeletonArray
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.camera import Intrinsics, project, solve_root_translation
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH
from petr_ros.skeleton import JOINT_NAMES, NUM_BONES, NUM_JOINTS, PARENTS

FRAME = "camera_optical_frame"
BASE_NS = 1_700_000_000 * 1_000_000_000


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _unit_quaternions(quats) -> None:
    q = np.array([[o.x, o.y, o.z, o.w] for o in quats])
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert np.all(q[:, 3] >= 0)


def test_photo_to_markers_poses_skeletons(start_node, probe, ros_env) -> None:
    env = dict(ros_env, FASTDDS_DEFAULT_PROFILES_FILE=str(SHM_PROFILE))  # the shipped SHM profile on the node side
    assert DEFAULT_LIFTER_PATH.is_file(), "the shipped lifter is part of the package"
    node = start_node(  # lifter_checkpoint "" (config/petr.yaml): the shipped lifter
        {
            "backend": "mediapipe",
            "torch_threads": 1,
            "publish_debug_image": True,
            "publish_tf": True,
            "diagnostics_period": 0.5,
            "min_person_score": 0.1,
            "detections_topic": "detections",
            "smoothing": True,  # tracking + One-Euro smoothing in the loop (off by default)
        },
        env=env,
    )
    rgb = messi_rgb()
    h, w = rgb.shape[:2]
    skeletons = probe.collect(SkeletonArray, "/petr_node/skeletons")
    markers = probe.collect(MarkerArray, "/petr_node/markers")
    poses = probe.collect(PoseArray, "/petr_node/poses")
    debug = probe.collect(Image, "/petr_node/debug_image")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    pub = probe.node.create_publisher(Image, "image", 10)
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 90), f"node never subscribed:\n{node.log()}"

    sent: list[int] = []

    def publish() -> None:
        stamp = BASE_NS + len(sent) * 100_000_000
        sent.append(stamp)
        pub.publish(image_msg(rgb, stamp, FRAME))

    def have_all() -> bool:
        common = {_stamp_ns(m.header) for m in skeletons if m.skeletons}
        common &= {_stamp_ns(m.markers[0].header) for m in markers if m.markers}
        common &= {_stamp_ns(m.header) for m in poses if m.poses}
        return bool(common) and bool(debug)

    assert probe.spin_until(have_all, 60, step=publish, period=0.3), f"no outputs:\n{node.log()}"
    probe.spin_for(0.5)

    # Every output carries the stamp and frame of an image we sent.
    for msg in skeletons + poses + debug:
        assert _stamp_ns(msg.header) in sent and msg.header.frame_id == FRAME
    for msg in markers:
        for m in msg.markers:
            assert _stamp_ns(m.header) in sent and m.header.frame_id == FRAME

    arr = next(m for m in skeletons if m.skeletons)
    stamp = _stamp_ns(arr.header)
    s: Skeleton = arr.skeletons[0]
    assert list(s.joint_names) == list(JOINT_NAMES)
    assert list(s.parents) == list(PARENTS)
    pos = np.array([[p.x, p.y, p.z] for p in s.positions])
    assert pos.shape == (NUM_JOINTS, 3) and np.all(np.isfinite(pos))
    _unit_quaternions(s.orientations)
    assert len(s.orientations) == NUM_JOINTS
    conf = np.array(s.confidences)
    assert conf.shape == (NUM_JOINTS,) and np.all((conf >= 0) & (conf <= 1))
    np.testing.assert_allclose(s.bone_lengths, np.linalg.norm(pos[1:] - pos[list(PARENTS[1:])], axis=1), atol=1e-5)
    assert len(s.bone_lengths) == NUM_BONES
    kp = np.array(s.keypoints_2d).reshape(NUM_JOINTS, 2)
    # The footballer is in the photo: his keypoints lie in (or just around) the image.
    assert np.all(kp > -0.25 * np.array([w, h])) and np.all(kp < 1.25 * np.array([w, h]))
    # No CameraInfo yet: default depth on the pelvis ray of the default intrinsics.
    assert s.placement == Skeleton.PLACEMENT_DEFAULT_DEPTH
    assert pos[0, 2] == np.float64(3.0)
    np.testing.assert_allclose(project(pos[0], Intrinsics.default(w, h)), kp[0], atol=1e-3)

    same = [m for m in markers if m.markers and _stamp_ns(m.markers[0].header) == stamp][0]
    by_type = {m.type: m for m in same.markers if m.ns == f"person_{s.person_id}"}
    assert len(by_type[Marker.SPHERE_LIST].points) == NUM_JOINTS
    assert len(by_type[Marker.LINE_LIST].points) == 2 * NUM_BONES
    assert len(by_type[Marker.SPHERE_LIST].colors) == NUM_JOINTS
    assert by_type[Marker.SPHERE_LIST].lifetime.nanosec > 0 or by_type[Marker.SPHERE_LIST].lifetime.sec > 0
    sphere = np.array([[p.x, p.y, p.z] for p in by_type[Marker.SPHERE_LIST].points])
    np.testing.assert_allclose(sphere, pos, atol=1e-9)

    pa = [m for m in poses if _stamp_ns(m.header) == stamp][0]
    assert len(pa.poses) == NUM_JOINTS * len(arr.skeletons)
    _unit_quaternions([p.orientation for p in pa.poses])
    np.testing.assert_allclose([[p.position.x, p.position.y, p.position.z] for p in pa.poses[:NUM_JOINTS]], pos)

    img = debug[-1]
    assert (img.width, img.height, img.encoding) == (w, h, "rgb8")
    drawn = np.frombuffer(bytes(img.data), np.uint8).reshape(h, w, 3)
    assert np.count_nonzero(np.any(drawn != rgb, axis=2)) > 100  # the skeleton is drawn on it

    if importlib.util.find_spec("tf2_ros") is None:  # no TF here: the node must say so instead of going silent
        assert "tf2_ros is not importable" in node.log()
    assert probe.spin_until(lambda: int(diagnostics_values(diags).get("processed", "0")) > 0, 5)
    values = diagnostics_values(diags)
    for key in ("input_rate_hz", "processed_rate_hz", "dropped_stale", "dropped_invalid", "latency_p50_ms",
                "latency_p95_ms"):
        assert key in values and math.isfinite(float(values[key])), key

    # CameraInfo with a deliberately off-centre principal point: the node must use it.
    k = Intrinsics(fx=600.0, fy=600.0, cx=0.4 * w, cy=0.6 * h, width=w, height=h)
    info_pub = probe.node.create_publisher(CameraInfo, "camera_info", 10)
    info = CameraInfo(width=w, height=h, k=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0])
    info.header.frame_id = FRAME
    assert probe.spin_until(lambda: info_pub.get_subscription_count() > 0, 10)
    n_before = len(skeletons)

    def publish_both() -> None:
        info_pub.publish(info)
        publish()

    assert probe.spin_until(
        lambda: any(a.skeletons and "intrinsics received" in node.log() for a in skeletons[n_before + 1 :]),
        30, step=publish_both, period=0.3)
    s2 = next(a for a in skeletons[n_before + 1 :] if a.skeletons).skeletons[0]
    pos2 = np.array([[p.x, p.y, p.z] for p in s2.positions])
    kp2 = np.array(s2.keypoints_2d).reshape(NUM_JOINTS, 2)
    assert s2.placement == Skeleton.PLACEMENT_INTRINSICS
    # The published root is the least-squares root under K of the published root-relative joints ...
    t = solve_root_translation(kp2, pos2 - pos2[0], k, np.array(s2.confidences))
    np.testing.assert_allclose(pos2[0], t, rtol=1e-4, atol=1e-4)
    # ... in front of the camera, and the joints land near their keypoints (a person, not a point cloud).
    assert 0.5 < pos2[0, 2] < 30.0
    reprojection = np.linalg.norm(project(pos2, k) - kp2, axis=1)
    assert np.median(reprojection) < 0.25 * np.ptp(kp2[:, 1]), reprojection

    # PersonBoxes with the image's stamp are handed to the estimator: a box outside the image finds nobody, and
    # nobody seen means an empty SkeletonArray and a single DELETEALL marker for that stamp.
    boxes_pub = probe.node.create_publisher(PersonBoxes, "detections", 10)
    assert probe.spin_until(lambda: boxes_pub.get_subscription_count() > 0, 10)
    empty_stamp = BASE_NS + 10**12

    def publish_boxes_then_image() -> None:
        boxes = PersonBoxes(boxes=[-500.0, -500.0, -400.0, -400.0], scores=[1.0])
        boxes.header.stamp.sec, boxes.header.stamp.nanosec = divmod(empty_stamp, 1_000_000_000)
        boxes_pub.publish(boxes)
        probe.spin_for(0.1)
        pub.publish(image_msg(rgb, empty_stamp, FRAME))

    assert probe.spin_until(lambda: any(_stamp_ns(a.header) == empty_stamp for a in skeletons), 20,
                            step=publish_boxes_then_image, period=0.5), node.log()
    assert all(not a.skeletons for a in skeletons if _stamp_ns(a.header) == empty_stamp)
    assert probe.spin_until(lambda: any(m.markers and _stamp_ns(m.markers[0].header) == empty_stamp
                                        for m in markers), 5)
    cleared = next(m for m in markers if m.markers and _stamp_ns(m.markers[0].header) == empty_stamp)
    assert [m.action for m in cleared.markers] == [Marker.DELETEALL]
    assert node.alive()
    assert node.stop() == 0, node.log()
