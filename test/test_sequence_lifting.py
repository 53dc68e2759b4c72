"""The pipeline's sequence TrackLifter: windows from track histories, per-person bone lengths, rotations."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from petr_ros import kinematics
from petr_ros.bone_lengths import MIRROR_BONE, BoneLengthEstimator, measure_bone_lengths, with_bone_lengths
from petr_ros.estimator import PersonPose
from petr_ros.limb_twist import rotations_with_limb_twist
from petr_ros.model.lifter import LifterConfig, build_lifter, normalize_keypoints_2d
from petr_ros.pipeline import TrackHistory, TrackLifter
from petr_ros.sequence_lifting import SequenceTrackLifter, window_indices

torch.set_num_threads(2)


def _history(pid: int, frames: int, rate_hz: float = 30.0, seed: int = 0) -> TrackHistory:
    rng = np.random.default_rng(seed)
    rest = kinematics.winter_rest_pose(1.7)[:, :2] * 200 + 300
    kps = [(rest + rng.normal(0, 3, rest.shape)).astype(np.float32) for _ in range(frames)]
    conf = [np.full(17, 0.9, np.float32) for _ in range(frames)]
    pose = PersonPose(np.zeros((17, 3), np.float32), np.tile([0, 0, 0, 1.0], (17, 1)).astype(np.float32), kps[-1],
                      conf[-1], np.array([0, 0, 600, 600], np.float32), 0.9, pid)
    return TrackHistory(pid, deque(np.arange(frames) / rate_hz), deque(kps), deque(conf), pose)


def _lifter(window: int = 9) -> SequenceTrackLifter:
    torch.manual_seed(0)
    cfg = LifterConfig(variant="bones", architecture="sequence", window=window, num_layers=1, d_model=32, nhead=4,
                       dim_feedforward=32, dropout=0.0)
    return SequenceTrackLifter(build_lifter(cfg))


def test_window_indices_keep_the_newest_and_resample_fast_streams() -> None:
    assert window_indices(np.arange(5) / 30, 9).tolist() == [0, 1, 2, 3, 4]
    assert window_indices(np.arange(40) / 30, 9).tolist() == list(range(31, 40))
    fast = window_indices(np.arange(60) / 120, 9)  # 120 Hz: every 4th frame (30 Hz), the newest last
    assert fast[-1] == 59 and np.all(np.diff(fast) == 4) and len(fast) == 9


def test_lifts_tracks_of_any_age_with_steady_symmetric_bones() -> None:
    lifter = _lifter()
    assert isinstance(lifter, TrackLifter)
    histories = [_history(1, 1), _history(2, 20, seed=1), _history(3, 200, rate_hz=120.0, seed=2)]
    windows = lifter.windows(histories)
    assert windows.shape == (3, 9, 17, 2)
    assert (windows[0, :8] == 0).all() and (windows[0, 8] != 0).any()  # a new track: one frame, the rest missing
    assert (windows[1] != 0).any(axis=(1, 2)).all()
    joints, quats = lifter.lift_tracks(histories)
    assert joints.shape == (3, 17, 3) and quats.shape == (3, 17, 4)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-5)
    lengths = measure_bone_lengths(joints)
    np.testing.assert_allclose(lengths, lengths[:, MIRROR_BONE], atol=1e-5)
    # the same person over frames keeps one set of bone lengths once it has settled
    seen = []
    for t in range(30):
        h = _history(2, 21 + t, seed=10 + t)
        seen.append(measure_bone_lengths(lifter.lift_tracks([h])[0][0]))
    late = np.array(seen[10:])
    assert (late.std(0) / late.mean(0)).max() < 0.05
    lifter.reset()


def test_refuses_single_frame_lifters() -> None:
    with pytest.raises(TypeError, match="sequence lifter"):
        SequenceTrackLifter(build_lifter(LifterConfig()))


@pytest.mark.parametrize("variant", ["bones", "petr"])
def test_numpy_forward_gives_the_torch_forwards_joints(variant: str) -> None:
    """NumpySequenceLifter (the CPU inference path) against SequenceLifter.forward in eval mode: windows of any
    length, young tracks (masked missing frames), single frames; the shipped lifter too."""
    from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_lifter
    from petr_ros.model.lifter import normalize_keypoints_2d
    from petr_ros.model.temporal import NumpySequenceLifter

    torch.manual_seed(1)
    cfg = LifterConfig(variant=variant, architecture="sequence", window=9, num_layers=2, d_model=32, nhead=4,
                       dim_feedforward=48, dropout=0.1)
    models = [build_lifter(cfg).eval()]
    if variant == "bones":
        models.append(load_lifter(DEFAULT_LIFTER_PATH)[0])
    rng = np.random.default_rng(2)
    for model in models:
        fast = NumpySequenceLifter.for_model(model)
        assert fast is not None
        window = model.config.window
        for batch, steps in ((1, window), (3, window), (2, 4), (1, 1), (2, window + 5)):
            x = normalize_keypoints_2d((rng.normal(size=(batch, steps, 17, 2)) * 40 + 300).astype(np.float32))
            if steps > 2:
                x[0, : steps // 2] = 0  # a young track: the first half of its window missing
            with torch.inference_mode():
                reference = model(torch.from_numpy(x)).joints3d.numpy()
            np.testing.assert_allclose(fast(x), reference, rtol=0, atol=2e-5)
            with torch.inference_mode():
                reference = model(torch.from_numpy(x[:, -1])).joints3d.numpy()
            np.testing.assert_allclose(fast(x[:, -1]), reference, rtol=0, atol=2e-5)
        with pytest.raises(ValueError, match="windows"):
            fast(np.zeros((2, 17, 3), np.float32))
    assert NumpySequenceLifter.for_model(build_lifter(LifterConfig())) is None  # a one-token lifter: PyTorch
    pebrt = LifterConfig(variant="pebrt", architecture="sequence", window=9, num_layers=1, d_model=32)
    assert NumpySequenceLifter.for_model(build_lifter(pebrt)) is None


def test_track_lifter_on_numpy_equals_its_torch_path() -> None:
    numpy_path, torch_path = _lifter(), _lifter()
    assert numpy_path._numpy_model is not None
    torch_path._numpy_model = None  # what a CUDA device would run
    for t in range(12):
        histories = [_history(1, 1 + t, seed=t), _history(2, 30 + t, seed=50 + t)]
        (j_np, q_np), (j_t, q_t) = numpy_path.lift_tracks(histories), torch_path.lift_tracks(histories)
        np.testing.assert_allclose(j_np, j_t, rtol=0, atol=2e-5)
        np.testing.assert_allclose(np.abs((q_np * q_t).sum(-1)), 1.0, atol=1e-4)  # the same rotations (q ~ -q)


def test_normalised_windows_are_root_centred_with_unit_spread() -> None:
    lifter = _lifter()
    rng = np.random.default_rng(4)
    for t in range(40):
        histories = [_history(1, 1 + t, seed=t), _history(2, 30 + 3 * t, rate_hz=120.0, seed=60 + t)]
        histories[0].keypoints2d[-1] = rng.uniform(-900, 900, (17, 2)).astype(np.float32)
        if t % 5 == 0:
            histories[1].keypoints2d[-1] = np.full((17, 2), 7.0, np.float32)  # every joint on the root
        out = lifter.normalised_windows(histories)
        assert out.shape == (2, lifter.window, 17, 2) and out.dtype == np.float32
        np.testing.assert_array_equal(out[..., 0, :], 0.0)  # the root at the origin
        rms = np.sqrt(np.square(out.astype(np.float64)).sum(-1).mean(-1))
        padded = np.all(lifter.windows(histories) == 0.0, axis=(-1, -2))  # frames before the track began
        collapsed = np.all(lifter.windows(histories) == 7.0, axis=(-1, -2))
        np.testing.assert_allclose(rms[~padded & ~collapsed], 1.0, rtol=1e-5)
        np.testing.assert_array_equal(out[padded | collapsed], 0.0)
    histories[0].keypoints2d[-1] = np.full((17, 2), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        lifter.normalised_windows(histories)
    with pytest.raises(ValueError, match="empty"):
        lifter.lift_tracks([])


def _lift_tracks_by_its_definition(lifter: SequenceTrackLifter, histories: list[TrackHistory]) -> tuple:
    """lift_tracks as the public functions compose it (the step before its fused bones and rotations)."""
    joints = lifter._numpy_model(normalize_keypoints_2d(lifter.windows(histories))).astype(np.float64)
    lengths = measure_bone_lengths(joints)
    for i, history in enumerate(histories):
        estimator = lifter._people.get(history.person_id)
        if estimator is None or len(history.stamps_s) == 1:
            estimator = lifter._people[history.person_id] = BoneLengthEstimator(lifter.bone_length_settings)
        known = estimator.update(joints[i], np.asarray(history.confidences[-1]))
        if known is not None:
            lengths[i] = known
    joints = with_bone_lengths(joints, lengths)
    return joints.astype(np.float32), kinematics.matrix_to_quaternion(rotations_with_limb_twist(joints))


def test_lift_tracks_is_its_definition() -> None:
    """The fused step (bones measured once, rotations from the rebuilt pose's unit bones, quaternions without
    renormalisation) publishes the joints of the plain composition bit for bit and its rotations within 1e-12."""
    fused, reference = _lifter(), _lifter()
    for t in range(25):
        histories = [_history(1, 1 + t, seed=t), _history(2, 30 + t, seed=50 + t), _history(3, 5, seed=99 - t)]
        histories[2].confidences[-1] = np.where(np.arange(17) % 4 == 0, 0.1, 0.9).astype(np.float32)
        joints, quats = fused.lift_tracks(histories)
        ref_joints, ref_quats = _lift_tracks_by_its_definition(reference, histories)
        np.testing.assert_array_equal(joints, ref_joints)
        np.testing.assert_allclose(quats, ref_quats, rtol=0, atol=1e-7)  # float32 of values within 1e-12
    # a lifter whose poses collapse (zero-length bones) and one with a folded-back forearm: the general path
    rest = kinematics.winter_rest_pose(1.7)
    folded = rest.copy()
    folded[13] = rest[12] - (rest[13] - rest[12])
    for pose in (np.zeros((17, 3)), folded):
        fused, reference = _lifter(), _lifter()
        for lifter in (fused, reference):
            lifter._numpy_model = lambda x, p=pose: np.repeat(p[None].astype(np.float32), len(x), axis=0)
        histories = [_history(1, 12), _history(2, 1, seed=3)]
        for _ in range(3):
            joints, quats = fused.lift_tracks(histories)
            ref_joints, ref_quats = _lift_tracks_by_its_definition(reference, histories)
            np.testing.assert_array_equal(joints, ref_joints)
            np.testing.assert_allclose(quats, ref_quats, rtol=0, atol=1e-7)
        fused.bone_lengths = False
        joints, quats = fused.lift_tracks(histories)
        np.testing.assert_array_equal(joints, np.repeat(pose[None].astype(np.float32), 2, axis=0))
        np.testing.assert_allclose(quats, kinematics.matrix_to_quaternion(rotations_with_limb_twist(
            pose.astype(np.float32).astype(np.float64)))[None].repeat(2, 0), rtol=0, atol=1e-7)
