"""`animate` (training/animate.py): frames that follow the motion, GIF and MP4 written atomically, the input
video panel, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petr_ros import kinematics
from training.animate import read_video_frames, render_animation
from training.synthetic import render_stick_video


def _poses(frames: int) -> np.ndarray:
    rest = kinematics.winter_rest_pose(1.7) - kinematics.winter_rest_pose(1.7)[:1]
    poses = np.repeat(rest[None], frames, axis=0)
    poses[:, 13, 0] += np.linspace(0.0, 0.5, frames)  # the left wrist moves out
    return poses


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append(np.asarray(gif.convert("RGB")))
    return out


def _drawing_changes(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels below the title rows that change strongly (GIF palettes differ a little per frame anyway)."""
    return int((np.abs(a.astype(int) - b.astype(int)).max(-1)[30:] > 100).sum())


def test_gif_frames_follow_the_motion_and_nothing_is_left_behind(tmp_path) -> None:
    poses = _poses(3)
    out = render_animation(poses, poses, tmp_path / "a.gif", fps=5)
    frames = _gif_frames(out)
    assert len(frames) == 3 and frames[0].shape[1] > frames[0].shape[0]  # two panels side by side
    assert _drawing_changes(frames[0], frames[2]) > 50  # the wrist moved, in both panels
    still = np.repeat(poses[:1], 2, axis=0)
    same = _gif_frames(render_animation(still, still, tmp_path / "b.gif"))
    assert _drawing_changes(same[0], same[1]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "b.gif"]  # no temporaries


def test_mp4_and_the_input_frame_panel(tmp_path) -> None:
    import cv2

    kp = np.random.default_rng(0).uniform(100, 900, (4, 17, 2))
    video = tmp_path / "v.mp4"
    render_stick_video(video, kp, 1000, 1000, scale=0.2, fps=10)
    images = read_video_frames(video, [0, 2])
    assert len(images) == 2 and images[0].shape == (200, 200, 3)
    with pytest.raises(ValueError, match="cannot read frame 9"):
        read_video_frames(video, [9])
    with pytest.raises(ValueError, match="cannot open video"):
        read_video_frames(tmp_path / "missing.mp4", [0])
    poses = _poses(2)
    two_panels = render_animation(poses, poses, tmp_path / "two.mp4")
    three_panels = render_animation(poses, poses, tmp_path / "three.mp4", kp[[0, 2]], images, image_scale=0.2)
    widths = []
    for path in (two_panels, three_panels):
        cap = cv2.VideoCapture(str(path))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
        widths.append(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        cap.release()
    assert widths[1] > widths[0]


def test_errors_name_the_problem_and_keep_an_existing_file(tmp_path) -> None:
    poses = _poses(2)
    out = render_animation(poses, poses, tmp_path / "keep.gif")
    before = out.read_bytes()
    for args, message in (((poses, poses[:, :16]), r"both be \(F, 17, 3\)"), ((poses[:0], poses[:0]), "zero frames")):
        with pytest.raises(ValueError, match=message):
            render_animation(*args, out)
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        render_animation(poses, poses, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="1 images for 2 poses"):
        render_animation(poses, poses, out, images=[np.zeros((8, 8, 3), np.uint8)])
    assert out.read_bytes() == before
