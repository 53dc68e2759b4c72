"""The training objective (training/objective.py): the mirror augmentation is skeleton.flip_pose on every input
shape, and PEBRT's vector loss is the MPBVE metric weighted per bone by the kinematic-constraint weights."""

from __future__ import annotations

import numpy as np
import torch

from petr_ros import kinematics, metrics, skeleton
from petr_ros.model.lifter import LifterConfig, LifterOutput, build_lifter
from training.config import TrainConfig
from training.objective import flip_batch, lifter_loss


def test_flip_batch_mirrors_keypoints_windows_and_images_where_masked() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 17, 3, generator=g)
    mask = torch.tensor([True, False, True])
    for inputs in (torch.randn(3, 17, 2, generator=g), torch.randn(3, 5, 17, 2, generator=g)):
        flipped, flipped_target = flip_batch(inputs, target, mask)
        assert torch.equal(flipped[0], torch.from_numpy(skeleton.flip_pose(inputs[0].numpy())))
        assert torch.equal(flipped[1], inputs[1]) and torch.equal(flipped_target[1], target[1])
        assert torch.equal(flipped_target[2], torch.from_numpy(skeleton.flip_pose(target[2].numpy())))
    images = torch.randn(3, 3, 8, 6, generator=g)
    flipped, _ = flip_batch(images, target, mask)
    assert torch.equal(flipped[2], images[2].flip(-1)) and torch.equal(flipped[1], images[1])


def test_pebrt_loss_is_mpjpe_plus_constraint_weighted_rotation_and_mpbve() -> None:
    torch.manual_seed(0)
    lifter = build_lifter(LifterConfig(variant="pebrt", dim_feedforward=16, dropout=0.0))
    out = lifter(torch.randn(4, 17, 2))
    target = torch.as_tensor(kinematics.winter_rest_pose(1.7), dtype=torch.float32).expand(4, 17, 3).clone()
    target[:, 13, 0] += torch.linspace(0, 0.3, 4)
    cfg = TrainConfig(variant="pebrt", rotation_loss_weight=0.5, vector_loss_weight=2.0)
    loss, parts = lifter_loss(out, target, cfg)
    w = out.constraint_weights
    vector = (w * metrics.mpbve(out.joints3d, target, reduction="none")).mean()
    true_rot = kinematics.joint_rotations(target)
    rotation = (w * (out.rotations[:, 1:] - true_rot[:, 1:]).square().sum((-1, -2))).mean()
    expected = metrics.mpjpe(out.joints3d, target) + 0.5 * rotation + 2.0 * vector
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert np.isclose(parts["vector"], float(vector.detach()))
    assert np.isclose(parts["rotation"], float(rotation.detach()))
    loss.backward()  # differentiable end to end
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lifter.head.parameters())
    petr_loss, petr_parts = lifter_loss(LifterOutput(joints3d=out.joints3d.detach()), target, TrainConfig())
    assert set(petr_parts) == {"mpjpe"} and torch.isclose(petr_loss, metrics.mpjpe(out.joints3d.detach(), target))


def test_explicit_joint_limit_penalty_is_zero_inside_and_grows_outside() -> None:
    from training.objective import joint_limit_penalty

    rest = torch.as_tensor(kinematics.winter_rest_pose(1.7), dtype=torch.float32)[None]
    local = kinematics.joint_rotations(rest, frame="local")[:, 1:]
    assert float(joint_limit_penalty(local)) == 0.0  # the rest pose is inside every limit
    bent = kinematics.joint_angles(local).clone()
    left_elbow = 12  # bone 12 ends at the left wrist: its x angle is the elbow flexion, limited to 0 .. 2.62 rad
    penalties = []
    for overshoot in (0.2, 0.5):
        bent[0, left_elbow, 2] = -overshoot  # hyperextended
        frames = torch.tensor(kinematics.JOINT_FRAMES, dtype=torch.float32)
        rot = frames @ kinematics.matrix_from_euler_zyx(bent) @ frames.transpose(-1, -2)
        rot.requires_grad_(True)
        penalty = joint_limit_penalty(rot)
        penalty.backward()
        assert torch.isfinite(rot.grad).all() and rot.grad.abs().sum() > 0
        penalties.append(float(penalty.detach()))
    assert np.allclose(penalties, [0.2 / 16, 0.5 / 16], atol=1e-4)  # radians outside, mean over the 16 bones
    torch.manual_seed(0)
    out = build_lifter(LifterConfig(dim_feedforward=16, dropout=0.0))(torch.randn(2, 17, 2))
    target = rest.expand(2, 17, 3)
    with_penalty, parts = lifter_loss(out, target, TrainConfig(limit_penalty_weight=3.0))
    plain, _ = lifter_loss(out, target, TrainConfig())
    assert parts["limit"] >= 0 and torch.isclose(with_penalty, plain + 3.0 * parts["limit"], rtol=1e-5)
