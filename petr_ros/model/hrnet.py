"""HRNet-W32 for COCO 17-keypoint heatmaps (Sun et al., CVPR 2019), written for petr_ros.

The module tree reproduces the parameter layout of the released ``pose_hrnet_w32_256x192.pth`` exactly (names,
shapes and registration order: see ``/work/shared/reference/hrnet_w32_256x192_state_dict.tsv``), so the official
weights load with ``strict=True``. The operations are the official ones: a two-conv stride-4 stem, four
Bottleneck blocks, then stages of parallel BasicBlock branches (32/64/128/256 channels at 1/4..1/32 resolution)
joined by fuse layers (1x1 conv + BN + nearest upsampling from coarser branches, chains of strided 3x3 convs from
finer ones) and a final 1x1 conv on the 1/4-resolution branch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

NUM_KEYPOINTS = 17
INPUT_SIZE = (256, 192)  # (height, width) the released weights were trained on
HEATMAP_STRIDE = 4
WIDTH = 32
# Per stage: number of modules, number of BasicBlocks per branch; branch channels are WIDTH * 2**k.
_STAGES = ((1, 4), (4, 4), (3, 4))  # stage2, stage3, stage4
_BN_MOMENTUM = 0.1


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (the HRNet branch unit)."""

    expansion = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = _bn(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = _bn(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels) residual block of the stem's layer1."""

    expansion = 4

    def __init__(self, cin: int, planes: int, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, kernel_size=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _fuse_layer(channels: list[int], i: int, j: int) -> nn.Module | None:
    """The path that brings branch j's features to branch i's resolution and width."""
    if j == i:
        return None
    if j > i:  # coarser -> finer: 1x1 conv to the target width, then nearest upsampling
        return nn.Sequential(
            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
            _bn(channels[i]),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    # finer -> coarser: i - j strided 3x3 convs; ReLU between them but not after the last (it is added first)
    steps: list[nn.Module] = []
    for k in range(i - j):
        if k == i - j - 1:
            steps.append(nn.Sequential(_conv3x3(channels[j], channels[i], stride=2), _bn(channels[i])))
        else:
            steps.append(
                nn.Sequential(_conv3x3(channels[j], channels[j], stride=2), _bn(channels[j]), nn.ReLU(inplace=True))
            )
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel BasicBlock branches followed by an exchange (fusion) between all resolutions."""

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c) for _ in range(num_blocks)]) for c in channels
        )
        outputs = self.num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_layer(channels, i, j) for j in range(self.num_branches)) for i in range(outputs)
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else fuse[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else fuse[j](xs[j]))
            out.append(self.relu(y))
        return out


def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapters between stages: re-width existing branches when needed, spawn the new coarser branch."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            if prev[i] != c:
                layers.append(nn.Sequential(_conv3x3(prev[i], c), _bn(c), nn.ReLU(inplace=True)))
            else:
                layers.append(None)
        else:  # the new branch is built from the coarsest existing one by stride-2 convs
            steps = []
            for k in range(i + 1 - len(prev)):
                cin = prev[-1]
                cout = c if k == i - len(prev) else cin
                steps.append(nn.Sequential(_conv3x3(cin, cout, stride=2), _bn(cout), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetW32(nn.Module):
    """HRNet-W32 pose network: (B, 3, H, W) ImageNet-normalised RGB -> (B, 17, H/4, W/4) heatmaps."""

    def __init__(self, num_keypoints: int = NUM_KEYPOINTS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, kernel_size=1, bias=False), _bn(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, down), *[Bottleneck(256, 64) for _ in range(3)])

        prev = [256]
        for s, (num_modules, num_blocks) in enumerate(_STAGES, start=2):
            channels = [WIDTH * 2**k for k in range(s)]
            setattr(self, f"transition{s - 1}", _transition(prev, channels))
            last_stage = s == 1 + len(_STAGES)
            modules = [
                # the very last module only produces the high-resolution output the head uses
                HighResolutionModule(channels, num_blocks, multi_scale_output=not (last_stage and m == num_modules - 1))
                for m in range(num_modules)
            ]
            setattr(self, f"stage{s}", nn.Sequential(*modules))
            prev = channels
        self.final_layer = nn.Conv2d(WIDTH, num_keypoints, kernel_size=1, stride=1, padding=0)

    def _run_stage(self, s: int, xs: list[Tensor]) -> list[Tensor]:
        transition: nn.ModuleList = getattr(self, f"transition{s - 1}")
        inputs = []
        for i, t in enumerate(transition):
            src = xs[i] if i < len(xs) else xs[-1]
            inputs.append(src if t is None else t(src))
        for module in getattr(self, f"stage{s}"):
            inputs = module(inputs)
        return inputs

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 32, H/4, W/4): the stage-4 high-resolution branch (input of the heatmap head)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, 2 + len(_STAGES)):
            xs = self._run_stage(s, xs)
        return xs[0]

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 17, H/4, W/4) keypoint heatmaps."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HRNetW32 expects (B, 3, H, W) images, got shape {tuple(x.shape)}")
        if x.shape[2] % 32 or x.shape[3] % 32:  # four halvings below the 1/4 stem must stay exact for the fusion
            raise ValueError(f"HRNetW32 needs H and W divisible by 32, got {tuple(x.shape[2:])}")
        return self.final_layer(self.forward_features(x))

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True, assign: bool = False):  # noqa: D102
        """As nn.Module.load_state_dict, tolerating releases without BatchNorm ``num_batches_tracked`` entries and
        state dicts saved from DataParallel (``module.`` prefix)."""
        return super().load_state_dict(_normalise_state_dict(state_dict, self.state_dict()), strict, assign)


def _normalise_state_dict(state_dict: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> dict[str, Tensor]:
    sd = dict(state_dict)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    for name, ref in reference.items():
        if name.endswith("num_batches_tracked") and name not in sd:
            sd[name] = torch.zeros_like(ref)
    return sd


class HRNetWeightsError(ValueError):
    """The HRNet weights file cannot be used (unreadable, or not the HRNet-W32 COCO network)."""


def load_hrnet_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HRNetW32:
    """Build an HRNetW32 and load the official ``pose_hrnet_w32_256x192.pth`` (or a compatible state dict).

    Raises FileNotFoundError when the file is missing, HRNetWeightsError (a ValueError) when it cannot be read or
    does not hold this network (the message lists a few missing / unexpected / mis-shaped keys).
    The model is returned in eval mode on ``map_location``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"HRNet weights not found: {path}. Download pose_hrnet_w32_256x192.pth (official HRNet release) and pass "
            "its path, or use the mediapipe front end."
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated / non-pickle files
        raise HRNetWeightsError(f"cannot read HRNet weights {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # training checkpoints wrap the weights
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HRNetWeightsError(f"{path} does not hold a state dict of tensors (got {type(obj).__name__})")
    model = HRNetW32()
    expected = model.state_dict()
    sd = _normalise_state_dict(obj, expected)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise HRNetWeightsError(
            f"{path} is not an HRNet-W32 17-keypoint state dict: {len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}, {len(wrong)} shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(sd, strict=True)
    return model.to(map_location).eval()
