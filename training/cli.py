"""`petr_train` (and `ros2 run petr_ros train`): train, evaluate, animate, prepare, synth, shipped.

    petr_train shipped --output petr_ros/data/petr_lifter_cmu.pt      # the shipped default lifter (CPU, minutes)
    petr_train synth --output data/synthetic --videos                # a small dataset in the H3.6M layout
    petr_train train --data-3d data_3d_h36m.npz --data-2d data_2d_h36m_gt.npz --output outputs/petr
    torchrun --nproc_per_node 2 -m training.cli train --config petr.yaml   # DDP
    petr_train train --config petr.yaml --resume outputs/petr/last.pt      # continue an interrupted run
    petr_train evaluate --checkpoint outputs/petr/best.pt --data-3d ... --data-2d ... --json results.json
    petr_train heldout petr_ros/data/petr_lifter_cmu.pt outputs/petr/best.pt   # the model card's held-out table
    petr_train animate --checkpoint ... --data-3d ... --data-2d ... --subject S9 --action "Walking 1" --output a.gif
    petr_train prepare --data-3d ... --data-2d ... --videos /data/h36m --output data/crops
"""

from __future__ import annotations

import argparse
import signal
import sys
import typing
from dataclasses import fields

from training.config import TrainConfig, field_help, load_yaml_config
from training.h36m import TEST_SUBJECTS


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--data-3d for data_3d ...), defaults shown, None = not given."""
    parser.add_argument("--config", help="YAML file of settings (field names as below, with underscores); "
                        "command-line flags override it")
    helps = field_help()
    defaults = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f"{helps.get(f.name, '')} (default: {default!r})"
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(hint) is list:
            parser.add_argument(flag, nargs="+", default=None, help=text, metavar="S")
        else:
            parser.add_argument(flag, type=hint, default=None, help=text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < the --init checkpoint's model settings < YAML file < command-line flags."""
    values = load_yaml_config(args.config) if getattr(args, "config", None) else {}
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    if values.get("init"):
        from petr_ros.model.checkpoint import load_checkpoint

        values = {**load_checkpoint(values["init"]).config.to_dict(), **values}
    return TrainConfig.from_dict(values).validate()


def _exit_code_for(signum: int) -> int:
    return 128 + int(signum)


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import TrainingInterrupted, train

    cfg = config_from_args(args)
    try:
        result = train(cfg, progress=not args.quiet)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return _exit_code_for(exc.signum)
    if result.checkpoint is not None:
        last = result.history[-1] if result.history else {}
        print(f"done: {result.checkpoint} (best: {result.best_checkpoint}); last epoch {last}")
    return 0


def cmd_shipped(args: argparse.Namespace) -> int:
    from training.shipped import train_shipped
    from training.train import TrainingInterrupted

    try:
        report = train_shipped(
            output=args.output, work_dir=args.work_dir, seed=args.seed, epochs=args.epochs, threads=args.threads,
            progress=not args.quiet, resume=args.resume,
        )
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return _exit_code_for(exc.signum)
    print(report)
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    import json

    from petr_ros import fileio
    from training.shipped import evaluate_checkpoints, format_table

    results = evaluate_checkpoints(args.checkpoints, seed=args.seed)
    print(format_table(results))
    if args.json:
        print(f"results: {fileio.write_text(args.json, json.dumps(results, indent=2))}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from training.synthetic import generate_dataset

    paths = generate_dataset(
        args.output, subjects=tuple(args.subjects), frames=args.frames, seed=args.seed, videos=args.videos,
        video_scale=args.video_scale,
    )
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_command

    return evaluate_command(args)


def cmd_animate(args: argparse.Namespace) -> int:
    from training.animate import animate_command

    return animate_command(args)


def cmd_prepare(args: argparse.Namespace) -> int:
    from training.prepare import prepare

    index = prepare(
        data_3d=args.data_3d, data_2d=args.data_2d, videos=args.videos, output=args.output,
        subjects=args.subjects, stride=args.stride, progress=not args.quiet,
    )
    print(f"index: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petr_train",
        description="Train, evaluate and animate the PETR/PEBRT lifters (Human3.6M in the VideoPose3D layout, "
        "synthetic data, or the shipped CMU recipe). See docs/training.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a lifter (2D keypoints) or the end-to-end image model; torchrun-ready",
                       description="Train PETR/PEBRT. Settings: defaults < --config YAML < flags. Launch with "
                       "torchrun --nproc_per_node N -m training.cli train ... for DDP.")
    _add_train_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("shipped", help="train the shipped default lifter on real mocap (CPU, minutes)",
                       description="Reproduce petr_ros/data/petr_lifter_cmu.pt: the sequence lifter (27-frame "
                       "windows, skeleton-consistent bones head) trained on the real mocap of training.motion's "
                       "train split (+ mirror, limb-varied copies, Winter synthetic motion) through random virtual "
                       "cameras with detector-like 2D noise; evaluated against the previous file on the held-out "
                       "sequences (petr_train heldout repeats that for any checkpoint). Reads the motion files "
                       "from $PETR_ASSETS.")
    p.add_argument("--output", default="petr_ros/data/petr_lifter_cmu.pt", help="where to write the released "
                   "checkpoint (weights + config + metadata with held-out metrics; no optimiser state)")
    p.add_argument("--work-dir", default="outputs/shipped", help="training folder (last.pt for --resume, log.csv, "
                   "loss_curve.png, metrics.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed reproduces the same weights")
    p.add_argument("--epochs", type=int, default=20, help="epochs of 32768 fresh windows each")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps a shared machine usable)")
    p.add_argument("--resume", action="store_true", help="continue from <work-dir>/last.pt after an interruption")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=cmd_shipped)

    p = sub.add_parser("heldout", help="evaluate checkpoints on the shipped lifter's held-out motion sequences",
                       description="Score lifter checkpoints (the shipped one, your own) on the held-out real motion "
                       "of the shipped recipe (CMU take 01_03 and any newer held-out sequences) through the same "
                       "virtual cameras and detector-like 2D noise as the model card's figures.")
    p.add_argument("checkpoints", nargs="+", help="lifter checkpoints (.pt), e.g. petr_ros/data/petr_lifter_cmu.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out cameras and noise (0: the model card's)")
    p.add_argument("--json", help="also write all figures to this JSON file")
    p.set_defaults(func=cmd_heldout)

    p = sub.add_parser("synth", help="write a synthetic dataset in the Human3.6M VideoPose3D layout",
                       description="Winter-model motion with in-limit smooth joint angles, the real Human3.6M "
                       "cameras, data_3d_h36m.npz + data_2d_h36m_gt.npz, optional stick-figure videos.")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--subjects", nargs="+", default=["S1", "S5", "S6", "S7", "S8", "S9", "S11"],
                   help="subjects (their real camera calibrations are used)")
    p.add_argument("--frames", type=int, default=200, help="frames per action (50 fps)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--videos", action="store_true", help="also render stick-figure videos <subject>/Videos/*.mp4")
    p.add_argument("--video-scale", type=float, default=0.25, help="video size relative to the 1000x1000 cameras")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("evaluate", help="MPJPE, P-MPJPE, N-MPJPE, MPBVE, rotation error per action/joint",
                       description="Score a checkpoint (or another method's predictions in the same npz layout) "
                       "on held-out subjects; prints a table and writes JSON.")
    p.add_argument("--checkpoint", help="lifter checkpoint to evaluate (on --data-2d keypoints)")
    p.add_argument("--predictions", help="instead of a checkpoint: another method's predictions npz "
                   "(positions_3d[subject][action] = list over cameras of (F, 17, 3) camera-frame metres)")
    p.add_argument("--data-3d", help="data_3d_h36m.npz (ground truth; with --data-2d or --predictions)")
    p.add_argument("--data-2d", help="2D keypoints npz fed to a lifter checkpoint")
    p.add_argument("--index", help="instead of 2D keypoints: a `prepare` index.npz, to evaluate a full PETR "
                   "checkpoint (image mode: backbone + lifter) end to end on its person crops")
    p.add_argument("--videos", help="instead of 2D keypoints: the folder of <subject>/Videos/*.mp4, to evaluate a "
                   "checkpoint through PoseEstimator (the node's path) on every --stride-th frame (with --data-3d, "
                   "--data-2d: the person boxes come from the true 2D joints)")
    p.add_argument("--subjects", nargs="+", default=list(TEST_SUBJECTS), help="subjects to score")
    p.add_argument("--stride", type=int, default=1, help="score every n-th frame")
    p.add_argument("--allow-partial", action="store_true", help="with --predictions: score them even when they miss "
                   "actions or cameras of the ground truth (listed in the output); without it that is an error")
    p.add_argument("--json", help="write the full results (per action, per joint) to this JSON file")
    p.add_argument("--save-predictions", help="write the checkpoint's predictions in the npz layout above")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("animate", help="predicted vs ground-truth 3D skeletons side by side (+ input frame) as GIF",
                       description="Render predicted and true 3D skeletons of one sequence (and the input video "
                       "frame when --video is given) to an animated GIF (or MP4 by extension).")
    p.add_argument("--checkpoint", required=True, help="lifter checkpoint")
    p.add_argument("--data-3d", required=True, help="data_3d_h36m.npz")
    p.add_argument("--data-2d", required=True, help="2D keypoints npz")
    p.add_argument("--subject", default="S9", help="subject")
    p.add_argument("--action", required=True, help="action name as in the npz, e.g. 'Walking 1'")
    p.add_argument("--camera", type=int, default=0, help="camera index 0-3")
    p.add_argument("--start", type=int, default=0, help="first frame")
    p.add_argument("--frames", type=int, default=60, help="number of frames to render")
    p.add_argument("--step", type=int, default=1, help="render every n-th frame")
    p.add_argument("--video", help="the camera's video file, to show the input frame beside the skeletons")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the animation")
    p.add_argument("--output", required=True, help="output .gif (Pillow) or .mp4 (OpenCV)")
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("prepare", help="extract frames from the videos, crop people around projected joints, index",
                       description="For image mode: read <videos>/<subject>/Videos/<action>.<camera id>.mp4, crop "
                       "the person around the 2D joints every --stride frames, save JPEG crops and index.npz. "
                       "Resumable: finished videos are skipped.")
    p.add_argument("--data-3d", required=True, help="data_3d_h36m.npz")
    p.add_argument("--data-2d", required=True, help="data_2d_h36m_gt.npz (crop boxes come from these joints)")
    p.add_argument("--videos", required=True, help="folder holding <subject>/Videos/*.mp4")
    p.add_argument("--output", required=True, help="output folder (crops/, parts/, index.npz)")
    p.add_argument("--subjects", nargs="+", default=["S1", "S5", "S6", "S7", "S8", "S9", "S11"], help="subjects")
    p.add_argument("--stride", type=int, default=5, help="keep every n-th frame")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (errors of input: 2 with the message, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"petr_train {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _exit_code_for(signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
