"""Data sources of a training run: what the loop needs from a data set, and the two the CLI builds.

- lifter mode: Human3.6M-layout npz files (`h36m`): 2D keypoints (or, for sequence lifters, windows of a
  sequence's 2D keypoints) -> root-relative 3D, the same every epoch;
- image mode: the person crops a `prepare` index lists (`datasets.CropDataset`).
Other recipes (the shipped lifter) implement `DataSource` themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from training import h36m
from training.config import TrainConfig


class PoseDataset(Dataset):
    """(2D pixel keypoints (17, 2), root-relative 3D joints (17, 3)) pairs held as tensors."""

    def __init__(self, keypoints2d: np.ndarray | Tensor, joints3d: np.ndarray | Tensor) -> None:
        self.keypoints2d = torch.as_tensor(np.asarray(keypoints2d, dtype=np.float32))
        self.joints3d = torch.as_tensor(np.asarray(joints3d, dtype=np.float32))
        if self.keypoints2d.shape[0] != self.joints3d.shape[0]:
            raise ValueError(
                f"keypoints2d {tuple(self.keypoints2d.shape)} and joints3d {tuple(self.joints3d.shape)} differ in "
                "length"
            )
        if self.keypoints2d.shape[1:] != (17, 2) or self.joints3d.shape[1:] != (17, 3):
            raise ValueError(
                f"expected (N, 17, 2) and (N, 17, 3), got {tuple(self.keypoints2d.shape)} {tuple(self.joints3d.shape)}"
            )

    def __len__(self) -> int:
        return int(self.keypoints2d.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.keypoints2d[i], self.joints3d[i]


class WindowDataset(Dataset):
    """(window (T, 17, 2) of a sequence's 2D keypoints ending at the sample's frame, its 3D joints (17, 3)), for
    sequence lifters (`LifterConfig.window` > 1): frames before the sequence's start are all zero, as a young
    track's are in the node (the lifter masks them out). Windows are cut on access, so memory stays per frame."""

    def __init__(self, samples: h36m.Samples, window: int, stride: int = 1) -> None:
        self.window = int(window)
        self.keypoints2d = torch.as_tensor(np.asarray(samples.keypoints2d, dtype=np.float32))
        # A sequence is one subject/action/camera; its frames are consecutive rows of `samples`.
        n = len(samples)
        new_sequence = np.ones(n, dtype=bool)
        new_sequence[1:] = (
            (samples.subject[1:] != samples.subject[:-1])
            | (samples.action[1:] != samples.action[:-1])
            | (samples.camera[1:] != samples.camera[:-1])
            | (samples.frame[1:] != samples.frame[:-1] + 1)
        )
        self.first_row = torch.as_tensor(np.maximum.accumulate(np.where(new_sequence, np.arange(n), 0)))
        self.rows = torch.as_tensor(np.flatnonzero(samples.frame % stride == 0))
        self.joints3d = torch.as_tensor(np.asarray(samples.joints3d, dtype=np.float32))[self.rows]
        self.offsets = torch.arange(-self.window + 1, 1)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        row = self.rows[i]
        idx = row + self.offsets
        valid = idx >= self.first_row[row]
        window = self.keypoints2d[idx.clamp_min(0)] * valid[:, None, None]
        return window, self.joints3d[i]


def targets_of(dataset: Dataset) -> np.ndarray:
    """All 3D targets of a dataset, (N, 17, 3)."""
    if isinstance(dataset, PoseDataset):
        return dataset.joints3d.numpy()
    joints = getattr(dataset, "joints3d", None)
    if isinstance(joints, Tensor):
        return joints.numpy()
    return np.stack([np.asarray(dataset[i][1]) for i in range(len(dataset))])


class DataSource:
    """What the loop needs from a data set: a training set per epoch and a fixed validation set."""

    val_actions: np.ndarray | None = None

    def train_set(self, epoch: int) -> Dataset:
        raise NotImplementedError

    def val_set(self) -> Dataset:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}


class FixedSource(DataSource):
    """A data set that is the same every epoch (Human3.6M, generated data)."""

    def __init__(
        self, train: Dataset, val: Dataset, val_actions: np.ndarray | None = None, info: dict | None = None
    ) -> None:
        self._train, self._val, self.val_actions, self._info = train, val, val_actions, info or {}

    def train_set(self, epoch: int) -> Dataset:
        return self._train

    def val_set(self) -> Dataset:
        return self._val

    def describe(self) -> dict[str, Any]:
        return {"train_samples": len(self._train), "val_samples": len(self._val), **self._info}


def keypoint_source(cfg: TrainConfig) -> FixedSource:
    """Lifter mode: the VideoPose3D npz pair (`--data-3d`, `--data-2d`), validated, as (2D, 3D) samples."""
    if not cfg.data_3d or not cfg.data_2d:
        raise ValueError("lifter mode needs --data-3d and --data-2d (VideoPose3D npz files)")
    poses_3d = h36m.load_positions_3d(cfg.data_3d)
    poses_2d, metadata = h36m.load_positions_2d(cfg.data_2d)
    subjects = list(cfg.train_subjects) + list(cfg.test_subjects)
    missing = [s for s in subjects if s not in poses_3d]
    if missing:
        raise ValueError(f"{cfg.data_3d}: subjects {missing} not in positions_3d (has {sorted(poses_3d)})")
    h36m.validate_pair({s: poses_3d[s] for s in subjects}, poses_2d, cfg.data_3d, cfg.data_2d)
    if cfg.window > 1:  # sequence lifters: windows over every frame, targets every stride-th
        train_samples = h36m.build_samples(poses_3d, poses_2d, cfg.train_subjects)
        val_samples = h36m.build_samples(poses_3d, poses_2d, cfg.test_subjects)
        train_set = WindowDataset(train_samples, cfg.window, cfg.stride)
        val_set = WindowDataset(val_samples, cfg.window, cfg.test_stride)
        val_actions = val_samples.action[val_set.rows.numpy()]
    else:
        train = h36m.build_samples(poses_3d, poses_2d, cfg.train_subjects, stride=cfg.stride)
        val = h36m.build_samples(poses_3d, poses_2d, cfg.test_subjects, stride=cfg.test_stride)
        train_set = PoseDataset(train.keypoints2d, train.joints3d)
        val_set = PoseDataset(val.keypoints2d, val.joints3d)
        val_actions = val.action
    info = {
        "data_3d": cfg.data_3d,
        "data_2d": cfg.data_2d,
        "layout_2d": str(metadata.get("layout_name", "")),
        "train_subjects": cfg.train_subjects,
        "test_subjects": cfg.test_subjects,
    }
    return FixedSource(train_set, val_set, np.array([h36m.action_group(a) for a in val_actions]), info)


def crop_source(cfg: TrainConfig) -> FixedSource:
    """Image mode: training/validation crops of the configured subjects from the `prepare` index."""
    from training.datasets import CropDataset

    if not cfg.index:
        raise ValueError("image mode needs --index (index.npz from `petr_train prepare`)")
    train = CropDataset(cfg.index, cfg.train_subjects, cfg.stride)
    val = CropDataset(cfg.index, cfg.test_subjects, cfg.test_stride)
    info = {"index": cfg.index, "train_subjects": cfg.train_subjects, "test_subjects": cfg.test_subjects}
    return FixedSource(train, val, val.actions, info)


def make_source(cfg: TrainConfig) -> DataSource:
    """The data source a config names: VideoPose3D npz files (lifter mode) or a prepare index (image mode)."""
    return crop_source(cfg) if cfg.mode == "image" else keypoint_source(cfg)
