"""Virtual cameras and detector-like 2D noise: many 2D views of the same 3D motion (lifter training data).

Each pose is seen by its own random pinhole camera (azimuth all round, elevation, distance, focal length,
small roll, the person not always in the image centre), projected to pixels; 2D noise then imitates a real
keypoint detector: per-joint Gaussian jitter proportional to the person's size (larger on wrists and ankles)
plus occasional gross outliers (a wrist put on the wrong limb, a missed ankle). Everything is driven by a
numpy Generator, so a seed reproduces the data exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petr_ros import camera, skeleton
from training.cameras import NORMALISED_IMAGE


@dataclass(frozen=True)
class CameraRanges:
    """Ranges random cameras are drawn from (angles in degrees, distance in metres, focal in pixels)."""

    elevation: tuple[float, float] = (-15.0, 40.0)
    distance: tuple[float, float] = (2.5, 9.0)
    focal: tuple[float, float] = (450.0, 2200.0)
    roll: float = 6.0  # +- degrees of in-plane camera roll
    off_centre: float = 0.35  # +- fraction of the half image the person may sit away from the centre
    image_size: tuple[int, int] = (1280, 960)


@dataclass(frozen=True)
class DetectorNoise:
    """2D noise of a keypoint detector, in fractions of the person's 2D height."""

    sigma: tuple[float, float] = (0.0, 0.035)  # per-sample std drawn uniformly in this range
    outlier_prob: float = 0.02  # per joint
    outlier_size: float = 0.25  # outlier offsets up to this fraction of the height


# Relative detector error per COCO joint (face points are easy, extremities hard).
_COCO_SIGMA_FACTOR = np.array([0.6, 0.6, 0.6, 0.8, 0.8, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.1, 1.1, 1.2, 1.2, 1.5, 1.5])
_H36M_SIGMA_FACTOR = np.array([1.0, 1.1, 1.2, 1.5, 1.1, 1.2, 1.5, 1.0, 0.9, 0.6, 0.8, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5])


def random_views(
    world: np.ndarray, rng: np.random.Generator, ranges: CameraRanges = CameraRanges(), root: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put one random camera in front of each pose.

    world: (N, J, 3) poses in a z-up world, metres; root: the joint the camera aims at.
    Returns (rotation (N, 3, 3) world -> camera rows x/y/z, eye (N, 3), intrinsics (N, 3): focal, cx, cy).
    """
    world = np.asarray(world, dtype=np.float64)
    n = world.shape[0]
    az = rng.uniform(0.0, 2.0 * np.pi, n)
    el = np.radians(rng.uniform(*ranges.elevation, n))
    dist = rng.uniform(*ranges.distance, n)
    focal = np.exp(rng.uniform(np.log(ranges.focal[0]), np.log(ranges.focal[1]), n))
    target = world[:, root]
    eye = target + dist[:, None] * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    z = target - eye
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    down = np.array([0.0, 0.0, -1.0])
    x = np.cross(down, z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    roll = np.radians(rng.uniform(-ranges.roll, ranges.roll, n))[:, None]
    x, y = np.cos(roll) * x + np.sin(roll) * y, -np.sin(roll) * x + np.cos(roll) * y
    rot = np.stack([x, y, z], axis=1)  # rows: camera axes in world coordinates
    w, h = ranges.image_size
    # Aim off-centre by shifting the principal point: the person lands away from the image centre.
    shift = rng.uniform(-ranges.off_centre, ranges.off_centre, (n, 2)) * np.array([w / 2.0, h / 2.0])
    intr = np.stack([focal, w / 2.0 + shift[:, 0], h / 2.0 + shift[:, 1]], axis=-1)
    return rot, eye, intr


def to_camera(world: np.ndarray, rot: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """(N, J, 3) world points -> (N, J, 3) camera frame, using random_views' outputs."""
    return np.einsum("nij,nkj->nki", rot, np.asarray(world, dtype=np.float64) - eye[:, None])


def project(cam: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """(N, J, 3) camera-frame points -> (N, J, 2) pixels through each sample's own pinhole (no distortion).

    The division by z is `camera.project` (unit intrinsics; ValueError for a point at z <= 0), then each
    sample's focal length and principal point from `intr` (N, 3).
    """
    normalised = camera.project(cam, NORMALISED_IMAGE)
    return normalised * intr[:, None, :1] + intr[:, None, 1:]


def add_detector_noise(
    keypoints: np.ndarray, rng: np.random.Generator, noise: DetectorNoise = DetectorNoise(), layout: str = "coco"
) -> np.ndarray:
    """Jitter (N, 17, 2) pixel keypoints like a detector: scaled Gaussian per joint + rare outliers."""
    kp = np.asarray(keypoints, dtype=np.float64)
    n, joints = kp.shape[:2]
    factor = _COCO_SIGMA_FACTOR if layout == "coco" else _H36M_SIGMA_FACTOR
    if factor.shape[0] != joints:
        raise ValueError(f"noise layout {layout!r} has {factor.shape[0]} joints, keypoints have {joints}")
    size = np.ptp(kp[..., 1], axis=1)  # person's 2D height in pixels
    size = np.maximum(size, 0.5 * np.ptp(kp[..., 0], axis=1))  # lying or side-on people: use the width
    sigma = rng.uniform(*noise.sigma, n) * size
    out = kp + rng.standard_normal(kp.shape) * (sigma[:, None] * factor[None, :])[..., None]
    outlier = rng.random((n, joints)) < noise.outlier_prob
    offsets = rng.uniform(-noise.outlier_size, noise.outlier_size, (n, joints, 2)) * size[:, None, None]
    return out + outlier[..., None] * offsets


def mirror_world(points: np.ndarray, layout: str) -> np.ndarray:
    """Mirror (N, 17, 3) world poses left-right (negate world x, swap sides): a new, equally real motion."""
    return skeleton.flip_pose(points, axis=0, layout=layout)


# Limb bones whose parent-relative rotation `perturb_limbs` changes (bone b ends at joint b + 1): thighs, calves,
# upper arms, forearms.
LIMB_BONES: tuple[int, ...] = (1, 2, 4, 5, 11, 12, 14, 15)


def perturb_limbs(
    world: np.ndarray, rng: np.random.Generator, max_angle: float = 1.0, delta: np.ndarray | None = None
) -> np.ndarray:
    """New plausible poses from real ones: each limb's joint angles (sideways swing and flexion, in the joint frames
    of kinematics.JOINT_ANGLE_LIMITS) move by up to `max_angle` radians, clamped into the limits; the bone is put
    on its new direction by the twist-free rotation, so the pose reads back with the same in-limit angles. Bone
    lengths and the trunk stay.

    world: (N, 17, 3) H3.6M-17 poses in a z-up frame. delta: (N, 8, 3) angle changes of LIMB_BONES to use instead
    of uniform draws (e.g. smooth over time, so that a perturbed sequence is still a motion; the middle angle
    is ignored). Returns (N, 17, 3).
    """
    from petr_ros import kinematics

    # joint_rotations works in camera-like axes (y down); rotate the z-up world there and back.
    to_cam = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    poses = np.asarray(world, dtype=np.float64) @ to_cam.T
    root = poses[:, 0]
    lengths = kinematics.bone_lengths(poses)
    local = kinematics.joint_rotations(poses, frame="local")
    angles = kinematics.joint_angles(local[:, 1:])  # (N, 16, 3): z sideways, y middle, x flexion
    limits = kinematics.JOINT_ANGLE_LIMITS
    bones = list(LIMB_BONES)
    if delta is None:
        delta = rng.uniform(-max_angle, max_angle, (len(poses), len(bones), 3))
    elif np.shape(delta) != (len(poses), len(bones), 3):
        raise ValueError(f"delta must have shape {(len(poses), len(bones), 3)}, got {np.shape(delta)}")
    delta = np.array(delta, dtype=np.float64)
    delta[..., 1] = 0.0  # the middle angle is twist-like: not observable, left alone
    new = angles[:, bones] + delta
    margin = 0.05  # radians inside the limits: the twist-free rebuild moves the read-back angles a little
    new = np.clip(new, limits[bones, :, 0] + margin, limits[bones, :, 1] - margin)
    frames = kinematics.JOINT_FRAMES[bones]
    direction = kinematics.matrix_from_euler_zyx(new)[..., :, 1]  # R @ e_y in the joint frame
    direction = np.einsum("bij,nbj->nbi", frames, direction)
    rest = np.broadcast_to(kinematics.REST_DIRECTIONS[[b + 1 for b in bones]], direction.shape)
    local[:, [b + 1 for b in bones]] = kinematics.minimal_rotation(rest, direction)
    poses = kinematics.forward_kinematics(local, lengths, root=root, frame="local")
    # Euler read-back of a twist-free rotation can leave a range near its edges (and near gimbal lock the angles
    # are ill-defined): clamp as read back, and keep the original pose for the rare ones still outside.
    original = np.asarray(world, dtype=np.float64) @ to_cam.T
    for _ in range(2):
        local = kinematics.joint_rotations(poses, frame="local")
        _, clamped = kinematics.kinematic_constraint_weights(local[:, 1:])
        poses = kinematics.forward_kinematics(np.concatenate([local[:, :1], clamped], axis=1), lengths, root=root,
                                              frame="local")
    weights, _ = kinematics.kinematic_constraint_weights(kinematics.joint_rotations(poses, "local")[:, 1:], 1e-3)
    outside = (weights > 1).any(axis=-1)
    poses[outside] = original[outside]
    return poses @ to_cam
