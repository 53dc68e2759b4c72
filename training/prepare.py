"""`prepare`: Human3.6M videos -> person crops around the projected joints + an index, for image-mode training.

Videos are read from ``<videos>/<subject>/Videos/<action>.<camera id>.mp4`` (the dataset's own layout; the
VideoPose3D action names 'Photo'/'WalkDog' are also tried as 'TakingPhoto'/'WalkingDog'). Every `stride`-th
frame is cropped with the same HRNet crop the node uses (petr_ros.preprocessing: a box from the 2D joints,
grown to 3:4 and padded), saved as JPEG, and described in a per-video part file; the index joins the parts.
A video whose part file exists is skipped, so an interrupted run resumes where it stopped. Videos smaller than
the calibration (e.g. downscaled copies) are handled: 2D joints are scaled to the video's size for cropping.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from petr_ros.preprocessing import crop_people, person_boxes_from_keypoints
from training import h36m
from training.cameras import h36m_cameras

_ACTION_ALIASES = {"Photo": "TakingPhoto", "WalkDog": "WalkingDog"}
INDEX_KEYS = ("crop", "subject", "action", "camera", "frame", "affine", "keypoints2d", "joints3d")


def video_path(videos: Path, subject: str, action: str, camera_id: str) -> Path:
    """The video of one subject/action/camera; FileNotFoundError naming every path tried."""
    tried = []
    names = [action]
    group = h36m.action_group(action)
    if group in _ACTION_ALIASES:
        names.append(action.replace(group, _ACTION_ALIASES[group], 1))
    for name in names:
        path = videos / subject / "Videos" / f"{name}.{camera_id}.mp4"
        if path.is_file():
            return path
        tried.append(str(path))
    raise FileNotFoundError(f"video not found: {' or '.join(tried)}")


def _prepare_video(
    video: Path, out_dir: Path, crops_rel: str, keypoints: np.ndarray, joints3d: np.ndarray, res_w: int, stride: int
) -> dict[str, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ValueError(f"{video}: cannot open video")
    (out_dir / crops_rel).mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {k: [] for k in ("crop", "frame", "affine", "keypoints2d", "joints3d")}
    frame_idx = 0
    try:
        while frame_idx < len(keypoints):
            ok, bgr = cap.read()
            if not ok:
                break
            if frame_idx % stride == 0:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                scale = rgb.shape[1] / res_w
                kp = keypoints[frame_idx][None] * scale
                crops, affines, _ = crop_people(rgb, person_boxes_from_keypoints(kp), normalise=False)
                rel = f"{crops_rel}/{frame_idx:06d}.jpg"
                if not cv2.imwrite(str(out_dir / rel), cv2.cvtColor(crops[0], cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {out_dir / rel}")
                affine = affines[0].copy()
                affine[:, :2] *= scale  # image -> crop, for calibration-size pixels
                rows["crop"].append(rel)
                rows["frame"].append(frame_idx)
                rows["affine"].append(affine)
                rows["keypoints2d"].append(keypoints[frame_idx])
                rows["joints3d"].append(joints3d[frame_idx])
            frame_idx += 1
    finally:
        cap.release()
    if not rows["crop"]:
        raise ValueError(f"{video}: no frames could be read")
    return {k: np.asarray(v) for k, v in rows.items()}


def prepare(
    data_3d: str | os.PathLike,
    data_2d: str | os.PathLike,
    videos: str | os.PathLike,
    output: str | os.PathLike,
    subjects: list[str] | tuple[str, ...] = h36m.TRAIN_SUBJECTS + h36m.TEST_SUBJECTS,
    stride: int = 5,
    progress: bool = True,
) -> Path:
    """Crop every `stride`-th frame of each subject's videos; write crops/, parts/ and index.npz under `output`."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    videos, output = Path(videos), Path(output)
    if not videos.is_dir():
        raise FileNotFoundError(f"{videos}: videos folder not found")
    poses_3d = h36m.load_positions_3d(data_3d)
    poses_2d, _ = h36m.load_positions_2d(data_2d)
    missing = [s for s in subjects if s not in poses_3d]
    if missing:
        raise ValueError(f"{data_3d}: subjects {missing} not in positions_3d (has {sorted(poses_3d)})")
    h36m.validate_pair({s: poses_3d[s] for s in subjects}, poses_2d, str(data_3d), str(data_2d))
    jobs = []
    for subject in subjects:
        cams = h36m_cameras(subject)
        for action in poses_3d[subject]:
            for c, cam in enumerate(cams):
                jobs.append((subject, action, c, cam))
    # Check every video exists before hours of work start.
    paths = {(s, a, c): video_path(videos, s, a, cam.id) for s, a, c, cam in jobs}
    from tqdm import tqdm

    parts = []
    for subject, action, c, cam in tqdm(jobs, desc="prepare", disable=not progress):
        part = output / "parts" / subject / f"{action}.{cam.id}.npz"
        parts.append((subject, action, c, part))
        if part.is_file():
            continue  # finished earlier
        world = poses_3d[subject][action]
        cam_poses = h36m.camera_frame_poses(world, subject)[c]
        kp = poses_2d[subject][action][c][: len(world)]
        rows = _prepare_video(paths[(subject, action, c)], output, f"crops/{subject}/{action}.{cam.id}", kp,
                              cam_poses, cam.res_w, stride)
        h36m.atomic_savez(part, **rows)
    index: dict[str, list[np.ndarray]] = {k: [] for k in INDEX_KEYS}
    for subject, action, c, part in parts:
        with np.load(part) as data:
            n = len(data["frame"])
            for key in ("crop", "frame", "affine", "keypoints2d", "joints3d"):
                index[key].append(data[key])
        index["subject"].append(np.full(n, subject))
        index["action"].append(np.full(n, action))
        index["camera"].append(np.full(n, c))
    path = output / "index.npz"
    h36m.atomic_savez(path, **{k: np.concatenate(v) for k, v in index.items()})
    return path


def load_index(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a prepare index, checking its keys (ValueError naming the missing ones)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: index not found (run `petr_train prepare` first)")
    with np.load(path) as data:
        missing = [k for k in INDEX_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: index lacks keys {missing}")
        return {k: data[k] for k in INDEX_KEYS}
