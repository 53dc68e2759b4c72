"""The 2D -> 3D lifters of the thesis: PETR (joint positions) and PEBRT (bone rotations + forward kinematics).

Both read the 17 H3.6M 2D keypoints as ONE token (17 x 2 = 34 numbers, root-centred and scale-normalised by
`normalize_keypoints_2d`), add a sinusoidal positional encoding and run an `nn.TransformerEncoder`:

* PETR: a linear layer to 51 values, tanh, times `output_scale` metres, reshaped to (17, 3) root-relative joints
  with the pelvis forced to the origin.
* PEBRT: a linear layer to 16 x 6 values (Zhou et al. 6D rotation representation) -> Gram-Schmidt -> 16
  parent-relative bone rotations, applied to a Winter anthropometric skeleton of height `body_height` by forward
  kinematics; it also returns the global joint rotations and the kinematic-constraint (joint-limit) weights.

Everything is batched: no per-sample Python loops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from petr_ros.skeleton import NUM_BONES, NUM_JOINTS, PARENTS, ROOT
from petr_ros.validation import check_points

VARIANTS = ("petr", "pebrt", "bones")
ARCHITECTURES = ("token", "sequence")
NORMALISATIONS = ("root_rms",)
JOINT_SETS = ("h36m17",)
INPUT_DIM = NUM_JOINTS * 2  # one token of 34 numbers
SCALE_EPS = 1e-6


@dataclass
class LifterConfig:
    """Everything needed to rebuild a lifter; stored (as `asdict`) in every checkpoint."""

    variant: str = "petr"  # "petr" (positions) | "pebrt" (bone rotations) | "bones" (directions + lengths, sequence)
    num_layers: int = 2  # encoder layers, 1..8 (thesis: 2)
    d_model: int = 34  # token width; 34 = 17 * 2 feeds the keypoints directly (thesis), else a linear embedding
    nhead: int = 2
    dim_feedforward: int = 2048  # PyTorch's TransformerEncoderLayer default, which the thesis kept
    dropout: float = 0.1
    output_scale: float = 1.0  # petr: joints = tanh(.) * output_scale metres (thesis: 1.0)
    body_height: float = 1.75  # pebrt: Winter model height in metres
    normalisation: str = "root_rms"
    joint_set: str = "h36m17"
    # "token": the thesis's one 34-number token per pose; "sequence": one token per frame of a track's recent
    # window (petr_ros.model.temporal), the last frame lifted, missing (all-zero) frames masked out.
    architecture: str = "token"
    window: int = 1  # sequence: frames per input window (the last one is lifted)

    def validate(self) -> LifterConfig:
        """Raise ValueError naming the first invalid field; return self."""
        if self.variant not in VARIANTS:
            raise ValueError(f"LifterConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if not 1 <= int(self.num_layers) <= 8:
            raise ValueError(f"LifterConfig.num_layers must be in 1..8, got {self.num_layers}")
        if self.d_model < 2 or self.nhead < 1 or self.d_model % self.nhead:
            raise ValueError(f"LifterConfig.d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        if self.dim_feedforward < 1:
            raise ValueError(f"LifterConfig.dim_feedforward must be >= 1, got {self.dim_feedforward}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LifterConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.output_scale > 0 or not self.body_height > 0:
            raise ValueError(
                f"LifterConfig.output_scale ({self.output_scale}) and body_height ({self.body_height}) must be > 0"
            )
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"LifterConfig.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.joint_set not in JOINT_SETS:
            raise ValueError(f"LifterConfig.joint_set must be one of {JOINT_SETS}, got {self.joint_set!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"LifterConfig.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not 1 <= int(self.window) <= 243:
            raise ValueError(f"LifterConfig.window must be in 1..243 frames, got {self.window}")
        if self.architecture == "token" and (self.window != 1 or self.variant == "bones"):
            raise ValueError("the one-token architecture lifts single frames with the petr or pebrt head; "
                             "windows and the bones head need architecture='sequence'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LifterConfig:
        """Rebuild from `asdict` output; unknown keys are an error (they would be silently ignored otherwise)."""
        if not isinstance(data, dict):
            raise ValueError(f"lifter config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown lifter config keys {unknown} (known: {sorted(known)})")
        return cls(**data).validate()


@dataclass
class LifterOutput:
    """What a lifter returns for a batch of B poses."""

    joints3d: Tensor  # (B, 17, 3) metres, root-relative, camera axes
    rotations: Tensor | None = None  # (B, 17, 3, 3) global joint rotations (pebrt), None for petr
    local_rotations: Tensor | None = None  # (B, 16, 3, 3) parent-relative bone rotations (pebrt)
    constraint_weights: Tensor | None = None  # (B, 16) kinematic-constraint loss weights (pebrt)
    bone_lengths: Tensor | None = None  # (B, 16) metres (the sequence lifter's bones head)


def normalize_keypoints_2d(kp: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """(..., 17, 2) pixel keypoints -> root-centred and divided by the RMS distance to the root (joint 0).

    The result does not depend on image size, position or person scale. Works on numpy arrays and torch tensors
    (differentiably); a degenerate pose (all joints on the root) is divided by SCALE_EPS instead of 0.
    """
    if isinstance(kp, Tensor):
        if kp.ndim < 2 or kp.shape[-2:] != (NUM_JOINTS, 2):
            raise ValueError(f"keypoints must have shape (..., {NUM_JOINTS}, 2), got shape {tuple(kp.shape)}")
        centred = kp - kp[..., ROOT : ROOT + 1, :]
        scale = centred.square().sum(-1).mean(-1, keepdim=True).sqrt().clamp_min(SCALE_EPS)
        return centred / scale[..., None]
    arr = check_points(kp, "keypoints", joints=NUM_JOINTS, dims=2)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    centred = arr - arr[..., ROOT : ROOT + 1, :]
    # the sum over x, y as x + y: numpy's reduce over an axis of 2 costs several times that (bit for bit the same)
    squares = np.square(centred)
    scale = np.sqrt((squares[..., 0] + squares[..., 1]).mean(-1, keepdims=True))
    centred /= np.maximum(scale, SCALE_EPS)[..., None]
    return centred


class SinusoidalPositionalEncoding(nn.Module):
    """Vaswani et al. sinusoidal encoding added to a (B, T, D) token sequence (not learned, not saved)."""

    def __init__(self, d_model: int, max_len: int = 64) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pe[: x.shape[1]].to(x.dtype)


class _Lifter(nn.Module):
    """Shared trunk: (B, 17, 2) normalised keypoints -> (B, d_model) encoded token."""

    def __init__(self, config: LifterConfig, out_features: int) -> None:
        super().__init__()
        self.config = config
        # With d_model = 34 (the thesis) the keypoints ARE the token; other widths get a linear embedding.
        self.embed = nn.Identity() if config.d_model == INPUT_DIM else nn.Linear(INPUT_DIM, config.d_model)
        self.pos_encoding = SinusoidalPositionalEncoding(config.d_model)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.nhead,
            dim_feedforward=config.dim_feedforward,
            dropout=config.dropout,
            batch_first=True,
        )
        # nested tensors only help with padding masks, which one token never has
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, out_features)

    def encode(self, keypoints: Tensor) -> Tensor:
        if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_JOINTS, 2):
            raise ValueError(
                f"lifter input must be normalised keypoints of shape (B, {NUM_JOINTS}, 2), got {tuple(keypoints.shape)}"
            )
        token = self.embed(keypoints.reshape(keypoints.shape[0], 1, INPUT_DIM))
        return self.encoder(self.pos_encoding(token))[:, 0]

    def extra_repr(self) -> str:
        return f"variant={self.config.variant}, layers={self.config.num_layers}, d_model={self.config.d_model}"


class PETRLifter(_Lifter):
    """PETR: one token -> transformer -> 51 values -> tanh * scale -> (17, 3) root-relative joints."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__(config, NUM_JOINTS * 3)
        root_mask = torch.ones(NUM_JOINTS, 1)
        root_mask[ROOT] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(self, keypoints: Tensor) -> LifterOutput:
        out = torch.tanh(self.head(self.encode(keypoints))) * self.config.output_scale
        joints = out.reshape(-1, NUM_JOINTS, 3) * self.root_mask  # the pelvis is the origin by definition
        return LifterOutput(joints3d=joints)


class PEBRTLifter(_Lifter):
    """PEBRT: one token -> transformer -> 16 x 6D bone rotations -> FK on a Winter skeleton of `body_height`."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__(config, NUM_BONES * 6)
        from petr_ros import kinematics  # imported here so PETR alone never needs it

        lengths = torch.as_tensor(np.asarray(kinematics.winter_bone_lengths(config.body_height)), dtype=torch.float32)
        self.register_buffer("bone_lengths", lengths.reshape(NUM_BONES), persistent=False)
        # Start near the rest pose (identity rotations) rather than at a random 6D vector: [1,0,0, 0,1,0].
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(NUM_BONES))

    def forward(self, keypoints: Tensor) -> LifterOutput:
        six = self.head(self.encode(keypoints)).reshape(-1, NUM_BONES, 6)
        return pebrt_output(six, self.bone_lengths)


def pebrt_output(six: Tensor, bone_lengths: Tensor) -> LifterOutput:
    """(B, 16, 6) predicted 6D bone rotations -> joints by forward kinematics on `bone_lengths` (16,), global and
    local rotations and the kinematic-constraint weights (the PEBRT head, shared by both architectures)."""
    from petr_ros import kinematics as kin

    six = six.float()
    # Bone b's rotation relative to its parent's frame; the root's own frame is not predicted (16 bones), so
    # the bones leaving the pelvis are first expressed in camera axes (root = identity).
    raw_local = kin.rot6d_to_matrix(six)
    eye = torch.eye(3, dtype=raw_local.dtype, device=raw_local.device).expand(raw_local.shape[0], 1, 3, 3)
    joints = kin.forward_kinematics(torch.cat([eye, raw_local], dim=1), bone_lengths, frame="local")
    chain: list[Tensor] = [eye[:, 0]]
    for j in range(1, NUM_JOINTS):
        chain.append(chain[PARENTS[j]] @ raw_local[:, j - 1])
    # Then the root gets the design's body frame (from the hips and spine it produced) and the bones leaving
    # the pelvis are re-expressed relative to it: positions and child globals are unchanged, and the joint
    # limits of the hips and spine are judged in the body's frame, not the camera's.
    body = kin.joint_rotations(joints, "global")[:, ROOT]
    chain[ROOT] = body
    rotations = torch.stack(chain, dim=1)
    parents = torch.stack([rotations[:, PARENTS[j]] for j in range(1, NUM_JOINTS)], dim=1)
    local = parents.transpose(-1, -2) @ rotations[:, 1:]
    weights, _ = kin.kinematic_constraint_weights(local)
    return LifterOutput(joints3d=joints, rotations=rotations, local_rotations=local, constraint_weights=weights)


def build_lifter(config: LifterConfig) -> nn.Module:
    """A freshly initialised lifter for `config` (validated first): the one-token PETR or PEBRT of the thesis, or
    the per-frame-token sequence lifter (petr_ros.model.temporal) for track windows."""
    config.validate()
    if config.architecture == "sequence":
        from petr_ros.model.temporal import SequenceLifter  # imports this module: resolved at call time

        return SequenceLifter(config)
    return PETRLifter(config) if config.variant == "petr" else PEBRTLifter(config)
