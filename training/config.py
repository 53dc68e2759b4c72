"""Training configuration: one dataclass, filled from defaults, then a YAML file, then command-line flags.

The resolved configuration is stored in every checkpoint (metadata ``train_config``) so a run can be traced and
resumed with exactly the settings that produced it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from petr_ros.model.lifter import LifterConfig
from training.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS
from training.runtime import DIST_BACKENDS

MODES = ("lifter", "image")
SCHEDULERS = ("step", "cosine")


@dataclass
class TrainConfig(LifterConfig):
    """Everything a training run depends on (defaults: the thesis recipe, see shared/design/petr.md).

    The model's fields (variant, num_layers, d_model, nhead, dim_feedforward, dropout, output_scale, body_height,
    ...) are LifterConfig's own, inherited with their defaults: one declaration, and `lifter_config()` is the
    model these settings build. The fields below are the training run's.
    """

    # --- data
    mode: str = "lifter"  # "lifter": 2D keypoints -> 3D; "image": person crops -> HRNet -> 2D -> lifter (end to end)
    data_3d: str = ""  # data_3d_h36m.npz (VideoPose3D layout)
    data_2d: str = ""  # data_2d_h36m_<detector>.npz (lifter mode; ground truth or any detector)
    index: str = ""  # index.npz written by `prepare` (image mode)
    train_subjects: list[str] = field(default_factory=lambda: list(TRAIN_SUBJECTS))
    test_subjects: list[str] = field(default_factory=lambda: list(TEST_SUBJECTS))
    stride: int = 1  # use every n-th training frame
    test_stride: int = 1  # every n-th test frame
    flip_augmentation: bool = True  # mirror half of each batch (2D and 3D, left/right swapped)
    # --- image mode
    hrnet_weights: str = ""  # image mode: pose_hrnet_w32_256x192.pth (empty: random init, for tests only)
    backbone_lr: float = 0.0  # image mode: 0 freezes the backbone; > 0 fine-tunes it with this learning rate
    # --- losses (pebrt)
    rotation_loss_weight: float = 1.0
    vector_loss_weight: float = 1.0
    position_loss_weight: float = 1.0
    limit_penalty_weight: float = 0.0  # explicit joint-limit penalty (both variants); 0 = off (thesis default)
    # --- optimisation
    epochs: int = 50
    batch_size: int = 256  # global batch (split over DDP processes)
    lr: float = 1e-4
    weight_decay: float = 1e-5
    scheduler: str = "step"  # "step" (StepLR, thesis) | "cosine"
    lr_drop: int = 10  # StepLR step size in epochs
    lr_gamma: float = 0.1
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    seed: int = 0
    num_workers: int = 0
    # --- runtime
    output: str = "outputs/train"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads (0: torch's default)
    resume: str = ""  # checkpoint to continue from (last.pt of an interrupted run)
    allow_changes: list[str] = field(default_factory=list)  # --resume: settings allowed to differ (epochs)
    overwrite: bool = False  # replace the results of an earlier run in `output`
    init: str = ""  # start from this checkpoint's weights (fine-tuning; new optimiser and schedule)
    dist_backend: str = "auto"  # DDP: auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    max_batches: int = 0  # stop each epoch after this many batches (smoke tests, benchmarks); 0 = all

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first invalid setting; return self."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        for name in ("stride", "test_stride", "epochs", "batch_size", "lr_drop"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "backbone_lr", "grad_clip", "lr_gamma", "limit_penalty_weight"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.dist_backend not in DIST_BACKENDS:
            raise ValueError(f"dist_backend must be one of {DIST_BACKENDS}, got {self.dist_backend!r}")
        if self.resume and self.init:
            raise ValueError("give --resume (continue a run) or --init (new run from weights), not both")
        if self.num_workers < 0 or self.threads < 0 or self.max_batches < 0:
            raise ValueError("num_workers, threads and max_batches must be >= 0")
        self.lifter_config()  # validates the model fields
        return self

    def lifter_config(self) -> LifterConfig:
        """The LifterConfig these settings describe (validated)."""
        return LifterConfig(**{f.name: getattr(self, f.name) for f in fields(LifterConfig)}).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (YAML); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**data)


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping of TrainConfig fields, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a mapping of settings, got {type(data).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}")
    return data


def field_help() -> dict[str, str]:
    """Help text of each setting (the CLI shows it): a field's own `metadata["help"]`, else the table below."""
    helps = dict(_HELP)
    for f in fields(TrainConfig):
        if "help" in f.metadata:
            helps[f.name] = str(f.metadata["help"])
    return helps


_HELP = {
    "mode": "'lifter': 2D keypoints -> 3D (GT 2D or any detector's 2D in the VideoPose3D npz layout); "
    "'image': person crops from `prepare` -> HRNet-W32 -> soft-argmax 2D -> lifter, trained end to end",
    "data_3d": "data_3d_h36m.npz: positions_3d[subject][action] (F, 32, 3) world metres",
    "data_2d": "data_2d_h36m_<name>.npz: positions_2d[subject][action] = 4 cameras x (F, 17, 2) pixels + metadata",
    "index": "index.npz written by `petr_train prepare` (image mode)",
    "train_subjects": "training subjects (default S1 S5 S6 S7 S8)",
    "test_subjects": "held-out subjects (default S9 S11)",
    "stride": "use every n-th training frame",
    "test_stride": "use every n-th test frame",
    "flip_augmentation": "mirror a random half of each batch (2D and 3D, left/right swapped)",
    "variant": "'petr' (joint positions), 'pebrt' (bone rotations on a Winter skeleton) or 'bones' (sequence "
    "architecture: skeleton-consistent bone directions and proportions)",
    "architecture": "'token' (the thesis's one-token lifter of single frames) or 'sequence' (a track's window of "
    "frames, petr_ros.model.temporal)",
    "window": "sequence architecture: frames per input window (the last one is lifted; zeros before a sequence's "
    "start)",
    "num_layers": "transformer encoder layers (1-8)",
    "d_model": "token width (34 = the 17x2 keypoints themselves)",
    "nhead": "attention heads",
    "dim_feedforward": "feed-forward width of each encoder layer",
    "dropout": "transformer dropout",
    "output_scale": "petr: output = tanh(.) * output_scale metres",
    "body_height": "pebrt: height in metres of the Winter skeleton",
    "hrnet_weights": "image mode: HRNet-W32 COCO weights (pose_hrnet_w32_256x192.pth); empty = random init (tests)",
    "backbone_lr": "image mode: backbone learning rate; 0 freezes it (thesis default)",
    "rotation_loss_weight": "pebrt: weight of the constraint-weighted bone-rotation loss",
    "vector_loss_weight": "pebrt: weight of the constraint-weighted unit-bone-vector loss",
    "position_loss_weight": "weight of the MPJPE loss on joint positions",
    "limit_penalty_weight": "weight of the explicit joint-limit penalty (radians outside "
    "kinematics.JOINT_ANGLE_LIMITS, both variants; PETR's bone rotations come from its positions); 0 = off. The "
    "constraint weights of PEBRT's losses are always on",
    "epochs": "training epochs",
    "batch_size": "global batch size (split evenly over DDP processes)",
    "lr": "AdamW learning rate of the lifter",
    "weight_decay": "AdamW weight decay",
    "scheduler": "'step' (StepLR every lr_drop epochs, thesis) or 'cosine' (cosine annealing over all epochs)",
    "lr_drop": "StepLR: epochs between learning-rate drops",
    "lr_gamma": "StepLR: factor applied at each drop",
    "grad_clip": "clip the gradient norm to this value (0: off)",
    "amp": "mixed precision on CUDA (no effect on CPU)",
    "seed": "random seed (data order, initialisation, augmentation); the same seed gives the same run",
    "num_workers": "DataLoader worker processes",
    "output": "output folder: last.pt (every epoch), best.pt, log.csv, loss_curve.png, config.yaml",
    "device": "auto | cpu | cuda | cuda:N (auto: the local CUDA device under torchrun, else CUDA if present)",
    "threads": "torch CPU threads (0: torch's default)",
    "resume": "continue from this checkpoint (model, optimiser, scheduler, epoch, RNG states): bit for bit on the "
    "same machine; the stored settings must match this run's (changes are refused, naming them)",
    "allow_changes": "with --resume: settings allowed to differ from the stored run; only 'epochs' (more epochs: "
    "the lr schedule is re-planned for the new total)",
    "overwrite": "replace the results (best.pt, last.pt, log.csv ...) of an earlier run in --output; without it "
    "a new run refuses a folder that holds one",
    "init": "start a new run from this checkpoint's weights (fine-tuning, e.g. the shipped lifter); its model "
    "settings become this run's defaults",
    "dist_backend": "DDP process-group backend: auto (nccl on CUDA, gloo on CPU), nccl or gloo",
    "normalisation": "2D input normalisation of the lifter (root_rms: root-centred, divided by the RMS radius)",
    "joint_set": "joint set of the lifter's input and output (h36m17)",
    "max_batches": "stop every epoch after this many batches (smoke tests, benchmarks); 0 = all",
}
