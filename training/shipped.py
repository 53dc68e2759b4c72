"""The recipe of the shipped default lifter (petr_ros/data/petr_lifter_cmu.pt): real motion, virtual cameras, tracks.

The shipped lifter is a sequence lifter (petr_ros.model.temporal): it reads a tracked person's last `window`
frames of 2D and lifts the last one, so the node can use a track's history; a new track is a window of one frame.

Data (all shipped with registry packages, nothing downloaded at run time):

- Training motion: the real motion-capture sequences of `training.motion`'s train split (CMU, holosoma climbing,
  DeepMimic, isaaclab AMP; every source an equal share), each mirrored left/right (a second, equally real
  motion); smoothly limb-varied copies (virtual.perturb_limbs with joint-angle changes that drift slowly over
  time, so a copy is still a motion); the Winter-model synthetic generator as augmentation.
- Held out: the whole sequences of `training.motion`'s held-out split (CMU 01_03, holosoma climb_seq_4, DeepMimic
  kick/roll/walk, isaaclab walk) - never seen in training.
- Every training sample is a window of `window` frames of one sequence at a random frame rate (15-60 Hz, by
  taking every n-th frame), seen by one random virtual camera that stays put for the window (all azimuths,
  elevation -15..40 deg, 2.5-9 m, focal 450-2200 px, roll, off-centre); a fraction of the windows are cut short
  (a young track) and the frames before a sequence starts are missing, both given as all-zero frames. 2D noise
  like a real detector's (scaled Gaussian per joint + outliers, and a per-joint offset constant over the window)
  is added to the COCO-17 points, which are then converted by ``skeleton.coco_to_h36m`` - the node's own
  conversion - so the input is what the node feeds.
- Target: the window's last frame, H3.6M-17 joints in camera axes (x right, y down, z forward), root-relative, m.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from petr_ros import skeleton
from training import motion
from training.config import TrainConfig
from training.sources import DataSource
from training.synthetic import to_world, winter_motion
from training.virtual import (
    LIMB_BONES,
    CameraRanges,
    DetectorNoise,
    add_detector_noise,
    mirror_world,
    perturb_limbs,
    project,
    random_views,
    to_camera,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "petr_ros" / "data" / "petr_lifter_cmu.pt"
MIN_DEPTH_M = 0.3  # frames with a joint closer to the camera than this are treated as not seen


def assets_dir() -> Path:
    """$PETR_ASSETS, else <repo>/assets (where scripts/fetch_assets.sh puts the motion files)."""
    return Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parent.parent / "assets"))


@dataclass
class TrainingMotion:
    """One continuous motion of the training pool or the held-out set, z-up world, metres: a real sequence
    (`training.motion`), its mirror image, a limb-varied copy (no COCO points) or a synthetic one."""

    name: str
    h36m: np.ndarray  # (F, 17, 3) H3.6M-17 joints
    fps: float
    coco: np.ndarray | None = None  # (F, 17, 3) COCO-17 points on the same body (2D input goes through them)
    rotations: np.ndarray | None = None  # (F, 17, 3, 3) the source's measured segment rotations, world
    source: str = ""

    def __len__(self) -> int:
        return int(self.h36m.shape[0])


@dataclass
class ShippedRecipe:
    """Settings of the shipped lifter's data (the model/optimiser settings are a TrainConfig)."""

    train_sequences: tuple[str, ...] = tuple(motion.sequence_names("train"))  # training.motion names
    held_out_sequences: tuple[str, ...] = tuple(motion.sequence_names("held_out"))  # whole sequences
    window: int = 27  # frames per input window
    frame_rates: tuple[float, float] = (15.0, 60.0)  # training windows resampled to this range (Hz)
    short_fraction: float = 0.2  # of the windows: cut to a random length 1..window (young tracks)
    window_bias: tuple[float, float] = (0.0, 0.03)  # std range of per-joint 2D offsets constant over a window
    samples_per_epoch: int = 32768
    synthetic_fraction: float = 0.2
    perturbed_fraction: float = 0.5  # of the real samples: from the smoothly limb-varied copies
    perturbed_copies: int = 2  # limb-varied copies of every training sequence
    synthetic_frames: int = 6000  # Winter-model frames (50 fps) in the augmentation pool
    test_rate: float = 30.0  # held-out sequences resampled to this frame rate
    test_views: int = 2  # random cameras per held-out window


def real_motion(name: str, assets: Path | None = None) -> TrainingMotion:
    """A real sequence of the `training.motion` registry ("cmu/01_01", "holosoma/climb_seq_0", ...)."""
    seq = motion.load_sequence(name, assets)
    info = motion.sequence_info(name)
    return TrainingMotion(
        name=name, h36m=np.asarray(seq.joints, dtype=np.float64), fps=float(seq.fps),
        coco=np.asarray(seq.coco, dtype=np.float64),
        rotations=None if seq.rotations is None else np.asarray(seq.rotations, dtype=np.float64),
        source=f"{info.package}; {info.licence}",
    )


def mirrored(seq: TrainingMotion) -> TrainingMotion:
    """The left/right mirror image of a motion (its rotations are dropped: only positions are trained on)."""
    coco = None if seq.coco is None else mirror_world(seq.coco, "coco")
    return TrainingMotion(f"{seq.name}_mirror", mirror_world(seq.h36m, "h36m"), seq.fps, coco, None, seq.source)


def smooth_limb_variation(seq: TrainingMotion, rng: np.random.Generator, max_angle: float = 0.8) -> TrainingMotion:
    """A copy of a motion with each limb's joint angles shifted by an amount that drifts slowly over time (a sum
    of two sinusoids of 0.05-0.5 Hz per angle), clamped into the joint limits: a new, still continuous motion."""
    frames = len(seq)
    t = np.arange(frames) / seq.fps
    shape = (len(LIMB_BONES), 3)
    delta = np.zeros((frames, *shape))
    for _ in range(2):
        freq = rng.uniform(0.05, 0.5, shape)
        phase = rng.uniform(0, 2 * np.pi, shape)
        amplitude = rng.uniform(0, max_angle / 2, shape)
        delta += amplitude * np.sin(2 * np.pi * freq * t[:, None, None] + phase)
    varied = perturb_limbs(seq.h36m, rng, delta=delta)
    return TrainingMotion(f"{seq.name}_limbs", varied, seq.fps, None, None, seq.source)


def synthetic_sequences(rng: np.random.Generator, frames: int) -> list[TrainingMotion]:
    """Winter-model people (1.55-1.90 m) with smooth in-limit joint angles, 1000-frame sequences at 50 fps."""
    out = []
    for i in range(max(1, frames // 1000)):
        height = rng.uniform(1.55, 1.90)
        poses = winter_motion(rng, 1000, 50.0, height, amplitude=rng.uniform(0.3, 0.7), turn_speed=0.3)
        out.append(TrainingMotion(f"winter/{i}", to_world(poses, rng.uniform(-1, 1, 2)), 50.0, None, None,
                                  "training.synthetic"))
    return out


@dataclass
class Windows:
    """Input windows and last-frame targets of a set of samples (plus what evaluation needs)."""

    keypoints2d: np.ndarray  # (N, T, 17, 2) pixels, oldest first; missing frames all zero
    joints3d: np.ndarray  # (N, 17, 3) last frame, root-relative camera axes, metres
    camera_rotations: np.ndarray  # (N, 3, 3) world -> camera
    frames: np.ndarray  # (N,) index of the last frame in its sequence
    track: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) view index (one per camera)


def view_windows(
    seq: TrainingMotion,
    last: np.ndarray,
    stride: np.ndarray,
    length: np.ndarray,
    window: int,
    rng: np.random.Generator,
    noise: DetectorNoise | None,
    bias: tuple[float, float] = (0.0, 0.0),
) -> Windows:
    """Windows of `seq` ending at frames `last` (N,), every `stride`-th frame, `length` (N,) frames long at most
    (earlier ones and those before the sequence starts are missing), each seen by its own random camera, with
    `noise` per frame and, when bias[1] > 0, a per-joint offset constant over the window (std drawn in `bias`, a
    fraction of the person's 2D height)."""
    n = len(last)
    offsets = np.arange(window - 1, -1, -1)  # frames before the last one, oldest first
    index = last[:, None] - stride[:, None] * offsets[None]
    missing = (index < 0) | (offsets[None] >= length[:, None])
    index = np.clip(index, 0, None)
    world = seq.h36m[index]  # (N, T, 17, 3)
    rot, eye, intr = random_views(world[:, -1], rng, CameraRanges())
    flat = (n, window * skeleton.NUM_JOINTS, 3)
    cam = to_camera(world.reshape(flat), rot, eye).reshape(world.shape)
    points = cam if seq.coco is None else to_camera(seq.coco[index].reshape(flat), rot, eye).reshape(world.shape)
    near = (points[..., 2] < MIN_DEPTH_M).any(-1) | (cam[..., 2] < MIN_DEPTH_M).any(-1)
    missing |= near
    missing[:, -1] = False  # the camera looks at the last frame from 2.5 m or more
    safe = np.where(missing[..., None, None], np.array([0.0, 0.0, 1.0]), points)
    kp = project(safe.reshape(flat), intr).reshape(n * window, skeleton.NUM_JOINTS, 2)
    if noise is not None:
        kp = add_detector_noise(kp, rng, noise, layout="h36m" if seq.coco is None else "coco")
    if bias[1] > 0:  # a detector's error that persists over a track: a constant offset per joint and window
        size = np.ptp(kp.reshape(n, window, -1, 2)[:, -1, :, 1], axis=-1)  # the newest frame's 2D height
        std = rng.uniform(*bias, n) * size
        joint_offsets = rng.standard_normal((n, 1, skeleton.NUM_JOINTS, 2)) * std[:, None, None, None]
        kp = (kp.reshape(n, window, -1, 2) + joint_offsets).reshape(kp.shape)
    if seq.coco is not None:
        kp, _ = skeleton.coco_to_h36m(kp)
    kp = kp.reshape(n, window, skeleton.NUM_JOINTS, 2)
    kp[missing] = 0.0
    target = cam[:, -1] - cam[:, -1, :1]
    return Windows(kp.astype(np.float32), target.astype(np.float32), rot, last.copy())


def pool_weights(pool: list[TrainingMotion]) -> np.ndarray:
    """Sampling probability of each motion: every source ("cmu", "holosoma", ... - the name's prefix) gets an equal
    share, split within it by duration, so one large source does not drown the others' activities."""
    source = [m.name.split("/")[0] for m in pool]
    duration = np.array([len(m) / m.fps for m in pool])
    share = {name: duration[[s == name for s in source]].sum() for name in set(source)}
    return np.array([d / share[s] for d, s in zip(duration, source, strict=True)]) / len(share)


def sample_windows(
    pool: list[TrainingMotion], count: int, rng: np.random.Generator, recipe: ShippedRecipe
) -> tuple[np.ndarray, np.ndarray]:
    """`count` random training windows from the pool (motions drawn with `pool_weights`)."""
    if count <= 0:
        return (np.zeros((0, recipe.window, 17, 2), np.float32), np.zeros((0, 17, 3), np.float32))
    which = rng.choice(len(pool), count, p=pool_weights(pool))
    kps, targets = [], []
    for i in np.unique(which):
        seq, n = pool[i], int((which == i).sum())
        rate = rng.uniform(*recipe.frame_rates, n)
        stride = np.maximum(1, np.round(seq.fps / rate)).astype(np.int64)
        last = rng.integers(0, len(seq), n)
        length = np.full(n, recipe.window)
        short = rng.random(n) < recipe.short_fraction
        length[short] = rng.integers(1, recipe.window + 1, int(short.sum()))
        w = view_windows(seq, last, stride, length, recipe.window, rng, DetectorNoise(), recipe.window_bias)
        kps.append(w.keypoints2d)
        targets.append(w.joints3d)
    order = rng.permutation(count)
    return np.concatenate(kps)[order], np.concatenate(targets)[order]


def held_out_windows(
    seq: TrainingMotion, recipe: ShippedRecipe, seed: int, noise: DetectorNoise | None
) -> tuple[Windows, np.ndarray | None]:
    """Every frame of a held-out sequence at recipe.test_rate as the end of a window (the track starting at the
    sequence's first frame), `test_views` cameras; returns the windows and the true camera-frame rotations."""
    stride = max(1, int(round(seq.fps / recipe.test_rate)))
    last = np.arange(0, len(seq), stride)
    parts, rots = [], []
    for view in range(recipe.test_views):
        rng = np.random.default_rng([seed, 1003, view])  # cameras first: the same with and without noise
        n = len(last)
        w = view_windows(seq, last, np.full(n, stride), np.full(n, recipe.window), recipe.window, rng, noise)
        w.track = np.full(n, view)
        parts.append(w)
        if seq.rotations is not None:
            rots.append(np.einsum("nij,nkjl->nkil", w.camera_rotations, seq.rotations[last]))
    out = Windows(
        np.concatenate([p.keypoints2d for p in parts]), np.concatenate([p.joints3d for p in parts]),
        np.concatenate([p.camera_rotations for p in parts]), np.concatenate([p.frames for p in parts]),
        np.concatenate([p.track for p in parts]),
    )
    return out, (np.concatenate(rots) if rots else None)


class WindowDataset(Dataset):
    """(2D windows (T, 17, 2) pixels, root-relative 3D of the last frame (17, 3)) pairs held as tensors."""

    def __init__(self, keypoints2d: np.ndarray, joints3d: np.ndarray) -> None:
        self.keypoints2d = torch.as_tensor(np.asarray(keypoints2d, dtype=np.float32))
        self.joints3d = torch.as_tensor(np.asarray(joints3d, dtype=np.float32))
        if self.keypoints2d.ndim != 4 or self.keypoints2d.shape[2:] != (17, 2) or self.joints3d.shape[1:] != (17, 3):
            raise ValueError(f"expected (N, T, 17, 2) and (N, 17, 3), got {tuple(self.keypoints2d.shape)} "
                             f"{tuple(self.joints3d.shape)}")
        if len(self.keypoints2d) != len(self.joints3d):
            raise ValueError("keypoint windows and targets differ in number")

    def __len__(self) -> int:
        return int(self.keypoints2d.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.keypoints2d[i], self.joints3d[i]


class ShippedSource(DataSource):
    """Fresh windows of real + varied + synthetic motion every epoch; fixed held-out windows of other sequences."""

    def __init__(self, recipe: ShippedRecipe, seed: int, assets: Path | None = None) -> None:
        self.recipe, self.seed = recipe, seed
        assets = assets or assets_dir()
        t0 = time.perf_counter()
        real = [real_motion(name, assets) for name in recipe.train_sequences]
        self.real = real + [mirrored(s) for s in real]
        rng = np.random.default_rng([seed, 7])
        self.varied = [smooth_limb_variation(s, rng) for s in self.real for _ in range(recipe.perturbed_copies)]
        self.synthetic = synthetic_sequences(rng, recipe.synthetic_frames)
        self.held_out = [real_motion(name, assets) for name in recipe.held_out_sequences]
        self.test: dict[str, dict[str, Any]] = {}
        for seq in self.held_out:
            noisy, rotations = held_out_windows(seq, recipe, seed, DetectorNoise())
            clean, _ = held_out_windows(seq, recipe, seed, None)
            offsets = None
            if rotations is not None:  # the source's segment frames -> the package's, fitted on the true positions
                last = noisy.frames[noisy.track == 0]
                offsets = {
                    method: motion.rotation_offsets(ROTATIONS_FROM_POSITIONS[method](seq.h36m[last]),
                                                    seq.rotations[last])
                    for method in ROTATIONS_FROM_POSITIONS
                }
            self.test[seq.name] = {"noisy": noisy, "clean": clean, "rotations": rotations, "offsets": offsets}
        self.load_seconds = time.perf_counter() - t0

    def train_set(self, epoch: int) -> Dataset:
        r = self.recipe
        rng = np.random.default_rng([self.seed, epoch, 11])
        n_syn = int(round(r.samples_per_epoch * r.synthetic_fraction))
        n_real = r.samples_per_epoch - n_syn
        n_var = int(round(n_real * r.perturbed_fraction)) if self.varied else 0
        parts = [
            sample_windows(self.real, n_real - n_var, rng, r),
            sample_windows(self.varied, n_var, rng, r),
            sample_windows(self.synthetic, n_syn, rng, r),
        ]
        return WindowDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def val_set(self) -> Dataset:
        noisy = [t["noisy"] for t in self.test.values()]
        return WindowDataset(np.concatenate([w.keypoints2d for w in noisy]),
                             np.concatenate([w.joints3d for w in noisy]))

    def describe(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "kind": "real mocap windows (15-60 Hz) through random virtual cameras + limb-varied copies + Winter "
            "synthetic motion",
            "train_sequences": list(r.train_sequences),
            "held_out_sequences": list(r.held_out_sequences),
            "real_sequences": {s.name: {"frames": len(s), "fps": s.fps, "source": s.source} for s in self.real},
            "varied_sequences": len(self.varied),
            "synthetic_frames": int(sum(len(s) for s in self.synthetic)),
            "held_out_details": {s.name: {"frames": len(s), "fps": s.fps, "source": s.source}
                                 for s in self.held_out},
            "window": r.window,
            "frame_rates_hz": list(r.frame_rates),
            "short_fraction": r.short_fraction,
            "samples_per_epoch": r.samples_per_epoch,
            "synthetic_fraction": r.synthetic_fraction,
            "perturbed_fraction": r.perturbed_fraction,
            "held_out_windows": {k: int(len(t["noisy"].joints3d)) for k, t in self.test.items()},
            "test_rate_hz": r.test_rate,
        }


def shipped_config(
    output_dir: str, seed: int = 0, epochs: int = 20, threads: int = 1, variant: str = "bones", window: int = 27
) -> TrainConfig:
    """The TrainConfig of the shipped lifter: the sequence lifter with the skeleton-consistent bones head."""
    return TrainConfig(
        mode="lifter",
        architecture="sequence",
        variant=variant,
        window=window,
        num_layers=3,
        d_model=64,
        nhead=4,
        dim_feedforward=128,
        dropout=0.1,
        output_scale=2.0,
        body_height=1.70,
        epochs=epochs,
        batch_size=256,
        lr=1e-3,
        weight_decay=1e-4,
        scheduler="cosine",
        grad_clip=1.0,
        seed=seed,
        flip_augmentation=False,  # mirroring is done in 3D on the motion itself (see ShippedSource)
        output=output_dir,
        threads=threads,
    )


# ----------------------------------------------------------------------------------------------------------------
# Evaluation on the held-out sequences (any lifter: one-token models get each window's last frame)
# ----------------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def lift_windows(
    model: torch.nn.Module, windows: np.ndarray, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, T, 17, 2) pixel windows -> joints (N, 17, 3) and predicted global rotations (N, 17, 3, 3) or None, of
    any lifter (a bare lifter module, not a PixelLifter; one-token lifters get each window's last frame)."""
    from petr_ros.model.lifter import normalize_keypoints_2d

    model.eval()
    sequence = getattr(getattr(model, "config", None), "architecture", "token") == "sequence"
    joints, rotations = [], []
    for start in range(0, len(windows), batch_size):
        kp = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
        out = model(normalize_keypoints_2d(kp if sequence else kp[:, -1]))
        joints.append(out.joints3d.float().numpy())
        if out.rotations is not None:
            rotations.append(out.rotations.float().numpy())
    rot = np.concatenate(rotations).astype(np.float64) if rotations else None
    return np.concatenate(joints).astype(np.float64), rot


def track_bone_lengths(pred: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Predictions rebuilt with each track's causal per-person bone lengths (petr_ros.bone_lengths): frame t of
    a track uses the estimate from its frames up to t."""
    from petr_ros.bone_lengths import BoneLengthEstimator

    out = np.empty_like(pred)
    for track in np.unique(tracks):
        estimator = BoneLengthEstimator()
        for i in np.flatnonzero(tracks == track):
            estimator.update(pred[i])
            out[i] = estimator.apply(pred[i])
    return out


# Joints whose true rotation is the mocap segment's own (the face points are built from the head segment's
# position and the shoulders, not its rotation, so neck/nose and head are left out of the rotation error).
ROTATION_JOINTS: tuple[int, ...] = tuple(j for j in range(skeleton.NUM_JOINTS) if j not in (9, 10))


def _minimal_twist(joints: np.ndarray) -> np.ndarray:
    from petr_ros import kinematics

    return np.asarray(kinematics.joint_rotations(joints))


def _limb_twist(joints: np.ndarray) -> np.ndarray:
    from petr_ros.limb_twist import rotations_with_limb_twist

    return rotations_with_limb_twist(joints)


# The two ways of getting joint rotations from positions that are measured against real rotations.
ROTATIONS_FROM_POSITIONS = {"minimal_twist": _minimal_twist, "limb_twist": _limb_twist}


def score_sequence(
    pred: np.ndarray,
    target: np.ndarray,
    true_rotations: np.ndarray | None = None,
    offsets: dict[str, np.ndarray] | None = None,
    predicted_rotations: np.ndarray | None = None,
) -> dict[str, float]:
    """MPJPE, P-MPJPE (mm), limb-length variation, and joint-rotation errors (deg) of one held-out sequence:
    against the rotations of the true positions, and against the measured ones (`true_rotations`, camera axes,
    the source's segment frames; `offsets` from motion.rotation_offsets)."""
    from petr_ros import kinematics, metrics

    res = {
        "mpjpe": float(metrics.mpjpe(pred, target)) * 1000.0,
        "p_mpjpe": float(metrics.p_mpjpe(pred, target)) * 1000.0,
        "mpbve": float(metrics.mpbve(pred, target)),
        "bone_length_cv": float((lambda b: (b.std(0) / b.mean(0)).mean())(kinematics.bone_lengths(pred))),
    }
    joints = list(ROTATION_JOINTS)
    rot_pred = kinematics.joint_rotations(pred)
    res["rotation_error_vs_positions_deg"] = float(
        metrics.rotation_error_deg(rot_pred[:, 1:], kinematics.joint_rotations(target)[:, 1:])
    )
    if true_rotations is not None and offsets is not None:
        for method, rotations_of in ROTATIONS_FROM_POSITIONS.items():
            rot = rotations_of(pred)
            err = motion.aligned_rotation_error_deg(rot[:, joints], true_rotations[:, joints], offsets[method][joints])
            res[f"rotation_error_{method}_deg"] = float(err.mean())
        if predicted_rotations is not None:  # a rotation head's own (same frames as the minimal-twist ones)
            err = motion.aligned_rotation_error_deg(predicted_rotations[:, joints], true_rotations[:, joints],
                                                    offsets["minimal_twist"][joints])
            res["rotation_error_predicted_deg"] = float(err.mean())
        res["rotation_error_deg"] = res["rotation_error_limb_twist_deg"]  # what the node publishes
    return res


def held_out_metrics(model: torch.nn.Module, source: ShippedSource) -> dict[str, Any]:
    """Per held-out sequence, noisy and exact 2D: the lifter's figures, and with per-track bone lengths."""
    out: dict[str, Any] = {}
    for name, test in source.test.items():
        seq_out: dict[str, Any] = {}
        for kind in ("noisy", "clean"):
            w = test[kind]
            pred, rotations = lift_windows(model, w.keypoints2d)
            target = w.joints3d.astype(np.float64)
            key = "detector_noise_2d" if kind == "noisy" else "exact_2d"
            seq_out[key] = score_sequence(pred, target, test["rotations"], test["offsets"], rotations)
            seq_out[key + "_track_bone_lengths"] = score_sequence(
                track_bone_lengths(pred, w.track), target, test["rotations"], test["offsets"]
            )
        if test["rotations"] is not None:  # the floor: rotations of the true positions
            truth = test["noisy"].joints3d.astype(np.float64)
            for method, rotations_of in ROTATIONS_FROM_POSITIONS.items():
                joints = list(ROTATION_JOINTS)
                err = motion.aligned_rotation_error_deg(rotations_of(truth)[:, joints], test["rotations"][:, joints],
                                                        test["offsets"][method][joints])
                seq_out[f"rotation_error_of_true_positions_{method}_deg"] = float(err.mean())
        out[name] = seq_out
    return out


def compare_with_previous(model: torch.nn.Module, source: ShippedSource, previous: str | os.PathLike) -> dict:
    """held_out_metrics of the new lifter and of the checkpoint at `previous`, side by side."""
    from petr_ros.model.checkpoint import load_lifter

    old, _ = load_lifter(previous)
    return {"new": held_out_metrics(model, source), "previous": held_out_metrics(old, source)}


def format_report(metrics_out: dict[str, Any]) -> str:
    """One line per held-out sequence and 2D kind: new vs previous MPJPE, P-MPJPE, rotation error."""
    lines = []
    for name, new in metrics_out["new"].items():
        old = metrics_out.get("previous", {}).get(name, {})
        for kind in ("detector_noise_2d", "detector_noise_2d_track_bone_lengths", "exact_2d"):
            n, o = new[kind], old.get(kind, {})
            text = " ".join(f"{k} {n[k]:.1f}" + (f" (was {o[k]:.1f})" if k in o else "")
                            for k in ("mpjpe", "p_mpjpe", "rotation_error_deg") if k in n)
            lines.append(f"  {name} {kind}: {text}")
    return "\n".join(lines)


def train_shipped(
    output: str | os.PathLike = DEFAULT_OUTPUT,
    work_dir: str | os.PathLike = "outputs/shipped",
    seed: int = 0,
    epochs: int = 20,
    threads: int = 1,
    progress: bool = True,
    resume: bool = False,
    recipe: ShippedRecipe | None = None,
    variant: str = "bones",
    previous: str | os.PathLike | None = None,
) -> str:
    """Train the shipped lifter, evaluate it (and `previous`, by default the file being replaced) on the
    held-out sequences, write the release checkpoint; returns a report."""
    import json
    import platform
    import shutil
    import tempfile

    from petr_ros.model.checkpoint import save_checkpoint
    from training.train import train

    recipe = recipe or ShippedRecipe()
    cfg = shipped_config(str(work_dir), seed=seed, epochs=epochs, threads=threads, variant=variant,
                         window=recipe.window)
    if resume:
        cfg.resume = str(Path(work_dir) / "last.pt")
    else:
        cfg.overwrite = True  # a fresh run of the recipe replaces an earlier one in the same work folder
    torch.set_num_threads(threads)
    previous_copy = None
    if previous is None and Path(output).is_file():
        previous = output
    if previous is not None:  # copied first: `output` may be the file being replaced
        previous_copy = Path(tempfile.mkdtemp()) / "previous.pt"
        shutil.copyfile(previous, previous_copy)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    source = ShippedSource(recipe, seed)
    result = train(cfg, source=source, progress=progress)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    lifter = result.model.lifter.eval()
    metrics_out: dict[str, Any] = {"new": held_out_metrics(lifter, source)}
    if previous_copy is not None:
        from petr_ros.model.checkpoint import load_lifter

        metrics_out["previous"] = held_out_metrics(load_lifter(previous_copy)[0], source)
        metrics_out["previous_file"] = str(previous)
        shutil.rmtree(previous_copy.parent, ignore_errors=True)
    metadata = {
        "name": "petr_lifter_cmu",
        "description": "sequence lifter (27-frame windows of a tracked person's 2D, skeleton-consistent bones "
        "head) trained on real mocap (+ mirror, + limb-varied copies, + Winter synthetic motion) through random "
        "virtual cameras with detector-like 2D noise; NOT the Human3.6M reproduction (see docs/model_card.md)",
        "command": f"petr_train shipped --output {output} --work-dir {work_dir} --seed {seed} --epochs {epochs} "
        f"--threads {threads}",
        "data": source.describe(),
        "held_out_metrics_mm_deg": metrics_out,
        "training_wall_seconds": round(wall, 1),
        "training_cpu_seconds": round(cpu, 1),
        "threads": threads,
        "epochs": epochs,
        "seed": seed,
        "train_config": cfg.to_dict(),
        "history": result.history,
        "input": "(T, 17, 2) windows of H3.6M-17 2D pixels (skeleton.coco_to_h36m of COCO-17), oldest first, missing "
        "frames zero -> normalize_keypoints_2d per frame",
        "output": "(17, 3) metres, root-relative, camera axes (x right, y down, z forward), of the last frame",
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }
    save_checkpoint(output, lifter.state_dict(), cfg.lifter_config(), metadata)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    return (
        f"wrote {output}\n"
        f"training: {epochs} epochs, {wall:.0f} s wall, {cpu:.0f} s CPU, {threads} thread(s)\n"
        f"held-out sequences (new, previous in brackets; mm, deg):\n{format_report(metrics_out)}"
    )


def evaluate_checkpoints(paths: list[str], seed: int = 0, recipe: ShippedRecipe | None = None) -> dict[str, Any]:
    """held_out_metrics of each lifter checkpoint on the shipped recipe's held-out sequences (same windows,
    cameras and noise as the release's own figures)."""
    from petr_ros.model.checkpoint import load_lifter

    source = ShippedSource(recipe or ShippedRecipe(), seed)
    return {str(path): held_out_metrics(load_lifter(path)[0], source) for path in paths}


def format_table(results: dict[str, Any]) -> str:
    """Per checkpoint and held-out sequence (detector-like 2D noise): MPJPE, P-MPJPE, bone-length CV, rotation
    error (limb twist / minimal twist / predicted by the head), as printed by `python -m training.shipped`."""
    lines = [f"{'checkpoint':32s} {'sequence':22s} {'MPJPE':>7s} {'P-MPJPE':>8s} {'len CV':>7s} "
             f"{'rot limb':>9s} {'rot min':>8s} {'rot head':>9s}  (mm, %, deg)"]
    for path, per_sequence in results.items():
        for name, figures in per_sequence.items():
            for kind in ("detector_noise_2d", "detector_noise_2d_track_bone_lengths"):
                f = figures[kind]

                def deg(key: str, f: dict = f) -> str:
                    return f"{f[key]:.1f}" if key in f else "-"

                label = name + (" +len" if kind.endswith("lengths") else "")
                lines.append(f"{Path(path).name[:32]:32s} {label:22s} {f['mpjpe']:7.1f} {f['p_mpjpe']:8.1f} "
                             f"{100 * f['bone_length_cv']:7.1f} {deg('rotation_error_limb_twist_deg'):>9s} "
                             f"{deg('rotation_error_minimal_twist_deg'):>8s} {deg('rotation_error_predicted_deg'):>9s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m training.shipped CHECKPOINT...`: evaluate lifter checkpoints on the held-out sequences."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m training.shipped", description=main.__doc__)
    parser.add_argument("checkpoints", nargs="+", help="lifter checkpoints (.pt), e.g. the shipped one")
    parser.add_argument("--seed", type=int, default=0, help="the held-out cameras' seed (0: the release's figures)")
    parser.add_argument("--json", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    results = evaluate_checkpoints(args.checkpoints, seed=args.seed)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
