"""camera: least-squares root translation, default intrinsics and default-depth placement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petr_ros.camera import (
    DEFAULT_DEPTH_M,
    DEFAULT_FOV_DEG,
    Intrinsics,
    default_focal_length,
    place_skeleton,
    project,
    root_at_depth,
    solve_root_translation,
)
from petr_ros.skeleton import EXTRAPOLATED_JOINTS, NUM_JOINTS

K = Intrinsics(fx=1145.0, fy=1143.8, cx=512.5, cy=515.4, width=1000, height=1002)


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """A root-relative 17-joint body about 1.7 m tall (camera axes: y down), pelvis at the origin."""
    joints = rng.uniform([-0.3, -0.9, -0.2], [0.3, 0.8, 0.2], size=(NUM_JOINTS, 3))
    joints[0] = 0.0
    return joints


@pytest.mark.parametrize("seed", range(5))
def test_translation_recovered_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xyz = _skeleton(rng)
    t_true = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(2.0, 8.0)])
    kp = project(xyz + t_true, K)
    t = solve_root_translation(kp, xyz, K)
    assert t is not None
    np.testing.assert_allclose(t, t_true, atol=1e-9)


def test_noisy_keypoints_and_confidence_weighting() -> None:
    rng = np.random.default_rng(7)
    xyz = _skeleton(rng)
    t_true = np.array([0.4, 0.1, 4.0])
    kp = project(xyz + t_true, K) + rng.normal(0, 1.0, size=(NUM_JOINTS, 2))
    t = solve_root_translation(kp, xyz, K)
    assert np.linalg.norm(t - t_true) < 0.1
    # Three joints wildly off: with zero confidence they are ignored and the answer is as good as before.
    bad = kp.copy()
    bad[[3, 6, 13]] += 300.0
    conf = np.ones(NUM_JOINTS)
    conf[[3, 6, 13]] = 0.0
    t_bad = solve_root_translation(bad, xyz, K)
    t_weighted = solve_root_translation(bad, xyz, K, conf)
    assert np.linalg.norm(t_weighted - t_true) < 0.1
    assert np.linalg.norm(t_bad - t_true) > np.linalg.norm(t_weighted - t_true)


@pytest.mark.parametrize("seed", range(3))
def test_free_and_anchored_fits_agree_on_exact_data(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    xyz = _skeleton(rng)
    t_true = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(2.0, 8.0)])
    kp = project(xyz + t_true, K)
    np.testing.assert_allclose(solve_root_translation(kp, xyz, K, anchor=None), t_true, atol=1e-9)
    np.testing.assert_allclose(solve_root_translation(kp, xyz, K, anchor=0), t_true, atol=1e-9)
    # Any joint can be the anchor: it stays on its ray, the others fix the depth.
    np.testing.assert_allclose(solve_root_translation(kp, xyz, K, anchor=8), t_true, atol=1e-9)


def _root_errors(anchor: int | None, trials: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a lifted shape with 5 cm per-joint errors and 10 % long bones, seen at 2.5-5 m with 1.5 px of 2D noise:
    the root's errors (trials, 3) m, its sideways errors (trials,) m (the true root's distance from the camera ray
    through the solved root) and the solved root's reprojection distance from its keypoint (trials,) px."""
    rng = np.random.default_rng(21)
    errors, sideways, reprojection = [], [], []
    for _ in range(trials):
        xyz = _skeleton(rng)
        t_true = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.3), rng.uniform(2.5, 5.0)])
        kp = project(xyz + t_true, K) + rng.normal(0.0, 1.5, size=(NUM_JOINTS, 2))
        lifted = 1.1 * xyz + rng.normal(0.0, 0.05, size=xyz.shape)
        lifted -= lifted[0]
        t = solve_root_translation(kp, lifted, K, anchor=anchor)
        assert t is not None
        errors.append(t - t_true)
        reprojection.append(np.linalg.norm(project(t, K) - kp[0]))
        ray = t / np.linalg.norm(t)
        sideways.append(np.linalg.norm(t_true - (t_true @ ray) * ray))
    return np.array(errors), np.array(sideways), np.array(reprojection)


def test_anchored_root_is_not_pushed_sideways_by_shape_errors() -> None:
    free, sideways_free, _ = _root_errors(None)
    anchored, sideways_anchored, reprojection = _root_errors(0)
    np.testing.assert_allclose(reprojection, 0.0, atol=1e-6)  # the root is exactly on its keypoint's ray
    # Sideways the anchored root is off by its 2D noise only (1.5 px at <= 5 m: < 1 cm); the free fit by the shape.
    assert sideways_anchored.mean() < 0.01 < sideways_free.mean()
    assert sideways_anchored.mean() < 0.5 * sideways_free.mean()
    # The depth (from the too-large shape: about 10 % far) is no worse than the free fit's.
    assert np.abs(anchored[:, 2]).mean() <= 1.05 * np.abs(free[:, 2]).mean()
    assert np.linalg.norm(anchored, axis=1).mean() < np.linalg.norm(free, axis=1).mean()


def test_unconfident_root_keypoint_falls_back_to_the_free_fit() -> None:
    rng = np.random.default_rng(5)
    xyz = _skeleton(rng)
    kp = project(xyz + [0.3, -0.1, 3.5], K) + rng.normal(0.0, 2.0, size=(NUM_JOINTS, 2))
    conf = np.ones(NUM_JOINTS)
    conf[0] = 0.05  # below min_confidence: the root's keypoint is not trusted
    free = solve_root_translation(kp, xyz, K, conf, anchor=None)
    np.testing.assert_allclose(solve_root_translation(kp, xyz, K, conf), free, atol=1e-12)
    conf[0] = 1.0
    anchored = solve_root_translation(kp, xyz, K, conf)
    assert not np.allclose(anchored, free)
    np.testing.assert_allclose(project(anchored, K), kp[0], atol=1e-6)
    placed, metric = place_skeleton(kp, xyz, K, (1000, 1002), conf)
    assert metric
    measured = conf.copy()
    measured[list(EXTRAPOLATED_JOINTS)] = 0.0  # placement leaves the extrapolated head top out
    np.testing.assert_allclose(placed, xyz + solve_root_translation(kp, xyz, K, measured), atol=1e-12)
    # ...so where its keypoint lies does not matter
    moved = kp.copy()
    moved[list(EXTRAPOLATED_JOINTS)] += 80.0
    np.testing.assert_allclose(place_skeleton(moved, xyz, K, (1000, 1002), conf)[0], placed, atol=1e-12)
    assert not np.allclose(solve_root_translation(moved, xyz, K, conf), anchored)
    with pytest.raises(ValueError, match="confidences"):
        place_skeleton(kp, xyz, K, (1000, 1002), conf[:5])
    with pytest.raises(ValueError, match="anchor"):
        solve_root_translation(kp, xyz, K, anchor=NUM_JOINTS)


def test_anchored_fit_without_depth_information_returns_none() -> None:
    rng = np.random.default_rng(2)
    xyz = _skeleton(rng)
    kp = project(xyz + [0.0, 0.0, 3.0], K)
    # The root and one joint lying on the root's own ray (same pixel, different depth): depth is unobservable.
    xyz[1] = [0.0, 0.0, 0.4]
    kp[1] = kp[0]
    conf = np.zeros(NUM_JOINTS)
    conf[[0, 1]] = 1.0
    assert solve_root_translation(kp, xyz, K, conf) is None


def test_degenerate_cases_return_none() -> None:
    rng = np.random.default_rng(1)
    xyz = _skeleton(rng)
    kp = project(xyz + [0, 0, 3.0], K)
    conf = np.zeros(NUM_JOINTS)
    conf[0] = 1.0
    assert solve_root_translation(kp, xyz, K, conf) is None  # one joint cannot fix three unknowns
    # All keypoints on one pixel with a flat, zero skeleton: depth is unobservable.
    assert solve_root_translation(np.full((NUM_JOINTS, 2), 500.0), np.zeros((NUM_JOINTS, 3)), K) is None
    # A solution behind the camera is refused.
    behind = xyz + [0.1, 0.2, -3.0]  # the exact solution has Tz = -3
    kp_behind = np.stack([K.fx * behind[:, 0] / behind[:, 2] + K.cx, K.fy * behind[:, 1] / behind[:, 2] + K.cy], 1)
    assert solve_root_translation(kp_behind, xyz, K) is None
    with pytest.raises(ValueError, match="keypoints2d must have shape"):
        solve_root_translation(np.zeros((17, 3)), xyz, K)
    with pytest.raises(ValueError, match="NaN"):
        solve_root_translation(np.full((17, 2), np.nan), xyz, K)


def test_default_intrinsics() -> None:
    k = Intrinsics.default(640, 480)
    assert k.cx == pytest.approx(319.5) and k.cy == pytest.approx(239.5)
    # The documented default: a 60 degree horizontal field of view.
    assert 2 * math.degrees(math.atan(320 / k.fx)) == pytest.approx(DEFAULT_FOV_DEG)
    assert default_focal_length(640) == pytest.approx(k.fx)
    assert Intrinsics.default(640, 480, focal_px=800.0).fx == 800.0
    with pytest.raises(ValueError, match="image size"):
        Intrinsics.default(0, 480)


def test_from_camera_info_k() -> None:
    k = Intrinsics.from_k([525.0, 0, 319.5, 0, 525.0, 239.5, 0, 0, 1], 640, 480)
    np.testing.assert_array_equal(k.matrix, [[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
    with pytest.raises(ValueError, match="focal lengths"):
        Intrinsics.from_k([0.0] * 9)  # an uncalibrated CameraInfo has K all zeros
    with pytest.raises(ValueError, match="9 values"):
        Intrinsics.from_k([1.0, 2.0])


def test_place_skeleton_with_and_without_intrinsics() -> None:
    rng = np.random.default_rng(3)
    xyz = _skeleton(rng)
    t_true = np.array([-0.2, 0.3, 5.0])
    kp = project(xyz + t_true, K)
    placed, metric = place_skeleton(kp, xyz, K, (1000, 1002))
    assert metric
    np.testing.assert_allclose(placed, xyz + t_true, atol=1e-9)

    placed, metric = place_skeleton(kp, xyz, None, (1000, 1002))
    assert not metric
    assert placed[0, 2] == pytest.approx(DEFAULT_DEPTH_M)
    # The pelvis sits on the ray through its 2D keypoint under the default intrinsics.
    np.testing.assert_allclose(project(placed[0], Intrinsics.default(1000, 1002)), kp[0], atol=1e-9)
    np.testing.assert_allclose(placed - placed[0], xyz - xyz[0], atol=1e-12)  # shape unchanged

    placed, metric = place_skeleton(kp, xyz, None, (1000, 1002), default_depth=7.5, default_focal_px=900.0)
    assert placed[0, 2] == pytest.approx(7.5)
    np.testing.assert_allclose(project(placed[0], Intrinsics.default(1000, 1002, 900.0)), kp[0], atol=1e-9)


def test_root_at_depth_rejects_bad_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        root_at_depth(np.array([1.0, 2.0]), K, 0.0)


def test_intrinsics_error_refuses_absurd_fields_of_view_and_principal_points() -> None:
    from petr_ros.camera import intrinsics_error

    assert intrinsics_error(Intrinsics(600.0, 600.0, 320.0, 240.0), 640, 480) is None
    assert "horizontal field of view" in intrinsics_error(Intrinsics(1e-9, 600.0, 320.0, 240.0), 640, 480)
    assert "vertical field of view" in intrinsics_error(Intrinsics(600.0, 1e12, 320.0, 240.0), 640, 480)
    assert "principal point" in intrinsics_error(Intrinsics(600.0, 600.0, 5000.0, 240.0), 640, 480)
    with pytest.raises(ValueError, match="finite"):
        Intrinsics(float("nan"), 600.0, 320.0, 240.0)
