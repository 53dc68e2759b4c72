"""Training that does not lose work or give wrong results (issue 12 items 1-6), each on the case as reported:
a cosine run extended on resume, a new run into a finished run's folder, a resume with changed settings, a
COCO-layout 2D file, incomplete or millimetre predictions, and a kill between the two checkpoint writes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from petr_ros import skeleton
from petr_ros.model.checkpoint import load_checkpoint
from training import h36m
from training.cli import main
from training.config import TrainConfig
from training.evaluate import evaluate_predictions
from training.synthetic import generate_dataset
from training.train import train

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("h36m"), subjects=("S1", "S9"), frames=40, seed=3)


def _cfg(data: dict[str, Path], output: Path, **kw) -> TrainConfig:
    base = dict(data_3d=str(data["data_3d"]), data_2d=str(data["data_2d"]), train_subjects=["S1"],
                test_subjects=["S9"], dim_feedforward=64, batch_size=64, lr=1e-3, epochs=2, threads=1,
                output=str(output))
    base.update(kw)
    return TrainConfig(**base)


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


# --- 1. cosine --resume --epochs 3 (was 2) ---------------------------------------------------------------------
def test_resume_with_more_epochs_extends_the_cosine_schedule(data, tmp_path) -> None:
    out = tmp_path / "cos"
    two = train(_cfg(data, out, scheduler="cosine"), progress=False)
    assert [row["lr"] for row in two.history] == pytest.approx([1e-3, 0.5e-3])  # the lr each epoch trained with
    with pytest.raises(ValueError, match=r"epochs: 2 -> 3.*--allow-changes epochs"):
        train(_cfg(data, out, scheduler="cosine", epochs=3, resume=str(out / "last.pt")), progress=False)
    three = train(_cfg(data, out, scheduler="cosine", epochs=3, resume=str(out / "last.pt"), allow_changes=["epochs"]),
                  progress=False)
    assert [row["epoch"] for row in three.history] == [1, 2, 3]
    # epoch 3 follows the 3-epoch cosine (1/4 of the initial lr), not the exhausted 2-epoch one (lr 0)
    assert three.history[-1]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(2 * math.pi / 3)))
    assert not _weights_equal(two.model.lifter, three.model.lifter)  # it did train in epoch 3
    with pytest.raises(ValueError, match="fewer than the 3 epochs"):
        train(_cfg(data, out, scheduler="cosine", epochs=2, resume=str(out / "last.pt"), allow_changes=["epochs"]),
              progress=False)


# --- 2. a new run into an existing output folder ----------------------------------------------------------------
def test_new_run_refuses_a_folder_holding_a_run_unless_overwrite(data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), progress=False)
    before = {name: (out / name).read_bytes() for name in ("best.pt", "last.pt", "log.csv")}
    with pytest.raises(ValueError, match=r"already holds a training run \(last.pt, best.pt, log.csv\).*--overwrite"):
        train(_cfg(data, out, epochs=1, lr=3e-3), progress=False)
    args = ["train", "--data-3d", str(data["data_3d"]), "--data-2d", str(data["data_2d"]), "--train-subjects", "S1",
            "--test-subjects", "S9", "--dim-feedforward", "64", "--batch-size", "64", "--epochs", "1", "--threads",
            "1", "--output", str(out), "--quiet"]
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing replaced
    with pytest.raises(FileNotFoundError):  # --overwrite with data that does not load: the old run stays
        train(_cfg(data, out, epochs=1, overwrite=True, data_2d=str(tmp_path / "missing.npz")), progress=False)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert main([*args, "--lr", "3e-3", "--overwrite"]) == 0
    assert load_checkpoint(out / "last.pt").metadata["train_config"]["lr"] == 3e-3
    assert len((out / "log.csv").read_text().strip().splitlines()) == 2  # the new run's one epoch only


# --- 3. --resume with changed settings -------------------------------------------------------------------------
def test_resume_refuses_changed_settings_and_names_them(data, tmp_path) -> None:
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), progress=False)
    poses_2d, meta = h36m.load_positions_2d(data["data_2d"])
    poses_2d["S1"]["Walking 1"][0] += 1.0  # another 2D file: one camera's keypoints a pixel off
    other_2d = tmp_path / "other_2d.npz"
    h36m.save_positions_2d(other_2d, poses_2d, meta)
    resume = str(out / "last.pt")
    with pytest.raises(ValueError) as err:
        train(_cfg(data, out, epochs=1, resume=resume, batch_size=32, lr=5e-4, seed=7, data_2d=str(other_2d)),
              progress=False)
    text = str(err.value)
    changes = ("batch_size: 64 -> 32", "lr: 0.001 -> 0.0005", "seed: 0 -> 7", f"data_2d: '{data['data_2d']} (sha256")
    for change in changes:
        assert change in text, text
    assert "--init" in text
    with pytest.raises(ValueError, match="--allow-changes accepts"):
        train(_cfg(data, out, epochs=1, resume=resume, lr=5e-4, allow_changes=["lr"]), progress=False)
    # what does not change the computation may differ: threads, workers, another output folder, a data file
    # moved elsewhere with the same content
    moved_2d = tmp_path / "moved_2d.npz"
    moved_2d.write_bytes(Path(data["data_2d"]).read_bytes())
    done = train(_cfg(data, tmp_path / "moved", epochs=2, resume=resume, allow_changes=["epochs"], num_workers=0,
                      threads=2, data_2d=str(moved_2d)), progress=False)
    assert [row["epoch"] for row in done.history] == [1, 2]


# --- 6. a kill between the two checkpoint writes; orphan temporaries --------------------------------------------
KILL_AFTER_FIRST_WRITE_OF_EPOCH_2 = """
import json, os, signal, sys
import training.resume as resume
from training.config import TrainConfig
from training.train import train

real_save = resume.save_checkpoint
def save_then_die(path, *args, **kwargs):
    written = real_save(path, *args, **kwargs)
    if args[2]["epochs_trained"] == 2:  # metadata: the first file of epoch 2 is on disk, the second is not
        os.kill(os.getpid(), signal.SIGKILL)
    return written
resume.save_checkpoint = save_then_die
train(TrainConfig(**json.loads(sys.argv[1])), progress=False)
"""

KILL_DURING_A_WRITE = """
import json, os, signal, sys
import torch
from training.config import TrainConfig
from training.train import train

real_save = torch.save
def write_half_then_die(obj, fh, *args, **kwargs):
    if obj.get("training_state", {}) and obj["training_state"]["epoch"] == 2:
        fh.write(b"PK half a checkpoint")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, fh, *args, **kwargs)
torch.save = write_half_then_die
train(TrainConfig(**json.loads(sys.argv[1])), progress=False)
"""


def _killed_child(script: str, cfg: TrainConfig) -> None:
    run = subprocess.run([sys.executable, "-c", script, json.dumps(cfg.to_dict())], cwd=REPO, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


def test_kill_between_checkpoint_writes_leaves_best_consistent_and_resume_repairs(data, tmp_path) -> None:
    full = train(_cfg(data, tmp_path / "full", epochs=3), progress=False)
    assert full.history[1]["val_mpjpe_mm"] < full.history[0]["val_mpjpe_mm"]  # epoch 2 improves: two writes
    out = tmp_path / "killed"
    _killed_child(KILL_AFTER_FIRST_WRITE_OF_EPOCH_2, _cfg(data, out, epochs=3))
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    # best.pt is never behind what last.pt records as the best
    assert best.metadata["val_mpjpe_mm"] <= last.training_state["best_val_mpjpe_mm"]
    assert best.metadata["epochs_trained"] >= last.training_state["best_epoch"]
    done = train(_cfg(data, out, epochs=3, resume=str(out / "last.pt")), progress=False)
    assert [r["val_mpjpe_mm"] for r in done.history] == [r["val_mpjpe_mm"] for r in full.history]
    best_full, best_done = load_checkpoint(tmp_path / "full" / "best.pt"), load_checkpoint(out / "best.pt")
    assert best_done.metadata["epochs_trained"] == best_full.metadata["epochs_trained"]
    assert all(torch.equal(best_done.state_dict[k], v) for k, v in best_full.state_dict.items())


def test_orphan_temporaries_of_a_killed_write_are_removed_on_resume(data, tmp_path) -> None:
    out = tmp_path / "killed"
    _killed_child(KILL_DURING_A_WRITE, _cfg(data, out, epochs=3))
    orphans = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert orphans and all(name.startswith((".best.pt.", ".last.pt.")) for name in orphans), orphans
    assert load_checkpoint(out / "last.pt").training_state["epoch"] == 1  # the previous file is intact
    train(_cfg(data, out, epochs=3, resume=str(out / "last.pt")), progress=False)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert load_checkpoint(out / "last.pt").training_state["epoch"] == 3


# --- 4. a COCO-layout 2D file -----------------------------------------------------------------------------------
def _as_coco(h36m_views: list[np.ndarray]) -> list[np.ndarray]:
    """Human3.6M-17 2D -> COCO-17 order (face points around the nose), as a Detectron-layout file holds it."""
    direct = {"nose": 9, "left_shoulder": 11, "right_shoulder": 14, "left_elbow": 12, "right_elbow": 15,
              "left_wrist": 13, "right_wrist": 16, "left_hip": 4, "right_hip": 1, "left_knee": 5, "right_knee": 2,
              "left_ankle": 6, "right_ankle": 3}
    face = {"left_eye": (8, -3), "right_eye": (-8, -3), "left_ear": (15, 0), "right_ear": (-15, 0)}
    out = []
    for v in h36m_views:
        coco = np.zeros_like(v)
        for c, name in enumerate(skeleton.COCO_JOINT_NAMES):
            coco[:, c] = v[:, direct[name]] if name in direct else v[:, 9] + np.array(face[name], np.float32)
        out.append(coco)
    return out


def test_coco_layout_2d_is_converted_and_unknown_layouts_refused(data, tmp_path) -> None:
    poses, meta = h36m.load_positions_2d(data["data_2d"])
    coco = {s: {a: _as_coco(v) for a, v in acts.items()} for s, acts in poses.items()}
    left, right = h36m.LAYOUT_SYMMETRY["coco"]
    coco_meta = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [left, right]}
    h36m.save_positions_2d(tmp_path / "coco.npz", coco, coco_meta)
    loaded, _ = h36m.load_positions_2d(tmp_path / "coco.npz")
    raw = coco["S9"]["Walking 1"][2]
    assert not np.allclose(loaded["S9"]["Walking 1"][2], raw)  # not taken as Human3.6M order
    assert np.allclose(loaded["S9"]["Walking 1"][2], skeleton.coco_to_h36m(raw)[0], atol=1e-4)
    # the limbs land on the right joints: same as the Human3.6M file where the conversion is exact
    for j in (1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16):
        assert np.allclose(loaded["S9"]["Walking 1"][2][:, j], poses["S9"]["Walking 1"][2][:, j], atol=1e-3), j
    bad = [({**coco_meta, "layout_name": "mpii"}, "layout_name 'mpii' is not supported"),
           ({**coco_meta, "keypoints_symmetry": [right, left]}, "does not match the 'coco' layout"),
           ({**meta, "keypoints_symmetry": [left, right]}, "does not match the 'h36m' layout"),
           ({"num_joints": 17}, "no layout_name")]
    for i, (metadata, message) in enumerate(bad):
        h36m.save_positions_2d(tmp_path / f"bad{i}.npz", coco, metadata)
        with pytest.raises(ValueError, match=message):
            h36m.load_positions_2d(tmp_path / f"bad{i}.npz")


# --- 5. evaluate --predictions: coverage and units --------------------------------------------------------------
def test_evaluate_predictions_refuses_partial_coverage_and_millimetres(tmp_path, capsys) -> None:
    paths = generate_dataset(tmp_path / "d", subjects=("S9",), actions=("Walking", "Walking 1", "Waving 1"),
                             frames=20, seed=4)
    world = h36m.load_positions_3d(paths["data_3d"])["S9"]
    perfect = {action: h36m.camera_frame_poses(w, "S9") for action, w in world.items()}

    def cli(preds: dict, *extra: str) -> tuple[int, str, str]:
        h36m.save_positions_3d(tmp_path / "p.npz", {"S9": preds})
        code = main(["evaluate", "--predictions", str(tmp_path / "p.npz"), "--data-3d", str(paths["data_3d"]),
                     "--subjects", "S9", *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = cli(perfect)
    assert code == 0 and "scored 3 subject/action sequences" in out and "PARTIAL" not in out
    no_walking = {a: v for a, v in perfect.items() if a != "Walking"}  # 'Walking 1' kept
    code, _, err = cli(no_walking)
    assert code == 2 and "missing S9/Walking " in err
    one_camera = {**perfect, "Waving 1": perfect["Waving 1"][:1]}
    code, _, err = cli(one_camera)
    assert code == 2 and "S9/Waving 1 cameras 1-3" in err
    millimetres = {a: [v * 1000.0 for v in views] for a, views in perfect.items()}
    code, _, err = cli(millimetres)
    assert code == 2 and "millimetres" in err
    code, out, _ = cli(no_walking, "--allow-partial")
    assert code == 0 and "not scored: S9/Walking" in out and "Walking 1 x4" in out
    result = evaluate_predictions(tmp_path / "p.npz", paths["data_3d"], ["S9"], allow_partial=True)
    assert result["coverage"]["missing"] == ["S9/Walking"] and result["num_poses"] == 2 * 4 * 20
