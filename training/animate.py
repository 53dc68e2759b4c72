"""`animate`: predicted and ground-truth 3D skeletons side by side (and the input frame), to GIF or MP4.

Skeletons are drawn in the camera frame turned upright for viewing (x right, depth z into the screen, -y up),
each side in the package's palette (`render.person_colours`). GIFs are written with Pillow, MP4 with OpenCV;
both atomically.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from petr_ros import fileio, skeleton
from petr_ros.render import person_colours

_COLOURS = person_colours(0)  # the package's one palette, by side


def _draw_skeleton(ax, joints: np.ndarray, title: str, radius: float) -> None:
    ax.cla()
    # camera (x right, y down, z forward) -> plot (x, z, -y): upright, depth away from the viewer
    p = np.stack([joints[:, 0], joints[:, 2], -joints[:, 1]], axis=-1)
    for b, (child, parent) in enumerate(skeleton.BONES):
        seg = p[[parent, child]]
        ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=_COLOURS[skeleton.bone_side(b)], linewidth=2)
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=8, color="k")
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_zlim(-radius, radius)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=15.0, azim=-75.0)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    ax.set_title(title)


def read_video_frames(path: str | os.PathLike, indices: list[int]) -> list[np.ndarray]:
    """RGB frames at `indices` of a video (ValueError naming the file if it cannot be read)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video")
    frames = []
    try:
        for i in indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                raise ValueError(f"{path}: cannot read frame {i}")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return frames


def render_animation(
    pred: np.ndarray,
    target: np.ndarray,
    output: str | os.PathLike,
    keypoints2d: np.ndarray | None = None,
    images: list[np.ndarray] | None = None,
    image_scale: float = 1.0,
    fps: float = 10.0,
    title: str = "",
) -> Path:
    """Write an animation of (F, 17, 3) predicted vs true root-relative joints; returns the output path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise ValueError(f"pred and target must both be (F, 17, 3), got {pred.shape} and {target.shape}")
    if len(pred) == 0:
        raise ValueError("nothing to animate: zero frames")
    if images is not None and len(images) != len(pred):
        raise ValueError(f"{len(images)} images for {len(pred)} poses")
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"output must end in .gif or .mp4, got {output.name}")
    radius = 1.1 * max(np.abs(target).max(), np.abs(pred).max(), 0.5)
    panels = 3 if images is not None else 2
    fig = plt.figure(figsize=(3.2 * panels, 3.4), dpi=80)
    axes = []
    if images is not None:
        axes.append(fig.add_subplot(1, panels, 1))
    ax_pred = fig.add_subplot(1, panels, panels - 1, projection="3d")
    ax_true = fig.add_subplot(1, panels, panels, projection="3d")
    rendered: list[np.ndarray] = []
    for f in range(len(pred)):
        if images is not None:
            ax = axes[0]
            ax.cla()
            ax.imshow(images[f])
            if keypoints2d is not None:
                kp = keypoints2d[f] * image_scale
                for b, (child, parent) in enumerate(skeleton.BONES):
                    ax.plot(kp[[parent, child], 0], kp[[parent, child], 1], color=_COLOURS[skeleton.bone_side(b)],
                            linewidth=1)
            ax.set_axis_off()
            ax.set_title("input")
        err = np.linalg.norm(pred[f] - target[f], axis=-1).mean() * 1000.0
        _draw_skeleton(ax_pred, pred[f], f"prediction ({err:.0f} mm)", radius)
        _draw_skeleton(ax_true, target[f], "ground truth", radius)
        fig.suptitle(f"{title} frame {f}".strip(), fontsize=9)
        fig.canvas.draw()
        rendered.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    with fileio.atomic_path(output, suffix=suffix) as tmp:  # the writers pick the format by the extension
        if suffix == ".gif":
            from PIL import Image

            frames = [Image.fromarray(r) for r in rendered]
            frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        else:
            import cv2

            h, w = rendered[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for r in rendered:
                writer.write(cv2.cvtColor(r, cv2.COLOR_RGB2BGR))
            writer.release()
    return output


def animate_command(args: argparse.Namespace) -> int:
    """CLI body of `petr_train animate`."""
    from petr_ros.model.checkpoint import load_lifter
    from training import h36m
    from training.evaluate import run_lifter

    poses_3d = h36m.load_positions_3d(args.data_3d)
    poses_2d, _ = h36m.load_positions_2d(args.data_2d)
    if args.subject not in poses_3d or args.action not in poses_3d[args.subject]:
        raise ValueError(f"{args.data_3d}: no sequence {args.subject!r} / {args.action!r}")
    samples = h36m.build_samples(poses_3d, poses_2d, [args.subject], cameras=(args.camera,), actions=(args.action,))
    samples = samples.select(samples.action == args.action)
    end = min(len(samples), args.start + args.frames * args.step)
    idx = np.arange(args.start, end, args.step)
    if len(idx) == 0:
        raise ValueError(
            f"no frames in [{args.start}, {end}) of {args.subject} / {args.action} ({len(samples)} frames)"
        )
    model, ckpt = load_lifter(args.checkpoint)
    if ckpt.config.window > 1:  # a sequence lifter reads each frame's window of the sequence
        from torch.utils.data import Subset

        from training.sources import WindowDataset

        pred, _ = run_lifter(model, Subset(WindowDataset(samples, ckpt.config.window), idx.tolist()))
    else:
        pred, _ = run_lifter(model, samples.keypoints2d[idx])
    images, scale = None, 1.0
    if args.video:
        images = read_video_frames(args.video, [int(samples.frame[i]) for i in idx])
        from training.cameras import h36m_camera

        scale = images[0].shape[1] / h36m_camera(args.subject, args.camera).res_w
    out = render_animation(
        pred, samples.joints3d[idx], args.output, samples.keypoints2d[idx], images, scale, args.fps,
        f"{args.subject} {args.action} cam {args.camera}",
    )
    print(f"animation: {out}")
    return 0
