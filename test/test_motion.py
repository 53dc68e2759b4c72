"""training.motion on the real fetched files (scripts/fetch_assets.sh): every source maps onto H3.6M-17 with the
right sides, human bone lengths, z up, the registry's sizes, and rotations that carry their bones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from petr_ros import kinematics
from petr_ros import skeleton as S
from training import motion
from training.motion import deepmimic, holosoma

ALL = [info.name for info in motion.SEQUENCES]
LIMBS = {"thigh": (2, 5), "shank": (3, 6), "upper_arm": (15, 12), "forearm": (16, 13)}  # (right, left) bones ends


@pytest.fixture(scope="module")
def sequences() -> dict[str, motion.MotionSequence]:
    return {name: motion.load_sequence(name) for name in ALL}


def _bone(seq: motion.MotionSequence, joint: int) -> np.ndarray:
    return np.linalg.norm(seq.joints[:, joint] - seq.joints[:, S.PARENTS[joint]], axis=-1)


def test_registry_sizes_and_rates_match_the_files(sequences: dict[str, motion.MotionSequence]) -> None:
    for info in motion.SEQUENCES:
        seq = sequences[info.name]
        assert seq.num_frames == info.frames, info.name
        assert seq.fps == pytest.approx(info.fps, rel=1e-3), info.name
        assert (seq.rotations is not None) == info.has_rotations, info.name
        assert seq.joints.shape == (info.frames, 17, 3) and seq.coco.shape == (info.frames, 17, 3)
        assert seq.joints.dtype == np.float32 and np.isfinite(seq.joints).all()
    assert sum(i.frames for i in motion.SEQUENCES if i.source == "holosoma") == 12939
    assert sum(i.frames for i in motion.SEQUENCES if i.source == "cmu") == 2752 + 4511


def test_split_is_by_whole_sequence_and_covers_every_source() -> None:
    held, train = motion.sequence_names("held_out"), motion.sequence_names("train")
    assert set(held) == set(motion.HELD_OUT) and not set(held) & set(train)
    assert sorted(held + train) == sorted(ALL)
    for source in ("cmu", "holosoma", "deepmimic", "isaaclab"):
        assert motion.sequence_names("held_out", source=source) and motion.sequence_names("train", source=source)
    assert "cmu/01_03" in held  # the shipped lifter's held-out take: old and new lifters compare on it
    assert all(motion.sequence_info(n).licence for n in ALL)
    with pytest.raises(ValueError, match="unknown motion sequence"):
        motion.load_sequence("cmu/02_01")
    with pytest.raises(ValueError, match="split"):
        motion.sequence_names("test")


@pytest.mark.parametrize("source", ["cmu", "holosoma", "deepmimic", "isaaclab"])
def test_up_axis_is_z(sequences: dict[str, motion.MotionSequence], source: str) -> None:
    """Over a source's frames the body mostly stands: ankles -> head points up z, ankles sit near z = 0."""
    joints = np.concatenate([sequences[n].joints for n in motion.sequence_names(source=source)])
    body_axis = np.median(joints[:, 10] - joints[:, [3, 6]].mean(1), axis=0)
    assert body_axis[2] > 1.0 and body_axis[2] > 2.5 * np.abs(body_axis[:2]).max(), (source, body_axis)
    floor = np.median(joints[:, [3, 6], 2].min(1))
    assert -0.05 < floor < (0.8 if source == "holosoma" else 0.15), (source, floor)  # holosoma: on boxes


@pytest.mark.parametrize("name", ALL)
def test_left_and_right_sides(sequences: dict[str, motion.MotionSequence], name: str) -> None:
    """Knees bend forwards: with forward = (right hip -> left hip) x (pelvis -> thorax) from the joints alone,
    a bent knee sits in front of its hip-ankle line. A left/right swap (or a mirror) turns that around."""
    seq = sequences[name]
    j = seq.joints.astype(np.float64)
    forward = np.cross(j[:, 4] - j[:, 1], j[:, 8] - j[:, 0])
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    votes = []
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        mid = 0.5 * (j[:, hip] + j[:, ankle])
        bend = np.linalg.norm(j[:, hip] - j[:, ankle], axis=-1) < 0.95 * (_bone(seq, knee) + _bone(seq, ankle))
        ahead = ((j[:, knee] - mid) * forward).sum(-1)
        votes.append(ahead[bend] > 0)
    votes = np.concatenate(votes)
    assert len(votes) > 10 and votes.mean() > 0.8, f"{name}: {votes.mean():.2f} of bent knees point forward"
    # The face (built from the head) looks the same way.
    nose = seq.joints[:, 9] - seq.joints[:, 8]
    assert np.mean((nose * forward).sum(-1) > 0) > 0.9, name


@pytest.mark.parametrize("name", ALL)
def test_bone_lengths_are_human_and_symmetric(sequences: dict[str, motion.MotionSequence], name: str) -> None:
    seq = sequences[name]
    ranges = {"thigh": (0.30, 0.55), "shank": (0.30, 0.55), "upper_arm": (0.22, 0.40), "forearm": (0.18, 0.35)}
    for limb, (right, left) in LIMBS.items():
        r, l_ = _bone(seq, right), _bone(seq, left)
        lo, hi = ranges[limb]
        assert lo < np.median(r) < hi and lo < np.median(l_) < hi, (name, limb, np.median(r), np.median(l_))
        assert abs(np.median(r) - np.median(l_)) < 0.05 * np.median(r), (name, limb)
        assert r.std() / r.mean() < 0.03 and l_.std() / l_.mean() < 0.03, (name, limb)  # rigid mocap skeletons
    hips = np.linalg.norm(seq.joints[:, 4] - seq.joints[:, 1], axis=-1)
    shoulders = np.linalg.norm(seq.joints[:, 11] - seq.joints[:, 14], axis=-1)
    assert 0.12 < np.median(hips) < 0.35 and 0.25 < np.median(shoulders) < 0.50, name
    assert 1.4 < seq.stature < 2.1, (name, seq.stature)


def test_holosoma_toes_point_where_the_body_faces() -> None:
    seq = motion.load_sequence("holosoma/climb_seq_0")
    j = seq.joints.astype(np.float64)
    forward = np.cross(j[:, 4] - j[:, 1], j[:, 8] - j[:, 0])
    toes = holosoma.toe_directions("climb_seq_0")
    assert np.mean((toes * forward[:, None]).sum(-1) > 0) > 0.9


@pytest.mark.parametrize("name", motion.sequence_names(rotations=True))
def test_rotations_carry_their_bones(sequences: dict[str, motion.MotionSequence], name: str) -> None:
    """Seen from the segment's own frame, the bone it carries never moves: the rotations are the bones'."""
    seq = sequences[name]
    rot = seq.rotations.astype(np.float64)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-4)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-4)
    for joint in (2, 3, 5, 6, 12, 15):  # thighs, shanks, upper arms: bones between measured joints
        bone = seq.joints[:, joint] - seq.joints[:, S.PARENTS[joint]]
        local = np.einsum("tji,tj->ti", rot[:, joint], bone)
        assert np.abs(local - local.mean(0)).max() < 2e-3, (name, S.JOINT_NAMES[joint])


def test_rotation_offsets_recover_a_known_frame_change() -> None:
    rng = np.random.default_rng(0)
    est = Rotation.random(40 * 17, random_state=1).as_matrix().reshape(40, 17, 3, 3)
    offsets = Rotation.random(17, random_state=2).as_matrix()
    truth = est @ offsets[None]
    np.testing.assert_allclose(motion.rotation_offsets(est, truth), offsets, atol=1e-9)
    assert np.abs(motion.aligned_rotation_error_deg(est, truth)).max() < 1e-5
    # A 10 degree turn of one frame's joint 3 about a random axis shows as 10 degrees (the fit barely moves).
    axis = rng.normal(size=3)
    turned = truth.copy()
    turned[7, 3] = Rotation.from_rotvec(np.radians(10) * axis / np.linalg.norm(axis)).as_matrix() @ truth[7, 3]
    err = motion.aligned_rotation_error_deg(est, turned, offsets=offsets)
    assert err[7, 3] == pytest.approx(10.0, abs=1e-6) and np.delete(err.ravel(), 7 * 17 + 3).max() < 1e-5
    with pytest.raises(ValueError, match="T, J, 3, 3"):
        motion.rotation_offsets(est[0], truth[0])


def test_rotations_from_positions_are_close_to_measured_ones_where_twist_does_not_matter(
    sequences: dict[str, motion.MotionSequence],
) -> None:
    """kinematics.joint_rotations of the true positions against the true rotations, after the fixed frame
    change: the pelvis and thighs agree within a few degrees on walking (their twist is fixed by the hips)."""
    seq = sequences["isaaclab/walk"]
    err = motion.aligned_rotation_error_deg(kinematics.joint_rotations(seq.joints.astype(np.float64)), seq.rotations)
    assert np.median(err[:, 0]) < 5.0 and np.median(err[:, [2, 5]]) < 6.0
    assert np.median(err[:, [12, 15]]) > np.median(err[:, [2, 5]])  # arm twist is what positions cannot see


def test_bad_files_give_clear_errors(tmp_path) -> None:
    bad = tmp_path / "motion" / "holosoma"
    bad.mkdir(parents=True)
    np.save(bad / holosoma.TAKE_FILES["climb_seq_0"], np.zeros((10, 52, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(F, 53, 3\)"):
        holosoma.load_take("climb_seq_0", assets=tmp_path)
    clips = tmp_path / "motion" / "deepmimic"
    clips.mkdir(parents=True)
    (clips / "humanoid3d_walk.txt").write_text(json.dumps({"Loop": "wrap", "Frames": [[0.03] * 40]}))
    with pytest.raises(ValueError, match="frame rows"):
        deepmimic.load_clip("walk", assets=tmp_path)
    (clips / "humanoid3d_walk.txt").write_text("not json")
    with pytest.raises(ValueError, match="not a DeepMimic motion file"):
        deepmimic.load_clip("walk", assets=tmp_path)
    with pytest.raises(FileNotFoundError, match="fetch_assets"):
        motion.load_sequence("isaaclab/walk", assets=tmp_path)


def test_registry_table_lists_every_sequence_and_checks_the_files(capsys: pytest.CaptureFixture[str]) -> None:
    from training.motion.__main__ import main

    assert main(["--check"]) == 0
    out = capsys.readouterr().out
    assert all(f"| {name} |" in out for name in ALL) and "all sequences load as registered" in out
    assert "| holosoma | 10636 | 2303 |" in out  # 12,939 frames in all


@pytest.mark.parametrize("first", ["training.cmu", "training.motion", "training.motion.cmu"])
def test_modules_import_in_any_order(first: str) -> None:
    """training.cmu and training.motion import each other's parts: either may be imported first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {first}; import training.cmu, training.motion"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
