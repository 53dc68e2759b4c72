"""TF without tf2_ros: REP-155 body frames and per-joint frames on /tf as tf2_msgs/TFMessage, received over real DDS
by another process with the official type hash; tf2_ros's broadcaster is preferred where it imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from petr_ros.kinematics import joint_rotations, matrix_to_quaternion, quaternion_to_matrix
from petr_ros.ros.tf import TF_QOS, TfBroadcaster, person_transforms
from petr_ros.skeleton import JOINT_NAMES


def _rest_person(person_id: int, offset: tuple[float, float, float]) -> SimpleNamespace:
    from petr_ros.kinematics import winter_rest_pose

    joints = winter_rest_pose() + np.array(offset)  # a T-pose facing the camera, 3 m in front of it
    rotations = matrix_to_quaternion(joint_rotations(joints))
    return SimpleNamespace(person_id=person_id, joints3d_camera=joints, rotations=rotations)


def _check_frames(transforms: list, persons: list, parent: str) -> None:
    by_child = {t.child_frame_id: t for t in transforms}
    assert len(by_child) == len(transforms) == 18 * len(persons)
    for person in persons:
        pid = person.person_id
        body = by_child[f"body_{pid}"]
        assert body.header.frame_id == parent
        p = body.transform.translation
        np.testing.assert_allclose([p.x, p.y, p.z], person.joints3d_camera[0], atol=1e-9)
        q = body.transform.rotation
        axes = quaternion_to_matrix(np.array([q.x, q.y, q.z, q.w]))
        # REP-155: x forward (this person faces the camera: -z of the optical frame), y the person's left (+x of the
        # image for someone facing us), z up (-y of the optical frame).
        np.testing.assert_allclose(axes[:, 0], [0, 0, -1], atol=1e-9)
        np.testing.assert_allclose(axes[:, 1], [1, 0, 0], atol=1e-9)
        np.testing.assert_allclose(axes[:, 2], [0, -1, 0], atol=1e-9)
        for j, name in enumerate(JOINT_NAMES):
            t = by_child[f"{name}_{pid}"]
            assert t.header.frame_id == parent
            p = t.transform.translation
            np.testing.assert_allclose([p.x, p.y, p.z], person.joints3d_camera[j], atol=1e-9)
            r = t.transform.rotation
            np.testing.assert_allclose([r.x, r.y, r.z, r.w], person.rotations[j], atol=1e-9)


def test_person_transforms_rep155_names_axes_and_parent() -> None:
    persons = [_rest_person(3, (0.0, 0.0, 3.0)), _rest_person(8, (1.0, 0.2, 4.0))]
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = 12
    transforms = person_transforms(header, persons)
    _check_frames(transforms, persons, "camera_color_optical_frame")
    assert {t.header.stamp.sec for t in transforms} == {12}
    assert person_transforms(header, []) == []


PUBLISHER = textwrap.dedent("""
    import sys, time
    from types import SimpleNamespace
    import numpy as np
    import rclpy
    from std_msgs.msg import Header
    from petr_ros.kinematics import joint_rotations, matrix_to_quaternion, winter_rest_pose
    from petr_ros.ros.tf import TfBroadcaster

    rclpy.init()
    node = rclpy.create_node("tf_publisher")
    tf = TfBroadcaster(node)
    print("backend", tf.backend, flush=True)
    joints = winter_rest_pose() + np.array([0.0, 0.0, 3.0])
    rotations = matrix_to_quaternion(joint_rotations(joints))
    person = SimpleNamespace(person_id=5, joints3d_camera=joints, rotations=rotations)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        header = Header(frame_id="camera_optical_frame", stamp=node.get_clock().now().to_msg())
        tf.send_persons(header, [person])
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
""")


def test_tf_over_dds_from_another_process(ros_env: dict[str, str], probe) -> None:
    from rosbags.typesys import Stores, get_typestore

    got: list = []
    probe.node.create_subscription(TFMessage, "/tf", got.append, TF_QOS)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, "60"], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert probe.spin_until(lambda: len(got) >= 3, 60), "no /tf message arrived"
        infos = probe.node.get_publishers_info_by_topic("/tf")
        assert len(infos) == 1 and infos[0].topic_type == "tf2_msgs/msg/TFMessage"
        # The type hash real tf2 / RViz check: the official one (rosbags' Kilted type store computes it
        # independently from the upstream definitions).
        official = get_typestore(Stores.ROS2_KILTED).hash_rihs01("tf2_msgs/msg/TFMessage")
        assert str(infos[0].topic_type_hash) == official
        assert infos[0].qos_profile.reliability == TF_QOS.reliability
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    assert "backend tf2_msgs" in out
    person = _rest_person(5, (0.0, 0.0, 3.0))
    _check_frames(list(got[-1].transforms), [person], "camera_optical_frame")


def test_tf2_ros_broadcaster_is_used_when_it_imports(tmp_path: Path, probe, monkeypatch: pytest.MonkeyPatch) -> None:
    """tf2_ros has no wheel, so a ROS install's is stood in for by a package of the same name that records what it
    is given (the real one would publish it on /tf): TfBroadcaster must choose it over its own publisher."""
    package = tmp_path / "tf2_ros"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        SENT = []

        class TransformBroadcaster:
            def __init__(self, node, qos=None):
                self.node = node

            def sendTransform(self, transforms):
                SENT.append(list(transforms))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tf2_ros", raising=False)
    import tf2_ros

    tf = TfBroadcaster(probe.node)
    assert tf.backend == "tf2_ros"
    person = _rest_person(2, (0.0, 0.0, 2.5))
    tf.send_persons(Header(frame_id="cam"), [person])
    assert len(tf2_ros.SENT) == 1
    _check_frames(tf2_ros.SENT[0], [person], "cam")
    assert not probe.node.get_publishers_info_by_topic("/tf")  # no second publisher of its own
    assert TfBroadcaster(probe.node, use_tf2_ros=False).backend == "tf2_msgs"
    monkeypatch.delitem(sys.modules, "tf2_ros")
