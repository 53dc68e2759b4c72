"""Training data: Human3.6M cameras, VideoPose3D npz I/O and validation, the synthetic generator, CMU BVH input,
virtual cameras. Real files, real numbers; no Human3.6M needed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from petr_ros import kinematics, skeleton
from training import h36m
from training.cameras import H36M_SUBJECTS, Camera, h36m_camera, h36m_cameras, look_at_camera
from training.cmu import load_cmu_take
from training.synthetic import expand_to_32, generate_dataset, winter_motion
from training.virtual import DetectorNoise, add_detector_noise, mirror_world, project, random_views, to_camera

ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parent.parent / "assets"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("synth"), subjects=("S1", "S9"), frames=40, seed=3)


def test_h36m_cameras_are_rotations_and_see_the_capture_area() -> None:
    for subject in H36M_SUBJECTS:
        for cam in h36m_cameras(subject):
            r = cam.rotation
            assert np.allclose(r @ r.T, np.eye(3), atol=1e-6) and np.isclose(np.linalg.det(r), 1.0)
            # a standing person at the world origin is in front of every camera and inside its image
            person = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.9], [0.0, 0.0, 1.8]])
            cam_pts = cam.world_to_camera(person)
            assert (cam_pts[:, 2] > 3.0).all()
            uv = cam.project(cam_pts)
            assert ((uv > 0) & (uv < [cam.res_w, cam.res_h])).all()
            # head above feet in the image (y grows downwards)
            assert uv[2, 1] < uv[0, 1]
            assert np.allclose(cam.camera_to_world(cam_pts), person, atol=1e-9)


def test_camera_projection_centre_and_distortion() -> None:
    cam = h36m_camera("S1", 0)
    assert np.allclose(cam.project(np.array([[0.0, 0.0, 4.0]])), [cam.center])
    assert cam.id == "54138969" and cam.res_w == 1000 and cam.res_h == 1002
    off_axis = np.array([[1.0, 0.8, 3.0]])
    # H3.6M lenses have barrel distortion (k1 < 0): distorted points are pulled towards the centre
    d = cam.project(off_axis) - cam.center
    u = cam.project(off_axis, distort=False) - cam.center
    assert np.linalg.norm(d) < np.linalg.norm(u)
    with pytest.raises(ValueError, match="in front of the camera"):
        cam.project(np.array([[0.0, 0.0, -1.0]]))
    with pytest.raises(ValueError, match="S3"):
        h36m_camera("S3", 0)
    view = look_at_camera([0, -4, 1], [0, 0, 1], 1000, 1000, 1000)
    assert np.allclose(view.project_world(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])), [[500, 500], [500, 250]])
    assert isinstance(view, Camera)


def test_synthetic_dataset_has_the_videopose3d_layout(synthetic) -> None:
    with np.load(synthetic["data_3d"], allow_pickle=True) as f:
        pos3d = f["positions_3d"].item()
    with np.load(synthetic["data_2d"], allow_pickle=True) as f:
        pos2d = f["positions_2d"].item()
        meta = f["metadata"].item()
    assert set(pos3d) == {"S1", "S9"} and meta["num_joints"] == 17 and meta["layout_name"] == "h36m"
    world = pos3d["S9"]["Walking 1"]
    assert world.shape == (40, 32, 3) and world.dtype == np.float32
    views = pos2d["S9"]["Walking 1"]
    assert len(views) == 4 and all(v.shape == (40, 17, 2) for v in views)
    # 2D is the projection of the 17 kept joints through the real cameras
    for cam, kp in zip(h36m_cameras("S9"), views, strict=True):
        assert np.allclose(cam.project_world(skeleton.reduce_h36m32(world).astype(np.float64)), kp, atol=0.05)
    # people stand on the floor (z up, metres) with feet near z = 0 and the head above the pelvis
    joints = skeleton.reduce_h36m32(world)
    assert joints[..., 2].min() > 0.0 and (joints[:, 10, 2] > joints[:, 0, 2]).all()


def test_synthetic_poses_are_in_limit_smooth_and_winter_sized() -> None:
    rng = np.random.default_rng(0)
    poses = winter_motion(rng, 300, fps=50.0, height=1.7)
    weights, _ = kinematics.kinematic_constraint_weights(kinematics.joint_rotations(poses, "local")[:, 1:], 1e-3)
    assert (weights == 1).all()
    assert np.allclose(kinematics.bone_lengths(poses), kinematics.winter_bone_lengths(1.7), atol=1e-9)
    assert np.abs(np.diff(poses, axis=0)).max() < 0.1  # < 5 m/s at 50 fps: smooth motion
    full = expand_to_32(poses)
    assert np.array_equal(skeleton.reduce_h36m32(full), poses)


def test_npz_roundtrip_and_samples(synthetic) -> None:
    pos3d = h36m.load_positions_3d(synthetic["data_3d"])
    pos2d, _ = h36m.load_positions_2d(synthetic["data_2d"])
    samples = h36m.build_samples(pos3d, pos2d, ["S9"], stride=4)
    assert len(samples) == 4 * 4 * 10  # actions x cameras x frames/4
    assert np.allclose(samples.joints3d[:, 0], 0.0)  # root-relative
    # the camera-frame target, projected, lands on the 2D input (up to the root offset and lens distortion)
    first = samples.select(np.arange(1))
    assert first.subject[0] == "S9" and first.frame[0] == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d3, d2: d3.pop("S9"), "subject 'S9'"),
        (lambda d3, d2: d2["S9"].pop("Waving 1"), "has no action 'Waving 1'"),
        (lambda d3, d2: d2["S9"]["Walking 1"].pop(), r"\[camera 3\]|has 3 cameras"),
        (lambda d3, d2: d3["S9"].__setitem__("Walking 1", np.zeros((5, 31, 3))), r"'Walking 1'\] must have shape"),
        (lambda d3, d2: d2["S9"]["Squat 1"].__setitem__(1, np.full((40, 17, 2), np.nan)), "NaN"),
    ],
)
def test_malformed_npz_errors_name_the_key(tmp_path, synthetic, mutate, message) -> None:
    with np.load(synthetic["data_3d"], allow_pickle=True) as f:
        d3 = f["positions_3d"].item()
    with np.load(synthetic["data_2d"], allow_pickle=True) as f:
        d2 = f["positions_2d"].item()
    mutate(d3, d2)
    h36m.save_positions_3d(tmp_path / "d3.npz", d3)
    h36m.save_positions_2d(tmp_path / "d2.npz", d2)
    with pytest.raises(ValueError, match=message):
        h36m.load_h36m_samples(tmp_path / "d3.npz", tmp_path / "d2.npz", ["S9"])


def test_missing_files_and_keys_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        h36m.load_positions_3d(tmp_path / "nope.npz")
    np.savez(tmp_path / "wrong.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="missing key 'positions_3d'"):
        h36m.load_positions_3d(tmp_path / "wrong.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="garbage.npz"):
        h36m.load_positions_2d(tmp_path / "garbage.npz")


def test_cmu_take_converts_to_metric_h36m() -> None:
    take = load_cmu_take(ASSETS / "01_01.bvh", height=1.70)
    assert take.h36m.shape == (2752, 17, 3) and take.fps == 120.0
    lengths = kinematics.bone_lengths(take.h36m.astype(np.float64))
    # rigid skeleton: bone lengths constant over the take, left == right, plausible adult sizes
    assert lengths.std(0).max() < 0.02
    for left, right in ((4, 1), (5, 2), (11, 14), (12, 15)):  # thighs, calves, upper/lower arms (bone = child - 1)
        assert abs(lengths[:, left].mean() - lengths[:, right].mean()) < 0.03  # the CMU subject's own asymmetry
    assert 0.35 < lengths[:, 1].mean() < 0.55  # thigh
    # z up: head above the pelvis above the ankles in the first (standing) frame
    first = take.h36m[0]
    assert first[10, 2] > first[0, 2] > first[3, 2]
    direct = load_cmu_take(ASSETS / "01_01.bvh", frame_step=10, mapping="direct")
    assert direct.h36m.shape == (276, 17, 3)


def test_malformed_bvh_is_named() -> None:
    with pytest.raises(ValueError, match="Boxing_Toes.bvh.*3069"):
        load_cmu_take(ASSETS / "Boxing_Toes.bvh")
    with pytest.raises(FileNotFoundError, match="missing.bvh"):
        load_cmu_take(ASSETS / "missing.bvh")


def test_virtual_views_and_detector_noise() -> None:
    rng = np.random.default_rng(1)
    take = load_cmu_take(ASSETS / "01_03.bvh", frame_step=40)
    world = take.h36m.astype(np.float64)
    rot, eye, intr = random_views(world, rng)
    cam = to_camera(world, rot, eye)
    assert (cam[..., 2] > 0.5).all()  # everybody in front of their camera
    assert np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-9)
    kp = project(cam, intr)
    noisy = add_detector_noise(kp, rng, DetectorNoise(sigma=(0.02, 0.02), outlier_prob=0.0), layout="h36m")
    height = np.ptp(kp[..., 1], axis=1)
    rel = np.linalg.norm(noisy - kp, axis=-1).mean(1) / height
    assert 0.01 < rel.mean() < 0.05
    mirrored = mirror_world(world, "h36m")
    assert np.allclose(mirrored[:, 1, 0], -world[:, 4, 0])


def test_virtual_projection_is_the_package_pinhole_per_sample() -> None:
    from petr_ros.camera import Intrinsics
    from petr_ros.camera import project as pinhole

    cam = np.array([[[0.3, -0.2, 4.0], [0.0, 0.0, 2.0]], [[-1.0, 0.5, 5.0], [0.2, 0.1, 3.0]]])
    intr = np.array([[1000.0, 640.0, 480.0], [500.0, 600.0, 400.0]])
    kp = project(cam, intr)
    for n in range(2):
        k = Intrinsics(fx=intr[n, 0], fy=intr[n, 0], cx=intr[n, 1], cy=intr[n, 2])
        assert np.allclose(kp[n], pinhole(cam[n], k), atol=1e-12)
    behind = cam.copy()
    behind[1, 0, 2] = -0.5
    with pytest.raises(ValueError, match="in front of the camera"):
        project(behind, intr)  # never clipped into a plausible-looking pixel


def test_mirror_swaps_the_sides_of_each_layout() -> None:
    from petr_ros import skeleton

    rng = np.random.default_rng(3)
    h36m_pose, coco_pose = rng.normal(size=(2, 4, 17, 3))
    assert np.array_equal(mirror_world(h36m_pose, "h36m"), skeleton.flip_pose(h36m_pose))
    coco = mirror_world(coco_pose, "coco")
    names = skeleton.COCO_JOINT_NAMES
    left_wrist, right_wrist = names.index("left_wrist"), names.index("right_wrist")
    assert np.array_equal(coco[:, left_wrist, 1:], coco_pose[:, right_wrist, 1:])
    assert np.array_equal(coco[:, left_wrist, 0], -coco_pose[:, right_wrist, 0])
    assert np.array_equal(mirror_world(coco, "coco"), coco_pose)


def test_perturbed_limbs_keep_the_body_and_stay_in_limits() -> None:
    from training.virtual import perturb_limbs

    world = load_cmu_take(ASSETS / "01_01.bvh", frame_step=25).h36m.astype(np.float64)
    new = perturb_limbs(world, np.random.default_rng(4), max_angle=1.2)
    assert np.allclose(kinematics.bone_lengths(new), kinematics.bone_lengths(world), atol=1e-9)
    trunk = [0, 1, 4, 7, 8, 9, 10, 11, 14]
    assert np.allclose(new[:, trunk], world[:, trunk], atol=1e-9)
    assert np.linalg.norm(new - world, axis=-1)[:, [3, 6, 13, 16]].mean() > 0.1  # hands and feet moved
    to_cam = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    local = kinematics.joint_rotations(new @ to_cam.T, "local")
    weights, _ = kinematics.kinematic_constraint_weights(local[:, 1:], 1e-3)
    assert (weights == 1).all()
