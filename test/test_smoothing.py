"""One-Euro smoothing of joints and slerp smoothing of joint rotations, per tracked person."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from petr_ros.estimator import PersonPose
from petr_ros.skeleton import NUM_JOINTS
from petr_ros.smoothing import OneEuroFilter, PoseSmoother, QuaternionOneEuroFilter, quaternion_slerp

FPS = 30.0


def make_pose(joints3d: np.ndarray, rotations: np.ndarray, person_id: int, keypoints2d: np.ndarray) -> PersonPose:
    box = np.array([*keypoints2d.min(0), *keypoints2d.max(0)], np.float32)
    conf = np.ones(NUM_JOINTS, np.float32)
    return PersonPose(joints3d.astype(np.float32), rotations.astype(np.float32), keypoints2d.astype(np.float32),
                      conf, box, 1.0, person_id)


def test_slerp_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    r0, r1 = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    t = rng.uniform(0, 1, 50)
    ours = quaternion_slerp(r0.as_quat(), r1.as_quat(), t)
    theirs = np.stack([Slerp([0, 1], Rotation.concatenate([r0[i], r1[i]]))(t[i]).as_quat() for i in range(50)])
    theirs *= np.where(theirs[:, 3:] < 0, -1, 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert np.all(ours[:, 3] >= 0)
    # Equal inputs and the q / -q ambiguity: no NaN, the same rotation back.
    q = r0.as_quat()
    np.testing.assert_allclose(np.abs(quaternion_slerp(q, -q, 0.3)), np.abs(q), atol=1e-9)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        quaternion_slerp(q[:, :3], q[:, :3], 0.5)


def test_one_euro_reduces_jitter_at_rest_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    times = np.arange(90) / FPS
    # A joint at rest with 1 cm of jitter: the low cutoff applies, jitter drops by more than half.
    still = np.array([0.1, -0.2, 3.0]) + rng.normal(0, 0.01, (90, 1, 3))
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    out = np.stack([filt(x, t, scale=0.01) for x, t in zip(still, times, strict=True)])  # speeds in cm/s
    assert np.abs(np.diff(out[10:], axis=0)).mean() < 0.5 * np.abs(np.diff(still[10:], axis=0)).mean()
    assert np.abs(out[10:] - [0.1, -0.2, 3.0]).max() < 0.02
    # A joint moving at up to 1 m/s (same jitter): the cutoff rises with speed, so the lag stays a few cm,
    # where a fixed 1 Hz low-pass (beta 0) lags about 15 cm.
    truth = np.stack([np.sin(times), np.zeros_like(times), np.full_like(times, 3.0)], axis=1)[:, None, :]
    noisy = truth + rng.normal(0, 0.01, truth.shape)
    errors = {}
    for beta in (0.0, 0.05):
        filt = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.stack([filt(x, t, scale=0.01) for x, t in zip(noisy, times, strict=True)])
        errors[beta] = np.abs(out[15:] - truth[15:]).max()
    assert errors[0.05] < 0.06 and errors[0.0] > 0.1, errors


def test_time_going_back_restarts() -> None:
    filt = OneEuroFilter()
    filt(np.zeros((2, 3)), 1.0)
    filt(np.zeros((2, 3)), 1.1)
    np.testing.assert_array_equal(filt(np.ones((2, 3)), 0.5), np.ones((2, 3)))  # a replayed bag: no smoothing


def test_quaternion_filter_is_unit_and_between() -> None:
    filt = QuaternionOneEuroFilter(min_cutoff=1.0, beta=0.05)
    rest = Rotation.identity(NUM_JOINTS).as_quat()
    turned = Rotation.from_rotvec(np.tile([0.0, 0.0, 0.1], (NUM_JOINTS, 1))).as_quat()  # 0.1 rad about z
    filt(rest, 0.0)
    out = filt(turned, 1.0 / FPS)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-9)
    angle = Rotation.from_quat(out).magnitude()
    assert np.all((angle > 0.005) & (angle < 0.07)), angle  # moved towards the new rotation, not all the way
    np.testing.assert_allclose(Rotation.from_quat(out).as_rotvec()[:, :2], 0.0, atol=1e-9)  # about z only
    for i in range(2, 60):
        out = filt(turned, i / FPS)
    np.testing.assert_allclose(Rotation.from_quat(out).magnitude(), 0.1, atol=1e-4)  # converges


def test_pose_smoother_per_person() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.3, (NUM_JOINTS, 3))
    base_kp = rng.uniform(100, 400, (NUM_JOINTS, 2))
    quats = Rotation.random(NUM_JOINTS, random_state=3).as_quat()
    quats *= np.where(quats[:, 3:] < 0, -1, 1)
    smoother = PoseSmoother()
    jitter_raw, jitter_out = [], []
    prev_raw = prev_out = None
    for i in range(30):
        noise = rng.normal(0, 0.02, base.shape)
        rot_noise = Rotation.from_rotvec(rng.normal(0, 0.05, (NUM_JOINTS, 3)))
        q = (rot_noise * Rotation.from_quat(quats)).as_quat()
        pose = make_pose(base + noise, q, 7, base_kp + rng.normal(0, 2.0, base_kp.shape))
        far = make_pose(base + 1.0, quats, 8, base_kp + 500)  # another person, steady
        untracked = make_pose(base, quats, -1, base_kp)
        out = smoother.update([pose, far, untracked], i / FPS)
        assert [p.person_id for p in out] == [7, 8, -1]
        assert out[2] is untracked  # no id: nothing to filter against
        np.testing.assert_allclose(out[1].joints3d, far.joints3d, atol=1e-6)  # a steady person stays put
        for p in out:
            assert p.joints3d.dtype == np.float32 and p.rotations.shape == (NUM_JOINTS, 4)
            np.testing.assert_allclose(np.linalg.norm(p.rotations, axis=1), 1.0, atol=1e-5)
            assert np.all(p.rotations[:, 3] >= 0)
        if prev_raw is not None:
            jitter_raw.append(np.abs(pose.joints3d - prev_raw).mean())
            jitter_out.append(np.abs(out[0].joints3d - prev_out).mean())
        prev_raw, prev_out = pose.joints3d, out[0].joints3d
    assert np.mean(jitter_out[5:]) < 0.5 * np.mean(jitter_raw[5:])
    # Person 8 disappears: its state is dropped, and it starts afresh (unsmoothed) when it comes back.
    smoother.update([make_pose(base, quats, 7, base_kp)], 31 / FPS)
    back = make_pose(base + 2.0, quats, 8, base_kp + 500)
    np.testing.assert_allclose(smoother.update([back], 32 / FPS)[0].joints3d, back.joints3d, atol=1e-6)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="min_cutoff"):
        PoseSmoother(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        PoseSmoother(beta=-1.0)
    with pytest.raises(ValueError, match="d_cutoff"):
        PoseSmoother(d_cutoff=0.0)
    with pytest.raises(ValueError, match="stamp_s"):
        PoseSmoother().update([], float("nan"))
