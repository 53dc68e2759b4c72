"""petr_ros.metrics against hand-worked cases and independent computations (scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from petr_ros import kinematics as K
from petr_ros import metrics as M
from petr_ros import skeleton as S

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def poses() -> np.ndarray:
    """(60, 17, 3) person-like poses in millimetres (Winter people with random in-limit joint angles)."""
    rng = np.random.default_rng(0)
    lim = K.JOINT_ANGLE_LIMITS
    local = np.broadcast_to(np.eye(3), (60, 17, 3, 3)).copy()
    local[:, 0] = Rotation.random(60, random_state=1).as_matrix()
    angles = rng.uniform(lim[..., 0], lim[..., 1], size=(60, 16, 3))
    local[:, 1:] = K.JOINT_FRAMES @ K.matrix_from_euler_zyx(angles) @ np.swapaxes(K.JOINT_FRAMES, -1, -2)
    return 1000.0 * K.forward_kinematics(local, K.winter_bone_lengths(rng.uniform(1.5, 2.0, 60)), frame="local")


def _kabsch_similarity_reference(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pose P-MPJPE from scipy: Rotation.align_vectors (proper rotation) and the optimal scale."""
    out = []
    for p, t in zip(pred, target, strict=True):
        p0, t0 = p - p.mean(0), t - t.mean(0)
        rot, _ = Rotation.align_vectors(t0, p0)
        rp = rot.apply(p0)
        s = (t0 * rp).sum() / (rp * rp).sum()
        out.append(np.linalg.norm(s * rp - t0, axis=1).mean())
    return np.array(out)


# --- MPJPE -----------------------------------------------------------------------------------------------------
def test_mpjpe_by_hand() -> None:
    target = np.zeros((1, 3, 3))
    target[0, 1] = [1.0, 0.0, 0.0]
    pred = target.copy()
    pred[0, 1] += [3.0, 4.0, 0.0]  # error 5 on joint 1
    pred[0, 2] += [0.0, 0.0, 2.0]  # error 2 on joint 2
    assert M.mpjpe(pred, target) == pytest.approx(7 / 3)
    np.testing.assert_allclose(M.per_joint_errors(pred, target), [[0.0, 5.0, 2.0]])
    np.testing.assert_allclose(M.mpjpe(pred, target, reduction="none"), [[0.0, 5.0, 2.0]])
    # root=1: joint 1 is the reference: joint 0 now misses by 5, joint 2 by |(0,0,2) - (3,4,0)|
    np.testing.assert_allclose(M.per_joint_errors(pred, target, root=1), [[5.0, 0.0, math.sqrt(29)]])


def test_mpjpe_of_a_10mm_shift(poses: np.ndarray) -> None:
    shifted = poses + np.array([6.0, 0.0, 8.0])
    assert M.mpjpe(shifted, poses, root=None) == pytest.approx(10.0)
    assert M.mpjpe(shifted, poses) == pytest.approx(0.0, abs=1e-9)  # root-aligned: the shift is gone
    assert M.mpjpe(shifted / 1000.0, poses / 1000.0, root=None) == pytest.approx(0.010)  # unit agnostic
    assert isinstance(M.mpjpe(shifted, poses), float)
    # 2D keypoints (pixels) work the same way.
    assert M.mpjpe(poses[..., :2] + [3.0, 4.0], poses[..., :2], root=None) == pytest.approx(5.0)


# --- P-MPJPE ---------------------------------------------------------------------------------------------------
def test_p_mpjpe_is_zero_for_a_similar_copy(poses: np.ndarray) -> None:
    turn = Rotation.random(len(poses), random_state=3).as_matrix()
    scale = np.random.default_rng(4).uniform(0.5, 2.0, (len(poses), 1, 1))
    copy = scale * np.einsum("nij,nkj->nki", turn, poses) + np.random.default_rng(5).normal(0, 500, (len(poses), 1, 3))
    assert M.p_mpjpe(copy, poses) == pytest.approx(0.0, abs=1e-8)
    assert M.mpjpe(copy, poses) > 50.0
    aligned = M.procrustes_align(copy, poses)
    np.testing.assert_allclose(aligned, poses, atol=1e-8)


def test_p_mpjpe_matches_scipy_orthogonal_procrustes(poses: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    pred = 0.9 * np.einsum("ij,nkj->nki", Rotation.random(random_state=7).as_matrix(), poses)
    pred += rng.normal(0, 40.0, pred.shape)
    ours = M.p_mpjpe(pred, poses, reduction="none").mean(1)
    for i in range(len(poses)):
        p0, t0 = pred[i] - pred[i].mean(0), poses[i] - poses[i].mean(0)
        R, sv_sum = orthogonal_procrustes(p0, t0)  # p0 @ R ~ t0, R orthogonal
        assert np.linalg.det(R) > 0  # a real pose with noise: the best orthogonal map is a rotation
        s = sv_sum / (p0 * p0).sum()
        ref = np.linalg.norm(s * p0 @ R - t0, axis=1).mean()
        assert ours[i] == pytest.approx(ref, rel=1e-9)
    np.testing.assert_allclose(ours, _kabsch_similarity_reference(pred, poses), rtol=1e-9)
    assert 0 < M.p_mpjpe(pred, poses) < M.n_mpjpe(pred, poses) < M.mpjpe(pred, poses)


def test_p_mpjpe_never_aligns_with_a_reflection(poses: np.ndarray) -> None:
    mirrored = poses * np.array([-1.0, 1.0, 1.0])  # mirror without swapping left and right: a different pose
    ours = M.p_mpjpe(mirrored, poses, reduction="none").mean(1)
    # An improper (reflecting) alignment would give 0; the proper one keeps an error, equal to scipy's Kabsch.
    _, sv_sum = orthogonal_procrustes(mirrored[0] - mirrored[0].mean(0), poses[0] - poses[0].mean(0))
    assert (ours > 10.0).all()
    np.testing.assert_allclose(ours, _kabsch_similarity_reference(mirrored, poses), rtol=1e-9)
    aligned = M.procrustes_align(mirrored, poses)
    # The alignment it used is a proper rotation: recover it and check its determinant.
    for a, m in zip(aligned[:5], mirrored[:5], strict=True):
        A, *_ = np.linalg.lstsq(np.c_[m, np.ones(17)], a, rcond=None)
        assert np.linalg.det(A[:3]) > 0


def test_n_mpjpe_is_scale_only(poses: np.ndarray) -> None:
    assert M.n_mpjpe(1.7 * poses, poses) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(1.7 * poses, poses) > 100.0
    # Hand-worked: one root-relative joint p = (2, 0, 0), target t = (1, 1, 0): s = <p,t>/<p,p> = 1/2, s p = (1,0,0).
    p = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    t = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    np.testing.assert_allclose(M.n_mpjpe(p, t, reduction="none"), [[0.0, 1.0]])
    # A rotation is not removed by the scale-only alignment.
    turned = np.einsum("ij,nkj->nki", Rotation.from_euler("y", 0.5).as_matrix(), poses)
    assert M.n_mpjpe(turned, poses) > 50.0


# --- MPBVE and rotation errors ---------------------------------------------------------------------------------
def test_mpbve_by_hand(poses: np.ndarray) -> None:
    assert M.mpbve(2.5 * poses + 30.0, poses) == pytest.approx(0.0, abs=1e-12)  # size and place do not matter
    rest = K.winter_rest_pose()
    bent = rest.copy()
    knee, ankle = S.JOINT_INDEX["left_knee"], S.JOINT_INDEX["left_ankle"]
    bent[ankle] = bent[knee] - (rest[ankle] - rest[knee])  # calf reversed: unit vectors differ by 2
    per_bone = M.mpbve(bent, rest, reduction="none")
    expected = np.zeros(16)
    expected[S.BONE_NAMES.index("left_knee->left_ankle")] = 2.0
    np.testing.assert_allclose(per_bone, expected, atol=1e-12)
    assert M.mpbve(bent, rest) == pytest.approx(2.0 / 16)
    bent[ankle] = bent[knee] + np.linalg.norm(rest[ankle] - rest[knee]) * np.array([0.0, 0.0, 1.0])  # 90 degrees
    assert M.mpbve(bent, rest) == pytest.approx(math.sqrt(2) / 16)
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 3\), got shape \(2, 5, 3\)"):
        M.mpbve(np.ones((2, 5, 3)), np.ones((2, 5, 3)))


def test_rotation_errors_match_scipy() -> None:
    a = Rotation.random(3000, random_state=8)
    small = Rotation.from_rotvec(np.random.default_rng(9).normal(size=(3000, 3)) * 1e-7)
    near_half_turn = Rotation.from_rotvec(np.array([[0.0, np.pi - 1e-7, 0.0]] * 1000))
    b = Rotation.concatenate([a[:1000] * small[:1000], a[1000:2000] * Rotation.random(1000, random_state=10),
                              a[2000:] * near_half_turn])  # fmt: skip
    ref = np.rad2deg((a.inv() * b).magnitude())
    ours = M.rotation_error_deg(a.as_matrix(), b.as_matrix(), reduction="none")
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(ours[:1000], ref[:1000], rtol=1e-6)  # precise for tiny angles too
    assert M.rotation_error_deg(a.as_matrix(), a.as_matrix()) == 0.0
    # Mean absolute error of the entries, by hand: Rz(90) vs identity differs in 4 entries by 1.
    rz = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    assert M.rotation_matrix_mae(rz, np.eye(3)) == pytest.approx(4 / 9)
    assert M.rotation_error_deg(rz, np.eye(3)) == pytest.approx(90.0)


# --- breakdowns and evaluate_poses -----------------------------------------------------------------------------
def test_breakdown_by_hand() -> None:
    errors = np.array([[1.0, 3.0], [10.0, 10.0], [5.0, 5.0]])
    assert M.breakdown(errors, ["walk", "sit", "walk"]) == {"sit": 10.0, "walk": 3.5}
    assert M.breakdown(torch.tensor([1.0, 2.0]), [1, 1]) == {"1": 1.5}
    with pytest.raises(ValueError, match=r"shape \(3, 2\) and 2 labels"):
        M.breakdown(errors, ["a", "b"])


def test_evaluate_poses_reports_everything_as_json(poses: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    pred = poses + rng.normal(0, 30.0, poses.shape)
    actions = ["Walking" if i % 3 else "Sitting" for i in range(len(poses))]
    result = M.evaluate_poses(pred, poses, actions=actions, rotations_pred=K.joint_rotations(pred),
                              rotations_true=K.joint_rotations(poses))  # fmt: skip
    text = json.dumps(result)
    assert json.loads(text) == result
    assert result["num_poses"] == 60 and result["num_joints"] == 17
    assert result["mpjpe"] == pytest.approx(M.mpjpe(pred, poses))
    assert result["p_mpjpe"] == pytest.approx(M.p_mpjpe(pred, poses))
    assert result["n_mpjpe"] == pytest.approx(M.n_mpjpe(pred, poses))
    assert result["mpbve"] == pytest.approx(M.mpbve(pred, poses))
    assert result["rotation_error_deg"] == pytest.approx(
        M.rotation_error_deg(K.joint_rotations(pred), K.joint_rotations(poses))
    )
    assert list(result["per_joint"]["mpjpe"]) == list(S.JOINT_NAMES)
    assert list(result["per_joint"]["mpbve"]) == list(S.BONE_NAMES)
    assert result["per_joint"]["mpjpe"]["pelvis"] == 0.0
    np.testing.assert_allclose(list(result["per_joint"]["p_mpjpe"].values()),
                               M.p_mpjpe(pred, poses, reduction="none").mean(0))  # fmt: skip
    walking = np.array([a == "Walking" for a in actions])
    assert result["per_action"]["Walking"]["count"] == 40 and result["per_action"]["Sitting"]["count"] == 20
    assert result["per_action"]["Walking"]["mpjpe"] == pytest.approx(M.mpjpe(pred[walking], poses[walking]))
    assert result["per_action"]["Sitting"]["p_mpjpe"] == pytest.approx(M.p_mpjpe(pred[~walking], poses[~walking]))
    assert result["mean_over_actions"]["mpjpe"] == pytest.approx(
        0.5 * (M.mpjpe(pred[walking], poses[walking]) + M.mpjpe(pred[~walking], poses[~walking]))
    )
    # Torch input (even one that is part of a graph) gives the same report.
    from_torch = M.evaluate_poses(torch.tensor(pred, requires_grad=True), torch.tensor(poses), actions=actions)
    assert from_torch["p_mpjpe"] == pytest.approx(result["p_mpjpe"])
    assert from_torch["per_action"]["Walking"]["mpbve"] == pytest.approx(result["per_action"]["Walking"]["mpbve"])
    # Other joint counts work for the position metrics (MPBVE needs the 17-joint skeleton).
    partial = M.evaluate_poses(pred[:, :5], poses[:, :5])
    assert "mpbve" not in partial and list(partial["per_joint"]["mpjpe"]) == [f"joint_{i}" for i in range(5)]
    with pytest.raises(ValueError, match="one label per pose"):
        M.evaluate_poses(pred, poses, actions=actions[:3])
    with pytest.raises(ValueError, match="both"):
        M.evaluate_poses(pred, poses, rotations_pred=K.joint_rotations(pred))


# --- torch: same values, differentiable ------------------------------------------------------------------------
def test_torch_versions_match_numpy_and_train(poses: np.ndarray) -> None:
    rng = np.random.default_rng(12)
    pred = poses + rng.normal(0, 30.0, poses.shape)
    pt, tt = torch.tensor(pred), torch.tensor(poses)
    for fn in (M.mpjpe, M.n_mpjpe, M.p_mpjpe, M.mpbve):
        value = fn(pt, tt)
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.ndim == 0
        assert float(value) == pytest.approx(fn(pred, poses), rel=1e-10)
    value32 = M.p_mpjpe(pt.float(), tt.float())
    assert value32.dtype == torch.float32 and float(value32) == pytest.approx(M.p_mpjpe(pred, poses), rel=1e-4)
    # Gradients: checked against finite differences on a small batch, and finite for a perfect prediction.
    small_p = torch.tensor(pred[:2] / 1000.0, requires_grad=True)
    small_t = torch.tensor(poses[:2] / 1000.0)
    for fn in (M.mpjpe, M.n_mpjpe, M.p_mpjpe, M.mpbve):
        ok = torch.autograd.gradcheck(lambda x, fn=fn: fn(x, small_t), (small_p,), atol=1e-6, fast_mode=True)
        assert ok, fn.__name__
    perfect = small_t.clone().requires_grad_()
    (M.mpjpe(perfect, small_t) + M.mpbve(perfect, small_t) + M.n_mpjpe(perfect, small_t)).backward()
    assert torch.isfinite(perfect.grad).all()
    # A few optimisation steps of P-MPJPE as a loss reduce it.
    x = torch.tensor(pred[:4] / 1000.0, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.5)
    first = None
    for _ in range(20):
        loss = M.p_mpjpe(x, small_t.new_tensor(poses[:4] / 1000.0))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


# --- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [M.mpjpe, M.n_mpjpe, M.p_mpjpe, M.mpbve, M.per_joint_errors])
@pytest.mark.parametrize("as_torch", [False, True])
def test_bad_input_is_a_value_error_naming_the_shape(fn, as_torch: bool) -> None:
    def arr(a: np.ndarray) -> np.ndarray | torch.Tensor:
        return torch.tensor(a) if as_torch else a

    good = np.zeros((2, 17, 3))
    with pytest.raises(ValueError, match=r"same shape, got \(2, 17, 3\) and \(3, 17, 3\)"):
        fn(arr(good), arr(np.zeros((3, 17, 3))))
    with pytest.raises(ValueError, match=r"got shape \(2, 17, 4\)"):
        fn(arr(np.zeros((2, 17, 4))), arr(np.zeros((2, 17, 4))))
    with pytest.raises(ValueError, match=r"pred is empty \(shape \(0, 17, 3\)\)"):
        fn(arr(np.zeros((0, 17, 3))), arr(np.zeros((0, 17, 3))))
    bad = good.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"target \(shape \(2, 17, 3\)\) contains 1 NaN"):
        fn(arr(good), arr(bad))


def test_rotation_metrics_and_options_check_their_input() -> None:
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        M.rotation_error_deg(np.eye(4)[:, :3], np.eye(4)[:, :3])
    with pytest.raises(ValueError, match="reduction"):
        M.mpjpe(np.ones((1, 17, 3)), np.ones((1, 17, 3)), reduction="sum")
    with pytest.raises(ValueError, match="root 17"):
        M.mpjpe(np.ones((1, 17, 3)), np.ones((1, 17, 3)), root=17)
    with pytest.raises(ValueError, match=r"\(N, J, 3\), got shape \(17, 3\)"):
        M.evaluate_poses(np.ones((17, 3)), np.ones((17, 3)))


# --- Bone directions -------------------------------------------------------------------------------------------
def test_bone_direction_error_by_hand() -> None:
    target = K.winter_rest_pose(1.75)[None]
    pred = target.copy()
    # Left forearm (bone 12: left elbow -> left wrist) turned 90 degrees to point down; everything else exact.
    length = np.linalg.norm(target[0, 13] - target[0, 12])
    pred[0, 13] = pred[0, 12] + [0.0, length, 0.0]
    per_bone = M.bone_direction_error_deg(pred, target, reduction="none")
    assert per_bone.shape == (1, 16)
    assert per_bone[0, 12] == pytest.approx(90.0) and np.delete(per_bone[0], 12).max() == pytest.approx(0.0, abs=1e-6)
    assert M.bone_direction_error_deg(pred, target) == pytest.approx(90.0 / 16)
    # Size does not matter: a scaled copy has no direction error; a reversed bone is 180 degrees.
    assert M.bone_direction_error_deg(2.0 * target, target) == pytest.approx(0.0, abs=1e-6)
    pred[0, 13] = pred[0, 12] - (target[0, 13] - target[0, 12])
    assert M.bone_direction_error_deg(pred, target, reduction="none")[0, 12] == pytest.approx(180.0)


def test_bone_direction_error_is_differentiable() -> None:
    target = torch.tensor(K.winter_rest_pose(1.75))[None]
    pred = (target + 0.01 * torch.randn_like(target)).requires_grad_(True)
    M.bone_direction_error_deg(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# --- Sequence measures -----------------------------------------------------------------------------------------
def _walk(frames: int = 6) -> np.ndarray:
    """A rest pose translated at constant velocity (no acceleration, rigid, symmetric)."""
    rest = K.winter_rest_pose(1.75)
    return np.stack([rest + [0.01 * t, 0.0, 0.02 * t] for t in range(frames)])


def _set_bone_length(poses: np.ndarray, child: int, length: float) -> None:
    """Move joint `child` (a leaf or not: its subtree is not moved) along its bone to get `length`."""
    parent = S.PARENTS[child]
    d = poses[:, child] - poses[:, parent]
    poses[:, child] = poses[:, parent] + length * d / np.linalg.norm(d, axis=-1, keepdims=True)


def test_bone_length_cv_and_asymmetry_by_hand() -> None:
    poses = _walk(4)
    assert np.nanmax(M.bone_length_cv(poses)) == pytest.approx(0.0, abs=1e-12)
    assert M.limb_length_cv(poses) == pytest.approx(0.0, abs=1e-12)
    assert M.left_right_asymmetry(poses) == pytest.approx(0.0, abs=1e-12)
    # Right forearm (joint 16, a leaf) 0.20 / 0.30 m in alternate frames: mean 0.25, std 0.05 -> CV 0.2.
    for t in range(4):
        _set_bone_length(poses[t : t + 1], 16, 0.20 if t % 2 == 0 else 0.30)
    cv = M.bone_length_cv(poses)
    assert cv[15] == pytest.approx(0.2) and np.delete(cv, 15).max() == pytest.approx(0.0, abs=1e-12)
    assert M.limb_length_cv(poses) == pytest.approx(0.2 / 8)
    # Left forearm is Winter's 0.146 * 1.75 = 0.2555 m: |0.2555 - 0.20| / mean and |0.2555 - 0.30| / mean.
    left = 0.146 * 1.75
    expected = np.mean([abs(left - r) / ((left + r) / 2) for r in (0.20, 0.30)]) / 4  # one pair of four differs
    assert M.left_right_asymmetry(poses) == pytest.approx(expected)
    # A missing joint (NaN) removes only the bones it touches in that frame.
    poses[1, 16] = np.nan
    cv = M.bone_length_cv(poses)
    assert cv[15] == pytest.approx(np.std([0.20, 0.20, 0.30]) / np.mean([0.20, 0.20, 0.30]))


def test_acceleration_and_acceleration_error_by_hand() -> None:
    poses = _walk(6)
    assert M.acceleration(poses) == pytest.approx(0.0, abs=1e-12)  # constant velocity
    assert M.acceleration(poses, root=None) == pytest.approx(0.0, abs=1e-12)
    # The left wrist moves as x = t^2 / 2 (relative to the pelvis): acceleration 1 per frame^2 for 1 joint of 17.
    accel = poses.copy()
    accel[:, 13, 0] += 0.5 * np.arange(6) ** 2
    assert M.acceleration(accel) == pytest.approx(1.0 / 17)
    # Jitter of +-e on one joint: second difference e - 2(-e) + e = 4e in every frame.
    jitter = poses.copy()
    jitter[:, 5, 1] += 0.003 * (-1.0) ** np.arange(6)
    assert M.acceleration_error(jitter, poses) == pytest.approx(4 * 0.003 / 17)
    # A constant offset or a constant-velocity drift of the whole body is no acceleration error.
    drift = poses + np.arange(6)[:, None, None] * np.array([0.1, 0.0, 0.0])
    assert M.acceleration_error(drift + 1.0, poses, root=None) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="T >= 3"):
        M.acceleration(poses[:2])
    with pytest.raises(ValueError, match="same shape"):
        M.acceleration_error(poses[:5], poses)


def test_joint_limit_violations_by_hand() -> None:
    rest = _walk(3)
    assert M.joint_limit_violations(rest) == 0.0
    # Bend the left knee backwards (hyperextension, 40 degrees: the shank points forward of the straight line):
    # one of 16 bones outside the limits in each frame.
    bent = rest.copy()
    knee, ankle = bent[:, 5], bent[:, 6]
    length = np.linalg.norm(ankle - knee, axis=-1, keepdims=True)
    a = np.radians(40.0)
    bent[:, 6] = knee + length * np.array([0.0, np.cos(a), np.sin(a)])  # forward of the person is -z
    bent_forward = bent.copy()
    bent_forward[:, 6] = knee + length * np.array([0.0, np.cos(a), -np.sin(a)])
    assert M.joint_limit_violations(bent) == 0.0  # heel towards the back (+z): a normal knee bend
    assert M.joint_limit_violations(bent_forward) == pytest.approx(1 / 16)
    # Intrinsic: the same bodies seen from any camera (turned, shifted) give the same share.
    turn = Rotation.random(random_state=7).as_matrix()
    assert M.joint_limit_violations(bent_forward @ turn.T + 3.0) == pytest.approx(1 / 16)
    assert M.joint_limit_violations(np.concatenate([rest, bent_forward])) == pytest.approx(0.5 / 16)
