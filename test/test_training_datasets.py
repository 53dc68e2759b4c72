"""Image mode's data and model (training/datasets.py): the crop dataset of a `prepare` index, the COCO -> H3.6M
matrix read off the node's conversion, and the end-to-end model's stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from petr_ros import skeleton
from petr_ros.model.heatmap import soft_argmax_decode
from petr_ros.model.lifter import LifterConfig, build_lifter, normalize_keypoints_2d
from petr_ros.preprocessing import normalise_crops
from training.cli import main
from training.datasets import CropDataset, EndToEndModel, coco_to_h36m_matrix
from training.prepare import load_index
from training.synthetic import generate_dataset


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crops")
    paths = generate_dataset(root / "d", subjects=("S1", "S9"), actions=("Walking 1", "Squat 1"), frames=6, seed=7,
                             videos=True, video_scale=0.2)
    assert main(["prepare", "--data-3d", str(paths["data_3d"]), "--data-2d", str(paths["data_2d"]), "--videos",
                 str(paths["videos"]), "--output", str(root / "out"), "--stride", "3", "--subjects", "S1", "S9",
                 "--quiet"]) == 0
    return root / "out" / "index.npz"


def test_coco_matrix_is_the_nodes_conversion_for_equal_scores() -> None:
    coco = np.random.default_rng(0).uniform(0, 200, (5, 17, 2))
    m = coco_to_h36m_matrix()
    assert m.shape == (17, 17) and np.allclose(m.sum(axis=1), 1.0)  # every H3.6M joint is an affine mix
    assert np.allclose(np.einsum("hc,ncd->nhd", m, coco), skeleton.coco_to_h36m(coco)[0])


def test_crop_dataset_reads_the_index_crops_subjects_and_actions(index) -> None:
    raw = load_index(index)
    data = CropDataset(str(index), ["S9"], stride=1)
    s9 = np.flatnonzero(raw["subject"] == "S9")
    assert len(data) == len(s9) == 2 * 4 * 2  # actions x cameras x frames (0, 3)
    image, joints = data[3]
    assert image.shape == (3, 256, 192) and image.dtype == torch.float32
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(index.parent / raw["crop"][s9[3]])), cv2.COLOR_BGR2RGB)
    assert torch.equal(image, torch.from_numpy(normalise_crops(rgb[None])[0]))
    assert np.array_equal(joints.numpy(), raw["joints3d"][s9[3]].astype(np.float32))
    assert set(data.actions) == {"Walking", "Squat"}  # grouped names, for per-action validation
    assert len(CropDataset(str(index), ["S1", "S9"], stride=2)) == len(raw["crop"][::2])
    with pytest.raises(ValueError, match=r"no crops for subjects \['S11'\]"):
        CropDataset(str(index), ["S11"])
    (index.parent / raw["crop"][s9[0]]).write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read crop image"):
        data[0]


def test_end_to_end_model_stages_and_frozen_backbone() -> None:
    torch.manual_seed(0)
    lifter = build_lifter(LifterConfig(dim_feedforward=32, dropout=0.0))
    model = EndToEndModel(lifter)
    images = torch.randn(2, 3, 256, 192)
    model.eval()
    with torch.no_grad():
        coco, _ = soft_argmax_decode(model.backbone(images).float(), **{k: v for k, v in model.decoder_options.items()
                                                                          if k != "decoder"})
        keypoints = model.keypoints(images)
        expected = torch.from_numpy(skeleton.coco_to_h36m(coco.double().numpy())[0]).float()
        assert torch.allclose(keypoints, expected, atol=1e-4)
        assert torch.allclose(model(images).joints3d, lifter(normalize_keypoints_2d(keypoints)).joints3d)
    model.freeze_backbone(True)
    model.train()
    assert not model.backbone.training and model.lifter.training  # frozen: BatchNorm statistics kept
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.freeze_backbone(False)
    model.train()
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())
    # a given backbone module is used as it is (full checkpoints)
    assert EndToEndModel(lifter, backbone=model.backbone).backbone is model.backbone
