"""What is trained and against what: the model of a run, the mirror augmentation and the losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from petr_ros import kinematics, metrics, skeleton
from petr_ros.model.checkpoint import backbone_reference
from petr_ros.model.lifter import LifterOutput, build_lifter, normalize_keypoints_2d
from training.config import TrainConfig


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


def backbone_entry(model: nn.Module, cfg: TrainConfig) -> dict[str, Any] | None:
    """What a checkpoint stores of an image-mode model's backbone (None in lifter mode): the decoder it was trained
    with, and the fine-tuned weights or - frozen on a weights file - a hashed reference to that file."""
    if getattr(model, "backbone", None) is None:
        return None
    entry: dict[str, Any] = {"kind": "hrnet_w32", "decoder": dict(model.decoder_options)}
    if model.backbone_frozen and cfg.hrnet_weights:
        entry.update(backbone_reference(cfg.hrnet_weights))
    else:  # fine-tuned (or random, in tests): the weights themselves
        entry["state_dict"] = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
    return entry


def flip_batch(inputs: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror the CPU samples where `mask` is true: keypoints (B, 17, 2), keypoint windows (B, T, 17, 2) or images
    (B, C, H, W), and 3D targets (B, 17, 3).

    Poses mirror through `skeleton.flip_pose` (negate x, swap sides); images are flipped horizontally (the 2D
    detector sees a mirrored person and labels the sides itself).
    """
    target_f = torch.from_numpy(skeleton.flip_pose(target.numpy(), axis=0))
    if tuple(inputs.shape[-2:]) == (skeleton.NUM_JOINTS, 2):
        inputs_f = torch.from_numpy(skeleton.flip_pose(inputs.numpy(), axis=0))
    else:
        inputs_f = torch.flip(inputs, dims=[-1])
    m_in = mask.view(-1, *([1] * (inputs.ndim - 1)))
    m_t = mask.view(-1, 1, 1)
    return torch.where(m_in, inputs_f, inputs), torch.where(m_t, target_f, target)


def lifter_loss(out: LifterOutput, target: Tensor, cfg: TrainConfig) -> tuple[Tensor, dict[str, float]]:
    """PETR: MPJPE. PEBRT: MPJPE + kinematic-constraint-weighted bone-rotation and unit-bone-vector losses.

    The constraint weights are 1 + the number of a bone's rotation axes outside its joint limits: a per-bone
    weight that makes out-of-limit bones count more, not a penalty on the limits themselves.
    """
    # Losses in float32 even under fp16 autocast (norms and Gram-Schmidt are not fp16-safe).
    target = target.float()
    pos = metrics.mpjpe(out.joints3d.float(), target)
    parts = {"mpjpe": float(pos.detach())}
    loss = cfg.position_loss_weight * pos
    if cfg.variant == "pebrt" and out.rotations is not None:
        weights = out.constraint_weights.detach() if out.constraint_weights is not None else 1.0
        true_rot = kinematics.joint_rotations(target, frame="global")  # (B, 17, 3, 3)
        rot_err = (out.rotations[:, 1:].float() - true_rot[:, 1:]).square().sum(dim=(-1, -2))  # (B, 16)
        rot = (weights * rot_err).mean()
        # per-bone distance of unit bone vectors: the MPBVE metric itself (B, 16)
        vec_err = metrics.mpbve(out.joints3d.float(), target, reduction="none")
        vec = (weights * vec_err).mean()
        loss = loss + cfg.rotation_loss_weight * rot + cfg.vector_loss_weight * vec
        parts.update(rotation=float(rot.detach()), vector=float(vec.detach()))
    if cfg.limit_penalty_weight > 0:
        local = out.local_rotations
        if local is None:  # PETR: the bones' rotations follow from the predicted positions
            local = kinematics.joint_rotations(out.joints3d.float(), frame="local")[:, 1:]
        limit = joint_limit_penalty(local.float())
        loss = loss + cfg.limit_penalty_weight * limit
        parts["limit"] = float(limit.detach())
    return loss, parts


def joint_limit_penalty(local_rotations: Tensor) -> Tensor:
    """The thesis's explicit joint-limit penalty: radians by which each bone's joint angles (Euler ZYX in its joint
    frame) leave `kinematics.JOINT_ANGLE_LIMITS`, summed over the three angles, mean over bones and poses.
    local_rotations: (B, 16, 3, 3). Zero inside the limits; grows with the distance outside them."""
    angles = kinematics.joint_angles(local_rotations)  # (B, 16, 3)
    limits = torch.tensor(kinematics.JOINT_ANGLE_LIMITS, dtype=angles.dtype, device=angles.device)  # a copy
    outside = (limits[..., 0] - angles).clamp_min(0) + (angles - limits[..., 1]).clamp_min(0)
    return outside.sum(-1).mean()
