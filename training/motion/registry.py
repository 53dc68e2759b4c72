"""Every real motion sequence the package can train and evaluate on: its source package, licence, size, and the
fixed split (whole sequences, never frames).

Held out (the numbers of docs/model_card.md, never trained on): CMU 01_03 (the shipped lifter's held-out take,
so old and new lifters compare on it), holosoma climb_seq_4, isaaclab walk with DeepMimic walk (likely the same
clip, so both sides of a possible duplicate stay out), DeepMimic kick and roll. Everything else is training data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from training.motion import cmu, deepmimic, holosoma, isaaclab
from training.motion.body import MotionSequence

SPLITS = ("train", "held_out")
HELD_OUT: frozenset[str] = frozenset(
    {"cmu/01_03", "holosoma/climb_seq_4", "isaaclab/walk", "deepmimic/walk", "deepmimic/kick", "deepmimic/roll"}
)


@dataclass(frozen=True)
class SequenceInfo:
    """What a sequence is and where it comes from (frames / fps as the loader returns them)."""

    name: str  # "<source>/<take>", the key of load_sequence
    source: str
    package: str  # the registry package the file is taken from (scripts/fetch_assets.sh)
    licence: str
    frames: int
    fps: float
    has_rotations: bool
    split: str
    description: str


_CMU = ("assimp-testmodels (Debian)", "CMU Graphics Lab Motion Capture Database: free for research and commercial use")
_HOLOSOMA = ("holosoma-retargeting 0.1.0 (PyPI)", "Apache-2.0")
_DEEPMIMIC = ("pybullet 3.2.7 (PyPI)", "zlib (pybullet); clips from DeepMimic")
_ISAACLAB = ("isaaclab 2.3.2.post1 (PyPI)", "BSD-3-Clause")

# (name, package+licence, frames, fps, rotations, description); frames/fps are checked against the files by tests.
_TABLE: tuple[tuple[str, tuple[str, str], int, float, bool, str], ...] = (
    ("cmu/01_01", _CMU, 2752, 120.0, True, "CMU subject 1: climbing and moving around (playground)"),
    ("cmu/01_03", _CMU, 4511, 120.0, True, "CMU subject 1: climbing and moving around (playground)"),
    *((f"holosoma/{t}", _HOLOSOMA, n, holosoma.ASSUMED_FPS, False, "climbing over boxes (120 Hz assumed)")
      for t, n in (("climb_seq_0", 2801), ("climb_seq_1", 2423), ("climb_seq_2", 3011), ("climb_seq_3", 2401),
                   ("climb_seq_4", 2303))),
    *((f"deepmimic/{c}", _DEEPMIMIC, n, fps, True, f"DeepMimic humanoid clip '{c}'")
      for c, n, fps in (("backflip", 29, 16.0), ("cartwheel", 164, 60.0), ("crawl", 177, 60.0),
                        ("dance_a", 98, 60.0), ("dance_b", 153, 60.0), ("getup_facedown", 183, 60.0),
                        ("getup_faceup", 227, 60.0), ("jump", 107, 60.0), ("kick", 47, 30.0), ("punch", 65, 30.0),
                        ("roll", 121, 60.0), ("run", 25, 30.0), ("spin", 107, 24.0), ("spinkick", 78, 60.0),
                        ("walk", 39, 30.0))),
    *((f"isaaclab/{c}", _ISAACLAB, n, 60.0, True, f"humanoid_amp '{c}' with per-body quaternions")
      for c, n in (("dance", 902), ("run", 82), ("walk", 154))),
)

SEQUENCES: tuple[SequenceInfo, ...] = tuple(
    SequenceInfo(name, name.split("/")[0], pkg[0], pkg[1], frames, fps, rot,
                 "held_out" if name in HELD_OUT else "train", desc)
    for name, pkg, frames, fps, rot, desc in _TABLE
)
_BY_NAME = {info.name: info for info in SEQUENCES}
_LOADERS: dict[str, Callable[[str, str | os.PathLike | None], MotionSequence]] = {
    "cmu": cmu.load_take,
    "holosoma": holosoma.load_take,
    "deepmimic": deepmimic.load_clip,
    "isaaclab": isaaclab.load_clip,
}


def sequence_info(name: str) -> SequenceInfo:
    """The registry entry of `name` ("<source>/<take>"), or ValueError listing the known names."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown motion sequence {name!r}; known: {sorted(_BY_NAME)}")
    return _BY_NAME[name]


def sequence_names(split: str | None = None, source: str | None = None, rotations: bool | None = None) -> list[str]:
    """Names of the registered sequences, filtered by split ('train' | 'held_out'), source and rotations."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source is not None and source not in _LOADERS:
        raise ValueError(f"source must be one of {tuple(_LOADERS)}, got {source!r}")
    return [
        s.name for s in SEQUENCES
        if (split is None or s.split == split) and (source is None or s.source == source)
        and (rotations is None or s.has_rotations == rotations)
    ]


def load_sequence(name: str, assets: str | os.PathLike | None = None) -> MotionSequence:
    """Load one registered sequence (world-frame H3.6M-17 joints in metres, COCO points, fps, rotations)."""
    info = sequence_info(name)
    return _LOADERS[info.source](name.split("/", 1)[1], assets)


def load_split(
    split: str, assets: str | os.PathLike | None = None, source: str | None = None
) -> list[MotionSequence]:
    """All sequences of a split ('train' | 'held_out'), optionally of one source."""
    return [load_sequence(name, assets) for name in sequence_names(split=split, source=source)]
