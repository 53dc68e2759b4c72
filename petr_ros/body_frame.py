"""The REP-155 body frame of a person from the root joint's rotation (pure logic: numpy, no ROS).

REP-155 (ROS4HRI) puts a frame `body_<id>` on each person with REP-103 axes: x forward (where the person faces),
y to the person's left, z up. Our root rotation (kinematics, docs/design.md "Frames") is the body frame x = towards
the left hip, y = spine -> pelvis (down), z = x cross y (backwards), in camera optical axes. So forward = -z_root,
left = x_root, up = -y_root: a fixed change of axes after the root rotation.
"""

from __future__ import annotations

import numpy as np

from petr_ros.kinematics import matrix_to_quaternion, quaternion_to_matrix

# Columns: the REP-155 body axes (forward, left, up) written in the root frame's axes.
REP155_AXES_IN_ROOT: np.ndarray = np.array([[0.0, 1.0, 0.0],
                                            [0.0, 0.0, -1.0],
                                            [-1.0, 0.0, 0.0]])


def rep155_body_rotation(root_rotation: np.ndarray) -> np.ndarray:
    """(..., 4) root joint rotations (x, y, z, w) in the camera frame -> (..., 4) rotations of the REP-155 body
    frame (x forward, y left, z up) in the camera frame, unit, w >= 0."""
    return matrix_to_quaternion(quaternion_to_matrix(np.asarray(root_rotation, np.float64)) @ REP155_AXES_IN_ROOT)
