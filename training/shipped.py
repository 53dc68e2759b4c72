"""The recipe of the shipped default lifter (petr_ros/data/petr_lifter_cmu.pt): real CMU motion, virtual cameras.

Data (all shipped with registry packages, nothing downloaded at run time):

- Training motion: CMU take 01_01 (120 Hz, every frame), mirrored left/right (a second, equally real motion);
  ``perturbed_fraction`` of those samples get new limb joint angles (virtual.perturb_limbs: the real trunk and
  bone lengths, limbs moved inside the joint limits), plus the Winter-model synthetic generator as augmentation
  (``synthetic_fraction`` of every epoch).
- Held out: the whole take 01_03 (a different activity) - never seen in training.
- Each training sample is a pose seen through its own random virtual camera (all azimuths, elevation -15..40 deg,
  2.5-9 m, focal 450-2200 px, roll, off-centre), drawn afresh every epoch from (seed, epoch); 2D noise like a real
  detector's (scaled Gaussian per joint + outliers) is added to the COCO-17 points, which are then converted by
  ``skeleton.coco_to_h36m`` - the node's own conversion - so the input is what the node feeds the lifter.
- Targets: the H3.6M-17 joints derived from the same COCO points in 3D (pelvis = mid-hip, thorax = mid-shoulder,
  head = extrapolated head top), in the camera frame (x right, y down, z forward), root-relative, metres.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from petr_ros import skeleton
from training.cmu import load_cmu_take
from training.config import TrainConfig
from training.synthetic import to_world, winter_motion
from training.train import DataSource, PoseDataset
from training.virtual import (
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


def assets_dir() -> Path:
    """$PETR_ASSETS, else <repo>/assets (where scripts/fetch_assets.sh puts the CMU takes)."""
    return Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parent.parent / "assets"))


@dataclass
class ShippedRecipe:
    """Settings of the shipped lifter's data (the model/optimiser settings are a TrainConfig)."""

    train_takes: tuple[str, ...] = ("01_01.bvh",)
    test_takes: tuple[str, ...] = ("01_03.bvh",)
    body_height: float = 1.70  # CMU subject scaled to this standing height (metres)
    samples_per_epoch: int = 65536
    synthetic_fraction: float = 0.25
    perturbed_fraction: float = 0.7  # of the CMU samples: limb joint angles moved at random (virtual.perturb_limbs)
    synthetic_frames: int = 6000  # Winter-model frames (50 fps) in the augmentation pool
    test_frame_step: int = 4  # 01_03 at 30 Hz for evaluation
    test_views: int = 2  # random cameras per held-out pose


def _views(
    world_h36m: np.ndarray, world_coco: np.ndarray | None, rng: np.random.Generator, noise: DetectorNoise | None
) -> tuple[np.ndarray, np.ndarray]:
    """Random camera per pose -> (2D H3.6M-17 pixels as the node would get them, 3D root-relative camera targets)."""
    rot, eye, intr = random_views(world_h36m, rng, CameraRanges())
    cam_h36m = to_camera(world_h36m, rot, eye)
    if world_coco is not None:
        kp = project(to_camera(world_coco, rot, eye), intr)
        if noise is not None:
            kp = add_detector_noise(kp, rng, noise, layout="coco")
        kp2d, _ = skeleton.coco_to_h36m(kp)
    else:  # synthetic Winter poses have no face points: their H3.6M joints are projected directly
        kp2d = project(cam_h36m, intr)
        if noise is not None:
            kp2d = add_detector_noise(kp2d, rng, noise, layout="h36m")
    target = cam_h36m - cam_h36m[:, :1]
    return kp2d.astype(np.float32), target.astype(np.float32)


class ShippedSource(DataSource):
    """Fresh virtual views of CMU + synthetic motion every epoch; a fixed held-out set from another take."""

    def __init__(self, recipe: ShippedRecipe, seed: int, assets: Path | None = None) -> None:
        self.recipe, self.seed = recipe, seed
        assets = assets or assets_dir()
        t0 = time.perf_counter()
        h36m_parts, coco_parts = [], []
        for name in recipe.train_takes:
            take = load_cmu_take(assets / name, height=recipe.body_height)
            h36m_parts += [take.h36m, mirror_world(take.h36m, "h36m")]
            coco_parts += [take.coco, mirror_world(take.coco, "coco")]
        self.cmu_h36m = np.concatenate(h36m_parts).astype(np.float64)
        self.cmu_coco = np.concatenate(coco_parts).astype(np.float64)
        rng = np.random.default_rng([seed, 7])
        synth = []
        chunk = 1000
        for _i in range(max(1, recipe.synthetic_frames // chunk)):
            height = rng.uniform(1.55, 1.90)
            poses = winter_motion(rng, chunk, 50.0, height, amplitude=rng.uniform(0.3, 0.7), turn_speed=0.3)
            synth.append(to_world(poses, rng.uniform(-1, 1, 2)))
        self.synth_h36m = np.concatenate(synth)
        test_h36m, test_coco = [], []
        for name in recipe.test_takes:
            take = load_cmu_take(assets / name, height=recipe.body_height, frame_step=recipe.test_frame_step)
            test_h36m.append(take.h36m)
            test_coco.append(take.coco)
        th = np.repeat(np.concatenate(test_h36m).astype(np.float64), recipe.test_views, axis=0)
        tc = np.repeat(np.concatenate(test_coco).astype(np.float64), recipe.test_views, axis=0)
        test_rng = np.random.default_rng([seed, 1003])
        self.test_noisy = _views(th, tc, test_rng, DetectorNoise())
        test_rng = np.random.default_rng([seed, 1003])  # the same cameras, no detector noise
        self.test_clean = _views(th, tc, test_rng, None)
        self.val_actions = np.array(["01_03"] * len(th))
        self.load_seconds = time.perf_counter() - t0

    def train_set(self, epoch: int) -> Dataset:
        r = self.recipe
        rng = np.random.default_rng([self.seed, epoch, 11])
        n_syn = int(round(r.samples_per_epoch * r.synthetic_fraction))
        n_cmu = r.samples_per_epoch - n_syn
        ci = rng.integers(0, len(self.cmu_h36m), n_cmu)
        si = rng.integers(0, len(self.synth_h36m), n_syn)
        n_pert = int(round(n_cmu * r.perturbed_fraction))
        kp_c, t_c = _views(self.cmu_h36m[ci[n_pert:]], self.cmu_coco[ci[n_pert:]], rng, DetectorNoise())
        parts = [(kp_c, t_c), _views(self.synth_h36m[si], None, rng, DetectorNoise())]
        if n_pert:
            # perturbed poses have no face points: their H3.6M joints are projected directly, like synthetic ones
            parts.append(_views(perturb_limbs(self.cmu_h36m[ci[:n_pert]], rng), None, rng, DetectorNoise()))
        return PoseDataset(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def val_set(self) -> Dataset:
        return PoseDataset(*self.test_noisy)

    def describe(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "kind": "CMU mocap through random virtual cameras + Winter synthetic augmentation",
            "train_takes": list(r.train_takes),
            "held_out_takes": list(r.test_takes),
            "cmu_train_poses_with_mirror": int(len(self.cmu_h36m)),
            "synthetic_poses": int(len(self.synth_h36m)),
            "samples_per_epoch": r.samples_per_epoch,
            "synthetic_fraction": r.synthetic_fraction,
            "perturbed_fraction": r.perturbed_fraction,
            "held_out_samples": int(len(self.test_noisy[0])),
            "body_height_m": r.body_height,
            "source": "Debian assimp-testmodels (CMU Graphics Lab Motion Capture Database, free for all uses)",
        }


def shipped_config(output_dir: str, seed: int = 0, epochs: int = 20, threads: int = 1) -> TrainConfig:
    """The TrainConfig of the shipped lifter (PETR head; output range 2 m for raised arms)."""
    return TrainConfig(
        mode="lifter",
        variant="petr",
        num_layers=2,
        d_model=34,
        nhead=2,
        dim_feedforward=2048,
        dropout=0.1,
        output_scale=2.0,
        epochs=epochs,
        batch_size=512,
        lr=5e-4,
        weight_decay=1e-5,
        scheduler="cosine",
        grad_clip=1.0,
        seed=seed,
        flip_augmentation=False,  # mirroring is done in 3D on the motion itself (see ShippedSource)
        output=output_dir,
        threads=threads,
    )


def held_out_metrics(model: Any, source: ShippedSource, device: str = "cpu") -> dict[str, Any]:
    """MPJPE / P-MPJPE / N-MPJPE / MPBVE / rotation error (mm, deg) on the held-out take, noisy and clean 2D,
    plus the mean-training-pose and untrained-model baselines."""
    import torch

    from petr_ros import kinematics, metrics
    from training.train import predict

    out: dict[str, Any] = {}
    for name, (kp, target) in (("detector_noise_2d", source.test_noisy), ("exact_2d", source.test_clean)):
        pred = predict(model, PoseDataset(kp, target), torch.device(device))
        res = metrics.evaluate_poses(
            pred * 1000.0, target * 1000.0,
            rotations_pred=kinematics.joint_rotations(pred.astype(np.float64))[:, 1:],
            rotations_true=kinematics.joint_rotations(target.astype(np.float64))[:, 1:],
        )  # fmt: skip
        out[name] = {k: res[k] for k in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpbve", "rotation_error_deg")}
        out[name]["per_joint_mpjpe"] = res["per_joint"]["mpjpe"]
    mean_pose = source.train_set(0).joints3d.numpy().mean(0)
    target = source.test_noisy[1]
    out["mean_pose_baseline_mpjpe"] = float(metrics.mpjpe(np.broadcast_to(mean_pose, target.shape), target)) * 1000
    return out


def train_shipped(
    output: str | os.PathLike = DEFAULT_OUTPUT,
    work_dir: str | os.PathLike = "outputs/shipped",
    seed: int = 0,
    epochs: int = 20,
    threads: int = 1,
    progress: bool = True,
    resume: bool = False,
    recipe: ShippedRecipe | None = None,
) -> str:
    """Train the shipped lifter, evaluate it on the held-out take, write the release checkpoint; returns a report."""
    import json
    import platform

    import torch

    from petr_ros.model.checkpoint import save_checkpoint
    from petr_ros.model.lifter import build_lifter
    from training.train import PixelLifter, train

    recipe = recipe or ShippedRecipe()
    cfg = shipped_config(str(work_dir), seed=seed, epochs=epochs, threads=threads)
    if resume:
        cfg.resume = str(Path(work_dir) / "last.pt")
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    source = ShippedSource(recipe, seed)
    torch.manual_seed(seed)
    untrained = PixelLifter(build_lifter(cfg.lifter_config()))
    untrained_mpjpe = held_out_metrics(untrained, source)["detector_noise_2d"]["mpjpe"]
    result = train(cfg, source=source, progress=progress)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    model = result.model.eval()
    metrics_out = held_out_metrics(model, source)
    metrics_out["untrained_mpjpe"] = untrained_mpjpe
    metadata = {
        "name": "petr_lifter_cmu",
        "description": "PETR lifter trained on CMU mocap take 01_01 (+ mirror, + Winter synthetic poses) through "
        "random virtual cameras with detector-like 2D noise; NOT the Human3.6M reproduction (see docs/model_card.md)",
        "command": f"petr_train shipped --output {output} --seed {seed} --epochs {epochs} --threads {threads}",
        "data": source.describe(),
        "held_out_metrics_mm_deg": metrics_out,
        "training_wall_seconds": round(wall, 1),
        "training_cpu_seconds": round(cpu, 1),
        "threads": threads,
        "epochs": epochs,
        "seed": seed,
        "train_config": cfg.to_dict(),
        "history": result.history,
        "input": "H3.6M-17 2D pixels (skeleton.coco_to_h36m of COCO-17) -> normalize_keypoints_2d",
        "output": "(17, 3) metres, root-relative, camera axes (x right, y down, z forward)",
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }
    save_checkpoint(output, model.lifter.state_dict(), cfg.lifter_config(), metadata)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    (Path(work_dir) / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    noisy, clean = metrics_out["detector_noise_2d"], metrics_out["exact_2d"]
    return (
        f"wrote {output}\n"
        f"training: {epochs} epochs, {wall:.0f} s wall, {cpu:.0f} s CPU, {threads} thread(s)\n"
        f"held-out take 01_03 ({len(source.test_noisy[0])} views), detector-like 2D noise: "
        f"MPJPE {noisy['mpjpe']:.1f} mm, P-MPJPE {noisy['p_mpjpe']:.1f} mm, N-MPJPE {noisy['n_mpjpe']:.1f} mm, "
        f"MPBVE {noisy['mpbve']:.3f}, "
        f"rotation error {noisy['rotation_error_deg']:.1f} deg\n"
        f"  exact 2D: MPJPE {clean['mpjpe']:.1f} mm, P-MPJPE {clean['p_mpjpe']:.1f} mm, MPBVE {clean['mpbve']:.3f}\n"
        f"  baselines: mean training pose {metrics_out['mean_pose_baseline_mpjpe']:.1f} mm, untrained "
        f"{untrained_mpjpe:.1f} mm"
    )
