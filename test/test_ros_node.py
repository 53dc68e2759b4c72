"""petr_node end to end over real DDS: a real photo in, markers / joint frames / skeletons / debug image / TF /
diagnostics out (the shipped lifter, MediaPipe front end). One node runs for the module; the first outputs (before
any CameraInfo) are recorded by the fixture, and each test checks one behaviour."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import conftest
import numpy as np
import pytest
from conftest import SHM_PROFILE, Probe, diagnostics_values, image_msg, messi_rgb
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from petr_ros_msgs.msg import PersonBoxes, Skeleton, SkeletonArray
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from petr_ros.camera import DEFAULT_DEPTH_M, Intrinsics, project, solve_root_translation
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH
from petr_ros.ros.process import NodeProcess
from petr_ros.ros.tf import TF_QOS
from petr_ros.skeleton import EXTRAPOLATED_JOINTS, JOINT_NAMES, NUM_BONES, NUM_JOINTS, PARENTS

FRAME = "camera_optical_frame"
BASE_NS = 1_700_000_000 * 1_000_000_000


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _unit_quaternions(quats) -> None:
    q = np.array([[o.x, o.y, o.z, o.w] for o in quats])
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert np.all(q[:, 3] >= 0)


def _positions(s: Skeleton) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in s.positions])


@dataclass
class Running:
    """The module's node, the test's probe on its domain, what the node published, and the first complete frame."""

    node: NodeProcess
    probe: Probe
    image_pub: Any
    rgb: np.ndarray
    sent: list[int]
    skeletons: list[SkeletonArray]
    markers: list[MarkerArray]
    poses: list[PoseArray]
    debug: list[Image]
    diags: list[DiagnosticArray]
    tf: list[Any] = field(default_factory=list)
    first_stamp: int = 0  # a stamp with skeletons, markers and poses, before any CameraInfo was sent

    def publish(self, stamp_ns: int | None = None) -> None:
        stamp = BASE_NS + len(self.sent) * 100_000_000 if stamp_ns is None else stamp_ns
        self.sent.append(stamp)
        self.image_pub.publish(image_msg(self.rgb, stamp, FRAME))

    def first(self, messages: list[Any], stamp_of=lambda m: _stamp_ns(m.header)) -> Any:
        return next(m for m in messages if stamp_of(m) == self.first_stamp)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("node")
    env = dict(os.environ, ROS_DOMAIN_ID=str(conftest.next_domain()), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(tmp / "ros_log"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               FASTDDS_DEFAULT_PROFILES_FILE=str(SHM_PROFILE))  # the shipped SHM profile on the node side
    (tmp / "ros_log").mkdir()
    assert DEFAULT_LIFTER_PATH.is_file(), "the shipped lifter is part of the package"
    params = {  # lifter_checkpoint "" (config/petr.yaml): the shipped lifter
        "backend": "mediapipe",
        "torch_threads": 1,
        "publish_debug_image": True,
        "publish_tf": True,
        "diagnostics_period": 0.5,
        "min_person_score": 0.1,
        "detections_topic": "detections",
        "smoothing": True,  # tracking + One-Euro smoothing in the loop (off by default)
    }
    node = NodeProcess(env, tmp / "node.log", params, conftest.PARAMS_FILE, cwd=conftest.REPO)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    probe = Probe(int(env["ROS_DOMAIN_ID"]))
    try:
        r = Running(node, probe, probe.node.create_publisher(Image, "image", 10), messi_rgb(), [],
                    probe.collect(SkeletonArray, "/petr_node/skeletons"),
                    probe.collect(MarkerArray, "/petr_node/markers"), probe.collect(PoseArray, "/petr_node/poses"),
                    probe.collect(Image, "/petr_node/debug_image"), probe.collect(DiagnosticArray, "/diagnostics"))
        r.tf = probe.collect(TFMessage, "/tf", TF_QOS)
        assert probe.spin_until(lambda: r.image_pub.get_subscription_count() > 0, 90), \
            f"node never subscribed:\n{node.log()}"

        def complete() -> set[int]:
            common = {_stamp_ns(m.header) for m in r.skeletons if m.skeletons}
            common &= {_stamp_ns(m.markers[0].header) for m in r.markers if m.markers}
            common &= {_stamp_ns(m.header) for m in r.poses if m.poses}
            return common

        assert probe.spin_until(lambda: bool(complete()) and bool(r.debug), 60, step=r.publish, period=0.3), \
            f"no outputs:\n{node.log()}"
        probe.spin_for(0.5)
        r.first_stamp = min(complete())
        yield r
    finally:
        probe.close()
        node.stop()


def test_every_output_carries_the_stamp_and_frame_of_a_sent_image(running: Running) -> None:
    r = running
    for msg in r.skeletons + r.poses + r.debug:
        assert _stamp_ns(msg.header) in r.sent and msg.header.frame_id == FRAME
    for msg in r.markers:
        for m in msg.markers:
            assert _stamp_ns(m.header) in r.sent and m.header.frame_id == FRAME


def test_skeleton_fields(running: Running) -> None:
    h, w = running.rgb.shape[:2]
    s: Skeleton = running.first(running.skeletons).skeletons[0]
    assert list(s.joint_names) == list(JOINT_NAMES)
    assert list(s.parents) == list(PARENTS)
    pos = _positions(s)
    assert pos.shape == (NUM_JOINTS, 3) and np.all(np.isfinite(pos))
    assert len(s.orientations) == NUM_JOINTS
    _unit_quaternions(s.orientations)
    conf = np.array(s.confidences)
    assert conf.shape == (NUM_JOINTS,) and np.all((conf >= 0) & (conf <= 1))
    np.testing.assert_allclose(s.bone_lengths, np.linalg.norm(pos[1:] - pos[list(PARENTS[1:])], axis=1), atol=1e-5)
    assert len(s.bone_lengths) == NUM_BONES
    kp = np.array(s.keypoints_2d).reshape(NUM_JOINTS, 2)
    # The footballer is in the photo: his keypoints lie in (or just around) the image.
    assert np.all(kp > -0.25 * np.array([w, h])) and np.all(kp < 1.25 * np.array([w, h]))


def test_without_camera_info_the_pelvis_is_at_the_default_depth_on_its_ray(running: Running) -> None:
    h, w = running.rgb.shape[:2]
    s: Skeleton = running.first(running.skeletons).skeletons[0]
    pos = _positions(s)
    kp = np.array(s.keypoints_2d).reshape(NUM_JOINTS, 2)
    assert s.placement == Skeleton.PLACEMENT_DEFAULT_DEPTH
    assert pos[0, 2] == np.float64(3.0) == DEFAULT_DEPTH_M
    np.testing.assert_allclose(project(pos[0], Intrinsics.default(w, h)), kp[0], atol=1e-3)


def test_markers_match_the_skeleton(running: Running) -> None:
    r = running
    s: Skeleton = r.first(r.skeletons).skeletons[0]
    same = r.first([m for m in r.markers if m.markers], stamp_of=lambda m: _stamp_ns(m.markers[0].header))
    by_type = {m.type: m for m in same.markers if m.ns == f"person_{s.person_id}"}
    assert len(by_type[Marker.SPHERE_LIST].points) == NUM_JOINTS
    assert len(by_type[Marker.LINE_LIST].points) == 2 * NUM_BONES
    assert len(by_type[Marker.SPHERE_LIST].colors) == NUM_JOINTS
    assert by_type[Marker.SPHERE_LIST].lifetime.nanosec > 0 or by_type[Marker.SPHERE_LIST].lifetime.sec > 0
    sphere = np.array([[p.x, p.y, p.z] for p in by_type[Marker.SPHERE_LIST].points])
    np.testing.assert_allclose(sphere, _positions(s), atol=1e-9)


def test_pose_array_holds_the_joint_frames(running: Running) -> None:
    r = running
    arr = r.first(r.skeletons)
    pa = r.first(r.poses)
    assert len(pa.poses) == NUM_JOINTS * len(arr.skeletons)
    _unit_quaternions([p.orientation for p in pa.poses])
    np.testing.assert_allclose([[p.position.x, p.position.y, p.position.z] for p in pa.poses[:NUM_JOINTS]],
                               _positions(arr.skeletons[0]))


def test_debug_image_has_the_skeleton_drawn(running: Running) -> None:
    h, w = running.rgb.shape[:2]
    img = running.debug[-1]
    assert (img.width, img.height, img.encoding) == (w, h, "rgb8")
    drawn = np.frombuffer(bytes(img.data), np.uint8).reshape(h, w, 3)
    assert np.count_nonzero(np.any(drawn != running.rgb, axis=2)) > 100


def test_tf_frames_of_the_published_people(running: Running) -> None:
    """publish_tf: REP-155 body_<id> and per-joint frames on /tf (tf2_msgs/TFMessage here, where tf2_ros is not
    installed), children of the image's frame, at the skeleton's positions, with the image's stamp."""
    r = running
    arr = r.first(r.skeletons)
    assert r.probe.spin_until(lambda: any(t.header.frame_id == FRAME and _stamp_ns(t.header) == r.first_stamp
                                          for m in r.tf for t in m.transforms), 10), r.node.log()
    frames = {t.child_frame_id: t for m in r.tf for t in m.transforms if _stamp_ns(t.header) == r.first_stamp}
    for s in arr.skeletons:
        positions = _positions(s)
        named = [(f"body_{s.person_id}", 0)] + [(f"{n}_{s.person_id}", j) for j, n in enumerate(JOINT_NAMES)]
        for name, joint in named:
            t = frames[name]
            assert t.header.frame_id == FRAME
            p = t.transform.translation
            np.testing.assert_allclose([p.x, p.y, p.z], positions[joint], atol=1e-6)
    assert "TF on /tf (tf2_msgs)" in r.node.log()


def test_diagnostics_report_rates_drops_latency_and_rejections(running: Running) -> None:
    r = running
    assert r.probe.spin_until(lambda: int(diagnostics_values(r.diags).get("processed", "0")) > 0, 5)
    values = diagnostics_values(r.diags)
    for key in ("input_rate_hz", "processed_rate_hz", "dropped_stale", "dropped_invalid", "latency_p50_ms",
                "latency_p95_ms", "rejected_low_score", "rejected_non_finite", "rejected_unconfirmed",
                "stage_estimate_mean_ms"):
        assert key in values and math.isfinite(float(values[key])), key
    from petr_ros.model.device import resolve_device

    assert values["backend"] == "mediapipe" and values["device"] == str(resolve_device("auto"))


def test_camera_info_places_the_person_metrically(running: Running) -> None:
    r = running
    h, w = r.rgb.shape[:2]
    # CameraInfo with a deliberately off-centre principal point: the node must use it.
    k = Intrinsics(fx=600.0, fy=600.0, cx=0.4 * w, cy=0.6 * h, width=w, height=h)
    info_pub = r.probe.node.create_publisher(CameraInfo, "camera_info", 10)
    info = CameraInfo(width=w, height=h, k=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0])
    info.header.frame_id = FRAME
    assert r.probe.spin_until(lambda: info_pub.get_subscription_count() > 0, 10)
    n_before = len(r.skeletons)

    def publish_both() -> None:
        info_pub.publish(info)
        r.publish()

    assert r.probe.spin_until(
        lambda: any(a.skeletons and "intrinsics received" in r.node.log() for a in r.skeletons[n_before + 1:]),
        30, step=publish_both, period=0.3)
    s2 = next(a for a in r.skeletons[n_before + 1:] if a.skeletons).skeletons[0]
    pos2 = _positions(s2)
    kp2 = np.array(s2.keypoints_2d).reshape(NUM_JOINTS, 2)
    assert s2.placement == Skeleton.PLACEMENT_INTRINSICS
    # The published root is the least-squares root under K of the published root-relative joints (fitted to the
    # measured joints: camera.place_skeleton leaves the extrapolated head top out) ...
    weights = np.array(s2.confidences, np.float64)
    weights[list(EXTRAPOLATED_JOINTS)] = 0.0
    t = solve_root_translation(kp2, pos2 - pos2[0], k, weights)
    np.testing.assert_allclose(pos2[0], t, rtol=1e-4, atol=1e-4)
    # ... in front of the camera, and the joints land near their keypoints (a person, not a point cloud).
    assert 0.5 < pos2[0, 2] < 30.0
    reprojection = np.linalg.norm(project(pos2, k) - kp2, axis=1)
    assert np.median(reprojection) < 0.25 * np.ptp(kp2[:, 1]), reprojection


def test_boxes_with_nobody_give_an_empty_array_and_deleteall(running: Running) -> None:
    r = running
    # PersonBoxes with the image's stamp are handed to the estimator: a box outside the image finds nobody, and
    # nobody seen means an empty SkeletonArray and a single DELETEALL marker for that stamp.
    boxes_pub = r.probe.node.create_publisher(PersonBoxes, "detections", 10)
    assert r.probe.spin_until(lambda: boxes_pub.get_subscription_count() > 0, 10)
    empty_stamp = BASE_NS + 10**12

    def publish_boxes_then_image() -> None:
        boxes = PersonBoxes(boxes=[-500.0, -500.0, -400.0, -400.0], scores=[1.0])
        boxes.header.stamp.sec, boxes.header.stamp.nanosec = divmod(empty_stamp, 1_000_000_000)
        boxes_pub.publish(boxes)
        r.probe.spin_for(0.1)
        r.publish(empty_stamp)

    assert r.probe.spin_until(lambda: any(_stamp_ns(a.header) == empty_stamp for a in r.skeletons), 20,
                              step=publish_boxes_then_image, period=0.5), r.node.log()
    assert all(not a.skeletons for a in r.skeletons if _stamp_ns(a.header) == empty_stamp)
    assert r.probe.spin_until(lambda: any(m.markers and _stamp_ns(m.markers[0].header) == empty_stamp
                                          for m in r.markers), 5)
    cleared = next(m for m in r.markers if m.markers and _stamp_ns(m.markers[0].header) == empty_stamp)
    assert [m.action for m in cleared.markers] == [Marker.DELETEALL]


def test_an_output_read_again_is_published_again(running: Running) -> None:
    """An output nobody subscribes to is not built (the node asks each publisher per frame): after the only
    debug-image reader leaves, frames go on, and a new reader gets debug images."""
    r = running
    probe_node = r.probe.node
    for sub in [s for s in probe_node.subscriptions if s.topic_name == "/petr_node/debug_image"]:
        probe_node.destroy_subscription(sub)
    assert r.probe.spin_until(lambda: probe_node.count_subscribers("/petr_node/debug_image") == 0, 10)
    done = len(r.skeletons)
    assert r.probe.spin_until(lambda: len(r.skeletons) >= done + 2, 20, step=r.publish, period=0.3), r.node.log()
    again = r.probe.collect(Image, "/petr_node/debug_image")
    assert r.probe.spin_until(lambda: bool(again), 20, step=r.publish, period=0.3), r.node.log()
    assert (again[-1].width, again[-1].height) == (r.rgb.shape[1], r.rgb.shape[0])


def test_node_stops_cleanly(running: Running) -> None:  # last: the other tests use the running node
    assert running.node.alive()
    assert running.node.stop() == 0, running.node.log()


def test_node_process_settings_for_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    # What petr_node sets up for its own per-frame cost (docs/node.md "Never blocking"): glibc's malloc recycles
    # image-sized buffers (opt-out PETR_MALLOC_DEFAULT=1), and the executor is rclpy's events executor where it
    # exists (PETR_EXECUTOR=single: the Python one).
    import sys

    from rclpy.executors import SingleThreadedExecutor

    from petr_ros.ros import node as node_module

    monkeypatch.setenv("PETR_MALLOC_DEFAULT", "1")
    assert node_module.tune_malloc() is False
    monkeypatch.delenv("PETR_MALLOC_DEFAULT")
    if sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        assert node_module.tune_malloc() is True
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=conftest.next_domain())
    try:
        monkeypatch.setenv("PETR_EXECUTOR", "single")
        executor = node_module.make_executor(context)
        assert isinstance(executor, SingleThreadedExecutor)
        executor.shutdown()
        monkeypatch.delenv("PETR_EXECUTOR")
        try:
            from rclpy.experimental import EventsExecutor  # noqa: F401 - whether this rclpy has it
        except ImportError:
            pytest.skip("this rclpy has no events executor")
        executor = node_module.make_executor(context)
        assert type(executor).__name__ == "EventsExecutor"  # (rclpy.experimental.EventsExecutor is a factory)
        executor.shutdown()
    finally:
        rclpy.try_shutdown(context=context)
