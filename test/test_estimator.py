"""PoseEstimator end to end on a real photo: HRNet (random weights) or MediaPipe -> lifter checkpoint -> PersonPose."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from petr_ros import kinematics
from petr_ros.estimator import PersonPose, PoseEstimator, choose_backend
from petr_ros.frontends import Detection2D, KeypointFrontEnd, make_frontend
from petr_ros.model.checkpoint import save_checkpoint
from petr_ros.model.hrnet import HRNetW32
from petr_ros.model.lifter import LifterConfig, build_lifter
from petr_ros.preprocessing import crop_affines, person_boxes_from_keypoints

torch.set_num_threads(1)  # the CI machine has 2 shared cores: 1 thread avoids OpenMP stalls under load
ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    bgr = cv2.imread(str(ASSETS / "messi5.jpg"))
    assert bgr is not None, f"missing asset {ASSETS / 'messi5.jpg'} (run scripts/fetch_assets.sh)"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def hrnet() -> HRNetW32:
    torch.manual_seed(0)
    return HRNetW32().eval()


def _checkpoint(tmp_path_factory: pytest.TempPathFactory, variant: str) -> Path:
    torch.manual_seed(1)
    cfg = LifterConfig(variant=variant)
    return save_checkpoint(tmp_path_factory.mktemp(variant) / "lifter.pt", build_lifter(cfg).state_dict(), cfg,
                           metadata={"note": "random init for tests"})


@pytest.fixture(scope="module")
def petr_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory, "petr")


@pytest.fixture(scope="module")
def pebrt_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory, "pebrt")


def _check_pose(p: PersonPose, width: int, height: int, inside_image: bool = True, inside_box: bool = True) -> None:
    assert p.joints3d.shape == (17, 3) and p.joints3d.dtype == np.float32
    assert p.rotations.shape == (17, 4) and p.rotations.dtype == np.float32
    assert p.keypoints2d.shape == (17, 2) and p.confidences.shape == (17,) and p.box.shape == (4,)
    for arr in (p.joints3d, p.rotations, p.keypoints2d, p.confidences, p.box):
        assert np.isfinite(arr).all()
    np.testing.assert_allclose(p.joints3d[0], 0.0, atol=1e-6)  # root-relative
    np.testing.assert_allclose(np.linalg.norm(p.rotations, axis=-1), 1.0, atol=1e-5)
    assert np.all(p.rotations[:, 3] >= 0)  # w >= 0
    assert np.all((p.confidences >= 0) & (p.confidences <= 1))
    assert p.score == pytest.approx(float(p.confidences.mean()))
    x0, y0, x1, y1 = p.box
    kp = p.keypoints2d
    in_box = (kp[:, 0] >= x0 - 1) & (kp[:, 0] <= x1 + 1) & (kp[:, 1] >= y0 - 1) & (kp[:, 1] <= y1 + 1)
    assert not inside_box or np.all(in_box)
    if inside_image:
        assert np.all((kp >= -0.5) & (kp <= np.array([width, height]) - 0.5))


def test_full_frame_on_a_real_photo(image: np.ndarray, hrnet: HRNetW32, petr_ckpt: Path) -> None:
    est = PoseEstimator(petr_ckpt, backend="auto", hrnet_model=hrnet, device="cpu", precision="auto",
                        frontend_options={"tracking": False})
    assert est.backend_name == "hrnet" and "HRNet module was given" in est.backend_reason
    assert est.device == torch.device("cpu") and est.variant == "petr"
    est.warmup()
    poses = est.estimate(image)
    assert len(poses) == 1
    h, w = image.shape[:2]
    # the full frame is padded to 3:4 (taller than the image), so with random weights a keypoint may fall in the
    # black padding: inside the crop box, which covers the whole image
    _check_pose(poses[0], w, h, inside_image=False)
    x0, y0, x1, y1 = poses[0].box
    assert x0 <= 0 and y0 <= 0 and x1 >= w and y1 >= h
    assert (x1 - x0) / (y1 - y0) == pytest.approx(0.75)
    # PETR rotations follow from the positions
    R = kinematics.quaternion_to_matrix(poses[0].rotations.astype(np.float64))
    rest = np.asarray(kinematics.REST_DIRECTIONS)
    bones = poses[0].joints3d[1:] - poses[0].joints3d[list(kinematics.PARENTS[1:])]
    directions = np.einsum("jab,jb->ja", R[1:], rest[1:])
    np.testing.assert_allclose(directions, bones / np.linalg.norm(bones, axis=-1, keepdims=True), atol=1e-4)
    # deterministic
    again = est.estimate(image)
    np.testing.assert_array_equal(again[0].joints3d, poses[0].joints3d)


def test_boxes_batch_of_three_matches_one_at_a_time(image: np.ndarray, hrnet: HRNetW32, petr_ckpt: Path) -> None:
    est = PoseEstimator(petr_ckpt, backend="hrnet", hrnet_model=hrnet, device="cpu",
                        frontend_options={"decoder": "soft_argmax", "tracking": False})
    # boxes whose padded 3:4 crops stay inside the 548 x 342 image
    boxes = np.array([[150, 80, 230, 260], [300, 100, 360, 240], [420, 150, 470, 280]], dtype=np.float32)
    poses = est.estimate(image, boxes)
    assert len(poses) == 3
    h, w = image.shape[:2]
    for p in poses:
        _check_pose(p, w, h, inside_image=True)
    single = est.estimate(image, boxes[1:2])[0]
    np.testing.assert_allclose(single.keypoints2d, poses[1].keypoints2d, atol=1e-3)
    np.testing.assert_allclose(single.joints3d, poses[1].joints3d, atol=1e-5)
    assert not np.allclose(poses[0].keypoints2d, poses[2].keypoints2d)
    assert est.estimate(image, np.zeros((0, 4), np.float32)) == []


def test_tracking_uses_the_previous_keypoints(image: np.ndarray, hrnet: HRNetW32) -> None:
    fe = make_frontend("hrnet", model=hrnet, device="cpu", tracking=True, min_keypoint_score=0.0)
    (first,) = fe.detect(image, None)
    (second,) = fe.detect(image, None)
    # full frame first, then the padded 3:4 box around the first frame's keypoints
    expected = crop_affines(person_boxes_from_keypoints(first.keypoints[None], first.scores[None], 0.0))[1][0]
    np.testing.assert_allclose(second.box, expected, rtol=1e-5)
    assert not np.allclose(first.box, second.box)
    fe.reset()
    np.testing.assert_allclose(fe.detect(image, None)[0].box, first.box)


def test_pebrt_checkpoint_and_argmax_decoder(image: np.ndarray, hrnet: HRNetW32, pebrt_ckpt: Path) -> None:
    est = PoseEstimator(pebrt_ckpt, backend="hrnet", hrnet_model=hrnet, device="cpu",
                        frontend_options={"decoder": "argmax", "tracking": False})
    assert est.variant == "pebrt"
    boxes = np.array([[150, 80, 230, 260], [300, 100, 360, 240]], dtype=np.float32)
    poses = est.estimate(image, boxes)
    h, w = image.shape[:2]
    for p in poses:
        _check_pose(p, w, h)
        # PEBRT skeletons have the Winter bone lengths of the configured height
        lengths = kinematics.bone_lengths(p.joints3d.astype(np.float64))
        np.testing.assert_allclose(lengths, kinematics.winter_bone_lengths(1.75), atol=1e-5)


def test_random_hrnet_needs_opt_in_and_is_logged(petr_ckpt: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="hrnet_weights"):
        PoseEstimator(petr_ckpt, backend="hrnet", device="cpu")
    with caplog.at_level(logging.WARNING):
        est = PoseEstimator(petr_ckpt, backend="hrnet", device="cpu", allow_random_hrnet=True)
    assert "RANDOM" in est.backend_reason and "RANDOM" in caplog.text


def test_configuration_errors(tmp_path: Path, petr_ckpt: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt.*petr_train"):
        PoseEstimator(tmp_path / "nothing.pt", backend="mediapipe", device="cpu")
    with pytest.raises(ValueError, match="unknown device"):
        PoseEstimator(petr_ckpt, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PoseEstimator(petr_ckpt, device="cuda:0")
        with pytest.raises(ValueError, match="fp16"):
            PoseEstimator(petr_ckpt, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown backend"):
        PoseEstimator(petr_ckpt, backend="openpose", device="cpu")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        PoseEstimator(petr_ckpt, backend="hrnet", hrnet_weights=tmp_path / "missing.pth", device="cpu")
    with pytest.raises(ValueError, match="unknown 2D front end"):
        make_frontend("yolo")
    name, reason = choose_backend("auto", tmp_path / "missing.pth", None)
    assert name == "mediapipe" and "not found" in reason and "missing.pth" in reason


def test_auto_without_weights_runs_mediapipe_on_the_photo(image: np.ndarray, petr_ckpt: Path) -> None:
    est = PoseEstimator(petr_ckpt, device="auto", frontend_options={"static_image_mode": True})
    assert est.backend_name == "mediapipe" and "no HRNet weights" in est.backend_reason
    assert isinstance(est.frontend, KeypointFrontEnd)
    poses = est.estimate(image)
    assert len(poses) >= 1  # a full-body footballer
    h, w = image.shape[:2]
    _check_pose(poses[0], w, h, inside_image=False, inside_box=False)
    assert np.all((poses[0].keypoints2d > -0.1 * w) & (poses[0].keypoints2d < 1.1 * np.array([w, h])))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        est.estimate(image[..., 0])
    est.close()


class _FixedFrontEnd:
    """A user-supplied front end: the protocol is all the estimator needs."""

    name = "fixed"

    def detect(self, image_rgb: np.ndarray, boxes: np.ndarray | None) -> list[Detection2D]:
        rest = kinematics.winter_rest_pose()[:, :2]  # not COCO, but any 17 points exercise the lifting path
        return [Detection2D(keypoints=(rest * 100 + 150).astype(np.float32), scores=np.full(17, 0.8, np.float32),
                            box=np.array([0, 0, 300, 300], np.float32))]


def test_custom_front_end(image: np.ndarray, petr_ckpt: Path) -> None:
    est = PoseEstimator(petr_ckpt, frontend=_FixedFrontEnd(), device="cpu")
    assert est.backend_name == "fixed"
    (pose,) = est.estimate(image)
    _check_pose(pose, *image.shape[1::-1])
    assert pose.score == pytest.approx(0.8)
    # a front end's NaN keypoints drop that person instead of failing the frame
    good = _FixedFrontEnd().detect(image, None)[0]
    bad = Detection2D(keypoints=np.full((17, 2), np.nan), scores=np.ones(17), box=np.zeros(4))
    assert len(est.lift([bad, good])) == 1
    with pytest.raises(ValueError, match=r"Detection2D.keypoints must have shape \(17, 2\)"):
        Detection2D(keypoints=np.zeros((33, 2)), scores=np.ones(17), box=np.zeros(4))
    with pytest.raises(TypeError, match="KeypointFrontEnd"):
        PoseEstimator(petr_ckpt, frontend=object(), device="cpu")


def test_lift_without_rotations_keeps_the_joints_and_the_numpy_lifter_matches_torch() -> None:
    """The pipeline asks for no rotations when its sequence lifter derives them again: same joints, identity
    quaternions. The shipped (sequence) lifter runs as numpy on the CPU: the torch forward's joints."""
    est = PoseEstimator(frontend=_FixedFrontEnd(), device="cpu")
    detections = _FixedFrontEnd().detect(np.zeros((300, 300, 3), np.uint8), None) * 2
    full, bare = est.lift(detections), est.lift(detections, rotations=False)
    for a, b in zip(full, bare, strict=True):
        np.testing.assert_array_equal(a.joints3d, b.joints3d)
        np.testing.assert_array_equal(a.keypoints2d, b.keypoints2d)
        assert b.rotations.shape == (17, 4) and (b.rotations == [0, 0, 0, 1]).all()
        assert not np.allclose(a.rotations, b.rotations)
    assert est._numpy_lifter is not None
    keypoints = np.stack([p.keypoints2d for p in full])
    joints, rotations = est.lift_keypoints(keypoints)
    est._numpy_lifter = None
    torch_joints, torch_rotations = est.lift_keypoints(keypoints)
    np.testing.assert_allclose(joints, torch_joints, rtol=0, atol=2e-5)
    np.testing.assert_allclose(rotations, torch_rotations, rtol=0, atol=1e-3)
    np.testing.assert_allclose(est.lift_joints(keypoints), torch_joints, rtol=0, atol=0)
