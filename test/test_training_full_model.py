"""Full PETR checkpoints (issue 12 items 7, 8): image-mode training writes backbone + lifter in one file (a frozen
backbone as a hashed reference to its weights file, not a copy), PoseEstimator and `evaluate` run it end to end on
images, and `--init` fine-tunes from existing weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from petr_ros.estimator import PoseEstimator
from petr_ros.model.checkpoint import CheckpointError, load_backbone, load_checkpoint
from petr_ros.model.hrnet import HRNetW32
from training.cli import main
from training.config import TrainConfig
from training.synthetic import generate_dataset
from training.train import train


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("full")
    paths = generate_dataset(root / "d", subjects=("S1", "S9"), actions=("Walking 1", "Waving 1"), frames=8, seed=5,
                             videos=True, video_scale=0.3)
    assert main(["prepare", "--data-3d", str(paths["data_3d"]), "--data-2d", str(paths["data_2d"]), "--videos",
                 str(paths["videos"]), "--output", str(root / "crops"), "--subjects", "S1", "S9", "--stride", "4",
                 "--quiet"]) == 0
    torch.manual_seed(1)
    weights = root / "pose_hrnet_w32_256x192.pth"  # an HRNet-W32 weights file as the official one is laid out
    torch.save(HRNetW32().state_dict(), weights)
    return {**paths, "index": root / "crops" / "index.npz", "hrnet": weights, "root": root}


def _image_cfg(crops: dict[str, Path], output: Path, **kw) -> TrainConfig:
    base = dict(mode="image", index=str(crops["index"]), hrnet_weights=str(crops["hrnet"]), train_subjects=["S1"],
                test_subjects=["S9"], test_stride=4, dim_feedforward=32, batch_size=4, epochs=1, max_batches=2,
                threads=1, output=str(output))
    base.update(kw)
    return TrainConfig(**base)


def _frame(crops: dict[str, Path]) -> np.ndarray:
    import cv2

    video = crops["videos"] / "S9" / "Videos" / "Walking 1.54138969.mp4"
    ok, bgr = cv2.VideoCapture(str(video)).read()
    assert ok
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_frozen_backbone_is_a_reference_and_the_estimator_runs_the_whole_model(crops, tmp_path) -> None:
    result = train(_image_cfg(crops, tmp_path / "frozen"), progress=False)
    path = tmp_path / "frozen" / "best.pt"
    ckpt = load_checkpoint(path)
    assert ckpt.is_full_model and ckpt.backbone["kind"] == "hrnet_w32"
    assert "state_dict" not in ckpt.backbone and ckpt.backbone["weights_file"] == str(crops["hrnet"].resolve())
    assert path.stat().st_size < crops["hrnet"].stat().st_size / 20  # the 100+ MB backbone is not stored again
    estimator = PoseEstimator(lifter_checkpoint=path, device="cpu")
    assert estimator.backend_name == "hrnet"
    trained, used = result.model.backbone.state_dict(), estimator.frontend.model.state_dict()
    assert all(torch.equal(trained[k], used[k].cpu()) for k in trained)
    lifter, used_lifter = result.model.lifter.state_dict(), estimator.lifter.state_dict()
    assert all(torch.equal(lifter[k], used_lifter[k].cpu()) for k in lifter)
    frame = _frame(crops)
    people = estimator.estimate(frame, boxes=np.array([[0.0, 0.0, frame.shape[1] - 1.0, frame.shape[0] - 1.0]]))
    assert len(people) == 1 and people[0].joints3d.shape == (17, 3) and np.isfinite(people[0].joints3d).all()
    with pytest.raises(ValueError, match="full PETR checkpoint"):
        PoseEstimator(lifter_checkpoint=path, backend="mediapipe", device="cpu")
    # the node's per-frame pipeline builds the same estimator from its lifter-checkpoint setting
    from petr_ros.pipeline import FramePipeline, PipelineSettings

    pipeline = FramePipeline(PipelineSettings(lifter_checkpoint=str(path), device="cpu"))
    assert pipeline.estimator.backend_name == "hrnet"
    assert all(torch.equal(trained[k], v.cpu()) for k, v in pipeline.estimator.frontend.model.state_dict().items())
    pipeline.process(frame, 0.0, boxes=np.array([[0.0, 0.0, frame.shape[1] - 1.0, frame.shape[0] - 1.0]]))
    report = pipeline.last_report
    assert report.published + sum(report.rejected.values()) + report.dropped_over_max == 1  # one person seen
    # the reference is checked: a moved file is found beside the checkpoint, a different one is refused
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(path, moved / "best.pt")
    shutil.copy(crops["hrnet"], moved / crops["hrnet"].name)
    ckpt_moved = load_checkpoint(moved / "best.pt")
    ckpt_moved.backbone["weights_file"] = str(tmp_path / "nowhere" / crops["hrnet"].name)
    assert isinstance(load_backbone(ckpt_moved), HRNetW32)
    (moved / crops["hrnet"].name).write_bytes(b"other weights")
    with pytest.raises(CheckpointError, match="not the same weights"):
        load_backbone(ckpt_moved)


def test_fine_tuned_backbone_is_stored_and_evaluate_scores_images(crops, tmp_path, capsys) -> None:
    result = train(_image_cfg(crops, tmp_path / "tuned", backbone_lr=1e-4), progress=False)
    ckpt = load_checkpoint(tmp_path / "tuned" / "last.pt")
    stored = ckpt.backbone["state_dict"]
    tuned = result.model.backbone.state_dict()
    assert all(torch.equal(stored[k], tuned[k]) for k in tuned)
    original = torch.load(crops["hrnet"], weights_only=True)
    assert any(not torch.equal(original[k], tuned[k]) for k in original)  # it was fine-tuned
    estimator = PoseEstimator(lifter_checkpoint=tmp_path / "tuned" / "last.pt", device="cpu")
    used = estimator.frontend.model.state_dict()
    assert all(torch.equal(tuned[k], used[k].cpu()) for k in tuned)
    # resuming restores the fine-tuned backbone
    resumed = train(_image_cfg(crops, tmp_path / "tuned", backbone_lr=1e-4, epochs=2, allow_changes=["epochs"],
                               resume=str(tmp_path / "tuned" / "last.pt")), progress=False)
    assert resumed.history[0] == result.history[0]
    # evaluate runs the whole image model on the held-out crops, per action
    assert main(["evaluate", "--checkpoint", str(tmp_path / "tuned" / "last.pt"), "--index", str(crops["index"]),
                 "--subjects", "S9", "--device", "cpu", "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "Walking" in table and "Waving" in table and "MPJPE" in table
    # and through the node's own path (PoseEstimator) on the video frames
    assert main(["evaluate", "--checkpoint", str(tmp_path / "tuned" / "last.pt"), "--data-3d", str(crops["data_3d"]),
                 "--data-2d", str(crops["data_2d"]), "--videos", str(crops["videos"]), "--subjects", "S9",
                 "--stride", "4", "--device", "cpu", "--json", str(tmp_path / "frames.json")]) == 0
    import json

    frames = json.loads((tmp_path / "frames.json").read_text())
    assert frames["frames"] == {"scored": 2 * 4 * 2, "missed": 0}  # actions x cameras x frames (0, 4)
    assert set(frames["per_action"]) == {"Walking", "Waving"} and np.isfinite(frames["mpjpe"])
    assert "HRNet-W32" in frames["source"]["pipeline"]


def test_init_fine_tunes_from_existing_weights(tmp_path) -> None:
    paths = generate_dataset(tmp_path / "d", subjects=("S1", "S9"), frames=30, seed=6)
    common = ["train", "--data-3d", str(paths["data_3d"]), "--data-2d", str(paths["data_2d"]), "--train-subjects",
              "S1", "--test-subjects", "S9", "--batch-size", "32", "--threads", "1", "--quiet"]
    assert main([*common, "--dim-feedforward", "48", "--epochs", "2", "--output", str(tmp_path / "a")]) == 0
    source = load_checkpoint(tmp_path / "a" / "best.pt")
    # lr 0: the run keeps exactly the weights it started from; its model settings come from the checkpoint
    assert main([*common, "--init", str(tmp_path / "a" / "best.pt"), "--lr", "0", "--epochs", "1", "--output",
                 str(tmp_path / "b")]) == 0
    started = load_checkpoint(tmp_path / "b" / "last.pt")
    assert started.config.dim_feedforward == 48
    assert all(torch.equal(started.state_dict[k], v) for k, v in source.state_dict.items())
    assert started.training_state["epoch"] == 1  # a new run: its own optimiser, schedule and epochs
    # a model that does not fit the checkpoint is refused, naming the difference
    cfg = TrainConfig(data_3d=str(paths["data_3d"]), data_2d=str(paths["data_2d"]), train_subjects=["S1"],
                      test_subjects=["S9"], batch_size=32, epochs=1, threads=1, output=str(tmp_path / "c"),
                      init=str(tmp_path / "a" / "best.pt"), dim_feedforward=64)
    with pytest.raises(ValueError, match="dim_feedforward"):
        train(cfg, progress=False)
