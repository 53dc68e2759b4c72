"""petr_ros.tools.video.read_frames on the real Sports2D clip: spread, range, downscale (never up), errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from petr_ros.tools.video import read_frames

VIDEO = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets")) / "sports2d_demo.mp4"


def test_frames_spread_over_a_range_and_downscaled() -> None:
    frames, fps, size = read_frames(VIDEO, count=5, width=480, first=72, last=100)
    assert size == (1768, 994) and fps == pytest.approx(30.0, abs=0.1)
    assert [i for i, _ in frames] == [72, 79, 86, 93, 100]
    for _, rgb in frames:
        assert rgb.shape == (round(994 * 480 / 1768), 480, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(frames[0][1], frames[-1][1])  # different moments of the clip
    # Consecutive first frames, at the video's own width when asked for more (never upscaled).
    first, _, _ = read_frames(VIDEO, count=3, width=4000, first=0, last=2)
    assert [i for i, _ in first] == [0, 1, 2] and first[0][1].shape == (994, 1768, 3)
    # The same frame read through the range or alone is the same picture.
    alone, _, _ = read_frames(VIDEO, count=1, width=480, first=86, last=86)
    np.testing.assert_array_equal(alone[0][1], frames[2][1])


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_frames(tmp_path / "missing.mp4", 3, 480)
    with pytest.raises(ValueError, match="frame range"):
        read_frames(VIDEO, 3, 480, first=500)
    with pytest.raises(ValueError, match="count and width"):
        read_frames(VIDEO, 0, 480)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError):
        read_frames(junk, 3, 480)
