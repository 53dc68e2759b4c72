"""Image mode: prepared person crops -> HRNet-W32 -> soft-argmax 2D (COCO-17) -> H3.6M-17 -> lifter, end to end.

The dataset and the model only; `sources.crop_source` turns them into the training loop's data source.

The COCO -> H3.6M conversion is `skeleton.coco_to_h36m`, which is linear in the keypoints when all scores are
equal; its matrix is read off the function itself (applied to unit vectors), so the differentiable version here
is the very same conversion the node uses, not a second definition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from petr_ros import skeleton
from petr_ros.model.heatmap import DEFAULT_BETA, DEFAULT_WINDOW, soft_argmax_decode
from petr_ros.model.lifter import LifterOutput, normalize_keypoints_2d
from petr_ros.preprocessing import normalise_crops
from training.h36m import action_group
from training.prepare import load_index


def coco_to_h36m_matrix() -> np.ndarray:
    """(17, 17) M with h36m = M @ coco for equal scores, taken from skeleton.coco_to_h36m on unit vectors."""
    basis = np.zeros((skeleton.COCO_NUM_JOINTS, skeleton.COCO_NUM_JOINTS, 2))
    basis[np.arange(skeleton.COCO_NUM_JOINTS), np.arange(skeleton.COCO_NUM_JOINTS), 0] = 1.0
    converted, _ = skeleton.coco_to_h36m(basis)  # (k, 17, 2): conversion of the k-th unit vector
    return converted[..., 0].T  # column k = image of COCO joint k


class EndToEndModel(nn.Module):
    """HRNet-W32 heatmaps -> soft-argmax -> COCO->H3.6M -> normalize_keypoints_2d -> lifter."""

    def __init__(self, lifter: nn.Module, hrnet_weights: str | None = None, backbone: nn.Module | None = None) -> None:
        """backbone: an HRNet-W32 module (a full checkpoint's); else built from `hrnet_weights` (empty: random)."""
        super().__init__()
        from petr_ros.model.hrnet import HRNetW32, load_hrnet_weights

        if backbone is None:
            backbone = load_hrnet_weights(hrnet_weights) if hrnet_weights else HRNetW32()
        self.backbone = backbone
        self.lifter = lifter
        conversion = torch.as_tensor(coco_to_h36m_matrix(), dtype=torch.float32)
        self.register_buffer("coco_to_h36m", conversion, persistent=False)
        self.backbone_frozen = False
        # the HRNet front end's options that decode heatmaps exactly like `keypoints` (stored in checkpoints)
        self.decoder_options = {"decoder": "soft_argmax", "beta": DEFAULT_BETA, "window": DEFAULT_WINDOW}

    def freeze_backbone(self, frozen: bool) -> None:
        """Frozen: no gradients and BatchNorm statistics kept (eval mode) - the thesis default."""
        self.backbone_frozen = frozen
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> EndToEndModel:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def keypoints(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised crops -> (B, 17, 2) H3.6M keypoints in heatmap pixels."""
        heatmaps = self.backbone(images)
        coco, _ = soft_argmax_decode(heatmaps.float(), beta=DEFAULT_BETA, window=DEFAULT_WINDOW)
        return torch.einsum("hc,bcd->bhd", self.coco_to_h36m, coco)

    def forward(self, images: Tensor) -> LifterOutput:
        return self.lifter(normalize_keypoints_2d(self.keypoints(images)))


class CropDataset(Dataset):
    """(normalised crop (3, H, W), root-relative 3D joints (17, 3)) from a `prepare` index."""

    def __init__(self, index_path: str, subjects: list[str], stride: int = 1) -> None:
        index = load_index(index_path)
        # index frames are already every prepare-stride-th frame: take every `stride`-th of the subjects' crops
        keep = np.flatnonzero(np.isin(index["subject"], subjects))[::stride]
        if len(keep) == 0:
            raise ValueError(f"{index_path}: no crops for subjects {subjects}")
        self.root = Path(index_path).parent
        self.crops = index["crop"][keep]
        self.joints3d = torch.as_tensor(index["joints3d"][keep].astype(np.float32))
        self.actions = np.array([action_group(str(a)) for a in index["action"][keep]])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        import cv2

        path = self.root / str(self.crops[i])
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise ValueError(f"{path}: cannot read crop image")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return torch.from_numpy(normalise_crops(rgb[None])[0]), self.joints3d[i]
