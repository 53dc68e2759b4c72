"""Human3.6M in the VideoPose3D npz layout: read, validate, write, and turn into training samples.

Layout (what the public preparation scripts produce and many methods consume):

- ``data_3d_h36m.npz``: key ``positions_3d`` -> dict subject -> dict action -> (F, 32, 3) float world
  positions in metres (z up).
- ``data_2d_h36m_<name>.npz``: key ``positions_2d`` -> dict subject -> dict action -> list over the 4 cameras of
  (F, 17, 2) pixels (H3.6M-17 order), and key ``metadata`` -> dict with ``layout_name``, ``num_joints``,
  ``keypoints_symmetry``. 2D from a detector may have a few frames more than the 3D; they are trimmed.
- Predictions of any method (what ``evaluate`` scores): key ``positions_3d`` -> dict subject -> dict action ->
  list over the 4 cameras of (F, 17, 3) metres in that camera's frame (x right, y down, z forward); only
  root-relative shape is scored.

Errors name the file, key, subject, action and camera that is missing or malformed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petr_ros import fileio, skeleton
from training.cameras import NUM_H36M_CAMERAS, h36m_cameras

TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
METADATA_2D = {
    "layout_name": "h36m",
    "num_joints": skeleton.NUM_JOINTS,
    "keypoints_symmetry": [list(skeleton.LEFT_JOINTS), list(skeleton.RIGHT_JOINTS)],
}

Poses = dict[str, dict[str, np.ndarray]]
MultiView = dict[str, dict[str, list[np.ndarray]]]


def action_group(action: str) -> str:
    """'Walking 1' -> 'Walking', 'SittingDown 2' -> 'SittingDown': the name results are grouped by."""
    return action.split(" ")[0]


def atomic_savez(path: str | os.PathLike, **arrays: object) -> None:
    """np.savez_compressed written atomically (petr_ros.fileio): never a half-written file."""
    with fileio.atomic_path(path, suffix=".npz") as tmp:  # np.savez appends .npz to names without it
        np.savez_compressed(tmp, **arrays)


def _load_npz_key(path: str | os.PathLike, key: str) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # npz files are zip archives; never unpickle anything else
            raise ValueError(f"{path}: not an npz file (no zip header)")
    try:
        with np.load(path, allow_pickle=True) as npz:
            if key not in npz.files:
                raise ValueError(f"{path}: missing key {key!r} (keys: {', '.join(npz.files) or 'none'})")
            value = npz[key]
    except (zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a readable npz file ({exc})") from exc
    if value.dtype == object and value.shape == ():
        return value.item()
    return value


def _check_nested(obj: object, path: Path, key: str) -> dict:
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: {key!r} must be a non-empty dict subject -> dict action -> data, got {type(obj)}")
    for subject, actions in obj.items():
        if not isinstance(actions, dict) or not actions:
            raise ValueError(f"{path}: {key}[{subject!r}] must be a non-empty dict action -> data")
    return obj


def _check_array(arr: object, where: str, joints: tuple[int, ...], dims: int) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[1] not in joints or arr.shape[2] != dims or arr.shape[0] == 0:
        want = "|".join(str(j) for j in joints)
        raise ValueError(f"{where} must have shape (F>0, {want}, {dims}), got {arr.shape}")
    if arr.dtype.kind not in "fi":
        raise ValueError(f"{where} must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where} contains {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr.astype(np.float32, copy=False)


def load_positions_3d(path: str | os.PathLike) -> Poses:
    """Read and validate ``positions_3d`` (F, 32, 3) world metres per subject/action (17 joints also accepted)."""
    path = Path(path)
    data = _check_nested(_load_npz_key(path, "positions_3d"), path, "positions_3d")
    return {
        subject: {
            action: _check_array(arr, f"{path}: positions_3d[{subject!r}][{action!r}]", (32, 17), 3)
            for action, arr in actions.items()
        }
        for subject, actions in data.items()
    }


def _check_multiview(data: dict, path: Path, key: str, dims: int) -> MultiView:
    out: MultiView = {}
    for subject, actions in data.items():
        out[subject] = {}
        for action, views in actions.items():
            where = f"{path}: {key}[{subject!r}][{action!r}]"
            if not isinstance(views, list | tuple) or len(views) == 0:
                raise ValueError(f"{where} must be a list over cameras of arrays, got {type(views).__name__}")
            out[subject][action] = [
                _check_array(v, f"{where}[camera {c}]", (skeleton.NUM_JOINTS,), dims) for c, v in enumerate(views)
            ]
    return out


def _side_joints(names: tuple[str, ...]) -> list[list[int]]:
    """[left joint indices, right joint indices] of a layout, from its joint names."""
    return [[i for i, n in enumerate(names) if n.startswith(side)] for side in ("left_", "right_")]


# The 2D layouts VideoPose3D-format files declare (metadata layout_name) and their left/right joints
# (metadata keypoints_symmetry): Human3.6M order as is, or COCO-17 (Detectron detections), converted on reading.
LAYOUT_SYMMETRY: dict[str, list[list[int]]] = {
    "h36m": [list(skeleton.LEFT_JOINTS), list(skeleton.RIGHT_JOINTS)],
    "coco": _side_joints(skeleton.COCO_JOINT_NAMES),
}


def layout_of(metadata: dict, path: str | os.PathLike) -> str:
    """The checked 2D layout of a file's metadata ('h36m' or 'coco'); ValueError naming what does not fit."""
    name = metadata.get("layout_name")
    if name is None:
        raise ValueError(
            f"{path}: metadata has no layout_name, so the joint order is unknown; VideoPose3D files say 'h36m' "
            f"(Human3.6M order) or 'coco' (COCO-17, e.g. Detectron detections)"
        )
    name = str(name).lower()
    if name not in LAYOUT_SYMMETRY:
        raise ValueError(
            f"{path}: metadata layout_name {name!r} is not supported; use {sorted(LAYOUT_SYMMETRY)} "
            "(convert other detectors' keypoints to COCO-17 or Human3.6M-17 order first)"
        )
    symmetry = metadata.get("keypoints_symmetry")
    if symmetry is not None:
        try:
            sides = [sorted(int(i) for i in side) for side in symmetry]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: metadata keypoints_symmetry {symmetry!r} is not two lists of joints") from exc
        if sides != [sorted(side) for side in LAYOUT_SYMMETRY[name]]:
            raise ValueError(
                f"{path}: metadata keypoints_symmetry {sides} (left, right) does not match the {name!r} layout's "
                f"{LAYOUT_SYMMETRY[name]}: the joint order is not what layout_name says"
            )
    return name


def load_positions_2d(path: str | os.PathLike) -> tuple[MultiView, dict]:
    """Read and validate ``positions_2d`` (list over cameras of (F, 17, 2) pixels) and ``metadata``.

    The keypoints come back in Human3.6M-17 order: a file in the COCO layout (metadata ``layout_name`` 'coco')
    is converted with `skeleton.coco_to_h36m`, the node's own conversion; other layouts are refused.
    """
    path = Path(path)
    data = _check_nested(_load_npz_key(path, "positions_2d"), path, "positions_2d")
    metadata = _load_npz_key(path, "metadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: 'metadata' must be a dict, got {type(metadata).__name__}")
    joints = metadata.get("num_joints", skeleton.NUM_JOINTS)
    if joints != skeleton.NUM_JOINTS:
        raise ValueError(f"{path}: metadata num_joints is {joints}; only 17-joint layouts are supported")
    layout = layout_of(metadata, path)
    positions = _check_multiview(data, path, "positions_2d", 2)
    if layout == "coco":
        positions = {
            subject: {
                action: [skeleton.coco_to_h36m(v)[0].astype(np.float32) for v in views]
                for action, views in actions.items()
            }
            for subject, actions in positions.items()
        }
    return positions, metadata


def load_predictions_3d(path: str | os.PathLike) -> MultiView:
    """Read another method's 3D predictions: positions_3d[subject][action] = list over cameras of (F, 17, 3)."""
    path = Path(path)
    data = _check_nested(_load_npz_key(path, "positions_3d"), path, "positions_3d")
    return _check_multiview(data, path, "positions_3d", 3)


def save_positions_3d(path: str | os.PathLike, positions: Poses | MultiView) -> None:
    """Write ``positions_3d`` (world poses, or per-camera predictions) atomically."""
    atomic_savez(path, positions_3d=np.array(positions, dtype=object))


def save_positions_2d(path: str | os.PathLike, positions: MultiView, metadata: dict | None = None) -> None:
    """Write ``positions_2d`` + ``metadata`` atomically."""
    meta = dict(METADATA_2D if metadata is None else metadata)
    atomic_savez(path, positions_2d=np.array(positions, dtype=object), metadata=np.array(meta, dtype=object))


def validate_pair(poses_3d: Poses, poses_2d: MultiView, path_3d: str, path_2d: str) -> None:
    """Check that every subject/action of the 3D file has 2D for all cameras with at least as many frames."""
    for subject, actions in poses_3d.items():
        if subject not in poses_2d:
            raise ValueError(f"{path_2d}: subject {subject!r} of {path_3d} is missing")
        for action, arr in actions.items():
            if action not in poses_2d[subject]:
                raise ValueError(f"{path_2d}: positions_2d[{subject!r}] has no action {action!r} (in {path_3d})")
            views = poses_2d[subject][action]
            if len(views) != NUM_H36M_CAMERAS:
                raise ValueError(
                    f"{path_2d}: positions_2d[{subject!r}][{action!r}] has {len(views)} cameras, expected "
                    f"{NUM_H36M_CAMERAS}"
                )
            for c, view in enumerate(views):
                if view.shape[0] < arr.shape[0]:
                    raise ValueError(
                        f"{path_2d}: positions_2d[{subject!r}][{action!r}][camera {c}] has {view.shape[0]} frames, "
                        f"fewer than the {arr.shape[0]} of {path_3d}"
                    )


@dataclass
class Samples:
    """Flat single-frame samples: 2D input, root-relative camera-frame 3D target, and where each came from."""

    keypoints2d: np.ndarray  # (N, 17, 2) float32 pixels
    joints3d: np.ndarray  # (N, 17, 3) float32 metres, root-relative, camera axes
    subject: np.ndarray  # (N,) str
    action: np.ndarray  # (N,) str (full action name, e.g. 'Walking 1')
    camera: np.ndarray  # (N,) int
    frame: np.ndarray  # (N,) int

    def __len__(self) -> int:
        return int(self.keypoints2d.shape[0])

    def select(self, mask: np.ndarray) -> Samples:
        """The subset where `mask` (bool or index array) selects."""
        return Samples(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def camera_frame_poses(world: np.ndarray, subject: str) -> list[np.ndarray]:
    """(F, 32|17, 3) world poses -> per camera (F, 17, 3) root-relative poses in the camera frame."""
    poses17 = skeleton.reduce_h36m32(world) if world.shape[1] == 32 else world
    out = []
    for cam in h36m_cameras(subject):
        cam_pts = cam.world_to_camera(poses17)
        out.append((cam_pts - cam_pts[:, :1]).astype(np.float32))
    return out


def build_samples(
    poses_3d: Poses,
    poses_2d: MultiView,
    subjects: tuple[str, ...] | list[str],
    stride: int = 1,
    cameras: tuple[int, ...] | None = None,
    actions: tuple[str, ...] | None = None,
) -> Samples:
    """Collect (2D, 3D) frame pairs of `subjects` every `stride` frames from the chosen cameras/actions."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    k2, j3, subj, act, cam, frm = [], [], [], [], [], []
    for subject in subjects:
        if subject not in poses_3d:
            raise ValueError(f"subject {subject!r} is not in the 3D data (has: {', '.join(sorted(poses_3d))})")
        for action, world in poses_3d[subject].items():
            if actions is not None and action_group(action) not in actions and action not in actions:
                continue
            if subject not in poses_2d or action not in poses_2d[subject]:
                raise ValueError(f"no 2D keypoints for {subject!r} / {action!r}")
            cam_poses = camera_frame_poses(world, subject)
            for c, pose_cam in enumerate(cam_poses):
                if cameras is not None and c not in cameras:
                    continue
                kp = poses_2d[subject][action][c][: world.shape[0]]
                idx = np.arange(0, world.shape[0], stride)
                k2.append(kp[idx])
                j3.append(pose_cam[idx])
                subj.append(np.full(len(idx), subject))
                act.append(np.full(len(idx), action))
                cam.append(np.full(len(idx), c))
                frm.append(idx)
    if not k2:
        raise ValueError(f"no samples for subjects {list(subjects)} (actions {actions}, cameras {cameras})")
    return Samples(
        np.concatenate(k2).astype(np.float32),
        np.concatenate(j3).astype(np.float32),
        np.concatenate(subj),
        np.concatenate(act),
        np.concatenate(cam).astype(np.int64),
        np.concatenate(frm).astype(np.int64),
    )


def load_h36m_samples(
    path_3d: str | os.PathLike,
    path_2d: str | os.PathLike,
    subjects: tuple[str, ...] | list[str],
    stride: int = 1,
) -> Samples:
    """Load + validate the two npz files and build the samples of `subjects`."""
    poses_3d = load_positions_3d(path_3d)
    poses_2d, _ = load_positions_2d(path_2d)
    validate_pair({s: poses_3d[s] for s in subjects if s in poses_3d}, poses_2d, str(path_3d), str(path_2d))
    return build_samples(poses_3d, poses_2d, subjects, stride=stride)
