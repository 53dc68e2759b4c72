"""petr_ros.skeleton: the one skeleton definition, checked against the facts in the design notes."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros import skeleton as S


def test_parents_come_before_children_and_make_16_bones() -> None:
    assert S.NUM_JOINTS == 17 and len(S.JOINT_NAMES) == 17 and len(set(S.JOINT_NAMES)) == 17
    assert S.PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)  # docs: the thesis's parents
    assert S.PARENTS[S.ROOT] == -1
    for j in range(1, S.NUM_JOINTS):
        assert 0 <= S.PARENTS[j] < j
    assert S.NUM_BONES == 16 and len(S.BONES) == 16 and len(S.BONE_NAMES) == 16
    for b, (child, parent) in enumerate(S.BONES):
        assert child == b + 1 and parent == S.PARENTS[child]  # bone b ends at joint b + 1
        assert S.BONE_NAMES[b] == f"{S.JOINT_NAMES[parent]}->{S.JOINT_NAMES[child]}"
    np.testing.assert_array_equal(S.BONE_CHILDREN, np.arange(1, 17))
    np.testing.assert_array_equal(S.BONE_PARENTS, S.PARENTS[1:])
    # Every joint reaches the root: a tree.
    for j in range(S.NUM_JOINTS):
        steps, k = 0, j
        while k != S.ROOT:
            k, steps = S.PARENTS[k], steps + 1
        assert steps <= 5


def test_left_right_symmetry() -> None:
    perm = S.FLIP_PERMUTATION
    assert sorted(perm) == list(range(17))
    assert all(perm[perm[j]] == j for j in range(17))  # an involution
    for j, name in enumerate(S.JOINT_NAMES):
        if name.startswith("left_"):
            assert S.JOINT_NAMES[perm[j]] == "right_" + name[5:] and S.joint_side(j) == "left"
        elif name.startswith("right_"):
            assert S.JOINT_NAMES[perm[j]] == "left_" + name[6:] and S.joint_side(j) == "right"
        else:
            assert perm[j] == j and S.joint_side(j) == "centre"
    # Mirroring keeps the tree: the parent of a mirrored joint is the mirrored parent.
    for j in range(1, 17):
        assert S.PARENTS[perm[j]] == perm[S.PARENTS[j]]
    assert [S.bone_side(b) for b in range(16)].count("left") == 6
    assert S.COCO_FLIP_PERMUTATION == tuple(
        S.COCO_JOINT_NAMES.index(n.replace("left", "#").replace("right", "left").replace("#", "right"))
        for n in S.COCO_JOINT_NAMES
    )


def test_flip_pose_mirrors_and_is_its_own_inverse() -> None:
    pose = np.random.default_rng(0).normal(size=(4, 17, 3))
    flipped = S.flip_pose(pose)
    np.testing.assert_allclose(S.flip_pose(flipped), pose)
    np.testing.assert_allclose(flipped[:, 4, 0], -pose[:, 1, 0])  # left hip <- mirrored right hip
    np.testing.assert_allclose(flipped[:, 4, 1:], pose[:, 1, 1:])
    np.testing.assert_allclose(flipped[:, 0, 0], -pose[:, 0, 0])
    assert S.flip_pose(pose[..., :2]).shape == (4, 17, 2)
    with pytest.raises(ValueError, match=r"got shape \(4, 16, 3\)"):
        S.flip_pose(pose[:, :16])


def test_flip_pose_mirrors_coco_poses_in_their_own_order() -> None:
    pose = np.random.default_rng(1).normal(size=(3, 17, 2))
    flipped = S.flip_pose(pose, layout="coco")
    np.testing.assert_allclose(S.flip_pose(flipped, layout="coco"), pose)
    left_wrist, right_wrist = S.COCO_JOINT_NAMES.index("left_wrist"), S.COCO_JOINT_NAMES.index("right_wrist")
    np.testing.assert_allclose(flipped[:, left_wrist, 0], -pose[:, right_wrist, 0])
    np.testing.assert_allclose(flipped[:, 0], pose[:, 0] * np.array([-1.0, 1.0]))  # the nose stays the nose
    # Mirroring then converting equals converting then mirroring (the two layouts agree).
    np.testing.assert_allclose(S.coco_to_h36m(flipped)[0], S.flip_pose(S.coco_to_h36m(pose)[0]), atol=1e-9)
    with pytest.raises(ValueError, match="layout"):
        S.flip_pose(pose, layout="openpose")


def test_raw_h36m_32_to_17() -> None:
    assert S.H36M32_TO_17 == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)  # design notes
    raw = np.arange(2 * 32 * 3, dtype=float).reshape(2, 32, 3)
    reduced = S.reduce_h36m32(raw)
    assert reduced.shape == (2, 17, 3)
    np.testing.assert_array_equal(reduced[:, 7], raw[:, 12])  # spine
    np.testing.assert_array_equal(reduced[:, 16], raw[:, 27])  # right wrist
    with pytest.raises(ValueError, match=r"got shape \(2, 17, 3\)"):
        S.reduce_h36m32(reduced)


def test_coco_to_h36m_on_a_hand_made_person() -> None:
    coco = np.zeros((17, 2))
    named = {
        "nose": (50, 10), "left_eye": (54, 8), "right_eye": (46, 8), "left_ear": (58, 10), "right_ear": (42, 10),
        "left_shoulder": (70, 30), "right_shoulder": (30, 30), "left_elbow": (75, 50), "right_elbow": (25, 50),
        "left_wrist": (78, 70), "right_wrist": (22, 70), "left_hip": (60, 80), "right_hip": (40, 80),
        "left_knee": (61, 110), "right_knee": (39, 110), "left_ankle": (62, 140), "right_ankle": (38, 140),
    }
    for name, xy in named.items():
        coco[S.COCO_JOINT_NAMES.index(name)] = xy
    scores = np.full(17, 0.9)
    scores[S.COCO_JOINT_NAMES.index("left_hip")] = 0.4
    h36m, h36m_scores = S.coco_to_h36m(coco, scores)
    at = {name: h36m[i] for i, name in enumerate(S.JOINT_NAMES)}
    np.testing.assert_allclose(at["pelvis"], [50, 80])  # mid-hip
    np.testing.assert_allclose(at["thorax"], [50, 30])  # mid-shoulder
    np.testing.assert_allclose(at["spine"], [50, 55])  # midway pelvis-thorax
    np.testing.assert_allclose(at["neck_nose"], [50, 10])  # the nose
    # Head top: face centre (50, 9) pushed away from the thorax by half the thorax -> face-centre vector.
    np.testing.assert_allclose(at["head"], [50, 9 - 0.5 * 21])
    np.testing.assert_allclose(at["left_knee"], [61, 110])
    np.testing.assert_allclose(at["right_wrist"], [22, 70])
    # Derived joints take the weakest score they are built from.
    assert h36m_scores[S.JOINT_INDEX["pelvis"]] == pytest.approx(0.4)
    assert h36m_scores[S.JOINT_INDEX["spine"]] == pytest.approx(0.4)
    assert h36m_scores[S.JOINT_INDEX["thorax"]] == pytest.approx(0.9)
    assert h36m_scores[S.JOINT_INDEX["left_hip"]] == pytest.approx(0.4)
    # Batched 3D input gives the same joints; scores default to 1.
    batch, batch_scores = S.coco_to_h36m(np.stack([np.c_[coco, np.ones(17)]] * 3))
    assert batch.shape == (3, 17, 3)
    np.testing.assert_allclose(batch[1, :, :2], h36m)
    np.testing.assert_array_equal(batch_scores, 1)


def test_coco_to_h36m_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"got shape \(17, 4\)"):
        S.coco_to_h36m(np.zeros((17, 4)))
    with pytest.raises(ValueError, match=r"got shape \(2, 16, 2\)"):
        S.coco_to_h36m(np.zeros((2, 16, 2)))
    with pytest.raises(ValueError, match=r"scores must have shape \(17,\)"):
        S.coco_to_h36m(np.zeros((17, 2)), np.ones(16))
    bad = np.zeros((17, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        S.coco_to_h36m(bad)
    with pytest.raises(ValueError, match="empty"):
        S.coco_to_h36m(np.zeros((0, 17, 2)))
    scores = np.ones(17)
    scores[5] = np.nan
    with pytest.raises(ValueError, match=r"scores \(shape \(17,\)\) contain 1 NaN"):
        S.coco_to_h36m(np.zeros((17, 2)), scores)
