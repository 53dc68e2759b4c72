"""petr_ros.kinematics against independent references (scipy Rotation) and its own invariants."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from petr_ros import kinematics as K
from petr_ros import skeleton as S

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("PETR_ASSETS", REPO / "assets"))
N_RANDOM = 4000


@pytest.fixture(scope="module")
def rotations() -> Rotation:
    """Random rotations plus the hard cases: identity, tiny angles, half-turns and near half-turns."""
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(60, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([np.zeros(1), 10.0 ** rng.uniform(-12, -3, 19), np.pi - 10.0 ** rng.uniform(-12, -3, 20),
                             np.full(20, np.pi)])
    axes[-3:] = np.eye(3)  # exact half-turns about the coordinate axes (Shepperd's worst case for the trace branch)
    special = Rotation.from_rotvec(axes * angles[:, None])
    return Rotation.concatenate([special, Rotation.random(N_RANDOM, random_state=2)])


def _sample_local_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 17, 3, 3): a random root orientation and bone rotations with joint-frame Euler angles inside the limits."""
    lim = K.JOINT_ANGLE_LIMITS
    angles = rng.uniform(lim[..., 0], lim[..., 1], size=(n, S.NUM_BONES, 3))
    bones = K.JOINT_FRAMES @ K.matrix_from_euler_zyx(angles) @ np.swapaxes(K.JOINT_FRAMES, -1, -2)
    root = Rotation.random(n, random_state=int(rng.integers(1 << 30))).as_matrix()
    return np.concatenate([root[:, None], bones], axis=1)


# --- constants and the Winter model ----------------------------------------------------------------------------
def test_rest_directions_and_winter_fractions_follow_the_design() -> None:
    rest = K.REST_DIRECTIONS
    assert rest.shape == (17, 3)
    np.testing.assert_array_equal(rest[0], 0)
    np.testing.assert_allclose(np.linalg.norm(rest[1:], axis=1), 1)
    for j in (2, 3, 5, 6):
        np.testing.assert_array_equal(rest[j], [0, 1, 0])  # legs down (+y)
    for j in (7, 8, 9, 10):
        np.testing.assert_array_equal(rest[j], [0, -1, 0])  # spine, neck, head up
    for j in (4, 11, 12, 13):
        np.testing.assert_array_equal(rest[j], [1, 0, 0])  # person's left is +x (facing the camera)
    for j in (1, 14, 15, 16):
        np.testing.assert_array_equal(rest[j], [-1, 0, 0])
    assert K.WINTER_FRACTIONS.shape == (16,)
    by_name = dict(zip(S.BONE_NAMES, K.WINTER_FRACTIONS, strict=True))
    assert by_name["left_hip->left_knee"] == 0.245 and by_name["right_knee->right_ankle"] == 0.246
    assert by_name["left_shoulder->left_elbow"] == 0.186 and by_name["right_elbow->right_wrist"] == 0.146
    assert by_name["thorax->left_shoulder"] == 0.129 and by_name["thorax->neck_nose"] == 0.052
    assert by_name["neck_nose->head"] == 0.066 and by_name["pelvis->spine"] == by_name["spine->thorax"] == 0.144
    assert by_name["pelvis->left_hip"] + by_name["pelvis->right_hip"] == pytest.approx(0.191)


def test_winter_bone_lengths_accepts_floats_arrays_and_tensors() -> None:
    np.testing.assert_allclose(K.winter_bone_lengths(2.0), 2.0 * K.WINTER_FRACTIONS)
    heights = np.array([[1.5, 1.6], [1.9, 2.0]])
    assert K.winter_bone_lengths(heights).shape == (2, 2, 16)
    t = K.winter_bone_lengths(torch.tensor([1.5, 1.8], dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (2, 16)
    for bad in (0.0, -1.7, float("nan"), np.array([])):
        with pytest.raises(ValueError, match="height"):
            K.winter_bone_lengths(bad)


def test_winter_rest_pose_is_a_symmetric_t_pose_with_winter_lengths() -> None:
    pose = K.winter_rest_pose(1.8)
    assert pose.shape == (17, 3)
    np.testing.assert_array_equal(pose[0], 0)
    np.testing.assert_allclose(K.bone_lengths(pose), K.winter_bone_lengths(1.8), atol=1e-12)
    np.testing.assert_allclose(S.flip_pose(pose), pose, atol=1e-12)  # mirror-symmetric
    assert pose[3, 1] > 0 > pose[10, 1]  # ankles below (+y), head above (-y)
    np.testing.assert_allclose(pose[:, 2], 0)  # a T-pose in the image plane
    np.testing.assert_allclose(K.joint_rotations(pose), np.broadcast_to(np.eye(3), (17, 3, 3)), atol=1e-15)


def test_bone_vectors_and_lengths_by_hand() -> None:
    joints = np.zeros((17, 3))
    joints[1] = [3.0, 4.0, 0.0]
    joints[2] = [3.0, 4.0, 2.0]
    vec = K.bone_vectors(joints)
    assert vec.shape == (16, 3)
    np.testing.assert_array_equal(vec[0], [3, 4, 0])
    np.testing.assert_array_equal(vec[1], [0, 0, 2])
    np.testing.assert_array_equal(vec[2], [-3, -4, -2])  # right ankle (origin) - right knee
    lengths = K.bone_lengths(np.stack([joints, 2 * joints]))
    assert lengths.shape == (2, 16)
    np.testing.assert_allclose(lengths[:, :3], [[5, 2, math.sqrt(29)], [10, 4, 2 * math.sqrt(29)]])


# --- rotation conversions against scipy ------------------------------------------------------------------------
def test_quaternions_match_scipy(rotations: Rotation) -> None:
    M = rotations.as_matrix()
    ref = rotations.as_quat()
    ref = np.where(ref[:, 3:] < 0, -ref, ref)
    q = K.matrix_to_quaternion(M)
    assert q.shape == (len(rotations), 4)
    assert (q[:, 3] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-15)
    # Same rotation: q == ref up to the sign that w = 0 leaves free.
    sign = np.where((q * ref).sum(1) < 0, -1.0, 1.0)
    np.testing.assert_allclose(q * sign[:, None], ref, atol=1e-12)
    np.testing.assert_allclose(K.quaternion_to_matrix(ref), M, atol=1e-12)
    # quaternion_to_matrix normalises first
    np.testing.assert_allclose(K.quaternion_to_matrix(3.7 * ref), M, atol=1e-12)


def test_axis_angle_matches_scipy_near_zero_and_near_pi(rotations: Rotation) -> None:
    M = rotations.as_matrix()
    rv = rotations.as_rotvec()
    np.testing.assert_allclose(K.axis_angle_to_matrix(rv), M, atol=1e-12)
    out = K.matrix_to_axis_angle(M)
    angle = np.linalg.norm(out, axis=1)
    assert (angle <= np.pi + 1e-12).all()
    # Tiny angles keep full relative precision.
    tiny = np.linalg.norm(rv, axis=1) < 1e-3
    np.testing.assert_allclose(out[tiny], rv[tiny], rtol=1e-9, atol=1e-20)
    # At exactly pi the axis sign is free: compare as rotations.
    np.testing.assert_allclose(Rotation.from_rotvec(out).as_matrix(), M, atol=1e-12)
    not_half_turn = np.abs(np.linalg.norm(rv, axis=1) - np.pi) > 1e-6
    np.testing.assert_allclose(out[not_half_turn], rv[not_half_turn], atol=1e-9)
    q = K.axis_angle_to_quaternion(rv)
    np.testing.assert_allclose(K.quaternion_to_matrix(q), M, atol=1e-12)
    assert (q[:, 3] >= 0).all()
    np.testing.assert_allclose(Rotation.from_rotvec(K.quaternion_to_axis_angle(q)).as_matrix(), M, atol=1e-12)
    # Rotation vectors longer than pi map back to the equivalent short one.
    long = np.array([[0.0, 0.0, 1.5 * np.pi]])
    np.testing.assert_allclose(K.matrix_to_axis_angle(K.axis_angle_to_matrix(long)), [[0, 0, -0.5 * np.pi]], atol=1e-12)


def test_euler_zyx_matches_scipy_and_survives_gimbal_lock(rotations: Rotation) -> None:
    M = rotations.as_matrix()
    e = K.euler_zyx_from_matrix(M)
    np.testing.assert_allclose(K.matrix_from_euler_zyx(e), M, atol=1e-12)
    regular = np.abs(np.abs(e[:, 1]) - np.pi / 2) > 1e-3
    ref = rotations.as_euler("ZYX")  # intrinsic Z-Y-X: R = Rz @ Ry @ Rx, same order (z, y, x)
    diff = np.angle(np.exp(1j * (e[regular] - ref[regular])))  # compare angles modulo 2 pi
    np.testing.assert_allclose(diff, 0, atol=1e-9)
    np.testing.assert_allclose(K.matrix_from_euler_zyx(ref), M, atol=1e-12)
    locked = Rotation.from_euler("ZYX", [[0.3, np.pi / 2, -0.4], [1.1, -np.pi / 2, 0.2]]).as_matrix()
    e_locked = K.euler_zyx_from_matrix(locked)
    np.testing.assert_allclose(np.abs(e_locked[:, 1]), np.pi / 2, atol=1e-7)
    np.testing.assert_allclose(K.matrix_from_euler_zyx(e_locked), locked, atol=1e-7)


def test_rot6d_gram_schmidt_gives_so3_and_round_trips(rotations: Rotation) -> None:
    M = rotations.as_matrix()
    six = K.matrix_to_rot6d(M)
    np.testing.assert_array_equal(six[:, :3], M[:, :, 0])
    np.testing.assert_array_equal(six[:, 3:], M[:, :, 1])
    np.testing.assert_allclose(K.rot6d_to_matrix(six), M, atol=1e-12)
    x = np.random.default_rng(3).normal(scale=5.0, size=(N_RANDOM, 6))
    R = K.rot6d_to_matrix(x)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-12)
    # First column is the normalised first 3-vector; the second lies in the plane of the two 3-vectors.
    np.testing.assert_allclose(R[:, :, 0], x[:, :3] / np.linalg.norm(x[:, :3], axis=1, keepdims=True), atol=1e-12)
    normal = np.cross(x[:, :3], x[:, 3:])
    np.testing.assert_allclose((R[:, :, 1] * normal).sum(1), 0, atol=1e-9)


def test_rot6d_degenerate_input_is_an_error_naming_the_count() -> None:
    good = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    batch = np.array([good, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.0, 2.0, 3.0, 2.0, 4.0, 6.0 + 1e-9], good,
                      [1e-9, 0.0, 0.0, 0.0, 1e3, 0.0], [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\(6, 6\).* 4 degenerate"):
        K.rot6d_to_matrix(batch)
    with pytest.raises(ValueError, match=r"\(6, 6\).* 4 degenerate"):
        K.rot6d_to_matrix(torch.tensor(batch))
    # Relative tolerance: small but well-conditioned input is fine.
    np.testing.assert_allclose(K.rot6d_to_matrix(1e-9 * np.array(good)), np.eye(3), atol=1e-15)


def test_minimal_rotation_maps_a_to_b_by_the_smallest_angle() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2000, 3))
    b = rng.normal(size=(2000, 3))
    b[:20] = -3.0 * a[:20]  # antiparallel: a half-turn
    b[20:40] = -a[20:40] + 1e-9 * rng.normal(size=(20, 3))  # nearly antiparallel
    b[40:60] = 2.0 * a[40:60] + 1e-12 * rng.normal(size=(20, 3))  # (nearly) parallel: (near) identity
    R = K.minimal_rotation(a, b)
    au = a / np.linalg.norm(a, axis=1, keepdims=True)
    bu = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", R, au), bu, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-12)
    angle = np.linalg.norm(Rotation.from_matrix(R).as_rotvec(), axis=1)
    np.testing.assert_allclose(angle, np.arccos(np.clip((au * bu).sum(1), -1, 1)), atol=1e-7)
    # No twist: the rotation axis is perpendicular to both a and b.
    axis = Rotation.from_matrix(R[60:]).as_rotvec()
    np.testing.assert_allclose((axis * au[60:]).sum(1), 0, atol=1e-9)
    # A zero vector gives the identity; shapes broadcast.
    np.testing.assert_array_equal(K.minimal_rotation(np.zeros(3), np.array([0.0, 0.0, 1.0])), np.eye(3))
    assert K.minimal_rotation(np.array([1.0, 0.0, 0.0]), b[:5]).shape == (5, 3, 3)
    with pytest.raises(ValueError, match="broadcast"):
        K.minimal_rotation(a[:3], b[:4])


# --- joint rotations and forward kinematics --------------------------------------------------------------------
def test_round_trip_positions_rotations_fk_on_winter_people() -> None:
    rng = np.random.default_rng(5)
    n = 400
    local = _sample_local_rotations(rng, n)
    heights = rng.uniform(1.5, 2.0, n)
    root = rng.normal(scale=3.0, size=(n, 3))
    joints = K.forward_kinematics(local, K.winter_bone_lengths(heights), root=root, frame="local")
    assert joints.shape == (n, 17, 3)
    np.testing.assert_allclose(joints[:, 0], root)
    np.testing.assert_allclose(K.bone_lengths(joints), K.winter_bone_lengths(heights), atol=1e-12)
    # Global FK with the composed rotations gives the same people.
    glob = [local[:, 0]]
    for j in range(1, 17):
        glob.append(glob[S.PARENTS[j]] @ local[:, j])
    np.testing.assert_allclose(K.forward_kinematics(np.stack(glob, 1), K.winter_bone_lengths(heights), root), joints,
                               atol=1e-12)

    lengths = K.bone_lengths(joints)
    G = K.joint_rotations(joints)
    L = K.joint_rotations(joints, frame="local")
    for R in (G, L):
        np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-12)
        np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(K.forward_kinematics(G, lengths, root=joints[:, 0]), joints, atol=1e-6)
    np.testing.assert_allclose(K.forward_kinematics(L, lengths, root=joints[:, 0], frame="local"), joints, atol=1e-6)
    # local = R_parent^T R_j, L_0 = R_0
    parents = np.array(S.PARENTS[1:])
    np.testing.assert_allclose(L[:, 1:], np.swapaxes(G[:, parents], -1, -2) @ G[:, 1:], atol=1e-12)
    np.testing.assert_allclose(L[:, 0], G[:, 0])
    # Global rotations map the rest direction onto the bone direction.
    unit = K.bone_vectors(joints) / lengths[..., None]
    np.testing.assert_allclose(np.einsum("nbij,bj->nbi", G[:, 1:], K.REST_DIRECTIONS[1:]), unit, atol=1e-12)


def test_root_rotation_is_the_body_frame() -> None:
    pose = K.winter_rest_pose(1.7)
    turn = Rotation.from_euler("xyz", [0.3, -1.2, 2.0]).as_matrix()
    turned = pose @ turn.T + [0.5, -0.2, 4.0]
    G = K.joint_rotations(turned)
    np.testing.assert_allclose(G[0], turn, atol=1e-12)
    # Every global rotation turns with the body; local rotations do not change at all.
    np.testing.assert_allclose(G, np.broadcast_to(turn, G.shape), atol=1e-12)
    np.testing.assert_allclose(K.joint_rotations(turned, "local")[1:], np.broadcast_to(np.eye(3), (16, 3, 3)),
                               atol=1e-12)


def test_local_rotations_do_not_depend_on_where_the_person_stands_or_faces() -> None:
    rng = np.random.default_rng(6)
    joints = K.forward_kinematics(_sample_local_rotations(rng, 50), K.winter_bone_lengths(1.75), frame="local")
    turn = Rotation.random(50, random_state=7).as_matrix()
    moved = np.einsum("nij,nkj->nki", turn, joints) + rng.normal(size=(50, 1, 3))
    local, local_moved = K.joint_rotations(joints, "local"), K.joint_rotations(moved, "local")
    np.testing.assert_allclose(local_moved[:, 1:], local[:, 1:], atol=1e-10)
    np.testing.assert_allclose(local_moved[:, 0], turn @ local[:, 0], atol=1e-10)  # the root carries the heading
    np.testing.assert_allclose(K.joint_rotations(moved), turn[:, None] @ K.joint_rotations(joints), atol=1e-10)


def test_degenerate_poses_still_give_rotations() -> None:
    collapsed = np.zeros((2, 17, 3))
    collapsed[1, 7] = [0.0, -0.3, 0.0]  # only the spine is known
    for frame in ("global", "local"):
        R = K.joint_rotations(collapsed, frame)
        assert np.isfinite(R).all()
        np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-12)
    # ... with finite, bounded gradients (an untrained network may output a collapsed pose).
    t = torch.tensor(collapsed, requires_grad=True)
    K.joint_rotations(t).sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad.abs().max() < 1e3


def test_forward_kinematics_broadcasts_and_checks_its_inputs() -> None:
    rot = np.broadcast_to(np.eye(3), (17, 3, 3))
    out = K.forward_kinematics(rot, K.winter_bone_lengths(np.array([1.6, 1.9])))
    assert out.shape == (2, 17, 3)
    np.testing.assert_allclose(out[1], K.winter_rest_pose(1.9))
    with pytest.raises(ValueError, match=r"lengths must have shape \(\.\.\., 16\), got shape \(17,\)"):
        K.forward_kinematics(rot, np.ones(17))
    with pytest.raises(ValueError, match="frame"):
        K.forward_kinematics(rot, np.ones(16), frame="world")
    with pytest.raises(ValueError, match="frame"):
        K.joint_rotations(out, frame="parent")


# --- torch paths -----------------------------------------------------------------------------------------------
def test_torch_matches_numpy_and_keeps_dtype() -> None:
    rng = np.random.default_rng(8)
    joints = K.forward_kinematics(_sample_local_rotations(rng, 8), K.winter_bone_lengths(1.7), frame="local")
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(joints, dtype=dtype)
        G = K.joint_rotations(t)
        assert isinstance(G, torch.Tensor) and G.dtype == dtype and G.shape == (8, 17, 3, 3)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(G.numpy(), K.joint_rotations(joints), atol=tol)
        back = K.forward_kinematics(G, K.bone_lengths(t), root=t[:, 0])
        assert back.dtype == dtype
        np.testing.assert_allclose(back.numpy(), joints, atol=1e-5 if dtype == torch.float32 else 1e-12)
        q = K.matrix_to_quaternion(G)
        assert q.dtype == dtype and q.shape == (8, 17, 4)
    # numpy float32 stays float32, integers become float64
    assert K.bone_vectors(joints.astype(np.float32)).dtype == np.float32
    assert K.bone_lengths(np.ones((17, 3), dtype=np.int64)).dtype == np.float64


def test_torch_gradients_are_correct() -> None:
    rng = np.random.default_rng(9)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float64, requires_grad=True)

    checks = [
        (K.rot6d_to_matrix, (t(rng.normal(size=(3, 6))),)),
        (K.matrix_to_quaternion, (t(Rotation.random(3, random_state=1).as_matrix()),)),
        (K.quaternion_to_matrix, (t(rng.normal(size=(3, 4))),)),
        (K.axis_angle_to_matrix, (t(np.concatenate([rng.normal(size=(2, 3)), [[1e-5, -2e-5, 0.0]]])),)),
        (K.matrix_to_axis_angle, (t(Rotation.random(3, random_state=2).as_matrix()),)),
        (K.axis_angle_to_quaternion, (t(rng.normal(size=(3, 3))),)),
        (K.euler_zyx_from_matrix, (t(Rotation.random(3, random_state=3).as_matrix()),)),
        (K.matrix_from_euler_zyx, (t(rng.normal(size=(3, 3))),)),
        (K.minimal_rotation, (t(rng.normal(size=(3, 3))), t(rng.normal(size=(3, 3))))),
        (K.joint_rotations, (t(K.winter_rest_pose(1.7) + 0.05 * rng.normal(size=(17, 3))),)),
    ]
    for fn, args in checks:
        assert torch.autograd.gradcheck(fn, args, atol=1e-6, fast_mode=True), fn.__name__
    # Gradients stay finite at the special points (zero rotation vector, identity, antiparallel directions).
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    K.axis_angle_to_matrix(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    a = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    K.minimal_rotation(a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    ident = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_()
    (K.matrix_to_axis_angle(ident).sum() + K.euler_zyx_from_matrix(ident).sum()).backward()
    assert torch.isfinite(ident.grad).all()


# --- joint-angle limits and kinematic-constraint weights -------------------------------------------------------
def test_limits_contain_the_rest_pose_and_follow_the_thesis() -> None:
    lim = K.JOINT_ANGLE_LIMITS
    assert lim.shape == (16, 3, 2)
    assert (lim[..., 0] <= 0).all() and (lim[..., 1] >= 0).all()  # identity (all angles 0) is inside
    assert (lim[..., 0] < lim[..., 1]).all()
    knees = [S.BONE_NAMES.index(f"{s}_knee->{s}_ankle") for s in ("left", "right")]
    elbows = [S.BONE_NAMES.index(f"{s}_elbow->{s}_wrist") for s in ("left", "right")]
    np.testing.assert_allclose(lim[knees, 2], [[0.0, 2.79]] * 2)  # knee flexion, about the joint x axis
    np.testing.assert_allclose(lim[elbows, 2], [[0.0, 2.62]] * 2)  # elbow flexion
    frames = K.JOINT_FRAMES
    np.testing.assert_allclose(frames @ np.swapaxes(frames, 1, 2), np.broadcast_to(np.eye(3), (16, 3, 3)), atol=1e-15)
    np.testing.assert_allclose(np.linalg.det(frames), 1)
    np.testing.assert_allclose(frames[:, :, 1], K.REST_DIRECTIONS[1:])  # joint y axis = the bone's rest direction
    weights, clamped = K.kinematic_constraint_weights(K.joint_rotations(K.winter_rest_pose(), "local")[1:])
    np.testing.assert_array_equal(weights, 1)


def test_in_limit_rotations_weigh_one_and_are_not_changed() -> None:
    local = _sample_local_rotations(np.random.default_rng(10), 300)[:, 1:]
    weights, clamped = K.kinematic_constraint_weights(local)
    assert weights.shape == (300, 16) and clamped.shape == (300, 16, 3, 3)
    np.testing.assert_array_equal(weights, 1)
    np.testing.assert_array_equal(clamped, local)


def _pose_from_joint_angles(angles: dict[str, tuple[float, float, float]], height: float = 1.75) -> np.ndarray:
    """A Winter person whose named bones have the given joint-frame Euler angles (z, y, x); others at rest."""
    local = np.broadcast_to(np.eye(3), (17, 3, 3)).copy()
    for name, zyx in angles.items():
        b = S.BONE_NAMES.index(name)
        local[b + 1] = K.JOINT_FRAMES[b] @ K.matrix_from_euler_zyx(np.array(zyx)) @ K.JOINT_FRAMES[b].T
    return K.forward_kinematics(local, K.winter_bone_lengths(height), frame="local")


def test_people_from_positions_are_in_limits_and_a_backward_knee_is_not() -> None:
    sitting = _pose_from_joint_angles({
        "left_hip->left_knee": (0.1, 0.0, 1.5), "right_hip->right_knee": (-0.1, 0.0, 1.6),
        "left_knee->left_ankle": (0.0, 0.0, 1.5), "right_knee->right_ankle": (0.0, 0.0, 1.4),
        "left_shoulder->left_elbow": (-0.3, 0.0, -1.4), "right_shoulder->right_elbow": (0.3, 0.0, -1.4),
        "left_elbow->left_wrist": (0.0, 0.0, 1.2), "right_elbow->right_wrist": (0.0, 0.0, 0.9),
        "spine->thorax": (0.0, 0.0, 0.3),
    })
    walking = _pose_from_joint_angles({
        "left_hip->left_knee": (0.05, 0.0, 0.45), "right_hip->right_knee": (-0.05, 0.0, -0.3),
        "right_knee->right_ankle": (0.0, 0.0, 0.6), "left_shoulder->left_elbow": (0.3, 0.0, -1.4),
        "right_shoulder->right_elbow": (-0.4, 0.0, -1.45), "left_elbow->left_wrist": (0.0, 0.0, 0.3),
    })
    poses = np.stack([sitting, walking])
    turned = poses @ Rotation.from_euler("y", 2.5).as_matrix().T  # facing away from the camera changes nothing
    for p in (poses, turned):
        weights, _ = K.kinematic_constraint_weights(K.joint_rotations(p, "local")[..., 1:, :, :])
        np.testing.assert_array_equal(weights, 1)

    # Right knee bent backwards: the foot goes forwards (-z, the person faces -z) of a straight thigh.
    bad = K.winter_rest_pose(1.75)
    knee, ankle = S.JOINT_INDEX["right_knee"], S.JOINT_INDEX["right_ankle"]
    calf = np.linalg.norm(bad[ankle] - bad[knee])
    bad[ankle] = bad[knee] + calf * np.array([0.0, math.cos(0.6), -math.sin(0.6)])
    for p in (bad, bad @ Rotation.from_euler("y", 2.5).as_matrix().T):
        local = K.joint_rotations(p, "local")[1:]
        weights, clamped = K.kinematic_constraint_weights(local)
        bone = S.BONE_NAMES.index("right_knee->right_ankle")
        expected = np.ones(16)
        expected[bone] = 2
        np.testing.assert_array_equal(weights, expected)
        np.testing.assert_allclose(K.joint_angles(local)[bone], [0.0, 0.0, -0.6], atol=1e-12)
        # Clamping straightens the knee: the calf lines up with the thigh again.
        straight = K.forward_kinematics(np.concatenate([K.joint_rotations(p, "local")[:1], clamped]),
                                        K.bone_lengths(p), root=p[0], frame="local")
        thigh = straight[knee] - straight[S.PARENTS[knee]]
        shin = straight[ankle] - straight[knee]
        np.testing.assert_allclose(np.cross(thigh, shin), 0, atol=1e-12)
        assert np.dot(thigh, shin) > 0


def test_limits_are_mirror_symmetric() -> None:
    rng = np.random.default_rng(11)
    local = _sample_local_rotations(rng, 200)
    local[:, 1:] = K.JOINT_FRAMES @ K.matrix_from_euler_zyx(rng.uniform(-2.5, 2.5, (200, 16, 3))) @ np.swapaxes(
        K.JOINT_FRAMES, -1, -2
    )  # many violations
    joints = K.forward_kinematics(local, K.winter_bone_lengths(1.7), frame="local")
    w = K.kinematic_constraint_weights(K.joint_rotations(joints, "local")[:, 1:])[0]
    w_mirror = K.kinematic_constraint_weights(K.joint_rotations(S.flip_pose(joints), "local")[:, 1:])[0]
    bone_perm = [S.FLIP_PERMUTATION[c] - 1 for c, _ in S.BONES]
    assert (w > 1).mean() > 0.2
    np.testing.assert_array_equal(w_mirror, w[:, bone_perm])


def test_real_motion_capture_is_mostly_inside_the_limits() -> None:
    """CMU take 01_01 (real human motion, training.cmu's COCO-derived H3.6M joints): every frame in limits."""
    from training.cmu import load_cmu_take

    take = load_cmu_take(ASSETS / "01_01.bvh", frame_step=8, mapping="coco")
    local = K.joint_rotations(take.h36m, "local")[:, 1:]
    weights, _ = K.kinematic_constraint_weights(local)
    assert len(weights) > 300
    assert (weights == 1).mean() > 0.99, (weights > 1).mean(0)


def test_kinematic_constraint_weights_in_torch() -> None:
    local = torch.tensor(_sample_local_rotations(np.random.default_rng(12), 4)[:, 1:], requires_grad=True)
    bent = local.detach().clone()
    bone = S.BONE_NAMES.index("left_elbow->left_wrist")
    C = torch.tensor(K.JOINT_FRAMES[bone])
    bent[1, bone] = C @ K.matrix_from_euler_zyx(torch.tensor([0.0, 0.0, -0.5], dtype=torch.float64)) @ C.T
    weights, clamped = K.kinematic_constraint_weights(torch.cat([local, bent]))
    assert weights.dtype == torch.float64 and weights.shape == (8, 16)
    assert weights[5, bone] == 2 and weights.sum() == 8 * 16 + 1
    clamped.sum().backward()
    assert torch.isfinite(local.grad).all()


# --- bad input -------------------------------------------------------------------------------------------------
BAD_INPUTS = [
    (K.bone_vectors, (17, 3), "joints"),
    (K.bone_lengths, (17, 3), "joints"),
    (K.joint_rotations, (17, 3), "joints"),
    (K.rot6d_to_matrix, (6,), "rot6d"),
    (K.matrix_to_rot6d, (3, 3), "rotations"),
    (K.matrix_to_quaternion, (3, 3), "rotations"),
    (K.quaternion_to_matrix, (4,), "quaternions"),
    (K.quaternion_to_axis_angle, (4,), "quaternions"),
    (K.axis_angle_to_matrix, (3,), "rotation vectors"),
    (K.axis_angle_to_quaternion, (3,), "rotation vectors"),
    (K.matrix_to_axis_angle, (3, 3), "rotations"),
    (K.euler_zyx_from_matrix, (3, 3), "rotations"),
    (K.matrix_from_euler_zyx, (3,), "euler angles"),
    (K.kinematic_constraint_weights, (16, 3, 3), "local_rotations"),
    (K.joint_angles, (16, 3, 3), "local_rotations"),
]


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize(("fn", "tail", "name"), BAD_INPUTS, ids=[f.__name__ for f, _, _ in BAD_INPUTS])
def test_bad_input_is_a_value_error_naming_the_shape(fn, tail, name, as_torch: bool) -> None:
    def arr(shape: tuple[int, ...], fill: float = 1.0) -> np.ndarray | torch.Tensor:
        a = np.full(shape, fill)
        return torch.tensor(a) if as_torch else a

    wrong = (2, *tail[:-1], tail[-1] + 1)
    wrong_txt = ", ".join(map(str, wrong[1:]))
    tail_txt = ", ".join(map(str, tail))
    expected = rf"{name} must have shape \(\.\.\., {tail_txt}\), got shape \(2, {wrong_txt}\)"
    with pytest.raises(ValueError, match=expected):
        fn(arr(wrong))
    empty = (0, *tail)
    with pytest.raises(ValueError, match=rf"{name} is empty \(shape \(0, {', '.join(map(str, tail))}\)\)"):
        fn(arr(empty))
    with_nan = np.zeros((3, *tail))
    with_nan[1].flat[0] = np.nan
    with_nan[2].flat[-1] = np.inf
    with pytest.raises(ValueError, match=rf"{name} \(shape \(3, {', '.join(map(str, tail))}\)\) contains 2 NaN/inf"):
        fn(torch.tensor(with_nan) if as_torch else with_nan)


def test_zero_quaternion_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"quaternions \(shape \(2, 4\)\) has 1 zero quaternion"):
        K.quaternion_to_matrix(np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="zero quaternion"):
        K.quaternion_to_axis_angle(torch.zeros(4))


def _joint_rotations_bone_by_bone(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition joint_rotations batches by tree level, one bone at a time in joint order (the former code):
    R_j = R_parent @ minimal_rotation(rest_j, R_parent^T bone_j), L_j = that swing, R_0 = L_0 = the body frame."""
    rest = torch.tensor(K.REST_DIRECTIONS, dtype=joints.dtype)
    glob = [K._root_frame_t(joints)]
    local = [glob[0]]
    for j in range(1, S.NUM_JOINTS):
        parent_rot = glob[S.PARENTS[j]]
        bone = joints[..., j, :] - joints[..., S.PARENTS[j], :]
        in_parent = (parent_rot.transpose(-1, -2) @ bone[..., None])[..., 0]
        swing = K.minimal_rotation(rest[j].expand_as(in_parent), in_parent)
        local.append(swing)
        glob.append(parent_rot @ swing)
    return torch.stack(glob, dim=-3), torch.stack(local, dim=-3)


def _degenerate_poses(rng: np.random.Generator) -> np.ndarray:
    """(8, 17, 3) poses that hit every branch: zero-length bones, a collapsed pose, bones exactly along and against
    their rest direction (the half-turn branch), straight limbs, hips on the spine line, huge and tiny scales."""
    rest = K.winter_rest_pose()
    poses = [np.zeros((17, 3)), rest.copy(), -rest, rest * 1e-9, rest * 1e6]
    zero_bones = rest + rng.normal(scale=0.05, size=(17, 3))
    zero_bones[5] = zero_bones[4]  # left hip -> left knee of length 0
    zero_bones[13] = zero_bones[12]
    poses.append(zero_bones)
    against = rest.copy()
    against[[12, 13]] = against[11] - (against[[12, 13]] - against[11])  # left arm folded back through the body
    poses.append(against)
    hips_on_spine = rest.copy()
    hips_on_spine[[1, 4]] = hips_on_spine[0] + np.array([[0.0, 0.1, 0.0], [0.0, 0.2, 0.0]])
    poses.append(hips_on_spine)
    return np.stack(poses)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_joint_rotations_match_the_bone_by_bone_definition_exactly(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(11)
    random = rng.normal(scale=0.3, size=(64, 17, 3))
    for poses in (random, _degenerate_poses(rng), random[:6].reshape(2, 3, 17, 3), random[0]):
        joints = torch.tensor(poses, dtype=dtype)
        glob, local = K.joint_rotations(joints), K.joint_rotations(joints, frame="local")
        ref_glob, ref_local = _joint_rotations_bone_by_bone(joints)
        assert glob.shape == ref_glob.shape == (*poses.shape[:-2], 17, 3, 3)
        # the same operations on the same numbers: bit for bit, not just close
        assert torch.equal(glob, ref_glob), (glob - ref_glob).abs().max()
        assert torch.equal(local, ref_local), (local - ref_local).abs().max()
        assert bool(torch.isfinite(glob).all())
    # numpy input runs the numpy twin (test_numpy_twins_match_the_torch_path): float64, equal within rounding
    poses = _degenerate_poses(rng)
    np.testing.assert_allclose(K.joint_rotations(poses), _joint_rotations_bone_by_bone(torch.tensor(poses))[0],
                               rtol=0, atol=1e-12)


def test_numpy_twins_match_the_torch_path() -> None:
    """joint_rotations and matrix_to_quaternion run numpy code for numpy input (the node's per-frame path): the
    torch path's float64 results within rounding, on random, degenerate and nearly folded poses, any batch shape."""
    rng = np.random.default_rng(5)
    rest = K.winter_rest_pose()
    nearly_folded = np.stack([rest] * 4)
    for k, eps in enumerate((1e-5, 1e-7, 1e-9, 0.0)):  # a left arm folded back by up to 1e-5 off its rest line
        nearly_folded[k, 12] = rest[11] - (rest[12] - rest[11]) + np.array([0.0, eps, 0.0])
    for poses in (rng.normal(scale=0.3, size=(500, 17, 3)), _degenerate_poses(rng), nearly_folded,
                  rng.normal(size=(2, 3, 17, 3)), rng.normal(size=(17, 3))):
        for frame in ("global", "local"):
            ours = K.joint_rotations(poses, frame=frame)
            reference = K.joint_rotations(torch.from_numpy(poses), frame=frame).numpy()
            assert isinstance(ours, np.ndarray) and ours.shape == reference.shape
            np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-11)
        rotations = K.joint_rotations(poses)
        np.testing.assert_allclose(K.matrix_to_quaternion(rotations),
                                   K.matrix_to_quaternion(torch.from_numpy(rotations)).numpy(), rtol=0, atol=1e-14)
    # every Shepperd candidate: half-turns about each axis and random rotations
    matrices = np.concatenate([np.diag(d)[None] for d in ((1, 1, 1.0), (1, -1, -1.0), (-1, 1, -1.0), (-1, -1, 1.0))]
                              + [np.asarray(K.axis_angle_to_matrix(rng.normal(size=(300, 3))))])
    np.testing.assert_allclose(K.matrix_to_quaternion(matrices),
                               K.matrix_to_quaternion(torch.from_numpy(matrices)).numpy(), rtol=0, atol=1e-14)
    # float32 in, float32 out (computed in float64); integers give float64
    assert K.joint_rotations(rest.astype(np.float32)).dtype == np.float32
    assert K.matrix_to_quaternion(np.eye(3, dtype=np.int64)).dtype == np.float64


def test_rotation_quaternions_of_products_of_rotations() -> None:
    """The internal quaternions of orthonormal matrices (no renormalisation) are matrix_to_quaternion's, for every
    Shepperd candidate, w >= 0, any batch shape."""
    rng = np.random.default_rng(8)
    matrices = np.concatenate([np.diag(d)[None] for d in ((1, 1, 1.0), (1, -1, -1.0), (-1, 1, -1.0), (-1, -1, 1.0))]
                              + [np.asarray(K.axis_angle_to_matrix(rng.normal(size=(500, 3)) * 2))])
    matrices = matrices @ np.asarray(K.axis_angle_to_matrix(rng.normal(size=(504, 3))))  # products, as the callers'
    np.testing.assert_allclose(K.rotation_quaternions_np(matrices), K.matrix_to_quaternion(matrices), rtol=0,
                               atol=1e-14)
    assert (K.rotation_quaternions_np(matrices)[:, 3] >= 0).all()
    assert K.rotation_quaternions_np(matrices[:6].reshape(2, 3, 3, 3)).shape == (2, 3, 4)


def test_joint_rotations_constants_do_not_break_autograd_after_inference_mode() -> None:
    # the cached constant tensors are made on first use; made under inference_mode they could not be saved for
    # backward by a later training step
    K._constants.cache_clear()
    with torch.inference_mode():
        K.joint_rotations(torch.randn(2, 17, 3, dtype=torch.float64))
    joints = torch.randn(2, 17, 3, dtype=torch.float64, requires_grad=True)
    K.joint_rotations(joints).sum().backward()
    assert joints.grad is not None and bool(torch.isfinite(joints.grad).all())
