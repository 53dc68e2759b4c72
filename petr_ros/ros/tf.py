"""TF frames of the people seen: REP-155 `body_<id>` and one frame per joint, published on /tf.

A TF broadcaster is a publisher of `tf2_msgs/TFMessage` on `/tf`. Where `tf2_ros` is importable (a ROS install) its
TransformBroadcaster is used; where it is not (the PyPI wheels), the frames are published on `/tf` directly with
`tf2_msgs/TFMessage` (the real package, or the interface scripts/build_msgs.sh builds from the public definition,
which has the official type hash), with the QoS tf2_ros uses. Either way real tf2 listeners and RViz read them.

Frames (every one a child of the image's `header.frame_id`, the camera optical frame; stamp = the image's):
- `body_<id>`: at the pelvis, REP-155 axes (x forward, y the person's left, z up; petr_ros.body_frame).
- `<joint name>_<id>` for the 17 Human3.6M joints (petr_ros.skeleton.JOINT_NAMES): at the joint, with its global
  rotation in the camera frame (the rotation the skeleton messages carry; no chain of parents to walk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from petr_ros.body_frame import rep155_body_rotation
from petr_ros.skeleton import JOINT_NAMES, NUM_JOINTS, ROOT

TF_TOPIC = "/tf"
# What tf2_ros's TransformBroadcaster offers (DynamicBroadcasterQoS): reliable, volatile, 100 deep.
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


class PersonPose(Protocol):
    person_id: int
    joints3d_camera: np.ndarray  # (17, 3) metres in the camera optical frame
    rotations: np.ndarray  # (17, 4) global joint rotations (x, y, z, w) in the camera frame


class TfUnavailableError(RuntimeError):
    """Neither tf2_ros nor the tf2_msgs interface can be imported; the message says how to get one."""


def body_frame(person_id: int) -> str:
    """REP-155 body frame name of a person."""
    return f"body_{int(person_id)}"


def joint_frame(joint: int, person_id: int) -> str:
    """Per-joint TF frame name: <Human3.6M joint name>_<person id>."""
    return f"{JOINT_NAMES[joint]}_{int(person_id)}"


def _transform(header: Header, child: str, position: Sequence[float], rotation: Sequence[float]) -> TransformStamped:
    t = TransformStamped(header=header, child_frame_id=child)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (float(v) for v in position)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in rotation)
    return t


def person_transforms(header: Header, persons: Sequence[PersonPose]) -> list[TransformStamped]:
    """The TF frames of `persons` (see the module docstring), parent `header.frame_id`, stamp `header.stamp`."""
    out = []
    for person in persons:
        pid = int(person.person_id)
        joints = np.asarray(person.joints3d_camera, np.float64)
        rotations = np.asarray(person.rotations, np.float64)
        out.append(_transform(header, body_frame(pid), joints[ROOT], rep155_body_rotation(rotations[ROOT])))
        out.extend(_transform(header, joint_frame(j, pid), joints[j], rotations[j]) for j in range(NUM_JOINTS))
    return out


class TfBroadcaster:
    """tf2_ros's TransformBroadcaster when tf2_ros imports, else a TFMessage publisher on /tf with its QoS.

    use_tf2_ros: None = when importable; False = never (publish TFMessage directly). `backend` says which is used.
    Raises TfUnavailableError when neither tf2_ros nor tf2_msgs can be imported.
    """

    def __init__(self, node: Node, use_tf2_ros: bool | None = None) -> None:
        self._node = node
        self._broadcaster: Any = None
        self._publisher: Any = None
        if use_tf2_ros is not False:
            try:
                from tf2_ros import TransformBroadcaster
            except ImportError:
                TransformBroadcaster = None  # noqa: N806 - the class, when it imports
            if TransformBroadcaster is not None:
                self._broadcaster = TransformBroadcaster(node)
                self.backend = "tf2_ros"
                return
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError as exc:
            raise TfUnavailableError(
                "publish_tf needs tf2_ros or the tf2_msgs interface, and neither imports here: in a ROS install "
                "install tf2_ros; with the PyPI wheels run scripts/build_msgs.sh (it builds tf2_msgs)") from exc
        self._message = TFMessage
        self._publisher = node.create_publisher(TFMessage, TF_TOPIC, TF_QOS)
        self.backend = "tf2_msgs"

    def send(self, transforms: Sequence[TransformStamped]) -> None:
        if not transforms:
            return
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(list(transforms))
        else:
            self._publisher.publish(self._message(transforms=list(transforms)))

    def send_persons(self, header: Header, persons: Sequence[PersonPose]) -> None:
        self.send(person_transforms(header, persons))

    def destroy(self) -> None:
        if self._publisher is not None:
            self._node.destroy_publisher(self._publisher)
            self._publisher = None
        self._broadcaster = None
