"""Frames of a video file as RGB arrays (the demo, the benchmarks and the tests read videos through this)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_frames(path: str | Path, count: int, width: int, first: int = 0, last: int = -1) -> tuple[
        list[tuple[int, np.ndarray]], float, tuple[int, int]]:
    """`count` frames evenly spread over video frames first..last (-1: the end), as (H, W, 3) uint8 RGB
    downscaled to `width` pixels (never upscaled). Returns ([(frame index, rgb)], fps, (original width, height)).
    FileNotFoundError / ValueError with the reason when the video cannot give them."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} not found (scripts/fetch_assets.sh fetches the demo video)")
    if count < 1 or width < 1:
        raise ValueError(f"count and width must be >= 1, got {count} and {width}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path} with OpenCV")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if total <= 0:
            raise ValueError(f"video {path} reports no frames")
        last = total - 1 if last < 0 else min(last, total - 1)
        if not 0 <= first <= last:
            raise ValueError(f"frame range {first}..{last} is empty or outside the video's 0..{total - 1}")
        wanted = sorted(set(np.linspace(first, last, min(count, last - first + 1)).round().astype(int).tolist()))
        out: list[tuple[int, np.ndarray]] = []
        index = 0
        for target in wanted:
            while index < target:  # grab() skips without converting the frame
                if not cap.grab():
                    break
                index += 1
            ok, bgr = cap.read()
            index += 1
            if not ok:
                break
            h, w = bgr.shape[:2]
            if w > width:
                bgr = cv2.resize(bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            out.append((target, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
    finally:
        cap.release()
    if not out:
        raise ValueError(f"could not decode any frame of {path}")
    return out, fps, size
