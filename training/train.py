"""The training loop: single process or torchrun DDP, resumable bit for bit, interrupt-safe.

- Data order comes from a DistributedSampler seeded with (seed, epoch) in every mode (one process is the
  1-replica case), so a global batch holds the same samples whatever the number of processes.
- A checkpoint (model, optimiser, scheduler, AMP scaler, epoch, RNG state, history) is written atomically at the
  end of every epoch by rank 0; `resume` restores all of it, so the continued run reproduces the uninterrupted
  one exactly. SIGINT/SIGTERM stop after the current batch without writing a partial epoch: at most the
  current epoch is lost.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from petr_ros import metrics, skeleton
from petr_ros.model import device as model_device
from petr_ros.model.checkpoint import load_checkpoint, save_checkpoint
from petr_ros.model.lifter import LifterOutput, build_lifter, normalize_keypoints_2d
from training.config import TrainConfig

FLIP = list(skeleton.FLIP_PERMUTATION)


# ----------------------------------------------------------------------------------------------------------------
# Runtime: devices, processes, seeds, signals
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this module created the process group (and so tears it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this process's CUDA device (torchrun's LOCAL_RANK) when there is one; else the package's rules."""
    if name == "auto" and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return model_device.resolve_device(name)


def init_runtime(cfg: TrainConfig) -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device, local_rank)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        owns = True
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, device=device, owns_group=owns)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the legacy global generator
    torch.manual_seed(seed)


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop polls after every batch (installed only in the main thread)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.signum is not None


class TrainingInterrupted(RuntimeError):
    """Raised after a signal stopped training; the last completed epoch's checkpoint is intact."""

    def __init__(self, signum: int, checkpoint: Path | None, epoch: int) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.epoch = epoch
        super().__init__(
            f"training stopped by signal {signum} during epoch {epoch + 1}; "
            + (f"resume with --resume {checkpoint}" if checkpoint else "no epoch had completed")
        )


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------
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

    def __init__(self, train: Dataset, val: Dataset, val_actions: np.ndarray | None = None, info: dict | None = None):
        self._train, self._val, self.val_actions, self._info = train, val, val_actions, info or {}

    def train_set(self, epoch: int) -> Dataset:
        return self._train

    def val_set(self) -> Dataset:
        return self._val

    def describe(self) -> dict[str, Any]:
        return {"train_samples": len(self._train), "val_samples": len(self._val), **self._info}


def make_source(cfg: TrainConfig) -> DataSource:
    """The data source a config names: VideoPose3D npz files (lifter mode) or a prepare index (image mode)."""
    if cfg.mode == "image":
        from training.datasets import crop_source

        return crop_source(cfg)
    from training.h36m import action_group, build_samples, load_positions_2d, load_positions_3d, validate_pair

    if not cfg.data_3d or not cfg.data_2d:
        raise ValueError("lifter mode needs --data-3d and --data-2d (VideoPose3D npz files)")
    poses_3d = load_positions_3d(cfg.data_3d)
    poses_2d, _ = load_positions_2d(cfg.data_2d)
    subjects = list(cfg.train_subjects) + list(cfg.test_subjects)
    missing = [s for s in subjects if s not in poses_3d]
    if missing:
        raise ValueError(f"{cfg.data_3d}: subjects {missing} not in positions_3d (has {sorted(poses_3d)})")
    validate_pair({s: poses_3d[s] for s in subjects}, poses_2d, cfg.data_3d, cfg.data_2d)
    train = build_samples(poses_3d, poses_2d, cfg.train_subjects, stride=cfg.stride)
    val = build_samples(poses_3d, poses_2d, cfg.test_subjects, stride=cfg.test_stride)
    return FixedSource(
        PoseDataset(train.keypoints2d, train.joints3d),
        PoseDataset(val.keypoints2d, val.joints3d),
        np.array([action_group(a) for a in val.action]),
        {"data_3d": cfg.data_3d, "data_2d": cfg.data_2d, "train_subjects": cfg.train_subjects,
         "test_subjects": cfg.test_subjects},
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Models and losses
# ----------------------------------------------------------------------------------------------------------------
class PixelLifter(nn.Module):
    """Pixel keypoints -> normalize_keypoints_2d -> lifter (the node's exact input path)."""

    def __init__(self, lifter: nn.Module) -> None:
        super().__init__()
        self.lifter = lifter

    def forward(self, keypoints2d: Tensor) -> LifterOutput:
        return self.lifter(normalize_keypoints_2d(keypoints2d))


def build_model(cfg: TrainConfig) -> nn.Module:
    """PixelLifter (lifter mode) or the end-to-end crop model (image mode); `.lifter` is the lifter in both."""
    lifter = build_lifter(cfg.lifter_config())
    if cfg.mode == "image":
        from training.datasets import EndToEndModel

        return EndToEndModel(lifter, cfg.hrnet_weights or None)
    return PixelLifter(lifter)


def flip_batch(inputs: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror the samples where `mask` is true: keypoints (B,17,2) or images (B,C,H,W), and 3D targets."""
    target_f = target[:, FLIP].clone()
    target_f[..., 0] = -target_f[..., 0]
    if inputs.ndim == 3:
        inputs_f = inputs[:, FLIP].clone()
        inputs_f[..., 0] = -inputs_f[..., 0]
    else:  # images: the 2D detector sees a mirrored person and labels sides itself
        inputs_f = torch.flip(inputs, dims=[-1])
    m_in = mask.view(-1, *([1] * (inputs.ndim - 1)))
    m_t = mask.view(-1, 1, 1)
    return torch.where(m_in, inputs_f, inputs), torch.where(m_t, target_f, target)


def lifter_loss(out: LifterOutput, target: Tensor, cfg: TrainConfig) -> tuple[Tensor, dict[str, float]]:
    """PETR: MPJPE. PEBRT: MPJPE + kinematic-constraint-weighted bone-rotation and unit-bone-vector losses."""
    # Losses in float32 even under fp16 autocast (norms and Gram-Schmidt are not fp16-safe).
    target = target.float()
    pos = metrics.mpjpe(out.joints3d.float(), target)
    parts = {"mpjpe": float(pos.detach())}
    loss = cfg.position_loss_weight * pos
    if cfg.variant == "pebrt" and out.rotations is not None:
        from petr_ros import kinematics

        weights = out.constraint_weights.detach() if out.constraint_weights is not None else 1.0
        true_rot = kinematics.joint_rotations(target, frame="global")  # (B, 17, 3, 3)
        rot_err = (out.rotations[:, 1:].float() - true_rot[:, 1:]).square().sum(dim=(-1, -2))  # (B, 16)
        rot = (weights * rot_err).mean()
        children = torch.as_tensor(skeleton.BONE_CHILDREN, device=target.device)
        parents = torch.as_tensor(skeleton.BONE_PARENTS, device=target.device)

        def unit_bones(j: Tensor) -> Tensor:
            v = j[:, children] - j[:, parents]
            return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)

        vec_err = (unit_bones(out.joints3d.float()) - unit_bones(target)).norm(dim=-1)  # (B, 16)
        vec = (weights * vec_err).mean()
        loss = loss + cfg.rotation_loss_weight * rot + cfg.vector_loss_weight * vec
        parts.update(rotation=float(rot.detach()), vector=float(vec.detach()))
    return loss, parts


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """Root-relative 3D predictions (N, 17, 3) of `model` (a PixelLifter/EndToEndModel) over `dataset`."""
    was_training = model.training
    model.eval()
    outs = []
    # Its own generator: evaluating must not advance the global RNG (resumed runs must match uninterrupted ones).
    for inputs, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator()):
        outs.append(model(inputs.to(device)).joints3d.float().cpu())
    model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 17, 3), np.float32)


def targets_of(dataset: Dataset) -> np.ndarray:
    """All 3D targets of a dataset, (N, 17, 3)."""
    if isinstance(dataset, PoseDataset):
        return dataset.joints3d.numpy()
    return np.stack([np.asarray(dataset[i][1]) for i in range(len(dataset))])


# ----------------------------------------------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------------------------------------------
LOG_COLUMNS = ("epoch", "train_loss", "val_mpjpe_mm", "lr", "epoch_seconds", "samples_per_second")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_log(output: Path, history: list[dict[str, Any]]) -> None:
    """log.csv (one row per epoch) and loss_curve.png, both rewritten atomically from the history."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    _atomic_write_bytes(output / "log.csv", buf.getvalue().encode())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [row["val_mpjpe_mm"] for row in history], "s--", color="tab:red", label="val MPJPE (mm)")
    ax2.set_ylabel("val MPJPE (mm)")
    fig.legend(loc="upper right")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    _atomic_write_bytes(output / "loss_curve.png", png.getvalue())


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    checkpoint: Path | None
    best_checkpoint: Path | None
    batch_losses: list[float]
    model: nn.Module


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(model.lifter.parameters()), "lr": cfg.lr, "name": "lifter"}]
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        frozen = cfg.backbone_lr == 0
        model.freeze_backbone(frozen)
        if not frozen:
            groups.append({"params": list(backbone.parameters()), "lr": cfg.backbone_lr, "name": "backbone"})
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_drop, gamma=cfg.lr_gamma)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    cfg: TrainConfig,
    source: DataSource | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run (or resume) training as `cfg` says; returns the history and the checkpoint paths (rank 0)."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rt = init_runtime(cfg)
    if cfg.batch_size % rt.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {rt.world_size} processes")
    seed_everything(cfg.seed)
    source = source or make_source(cfg)
    output = Path(cfg.output)
    if rt.is_main:
        output.mkdir(parents=True, exist_ok=True)
        import yaml

        _atomic_write_bytes(output / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())

    model = build_model(cfg).to(rt.device)
    optimizer = _make_optimizer(model, cfg)
    scheduler = _make_scheduler(optimizer, cfg)
    use_amp = cfg.amp and rt.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, math.inf
    if cfg.resume:
        ckpt = load_checkpoint(cfg.resume)
        state = ckpt.training_state
        if not state:
            raise ValueError(f"{cfg.resume} holds no training state (a released model?): cannot resume from it")
        if ckpt.config.to_dict() != cfg.lifter_config().to_dict():
            raise ValueError(
                f"{cfg.resume} was trained with lifter config {ckpt.config.to_dict()}, "
                f"this run asks for {cfg.lifter_config().to_dict()}"
            )
        model.lifter.load_state_dict(ckpt.state_dict)
        if "backbone_state_dict" in state and getattr(model, "backbone", None) is not None:
            model.backbone.load_state_dict(state["backbone_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state.get("scaler", {}) or scaler.state_dict())
        rng_states = state["rng"]
        if len(rng_states) != rt.world_size:
            raise ValueError(
                f"{cfg.resume} was written by {len(rng_states)} process(es); resume it with the same number "
                f"(this run has {rt.world_size}) to continue bit for bit"
            )
        _set_rng_state(rng_states[rt.rank], rt.device)
        history = [dict(row) for row in state["history"]]
        start_epoch = int(state["epoch"])
        best = float(state.get("best_val_mpjpe_mm", math.inf))
    net: nn.Module = model
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )

    meta = {"data": source.describe(), "train_config": cfg.to_dict(), **(metadata or {})}
    last_path = output / "last.pt"
    best_path = output / "best.pt"
    batch_losses: list[float] = []
    val = source.val_set()
    val_target = targets_of(val) if rt.is_main else None
    flip_gen = torch.Generator()
    from tqdm import tqdm

    with StopFlag() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            dataset = source.train_set(epoch)
            sampler = DistributedSampler(
                dataset, num_replicas=rt.world_size, rank=rt.rank, shuffle=True, seed=cfg.seed, drop_last=True
            )
            sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset, batch_size=cfg.batch_size // rt.world_size, sampler=sampler, drop_last=True,
                num_workers=cfg.num_workers,
            )  # fmt: skip
            # Flip masks come from a (seed, epoch) generator drawn per GLOBAL batch, so each process takes its
            # slice of the same mask the single-process run uses.
            flip_gen.manual_seed(cfg.seed * 1_000_003 + epoch)
            if len(sampler) < cfg.batch_size // rt.world_size:
                raise ValueError(
                    f"the training set has {len(dataset)} samples, fewer than one batch of {cfg.batch_size}"
                )
            net.train()
            total, count, seen = 0.0, 0, 0
            flag = torch.zeros(1, device=rt.device)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and rt.is_main),
                       leave=False, file=sys.stderr)  # fmt: skip
            for b, (inputs, target) in enumerate(bar):
                if cfg.max_batches and b >= cfg.max_batches:
                    break
                inputs, target = inputs.to(rt.device), target.to(rt.device)
                if cfg.flip_augmentation:
                    global_mask = torch.rand(cfg.batch_size, generator=flip_gen) < 0.5
                    mask = global_mask[rt.rank :: rt.world_size][: inputs.shape[0]].to(rt.device)
                    inputs, target = flip_batch(inputs, target, mask)
                with torch.autocast(device_type=rt.device.type, dtype=torch.float16, enabled=use_amp):
                    out = net(inputs)
                loss, _ = lifter_loss(out, target.float(), cfg)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                value = loss.detach()
                flag = torch.tensor([float(stop.requested)], device=rt.device)
                if rt.distributed:
                    dist.all_reduce(value, op=dist.ReduceOp.SUM)  # gloo has no AVG
                    value = value / rt.world_size
                    dist.all_reduce(flag, op=dist.ReduceOp.SUM)
                batch_losses.append(float(value))
                total += float(value)
                count += 1
                seen += inputs.shape[0] * rt.world_size
                bar.set_postfix(loss=f"{float(value):.4f}")
                if float(flag) > 0:
                    break
            bar.close()
            if stop.requested or (rt.distributed and float(flag) > 0):
                signum = stop.signum or signal.SIGTERM
                raise TrainingInterrupted(signum, last_path if last_path.exists() else None, epoch)
            scheduler.step()
            seconds = time.perf_counter() - t0
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": round(seconds, 3),
                "samples_per_second": round(seen / max(seconds, 1e-9), 1),
            }
            # Every process's RNG state goes into the checkpoint, so a resumed DDP run continues each one exactly.
            rng_states = [_rng_state(rt.device)]
            if rt.distributed:
                rng_states = [None] * rt.world_size
                dist.all_gather_object(rng_states, _rng_state(rt.device))
            if rt.is_main:
                pred = predict(model, val, rt.device, batch_size=1024 if cfg.mode == "lifter" else cfg.batch_size)
                row["val_mpjpe_mm"] = float(metrics.mpjpe(pred, val_target)) * 1000.0
                history.append(row)
                state = {
                    "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_states,
                    "history": history,
                    "best_val_mpjpe_mm": min(best, row["val_mpjpe_mm"]),
                }
                if getattr(model, "backbone", None) is not None:
                    state["backbone_state_dict"] = model.backbone.state_dict()
                epoch_meta = {**meta, "epochs_trained": epoch + 1, "val_mpjpe_mm": row["val_mpjpe_mm"]}
                save_checkpoint(last_path, model.lifter.state_dict(), cfg.lifter_config(), epoch_meta, state)
                if row["val_mpjpe_mm"] < best:
                    best = row["val_mpjpe_mm"]
                    save_checkpoint(best_path, model.lifter.state_dict(), cfg.lifter_config(), epoch_meta, state)
                write_log(output, history)
                if progress:
                    print(
                        f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.5f}  val MPJPE "
                        f"{row['val_mpjpe_mm']:.1f} mm  lr {row['lr']:.2e}  {seconds:.1f} s",
                        file=sys.stderr,
                    )
                if on_epoch is not None:
                    on_epoch(row)
            else:
                history.append(row)
    if rt.distributed:
        dist.barrier()
        if rt.owns_group:
            dist.destroy_process_group()
    return TrainResult(
        history=history,
        checkpoint=last_path if rt.is_main else None,
        best_checkpoint=best_path if rt.is_main and best_path.exists() else None,
        batch_losses=batch_losses,
        model=model,
    )
