"""Rotations from positions with the limbs' twist read off the elbow and knee bend."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros import kinematics, metrics
from petr_ros import limb_twist as lt
from petr_ros.limb_twist import BEND_FULL, rotations_with_limb_twist
from petr_ros.skeleton import BONE_CHILDREN, BONE_PARENTS, PARENTS

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


def _limb_twist_before_the_numpy_rewrite(joints3d: np.ndarray) -> np.ndarray:
    """The definition rotations_with_limb_twist had before its numpy rewrite (torch joint rotations, np.cross,
    einsum, the (I + K + K^2 / (1 + c)) minimal rotation): the reference the rewrite must reproduce."""
    import torch

    from petr_ros import limb_twist as lt

    def unit(v):
        n = np.linalg.norm(v, axis=-1, keepdims=True)
        return np.divide(v, n, out=np.zeros_like(v), where=n > 1e-12)

    def about(axis, angle):
        x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
        zero = np.zeros_like(x)
        k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
        return np.eye(3) + np.sin(angle)[..., None, None] * k + (1 - np.cos(angle))[..., None, None] * (k @ k)

    def minimal(a, b):
        v, c = np.cross(a, b), (a * b).sum(-1)
        x, y, z = v[..., 0], v[..., 1], v[..., 2]
        zero = np.zeros_like(x)
        k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
        out = np.eye(3) + k + (k @ k) / np.maximum(1.0 + c, 1e-9)[..., None, None]
        flipped = c < -0.999
        if flipped.any():
            out[flipped] = kinematics.minimal_rotation(torch.from_numpy(a[flipped].copy()),
                                                       torch.from_numpy(b[flipped].copy())).numpy()
        return out

    joints = np.asarray(joints3d, np.float64)
    rot = kinematics.joint_rotations(torch.from_numpy(joints)).numpy()
    bone = unit(joints[..., lt._PROXIMAL, :] - joints[..., lt._PROXIMAL_PARENT, :])
    child = unit(joints[..., lt._DISTAL, :] - joints[..., lt._PROXIMAL, :])
    along = (child * bone).sum(-1, keepdims=True)
    perp = child - along * bone
    bend = np.arctan2(np.linalg.norm(perp, axis=-1), along[..., 0])
    proximal = rot[..., lt._PROXIMAL, :, :]
    current = np.einsum("...ij,...j->...i", proximal, lt._BEND_REST)
    perp_u = unit(perp)
    twist = np.arctan2((np.cross(current, perp_u) * bone).sum(-1), (current * perp_u).sum(-1))
    proximal = about(bone, twist * np.clip(bend / BEND_FULL, 0.0, 1.0)) @ proximal
    local_dir = np.einsum("...ji,...j->...i", proximal, child)
    swing = minimal(np.broadcast_to(lt._DISTAL_REST, local_dir.shape), local_dir)
    swing[np.linalg.norm(local_dir, axis=-1) <= 1e-12] = np.eye(3)
    rot[..., lt._PROXIMAL, :, :] = proximal
    rot[..., lt._DISTAL, :, :] = proximal @ swing
    return rot


def test_the_numpy_rewrite_reproduces_the_previous_definition() -> None:
    rng = np.random.default_rng(3)
    rest = kinematics.winter_rest_pose(1.7)
    bent = np.stack([_twisted_arm(t, b)[0] for t, b in ((-1.2, 1.2), (0.6, 0.2), (1.5, 2.5))])
    degenerate = np.stack([rest] * 3)
    degenerate[0, 13] = degenerate[0, 12]  # a zero-length forearm
    degenerate[1, 13] = rest[12] - (rest[13] - rest[12])  # a forearm folded back onto the upper arm
    degenerate[2, 3] = rest[2] + np.array([0.0, 0.0, 1e-9])  # an almost zero shank
    for poses in (rng.normal(scale=0.3, size=(400, 17, 3)), bent, degenerate, rest, np.zeros((17, 3)),
                  rng.normal(size=(2, 3, 17, 3))):
        np.testing.assert_allclose(rotations_with_limb_twist(poses), _limb_twist_before_the_numpy_rewrite(poses),
                                   rtol=0, atol=1e-10)
    assert rotations_with_limb_twist(rest.astype(np.float32)).dtype == np.float64


def test_the_fast_path_equals_the_level_by_level_path() -> None:
    """rotations_of_bones (two batched minimal-rotation steps instead of one per tree level) gives the rotations of
    the level-by-level path; degenerate poses (zero-length or folded-back bones) take that path itself."""
    rng = np.random.default_rng(11)
    rest = kinematics.winter_rest_pose(1.7)
    realistic = rest + rng.normal(scale=0.03, size=(300, 17, 3))
    for poses in (realistic, realistic[:1], realistic[:6].reshape(2, 3, 17, 3), realistic[0]):
        vectors = poses.reshape(-1, 17, 3)[:, BONE_CHILDREN] - poses.reshape(-1, 17, 3)[:, BONE_PARENTS]
        units = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
        assert lt.rotations_of_bones(units, vectors[:, 3] - vectors[:, 0]) is not None  # the fast path is taken
        np.testing.assert_allclose(rotations_with_limb_twist(poses), lt._rotations_with_limb_twist_levels(poses),
                                   rtol=0, atol=1e-13)
    wild = rng.normal(scale=0.3, size=(400, 17, 3))  # random joints: bones in every direction
    for pose in wild:
        np.testing.assert_allclose(rotations_with_limb_twist(pose), lt._rotations_with_limb_twist_levels(pose),
                                   rtol=0, atol=1e-9)
    degenerate = np.stack([rest] * 3)
    degenerate[0, 13] = degenerate[0, 12]  # a zero-length forearm
    degenerate[1, 13] = rest[12] - (rest[13] - rest[12])  # a forearm folded back onto the upper arm
    degenerate[2, 4] = rest[1]  # both hips in one place
    for pose in degenerate:
        np.testing.assert_array_equal(rotations_with_limb_twist(pose), lt._rotations_with_limb_twist_levels(pose))
