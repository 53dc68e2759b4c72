"""Cost of lifting tracked people from their 2D history on the CPU (prints figures; not a test).

    python benchmarks/benchmark_temporal.py [--lifter petr_ros/data/petr_lifter_cmu.pt] [--threads 1]
        [--people 1 2 5] [--repeats 200]

Per frame the pipeline's SequenceTrackLifter builds each person's window from the track history, runs the
sequence lifter once for all people, rebuilds each pose with that person's bone lengths and derives the joint
rotations (limb twist) and quaternions. Printed: milliseconds per call and per person (median over repeats),
split into the network alone (PyTorch, and the numpy forward the step runs on the CPU) and the whole step, and
for comparison the one-token single-frame lift of the
same people (network + minimal-twist rotations, as PoseEstimator.lift_keypoints does it). A second table splits
the step into its parts, each timed alone on the step's own inputs (settled tracks: full histories, bone lengths
known): windows with normalisation, the numpy network, bone lengths (measured, each person's estimator, the pose
rebuilt), joint rotations with the limb twist, quaternions; "rest" is the whole step less the parts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import deque
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmark_model.py: spinning waits cost 5x here

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from petr_ros import kinematics, limb_twist  # noqa: E402
from petr_ros import sequence_lifting as sl  # noqa: E402
from petr_ros.estimator import PersonPose  # noqa: E402
from petr_ros.model.checkpoint import DEFAULT_LIFTER_PATH, load_lifter  # noqa: E402
from petr_ros.model.lifter import LifterConfig, build_lifter, normalize_keypoints_2d  # noqa: E402
from petr_ros.pipeline import TrackHistory  # noqa: E402
from petr_ros.sequence_lifting import SequenceTrackLifter  # noqa: E402


def _histories(people: int, frames: int) -> list[TrackHistory]:
    rng = np.random.default_rng(0)
    rest = kinematics.winter_rest_pose(1.7)[:, :2] * 200 + 300
    out = []
    for pid in range(people):
        kps = [(rest + rng.normal(0, 3, rest.shape)).astype(np.float32) for _ in range(frames)]
        conf = [np.full(17, 0.9, np.float32) for _ in range(frames)]
        pose = PersonPose(np.zeros((17, 3), np.float32), np.tile([0, 0, 0, 1.0], (17, 1)).astype(np.float32),
                          kps[-1], conf[-1], np.array([0, 0, 600, 600], np.float32), 0.9, pid)
        out.append(TrackHistory(pid, deque(np.arange(frames) / 30.0), deque(kps), deque(conf), pose))
    return out


def _median_ms(step, repeats: int) -> tuple[float, float]:
    """(median, minimum) milliseconds: on a shared machine the median includes being preempted, the minimum is
    the cost when the step runs undisturbed."""
    for _ in range(10):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0, min(times) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifter", default=str(DEFAULT_LIFTER_PATH), help="a sequence lifter checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--people", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, ckpt = load_lifter(args.lifter)
    lifter = SequenceTrackLifter(model)
    single = build_lifter(LifterConfig(output_scale=2.0)).eval()  # the previous default's one-token shape
    print(f"lifter {args.lifter}: {ckpt.config.architecture}/{ckpt.config.variant}, window {ckpt.config.window}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {args.threads} thread(s); load average "
          f"{os.getloadavg()[0]:.2f}")
    print("milliseconds, median (minimum) over the repeats")
    parts = []
    print(f"{'people':>6s} {'network torch':>14s} {'network numpy':>14s} {'whole step':>14s} {'per person':>14s} "
          f"{'one-token lift':>15s}")
    for people in args.people:
        histories = _histories(people, lifter.history_length)
        windows = torch.from_numpy(normalize_keypoints_2d(lifter.windows(histories)))
        frames = windows[:, -1].contiguous()

        def network(w: torch.Tensor = windows) -> None:
            with torch.inference_mode():
                model(w)

        def one_token(f: torch.Tensor = frames) -> None:
            with torch.inference_mode():
                kinematics.matrix_to_quaternion(kinematics.joint_rotations(single(f).joints3d))

        net = _median_ms(network, args.repeats)
        fast, numpy_windows = lifter._numpy_model, windows.numpy()
        net_np = (_median_ms(lambda w=numpy_windows, f=fast: f(w), args.repeats) if fast is not None
                  else (float("nan"), float("nan")))
        whole = _median_ms(lambda h=histories: lifter.lift_tracks(h), args.repeats)
        old = _median_ms(one_token, args.repeats)

        print(f"{people:6d} {cell(net):>14s} {cell(net_np):>14s} {cell(whole):>14s} {cell(whole, people):>14s} "
              f"{cell(old):>15s}")
        if fast is not None:
            parts.append((people, _parts(lifter, histories, args.repeats), whole))
    if parts:
        print("\nthe step's parts, milliseconds median (minimum), each alone on the step's inputs")
        names = ("windows+norm.", "network", "bone lengths", "rotations", "quaternions", "rest")
        print(f"{'people':>6s} " + " ".join(f"{n:>14s}" for n in names))
        for people, timed, whole in parts:
            rest = (whole[0] - sum(t[0] for t in timed), whole[1] - sum(t[1] for t in timed))
            print(f"{people:6d} " + " ".join(f"{cell(t):>14s}" for t in (*timed, rest)))
    return 0


def cell(ms: tuple[float, float], per: int = 1) -> str:
    return f"{ms[0] / per:.3f} ({ms[1] / per:.3f})"


def _parts(lifter: SequenceTrackLifter, histories: list[TrackHistory], repeats: int) -> list[tuple[float, float]]:
    """The parts of lift_tracks (numpy network, bone lengths on), as it runs them, each timed alone."""
    normalised = lifter.normalised_windows(histories)
    joints = lifter._numpy_model(normalised).astype(np.float64)
    vectors = joints[:, sl._BONE_CHILDREN] - joints[:, sl._BONE_PARENTS]
    estimators = [lifter._people[int(h.person_id)] for h in histories]

    def bones() -> np.ndarray:
        v = joints[:, sl._BONE_CHILDREN] - joints[:, sl._BONE_PARENTS]
        measured = np.sqrt((v * v).sum(-1))
        lengths = measured.copy()
        for i, (history, estimator) in enumerate(zip(histories, estimators, strict=True)):
            lengths[i] = estimator.update_measured(measured[i], np.asarray(history.confidences[-1]))
        return joints[:, :1] + sl._ANCESTRY @ (v / measured[..., None] * lengths[..., None])

    units = vectors / np.sqrt((vectors * vectors).sum(-1))[..., None]
    side = vectors[:, 3] - vectors[:, 0]
    matrices = limb_twist.rotations_of_bones(units, side)
    return [_median_ms(lambda: lifter.normalised_windows(histories), repeats),
            _median_ms(lambda: lifter._numpy_model(normalised), repeats),
            _median_ms(bones, repeats),
            _median_ms(lambda: limb_twist.rotations_of_bones(units, side), repeats),
            _median_ms(lambda: kinematics.rotation_quaternions_np(matrices), repeats)]


if __name__ == "__main__":
    raise SystemExit(main())
