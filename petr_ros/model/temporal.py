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
_SUM, _MAX, _ANY = np.add.reduce, np.maximum.reduce, np.logical_or.reduce  # without ndarray.sum's Python wrapper


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


class NumpySequenceLifter:
    """A SequenceLifter's inference forward in float32 numpy, for the CPU and a few people a frame.

    The network is tiny (about 0.1 M parameters, some 50 operations a call) and PyTorch's fixed cost per operation
    (5-10 us) is most of its time on the CPU; numpy's is a fraction of that. The same function as `forward` in
    eval mode (dropout off), rearranged: each LayerNorm's scale and shift folded into the linear layer it feeds,
    the 1/sqrt(head size) into the queries; a window holding one frame (a single-frame lift, a new track) skips
    the attention (softmax over one key is 1: the value projection); one track's missing frames are dropped
    rather than masked (they are never attended). So the same joints within float32 rounding (tested: 2e-5 m).
    Made from a copy of the model's weights at construction (an inference snapshot: rebuild it after changing
    them). Variants 'petr' and 'bones'; `for_model` returns None for anything else (PEBRT, a non-ReLU
    feed-forward), which stays on PyTorch.
    """

    def __init__(self, model: SequenceLifter) -> None:
        if not self.supports(model):
            raise ValueError(f"no numpy forward for {model!r}")
        self.config = model.config

        def arr(t: Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy().copy()

        def folded(norm: nn.LayerNorm, weight: Tensor, bias: Tensor) -> tuple[np.ndarray, np.ndarray]:
            """(z * gamma + beta) @ W^T + b = z @ (gamma W^T) + (beta W^T + b), in float64, stored as float32."""
            w = arr(weight).T
            return ((arr(norm.weight)[:, None] * w).astype(np.float32),
                    (arr(norm.bias) @ w + arr(bias)).astype(np.float32))

        def f32(t: Tensor | np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(arr(t) if isinstance(t, Tensor) else t, dtype=np.float32)

        d = model.config.d_model
        self._heads = int(model.encoder.layers[0].self_attn.num_heads)
        query_scale = np.ones(3 * d)
        query_scale[:d] = 1.0 / np.sqrt(d // self._heads)
        self._embed_w, self._embed_b = f32(arr(model.embed.weight).T), f32(model.embed.bias)
        # forward adds frames_ago[:steps].flip(0): the newest token gets row 0; here the last `steps` rows
        self._frames_ago_flipped = f32(arr(model.frames_ago)[::-1])
        self._layers = []
        for layer in model.encoder.layers:
            attn = layer.self_attn
            in_w, in_b = folded(layer.norm1, attn.in_proj_weight, attn.in_proj_bias)
            out_w, out_b = arr(attn.out_proj.weight).T, arr(attn.out_proj.bias)
            # one key: attention output = value projection, then out_proj: one matmul (from the normed token)
            v_w, v_b = in_w[:, 2 * d:].astype(np.float64), in_b[2 * d:].astype(np.float64)
            ff1_w, ff1_b = folded(layer.norm2, layer.linear1.weight, layer.linear1.bias)
            self._layers.append({
                "eps1": float(layer.norm1.eps), "eps2": float(layer.norm2.eps),
                "in_w": f32(in_w * query_scale), "in_b": f32(in_b * query_scale),
                # the last layer's query (of the last token) and keys and values apart, contiguous
                "q_w": f32((in_w * query_scale)[:, :d]), "q_b": f32((in_b * query_scale)[:d]),
                "kv_w": f32(in_w[:, d:]), "kv_b": f32(in_b[d:]),
                "out_w": f32(out_w), "out_b": f32(out_b),
                "value_out_w": f32(v_w @ out_w), "value_out_b": f32(v_b @ out_w + out_b),
                "ff1_w": ff1_w, "ff1_b": ff1_b,
                "ff2_w": f32(arr(layer.linear2.weight).T), "ff2_b": f32(layer.linear2.bias),
            })
        self._norm_eps = float(model.norm.eps)
        self._head_w, self._head_b = folded(model.norm, model.head.weight, model.head.bias)
        self._root_mask = f32(model.root_mask)
        self._fraction_low, self._fraction_span = f32(model.fraction_low), f32(model.fraction_span)
        self._mirror = np.asarray(model.mirror)
        # joint j = sum of the bones on its path from the pelvis: (17, 16) 0/1
        ancestry = np.zeros((NUM_JOINTS, NUM_BONES), np.float32)
        for j in range(1, NUM_JOINTS):
            ancestry[j] = ancestry[PARENTS[j]]
            ancestry[j, j - 1] = 1.0
        self._ancestry = ancestry

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether `model` is a SequenceLifter this class can run (variant 'petr' or 'bones', ReLU feed-forward)."""
        if not isinstance(model, SequenceLifter) or model.config.variant not in ("petr", "bones"):
            return False
        return all(getattr(layer, "activation_relu_or_gelu", 0) == 1 and layer.norm_first
                   for layer in model.encoder.layers)

    @classmethod
    def for_model(cls, model: nn.Module) -> NumpySequenceLifter | None:
        """The numpy forward of `model` when it runs on the CPU and is supported, else None."""
        try:
            on_cpu = next(model.parameters()).device.type == "cpu"
        except StopIteration:
            return None
        return cls(model) if on_cpu and cls.supports(model) else None  # type: ignore[arg-type]

    # The forward below calls the ufuncs' own reduce (no ndarray.sum/mean wrappers) and adds biases in place: the
    # very same float32 operations in the same order as the plain expressions (bit for bit), fewer Python-level
    # calls. (Each numpy call costs about a microsecond here; `out=` keywords cost more than a fresh array.)
    @staticmethod
    def _standardise(x: np.ndarray, eps: float) -> np.ndarray:
        """LayerNorm without its scale and shift (folded into the next linear layer)."""
        inverse_d = np.float32(1.0 / x.shape[-1])  # sum x 1/d: np.mean's own overhead is twice a sum's
        centred = x - _SUM(x, -1, keepdims=True) * inverse_d
        centred /= np.sqrt(_SUM(centred * centred, -1, keepdims=True) * inverse_d + eps)
        return centred

    def _attention(self, p: dict, normed: np.ndarray, last_only: bool, masked: np.ndarray | None) -> np.ndarray:
        """Multi-head self-attention over `normed` (B, T, d) tokens, for every token or the last one only."""
        b, t, d = normed.shape
        h = self._heads
        hd = d // h
        if t == 1:
            out = normed @ p["value_out_w"]
            out += p["value_out_b"]
            return out
        if last_only:
            kv = normed @ p["kv_w"]
            kv += p["kv_b"]
            q = normed[:, -1:] @ p["q_w"]
            q += p["q_b"]
        else:
            qkv = normed @ p["in_w"]
            qkv += p["in_b"]
            q, kv = qkv[..., :d], qkv[..., d:]
        q = q.reshape(b, -1, h, hd).transpose(0, 2, 1, 3)
        k = kv[..., :d].reshape(b, t, h, hd).transpose(0, 2, 3, 1)
        v = kv[..., d:].reshape(b, t, h, hd).transpose(0, 2, 1, 3)
        scores = q @ k  # (B, h, Q, T), already scaled by 1/sqrt(hd) (folded into the queries)
        if masked is not None:
            scores = np.where(masked[:, None, None, :], np.float32(-np.inf), scores)
        scores = np.exp(scores - _MAX(scores, -1, keepdims=True))
        scores /= _SUM(scores, -1, keepdims=True)
        out = (scores @ v).transpose(0, 2, 1, 3).reshape(b, -1, d) @ p["out_w"]
        out += p["out_b"]
        return out

    def _feed_forward(self, p: dict, x: np.ndarray) -> np.ndarray:
        hidden = self._standardise(x, p["eps2"]) @ p["ff1_w"]
        hidden += p["ff1_b"]
        out = np.maximum(hidden, 0.0) @ p["ff2_w"]
        out += p["ff2_b"]
        return out

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        """(B, T, 17, 2) normalised windows (or (B, 17, 2) frames), float32 -> the last frames' joints (B, 17, 3)."""
        x = np.asarray(keypoints, np.float32)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[2:] != (NUM_JOINTS, 2) or x.shape[1] < 1:
            raise ValueError(f"sequence lifter input must be normalised keypoint windows (B, T, {NUM_JOINTS}, 2) or "
                             f"frames (B, {NUM_JOINTS}, 2), got {x.shape}")
        x = x[:, -self.config.window:]
        b, steps = x.shape[:2]
        flat = x.reshape(b, steps, NUM_JOINTS * 2)
        tokens = flat @ self._embed_w
        tokens += self._embed_b
        tokens += self._frames_ago_flipped[-steps:]
        masked = None
        if steps > 1:
            valid = _ANY(flat != 0, -1)
            valid[:, -1] = True
            if not valid.all():
                if b == 1:  # one track: its missing frames are never attended, so they can go
                    tokens = tokens[:, valid[0]]
                else:
                    masked = ~valid
        for p in self._layers[:-1]:
            tokens += self._attention(p, self._standardise(tokens, p["eps1"]), False, masked)
            tokens += self._feed_forward(p, tokens)
        p = self._layers[-1]  # the last layer: the last token only (as _last_token_layer)
        last = self._attention(p, self._standardise(tokens, p["eps1"]), True, masked)
        last += tokens[:, -1:]
        last += self._feed_forward(p, last)
        raw = self._standardise(last[:, 0], self._norm_eps) @ self._head_w
        raw += self._head_b
        if self.config.variant == "petr":
            return np.tanh(raw).reshape(-1, NUM_JOINTS, 3) * np.float32(self.config.output_scale) * self._root_mask
        directions = raw[:, : NUM_BONES * 3].reshape(-1, NUM_BONES, 3)
        directions = directions / np.maximum(np.sqrt(_SUM(directions * directions, -1, keepdims=True)), 1e-6)
        low, high = STATURE_SPAN
        # 1 + exp(-x) of the 16 proportions and the stature (the head's last 17 outputs) in one go
        sigmoid_denominator = 1.0 + np.exp(-raw[:, NUM_BONES * 3 :])
        stature = self.config.body_height * (low + (high - low) / sigmoid_denominator[:, -1:])
        fraction = self._fraction_low + self._fraction_span / sigmoid_denominator[:, :NUM_BONES]
        fraction = 0.5 * (fraction + fraction[:, self._mirror])
        bones = directions * (stature * fraction)[..., None]
        return (self._ancestry @ bones).astype(np.float32, copy=False)
