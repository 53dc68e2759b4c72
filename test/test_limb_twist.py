"""Rotations from positions with the limbs' twist read off the elbow and knee bend."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros import kinematics, metrics
from petr_ros.limb_twist import BEND_FULL, rotations_with_limb_twist
from petr_ros.skeleton import PARENTS

LEFT, FRONT = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])


def _about(axis: np.ndarray, angle: float) -> np.ndarray:
    return np.asarray(kinematics.axis_angle_to_matrix(np.asarray(axis, float) * angle))


def _twisted_arm(twist: float, bend: float) -> tuple[np.ndarray, np.ndarray]:
    """A T-pose whose left upper arm is twisted by `twist` about itself and whose elbow bends by `bend` (towards
    the front in the arm's own frame); returns the joints and the upper arm's true global rotation."""
    joints = kinematics.winter_rest_pose(1.7)
    upper = _about(LEFT, twist)
    forearm = upper @ _about(np.cross(LEFT, FRONT), bend) @ LEFT  # LEFT turned towards FRONT, then twisted
    joints[13] = joints[12] + forearm * np.linalg.norm(joints[13] - joints[12])
    return joints, upper


@pytest.mark.parametrize("twist", [-1.2, -0.4, 0.6, 1.5])
def test_recovers_the_upper_arm_twist_from_a_bent_elbow(twist) -> None:
    joints, upper = _twisted_arm(twist, bend=1.2)
    minimal = kinematics.joint_rotations(joints)
    with_twist = rotations_with_limb_twist(joints)
    assert float(metrics.rotation_error_deg(minimal[12], upper)) == pytest.approx(np.degrees(abs(twist)), abs=1e-6)
    assert float(metrics.rotation_error_deg(with_twist[12], upper)) < 1e-6
    # the forearm's rotation carries its bone from the corrected upper arm, and the bone directions are kept
    rest = kinematics.REST_DIRECTIONS
    for j in range(1, 17):
        bone = joints[j] - joints[PARENTS[j]]
        np.testing.assert_allclose(with_twist[j] @ rest[j], bone / np.linalg.norm(bone), atol=1e-12)
    np.testing.assert_allclose(with_twist @ np.swapaxes(with_twist, -1, -2), np.broadcast_to(np.eye(3), (17, 3, 3)),
                               atol=1e-12)
    assert np.linalg.det(with_twist).min() > 0.999


def test_straight_limbs_keep_the_minimal_twist_and_slight_bends_blend() -> None:
    straight = kinematics.winter_rest_pose(1.7)
    np.testing.assert_allclose(rotations_with_limb_twist(straight), kinematics.joint_rotations(straight), atol=1e-12)
    joints, upper = _twisted_arm(1.0, bend=0.5 * BEND_FULL)  # half the bend that fixes the twist fully
    err = float(metrics.rotation_error_deg(rotations_with_limb_twist(joints)[12], upper))
    assert err == pytest.approx(np.degrees(0.5), abs=1e-6)


def test_batches_and_bad_input() -> None:
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(2, 3, 17, 3))
    out = rotations_with_limb_twist(poses)
    assert out.shape == (2, 3, 17, 3, 3)
    np.testing.assert_allclose(out[1, 2], rotations_with_limb_twist(poses[1, 2]), atol=1e-12)
    with pytest.raises(ValueError, match="17"):
        rotations_with_limb_twist(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="NaN"):
        rotations_with_limb_twist(np.full((17, 3), np.nan))
