"""The sequence lifter: a tracked person's recent 2D frames -> the last frame's 3D (causal: no future frames).

Input: (B, T, 17, 2) windows of `normalize_keypoints_2d` keypoints, oldest first, the frame to lift LAST. Frames a
young track does not have yet are all-zero and masked out of the attention, so the same network lifts a track's
first frame (a window of one) and its hundredth; (B, 17, 2) is taken as a window of one frame. Each frame is one
token (a linear embedding of its 34 numbers) plus a learned embedding of how many frames ago it was; a pre-norm
transformer encoder mixes them and the last frame's token goes to the output head:

* "petr": 51 values, tanh x `output_scale` metres, the pelvis forced to the origin (as the one-token PETR);
* "bones": the skeleton-consistent head: 16 unit bone directions, one stature (body_height x 0.82..1.22) and
  16 proportions, each inside its anthropometric range of `bone_lengths.BONE_FRACTION_RANGES` and left/right
  symmetric; joints by summation from the pelvis (every pose the head can produce is a plausible human);
* "pebrt": 16 6D bone rotations on the Winter skeleton (as the one-token PEBRT).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from petr_ros.bone_lengths import BONE_FRACTION_RANGES, MIRROR_BONE
from petr_ros.model.lifter import INPUT_DIM, LifterConfig, LifterOutput, pebrt_output
from petr_ros.skeleton import NUM_BONES, NUM_JOINTS, PARENTS, ROOT

STATURE_SPAN = (0.82, 1.22)  # bones head: stature = body_height x this range


def valid_frames(windows: Tensor) -> Tensor:
    """(B, T, 17, 2) windows -> (B, T) bool: frames that hold keypoints (missing frames are all zero)."""
    return windows.ne(0).flatten(-2).any(-1)


def _last_token_layer(layer: nn.TransformerEncoderLayer, tokens: Tensor, mask: Tensor | None) -> Tensor:
    """A pre-norm encoder layer's output for the LAST token only (B, d): its query attends to every frame, the
    other frames' outputs (unused by the head) are not computed - the same numbers at a fraction of the cost."""
    normed = layer.norm1(tokens)
    last = tokens[:, -1:]
    attended = layer.self_attn(normed[:, -1:], normed, normed, key_padding_mask=mask, need_weights=False)[0]
    last = last + layer.dropout1(attended)
    last = last + layer._ff_block(layer.norm2(last))
    return last[:, 0]


class SequenceLifter(nn.Module):
    """Per-frame tokens over a track's window -> the last frame's root-relative 3D (see the module text)."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.d_model
        self.embed = nn.Linear(INPUT_DIM, d)
        self.frames_ago = nn.Parameter(torch.zeros(config.window, d))
        nn.init.normal_(self.frames_ago, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=config.nhead,
            dim_feedforward=config.dim_feedforward,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        # nested tensors would turn masked-out frames into padding the output cannot hold for the last token
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        out = {"petr": NUM_JOINTS * 3, "bones": NUM_BONES * 3 + NUM_BONES + 1, "pebrt": NUM_BONES * 6}
        self.head = nn.Linear(d, out[config.variant])
        root_mask = torch.ones(NUM_JOINTS, 1)
        root_mask[ROOT] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)
        ranges = torch.tensor(np.array(BONE_FRACTION_RANGES), dtype=torch.float32)
        self.register_buffer("fraction_low", ranges[:, 0].clone(), persistent=False)
        self.register_buffer("fraction_span", (ranges[:, 1] - ranges[:, 0]).clone(), persistent=False)
        self.mirror = list(int(b) for b in MIRROR_BONE)
        if config.variant == "pebrt":
            from petr_ros import kinematics

            winter = np.asarray(kinematics.winter_bone_lengths(config.body_height), dtype=np.float32)
            self.register_buffer("winter_lengths", torch.from_numpy(winter).reshape(NUM_BONES), persistent=False)
            with torch.no_grad():  # start near the rest pose (identity rotations)
                self.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(NUM_BONES))

    def forward(self, keypoints: Tensor) -> LifterOutput:
        """(B, T, 17, 2) normalised windows (or (B, 17, 2) single frames) -> the last frame's LifterOutput."""
        if keypoints.ndim == 3:
            keypoints = keypoints[:, None]
        if keypoints.ndim != 4 or keypoints.shape[2:] != (NUM_JOINTS, 2) or keypoints.shape[1] < 1:
            raise ValueError(
                f"sequence lifter input must be normalised keypoint windows (B, T, {NUM_JOINTS}, 2) or frames "
                f"(B, {NUM_JOINTS}, 2), got {tuple(keypoints.shape)}"
            )
        window = self.config.window
        if keypoints.shape[1] > window:
            keypoints = keypoints[:, -window:]
        steps = keypoints.shape[1]
        valid = valid_frames(keypoints)
        valid[:, -1] = True  # the frame to lift is always attended (an all-zero pose is still an input)
        tokens = self.embed(keypoints.flatten(-2)) + self.frames_ago[:steps].flip(0)
        mask = None if bool(valid.all()) else ~valid
        layers = self.encoder.layers
        for layer in layers[:-1]:
            tokens = layer(tokens, src_key_padding_mask=mask)
        feature = self.norm(_last_token_layer(layers[-1], tokens, mask))
        raw = self.head(feature)
        if self.config.variant == "petr":
            joints = torch.tanh(raw).reshape(-1, NUM_JOINTS, 3) * self.config.output_scale * self.root_mask
            return LifterOutput(joints3d=joints)
        if self.config.variant == "pebrt":
            return pebrt_output(raw.reshape(-1, NUM_BONES, 6), self.winter_lengths)
        return self._bones(raw)

    def _bones(self, raw: Tensor) -> LifterOutput:
        raw = raw.float()
        directions = raw[:, : NUM_BONES * 3].reshape(-1, NUM_BONES, 3)
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        low, high = STATURE_SPAN
        stature = self.config.body_height * (low + (high - low) * torch.sigmoid(raw[:, -1:]))
        fraction = self.fraction_low + self.fraction_span * torch.sigmoid(raw[:, NUM_BONES * 3 : NUM_BONES * 4])
        fraction = 0.5 * (fraction + fraction[:, self.mirror])
        lengths = stature * fraction
        bones = directions * lengths[..., None]
        joints: list[Tensor] = [torch.zeros_like(bones[:, 0])]
        for j in range(1, NUM_JOINTS):
            joints.append(joints[PARENTS[j]] + bones[:, j - 1])
        return LifterOutput(joints3d=torch.stack(joints, dim=1), bone_lengths=lengths)

    def extra_repr(self) -> str:
        c = self.config
        return f"variant={c.variant}, window={c.window}, layers={c.num_layers}, d_model={c.d_model}"
