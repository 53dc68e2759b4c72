"""Sequence lifters on Human3.6M-layout data: windows of a sequence's 2D keypoints (zeros before its start, as a
young track's), trained and evaluated like single frames, and `--init` from the shipped (sequence) lifter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_checkpoint
from training import h36m
from training.cli import main
from training.evaluate import evaluate_checkpoint
from training.sources import WindowDataset
from training.synthetic import generate_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("h36m"), subjects=("S1", "S9"), frames=30, seed=10)


def test_windows_end_at_the_sample_and_are_zero_before_the_sequence(data) -> None:
    samples = h36m.load_h36m_samples(data["data_3d"], data["data_2d"], ["S9"])
    windows = WindowDataset(samples, window=5, stride=3)
    assert len(windows) == 4 * 4 * 10  # actions x cameras x every 3rd of 30 frames
    for i in (0, 1, 7, 39):
        window, target = windows[i]
        row = int(windows.rows[i])
        frame = int(samples.frame[row])
        assert window.shape == (5, 17, 2) and torch.equal(window[-1], torch.from_numpy(samples.keypoints2d[row]))
        assert torch.equal(target, torch.from_numpy(samples.joints3d[row]))
        missing = max(0, 4 - frame)  # frames before the sequence's first
        assert (window[:missing] == 0).all() and (window[missing:] != 0).any(-1).any(-1).all()
        for k in range(missing, 5):  # the others are the sequence's own previous frames, in order
            assert torch.equal(window[k], torch.from_numpy(samples.keypoints2d[row - 4 + k]))


def test_a_sequence_lifter_trains_and_evaluates_on_windows(data, tmp_path, capsys) -> None:
    common = ["train", "--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects",
              "S1", "--test-subjects", "S9", "--batch-size", "32", "--threads", "1", "--quiet", "--lr", "1e-3"]
    assert main([*common, "--architecture", "sequence", "--window", "9", "--dim-feedforward", "64", "--epochs", "4",
                 "--output", str(tmp_path / "seq")]) == 0
    ckpt = load_checkpoint(tmp_path / "seq" / "best.pt")
    assert (ckpt.config.architecture, ckpt.config.window) == ("sequence", 9)
    history = ckpt.training_state["history"]
    assert history[-1]["val_mpjpe_mm"] < 0.8 * history[0]["val_mpjpe_mm"]  # it learns from windows
    result = evaluate_checkpoint(tmp_path / "seq" / "best.pt", data["data_3d"], data["data_2d"], ["S9"], stride=1)
    assert result["mpjpe"] == pytest.approx(ckpt.metadata["val_mpjpe_mm"], rel=1e-4)  # the same windows
    # fine-tuning the shipped lifter (a sequence lifter) starts from its weights and settings
    shipped = load_checkpoint(DEFAULT_LIFTER_PATH)
    assert main([*common, "--init", str(DEFAULT_LIFTER_PATH), "--epochs", "1", "--max-batches", "2", "--output",
                 str(tmp_path / "ft")]) == 0
    tuned = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert tuned.config == shipped.config
    assert any(not torch.equal(tuned.state_dict[k], v) for k, v in shipped.state_dict.items())
    assert np.isfinite(tuned.metadata["val_mpjpe_mm"])


def test_animate_runs_a_sequence_checkpoint(data, tmp_path) -> None:
    from PIL import Image

    assert main(["train", "--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects",
                 "S1", "--test-subjects", "S9", "--batch-size", "32", "--threads", "1", "--quiet", "--architecture",
                 "sequence", "--window", "4", "--dim-feedforward", "32", "--epochs", "1", "--output",
                 str(tmp_path / "seq")]) == 0
    out = tmp_path / "a.gif"
    assert main(["animate", "--checkpoint", str(tmp_path / "seq" / "last.pt"), "--data-3d", str(data["data_3d"]),
                 "--data-2d", str(data["data_2d"]), "--subject", "S9", "--action", "Squat 1", "--frames", "3",
                 "--step", "4", "--output", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 3
