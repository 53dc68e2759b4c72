"""A synthetic Human3.6M look-alike in exactly the VideoPose3D layout (tests, CI, augmentation).

Poses come from Winter's anthropometric model driven by smooth joint angles inside the package's joint-angle
limits (kinematics.JOINT_ANGLE_LIMITS), through kinematics.forward_kinematics; the 17 joints are placed into the
32-joint Human3.6M array at the H3.6M-17 indices (the other 15 copy their parent, as static joints do in the
real data), stood on the floor near the world origin (z up, metres) and seen by the real, published Human3.6M
cameras (with their lens distortion). Optionally each camera's view is rendered as a stick-figure video in the
Human3.6M folder layout (`<subject>/Videos/<action>.<camera id>.mp4`) so `prepare` and image mode run for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from petr_ros import fileio, kinematics, skeleton
from petr_ros.render import draw_skeleton_cv2, person_colours
from training import h36m
from training.cameras import h36m_cameras

# Parents in the raw 32-joint Human3.6M skeleton (unused joints copy their parent's position).
H36M32_PARENTS = (
    -1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30,
)
DEFAULT_ACTIONS: tuple[str, ...] = ("Walking 1", "Waving 1", "Reaching 1", "Squat 1")
# Per action: how far (fraction of each joint's range) and how fast (Hz) the joints move, and the turning speed.
_ACTION_STYLE = {
    "Walking": (0.35, (0.5, 1.2), 0.3),
    "Waving": (0.55, (0.3, 1.0), 0.1),
    "Reaching": (0.6, (0.1, 0.5), 0.15),
    "Squat": (0.45, (0.1, 0.4), 0.05),
}
# Person axes (camera-like: x left, y down, z back) -> Human3.6M world (z up): a proper rotation.
_PERSON_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_SHRINK = 0.9  # stay inside the joint limits by a margin
_RIGID_PELVIS_BONES = (0, 3, 6)  # pelvis -> right hip, pelvis -> left hip, pelvis -> spine


def smooth_joint_angles(
    rng: np.random.Generator, frames: int, fps: float, amplitude: float = 0.5, freq: tuple[float, float] = (0.2, 1.0)
) -> np.ndarray:
    """(F, 16, 3) joint-frame Euler ZYX angles inside JOINT_ANGLE_LIMITS, smooth in time (sums of sinusoids).

    The middle (twist) angle stays 0: twist is not observable from joint positions.
    """
    lo, hi = kinematics.JOINT_ANGLE_LIMITS[..., 0], kinematics.JOINT_ANGLE_LIMITS[..., 1]  # (16, 3)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * _SHRINK
    t = np.arange(frames) / fps
    f = rng.uniform(*freq, (2, skeleton.NUM_BONES, 3))
    phase = rng.uniform(0, 2 * np.pi, (2, skeleton.NUM_BONES, 3))
    offset = rng.uniform(-0.5, 0.5, (skeleton.NUM_BONES, 3))  # each bone's own mean posture
    wave = 0.6 * np.sin(2 * np.pi * f[0] * t[:, None, None] + phase[0])
    wave += 0.4 * np.sin(2 * np.pi * f[1] * t[:, None, None] + phase[1])
    signal = np.clip(offset + amplitude * wave, -1.0, 1.0)
    angles = centre + half * signal
    angles[..., 1] = 0.0
    # The pelvis is rigid: hips and lower spine keep their rest directions in the body frame (the body frame is
    # defined by exactly these bones, so anything else would not read back from positions).
    angles[:, list(_RIGID_PELVIS_BONES)] = 0.0
    return angles


def winter_motion(
    rng: np.random.Generator,
    frames: int,
    fps: float = 50.0,
    height: float = 1.75,
    amplitude: float = 0.5,
    freq: tuple[float, float] = (0.2, 1.0),
    turn_speed: float = 0.2,
) -> np.ndarray:
    """(F, 17, 3) root-relative poses in person axes (x left, y down, z back), metres, from smooth in-limit angles."""
    angles = smooth_joint_angles(rng, frames, fps, amplitude, freq)
    # Each bone's direction in its joint frame after the (z, x) swing, then the minimal (twist-free) rotation from
    # the rest direction onto it: exactly what joint_rotations recovers from the positions, so the generated
    # poses read back with the same in-limit angles.
    frames_c = kinematics.JOINT_FRAMES  # (16, 3, 3)
    direction = kinematics.matrix_from_euler_zyx(angles)[..., :, 1]  # R @ e_y in the joint frame, (F, 16, 3)
    direction = np.einsum("bij,fbj->fbi", frames_c, direction)
    rest = np.broadcast_to(kinematics.REST_DIRECTIONS[1:], direction.shape)
    local = kinematics.minimal_rotation(rest, direction)  # (F, 16, 3, 3)
    # Root: heading about the vertical (person y axis) plus a small lean.
    t = np.arange(frames) / fps
    yaw = rng.uniform(0, 2 * np.pi) + turn_speed * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi)) * 3
    lean = 0.08 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    root_angles = np.stack([lean, yaw, np.zeros_like(yaw)], axis=-1)  # (z, y, x): lean sideways, heading
    root = kinematics.matrix_from_euler_zyx(root_angles)[:, None]
    lengths = kinematics.winter_bone_lengths(height)
    poses = kinematics.forward_kinematics(np.concatenate([root, local], axis=1), lengths, frame="local")
    # A swing of (z, x) read back in Euler ZYX can leave a range by a hair near its edges: clamp once, as
    # joint_rotations sees the pose, so every generated pose is inside the limits.
    local = kinematics.joint_rotations(poses, frame="local")
    _, clamped = kinematics.kinematic_constraint_weights(local[:, 1:])
    return kinematics.forward_kinematics(np.concatenate([local[:, :1], clamped], axis=1), lengths, frame="local")


def to_world(poses: np.ndarray, position: np.ndarray, floor_clearance: float = 0.08) -> np.ndarray:
    """Person-axes poses (F, 17, 3) -> Human3.6M world (z up), feet on the floor, pelvis above `position` (x, y)."""
    world = poses @ _PERSON_TO_WORLD.T
    lowest = world[:, [3, 6], 2].min(axis=1)  # ankles
    world[..., 2] += (floor_clearance - lowest)[:, None]
    world[..., :2] += np.asarray(position, dtype=np.float64)[..., None, :]
    return world


def expand_to_32(poses17: np.ndarray) -> np.ndarray:
    """(F, 17, 3) -> (F, 32, 3) raw Human3.6M layout: the 17 at their indices, the rest copy their parent."""
    out = np.zeros((poses17.shape[0], 32, 3), dtype=np.float64)
    mapped = dict(zip(skeleton.H36M32_TO_17, range(skeleton.NUM_JOINTS), strict=True))
    for j in range(32):
        out[:, j] = poses17[:, mapped[j]] if j in mapped else out[:, H36M32_PARENTS[j]]
    return out


def generate_dataset(
    output: str | os.PathLike,
    subjects: tuple[str, ...] = h36m.TRAIN_SUBJECTS + h36m.TEST_SUBJECTS,
    actions: tuple[str, ...] = DEFAULT_ACTIONS,
    frames: int = 200,
    fps: float = 50.0,
    seed: int = 0,
    videos: bool = False,
    video_scale: float = 0.25,
    video_frames: int | None = None,
) -> dict[str, Path]:
    """Write data_3d_h36m.npz and data_2d_h36m_gt.npz (and optionally stick-figure videos) into `output`.

    Returns the paths: {'data_3d', 'data_2d', 'videos' (folder, when rendered)}.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rng = np.random.default_rng(seed)
    output = Path(output)
    positions_3d: h36m.Poses = {}
    positions_2d: h36m.MultiView = {}
    for subject in subjects:
        cams = h36m_cameras(subject)
        height = rng.uniform(1.55, 1.90)
        positions_3d[subject], positions_2d[subject] = {}, {}
        for action in actions:
            amp, freq, turn = _ACTION_STYLE.get(h36m.action_group(action), (0.5, (0.2, 1.0), 0.2))
            poses = winter_motion(rng, frames, fps, height, amp, freq, turn)
            world17 = to_world(poses, rng.uniform(-0.5, 0.5, 2))
            positions_3d[subject][action] = expand_to_32(world17).astype(np.float32)
            positions_2d[subject][action] = [cam.project_world(world17).astype(np.float32) for cam in cams]
    paths = {"data_3d": output / "data_3d_h36m.npz", "data_2d": output / "data_2d_h36m_gt.npz"}
    h36m.save_positions_3d(paths["data_3d"], positions_3d)
    h36m.save_positions_2d(paths["data_2d"], positions_2d)
    if videos:
        paths["videos"] = output / "videos"
        for subject in subjects:
            for action in actions:
                for cam, kp in zip(h36m_cameras(subject), positions_2d[subject][action], strict=True):
                    video = paths["videos"] / subject / "Videos" / f"{action}.{cam.id}.mp4"
                    render_stick_video(video, kp[:video_frames], cam.res_w, cam.res_h, video_scale, fps)
    return paths


def render_stick_video(
    path: str | os.PathLike, keypoints: np.ndarray, res_w: int, res_h: int, scale: float = 0.25, fps: float = 50.0
) -> None:
    """Draw (F, 17, 2) keypoints (calibration pixels) as a stick figure into an mp4 of res * scale pixels."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = max(2, round(res_w * scale)), max(2, round(res_h * scale))
    colours = {side: tuple(int(255 * c) for c in reversed(rgb)) for side, rgb in person_colours(0).items()}  # BGR
    thickness = max(1, round(6 * scale))
    with fileio.atomic_path(path, suffix=path.suffix) as tmp:  # OpenCV picks the container by the extension
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"cannot open a video writer for {tmp}")
        try:
            for frame_kp in np.asarray(keypoints) * scale:
                img = np.full((h, w, 3), 50, np.uint8)
                draw_skeleton_cv2(img, frame_kp, colours, thickness, antialias=False)
                writer.write(img)
        finally:
            writer.release()
