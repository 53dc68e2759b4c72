"""`evaluate`: score a lifter checkpoint, or any other method's predictions, on Human3.6M-layout data.

Metrics come from petr_ros.metrics (MPJPE, P-MPJPE, N-MPJPE in mm, MPBVE, geodesic rotation error in degrees),
overall, per action (grouped: 'Walking 1' and 'Walking 2' -> 'Walking') and per joint, printed as a table and
written as JSON. Joint rotations: PEBRT's own predicted global rotations; for PETR (positions only) the
rotations are computed from the predicted positions with kinematics.joint_rotations, like the ground truth's.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petr_ros import fileio, kinematics, metrics
from petr_ros.model.checkpoint import load_backbone, load_checkpoint, load_lifter
from petr_ros.model.lifter import build_lifter, normalize_keypoints_2d
from training import h36m

METRIC_COLUMNS = (("mpjpe", "MPJPE mm"), ("p_mpjpe", "P-MPJPE mm"), ("n_mpjpe", "N-MPJPE mm"),
                  ("mpbve", "MPBVE"), ("rotation_error_deg", "rot. err deg"))


@torch.inference_mode()
def run_lifter(
    model: torch.nn.Module,
    keypoints2d: np.ndarray | torch.utils.data.Dataset,
    device: str | torch.device = "cpu",
    batch_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Lift pixel keypoints - (N, 17, 2), (N, T, 17, 2) windows, or a dataset of (input, target) pairs - to
    (joints (N, 17, 3) metres, global rotations (N, 17, 3, 3) or None)."""
    if isinstance(keypoints2d, torch.utils.data.Dataset):
        batches = (inputs for inputs, _ in torch.utils.data.DataLoader(keypoints2d, batch_size=batch_size))
    else:
        arr = np.asarray(keypoints2d, dtype=np.float32)
        batches = (torch.from_numpy(arr[start : start + batch_size]) for start in range(0, len(arr), batch_size))
    joints, rots = [], []
    for kp in batches:
        out = model(normalize_keypoints_2d(kp.to(device)))
        joints.append(out.joints3d.float().cpu().numpy())
        if out.rotations is not None:
            rots.append(out.rotations.float().cpu().numpy())
    return np.concatenate(joints), (np.concatenate(rots) if rots else None)


def score(
    pred: np.ndarray, target: np.ndarray, actions: np.ndarray | None, rotations_pred: np.ndarray | None = None
) -> dict[str, Any]:
    """All metrics (mm / degrees) for metre inputs; rotations of the 16 bones (from positions when not given)."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    pred = pred - pred[:, :1]  # root-relative shape is what is scored
    target = target - target[:, :1]
    r_pred = rotations_pred if rotations_pred is not None else kinematics.joint_rotations(pred)
    r_true = kinematics.joint_rotations(target)
    return metrics.evaluate_poses(
        pred * 1000.0, target * 1000.0,
        actions=None if actions is None else [str(a) for a in actions],
        rotations_pred=np.asarray(r_pred, dtype=np.float64)[:, 1:], rotations_true=r_true[:, 1:],
    )


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data_3d: str | os.PathLike,
    data_2d: str | os.PathLike,
    subjects: list[str] | tuple[str, ...] = h36m.TEST_SUBJECTS,
    stride: int = 1,
    device: str = "cpu",
    save_predictions: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score a lifter checkpoint on `subjects` of the npz pair; optionally save its predictions in the npz layout."""
    model, ckpt = load_lifter(checkpoint, device=device)
    window = ckpt.config.window
    samples = h36m.load_h36m_samples(data_3d, data_2d, subjects, stride=1 if save_predictions or window > 1 else stride)
    if window > 1:  # a sequence lifter reads each frame's window of the sequence (zeros before its start)
        from training.sources import WindowDataset

        pred, rots = run_lifter(model, WindowDataset(samples, window), device)
    else:
        pred, rots = run_lifter(model, samples.keypoints2d, device)
    if window > 1 and not save_predictions:
        keep = samples.frame % stride == 0
        samples, pred, rots = samples.select(keep), pred[keep], (None if rots is None else rots[keep])
    if save_predictions:
        write_predictions(save_predictions, samples, pred)
        keep = samples.frame % stride == 0
        samples, pred, rots = samples.select(keep), pred[keep], (None if rots is None else rots[keep])
    actions = np.array([h36m.action_group(a) for a in samples.action])
    result = score(pred, samples.joints3d, actions, rots)
    result["source"] = {"checkpoint": str(checkpoint), "variant": ckpt.config.variant, "data_3d": str(data_3d),
                        "data_2d": str(data_2d), "subjects": list(subjects), "stride": stride}
    return result


def evaluate_full_checkpoint(
    checkpoint: str | os.PathLike,
    index: str | os.PathLike,
    subjects: list[str] | tuple[str, ...] = h36m.TEST_SUBJECTS,
    stride: int = 1,
    device: str = "cpu",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Score a full PETR checkpoint (backbone + lifter) on the person crops of a `prepare` index: the image
    model end to end (crop -> HRNet-W32 -> 2D -> lifter), per action."""
    from training.datasets import CropDataset, EndToEndModel
    from training.epoch import predict

    ckpt = load_checkpoint(checkpoint)
    if not ckpt.is_full_model:
        raise ValueError(f"{checkpoint} is a lifter-only checkpoint: evaluate it on 2D keypoints with --data-2d")
    lifter = build_lifter(ckpt.config)
    lifter.load_state_dict(ckpt.state_dict)
    model = EndToEndModel(lifter, backbone=load_backbone(ckpt)).to(device).eval()
    crops = CropDataset(str(index), list(subjects), stride)
    pred = predict(model, crops, torch.device(device), batch_size=batch_size)
    result = score(pred, crops.joints3d.numpy(), crops.actions)
    result["source"] = {"checkpoint": str(checkpoint), "variant": ckpt.config.variant, "index": str(index),
                        "subjects": list(subjects), "stride": stride, "model": "full PETR (HRNet-W32 + lifter)"}
    return result


def _strided_frames(
    video: Path, keypoints: np.ndarray, res_w: int, stride: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(frame index, RGB frame, person box from the true 2D joints) of every `stride`-th frame of a video."""
    import cv2

    from petr_ros.preprocessing import person_boxes_from_keypoints

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"{video}: cannot open video")
    try:
        for f in range(len(keypoints)):
            ok, bgr = capture.read()
            if not ok:
                break
            if f % stride == 0:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield f, rgb, person_boxes_from_keypoints(keypoints[f][None] * rgb.shape[1] / res_w)
    finally:
        capture.release()


def evaluate_on_frames(
    checkpoint: str | os.PathLike,
    data_3d: str | os.PathLike,
    data_2d: str | os.PathLike,
    videos: str | os.PathLike,
    subjects: list[str] | tuple[str, ...] = h36m.TEST_SUBJECTS,
    stride: int = 5,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a checkpoint through the node's own path on video frames, per action: `PoseEstimator` (a full PETR
    checkpoint runs its own backbone; a lifter-only one the default 2D front end) on every `stride`-th frame of
    <videos>/<subject>/Videos/<action>.<camera id>.mp4, the person box from the true 2D joints (as `prepare`
    crops). Frames where no person comes out are counted in result["frames"]["missed"], not scored."""
    from petr_ros.estimator import PoseEstimator
    from training.cameras import h36m_cameras
    from training.prepare import video_path

    estimator = PoseEstimator(lifter_checkpoint=checkpoint, device=device)
    poses_3d = h36m.load_positions_3d(data_3d)
    poses_2d, _ = h36m.load_positions_2d(data_2d)
    h36m.validate_pair({s: poses_3d[s] for s in subjects if s in poses_3d}, poses_2d, str(data_3d), str(data_2d))
    pred, target, actions, missed = [], [], [], 0
    for subject in subjects:
        if subject not in poses_3d:
            raise ValueError(f"{data_3d}: no ground truth for subject {subject!r}")
        cameras = h36m_cameras(subject)
        for action, world in poses_3d[subject].items():
            truth = h36m.camera_frame_poses(world, subject)
            for c, cam in enumerate(cameras):
                estimator.reset()
                video = video_path(Path(videos), subject, action, cam.id)
                keypoints = poses_2d[subject][action][c][: len(world)]
                for f, rgb, box in _strided_frames(video, keypoints, cam.res_w, stride):
                    people = estimator.estimate(rgb, box)
                    if not people:
                        missed += 1
                        continue
                    pred.append(people[0].joints3d)
                    target.append(truth[c][f])
                    actions.append(h36m.action_group(action))
    if not pred:
        raise ValueError(f"no person was found in any frame of {videos} for subjects {list(subjects)}")
    result = score(np.stack(pred), np.stack(target), np.array(actions))
    result["frames"] = {"scored": len(pred), "missed": missed}
    result["source"] = {"checkpoint": str(checkpoint), "videos": str(videos), "data_3d": str(data_3d),
                        "data_2d": str(data_2d), "subjects": list(subjects), "stride": stride,
                        "pipeline": estimator.backend_reason}
    estimator.close()
    return result


def write_predictions(path: str | os.PathLike, samples: h36m.Samples, pred: np.ndarray) -> None:
    """Predictions (N, 17, 3) of full-frame samples -> positions_3d[subject][action] = per-camera (F, 17, 3)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in np.unique(samples.subject):
        out[str(subject)] = {}
        for action in np.unique(samples.action[samples.subject == subject]):
            sel = (samples.subject == subject) & (samples.action == action)
            cams = []
            for c in sorted(np.unique(samples.camera[sel])):
                m = sel & (samples.camera == c)
                order = np.argsort(samples.frame[m])
                cams.append(pred[m][order].astype(np.float32))
            out[str(subject)][str(action)] = cams
    h36m.save_positions_3d(path, out)


# A human bone is centimetres to decimetres long: a median bone length outside this range (metres) means the
# predictions are not in metres (millimetres give about 250, centimetres about 25).
PLAUSIBLE_BONE_M = (0.02, 1.0)


def check_units(poses: np.ndarray, where: str) -> float:
    """Median bone length (m) of (N, 17, 3) poses; ValueError when it is not a human's in metres."""
    median = float(np.median(kinematics.bone_lengths(np.asarray(poses, dtype=np.float64))))
    low, high = PLAUSIBLE_BONE_M
    if not low <= median <= high:
        guess = " (millimetres? divide by 1000)" if median > 10 else ""
        raise ValueError(
            f"{where}: the median bone length is {median:.4g}, not a human's in metres ({low}-{high} m){guess}; "
            "predictions must be in metres"
        )
    return median


def evaluate_predictions(
    predictions: str | os.PathLike,
    data_3d: str | os.PathLike,
    subjects: list[str] | tuple[str, ...] = h36m.TEST_SUBJECTS,
    stride: int = 1,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Score another method's predictions (positions_3d[subject][action] = per-camera (F, 17, 3) camera metres).

    Every action of every subject in the ground truth must be predicted for all four cameras, unless
    `allow_partial` (then what is missing is listed in result["coverage"]); predictions not in metres are refused.
    """
    preds = h36m.load_predictions_3d(predictions)
    truth = h36m.load_positions_3d(data_3d)
    p_all, t_all, actions = [], [], []
    missing: list[str] = []
    scored: list[str] = []
    for subject in subjects:
        if subject not in truth:
            raise ValueError(f"{data_3d}: no ground truth for subject {subject!r}")
        if subject not in preds:
            missing.append(f"{subject} (all {len(truth[subject])} actions)")
            continue
        for action in preds[subject]:
            if action not in truth[subject]:
                raise ValueError(f"{data_3d}: positions_3d[{subject!r}] has no action {action!r} (in {predictions})")
        for action in truth[subject]:
            if action not in preds[subject]:
                missing.append(f"{subject}/{action}")
                continue
            views = preds[subject][action]
            gt_views = h36m.camera_frame_poses(truth[subject][action], subject)
            if len(views) > len(gt_views):
                raise ValueError(f"{predictions}: {subject}/{action} has {len(views)} cameras, the data has 4")
            if len(views) < len(gt_views):
                missing.append(f"{subject}/{action} cameras {len(views)}-{len(gt_views) - 1}")
            for c, (p, t) in enumerate(zip(views, gt_views, strict=False)):
                if p.shape[0] != t.shape[0]:
                    raise ValueError(
                        f"{predictions}: positions_3d[{subject!r}][{action!r}][camera {c}] has {p.shape[0]} frames, "
                        f"the ground truth {t.shape[0]}"
                    )
                check_units(p, f"{predictions}: positions_3d[{subject!r}][{action!r}][camera {c}]")
                p_all.append(p[::stride])
                t_all.append(t[::stride])
                actions += [h36m.action_group(action)] * len(p[::stride])
            scored.append(f"{subject}/{action} x{len(views)}")
    if missing and not allow_partial:
        raise ValueError(
            f"{predictions} does not cover the ground truth of subjects {list(subjects)}: missing {', '.join(missing)}"
            " (every action and all 4 cameras are scored; --allow-partial scores what is there and lists the rest)"
        )
    if not p_all:
        raise ValueError(f"{predictions}: nothing to score for subjects {list(subjects)}")
    result = score(np.concatenate(p_all), np.concatenate(t_all), np.array(actions))
    result["source"] = {"predictions": str(predictions), "data_3d": str(data_3d), "subjects": list(subjects),
                        "stride": stride}
    result["coverage"] = {"scored": scored, "missing": missing, "complete": not missing}
    return result


def format_table(result: dict[str, Any]) -> str:
    """Per-action and overall table (and the per-joint MPJPE), plain text."""
    cols = [(k, name) for k, name in METRIC_COLUMNS if k in result]
    lines = [f"{'action':<16}" + "".join(f"{name:>14}" for _, name in cols) + f"{'poses':>9}"]
    for action, row in sorted(result.get("per_action", {}).items()):
        lines.append(f"{action:<16}" + "".join(f"{row[k]:>14.3f}" if k == "mpbve" else f"{row[k]:>14.1f}"
                                               for k, _ in cols) + f"{row['count']:>9}")
    if "mean_over_actions" in result:
        row = result["mean_over_actions"]
        lines.append(f"{'mean (actions)':<16}" + "".join(f"{row[k]:>14.3f}" if k == "mpbve" else f"{row[k]:>14.1f}"
                                                         for k, _ in cols))
    lines.append(f"{'all poses':<16}" + "".join(f"{result[k]:>14.3f}" if k == "mpbve" else f"{result[k]:>14.1f}"
                                                for k, _ in cols) + f"{result['num_poses']:>9}")
    frames = result.get("frames")
    if frames:
        lines.append("")
        lines.append(f"frames: {frames['scored']} scored, {frames['missed']} without a person (not scored)")
    coverage = result.get("coverage")
    if coverage:
        lines.append("")
        lines.append(f"scored {len(coverage['scored'])} subject/action sequences: {', '.join(coverage['scored'])}")
        if coverage["missing"]:
            lines.append(f"PARTIAL (--allow-partial), not scored: {', '.join(coverage['missing'])}")
    per_joint = result.get("per_joint", {}).get("mpjpe", {})
    if per_joint:
        lines.append("")
        lines.append("MPJPE per joint (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in per_joint.items()))
    return "\n".join(lines)


def evaluate_command(args: argparse.Namespace) -> int:
    """CLI body of `petr_train evaluate`."""
    if bool(args.checkpoint) == bool(args.predictions):
        raise ValueError("give exactly one of --checkpoint or --predictions")
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    if args.checkpoint:
        from petr_ros.model.device import resolve_device

        device = str(resolve_device(args.device))
        if args.index:
            result = evaluate_full_checkpoint(args.checkpoint, args.index, args.subjects, args.stride, device)
        elif args.videos:
            if not args.data_2d or not args.data_3d:
                raise ValueError("--videos needs --data-3d and --data-2d (ground truth and the person boxes)")
            result = evaluate_on_frames(
                args.checkpoint, args.data_3d, args.data_2d, args.videos, args.subjects, args.stride, device
            )
        else:
            if not args.data_2d or not args.data_3d:
                raise ValueError("--checkpoint needs --data-3d and --data-2d (or --index for a full PETR checkpoint)")
            result = evaluate_checkpoint(
                args.checkpoint, args.data_3d, args.data_2d, args.subjects, args.stride, device, args.save_predictions
            )
    else:
        if not args.data_3d:
            raise ValueError("--predictions needs --data-3d (the ground truth)")
        result = evaluate_predictions(args.predictions, args.data_3d, args.subjects, args.stride, args.allow_partial)
    print(format_table(result))
    if args.json:
        path = fileio.write_text(args.json, json.dumps(result, indent=2))
        print(f"results: {path}")
    return 0

