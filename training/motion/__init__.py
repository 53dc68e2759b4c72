"""Real human motion from registry packages, as H3.6M-17 world joints in metres (z up), frame rates, COCO-17
points on the same bodies, and measured rotations where the source has them.

    from training.motion import load_sequence, load_split, sequence_names, SEQUENCES
    seq = load_sequence("cmu/01_01")       # MotionSequence: .joints (T, 17, 3), .coco, .fps, .rotations
    train = load_split("train")            # list[MotionSequence]; load_split("held_out") for the evaluation set

One module per source (cmu, holosoma, deepmimic, isaaclab); the assets come from scripts/fetch_assets.sh.
"""

from training.motion.body import MotionSequence, assets_dir
from training.motion.registry import (
    HELD_OUT,
    SEQUENCES,
    SequenceInfo,
    load_sequence,
    load_split,
    sequence_info,
    sequence_names,
)
from training.motion.rotations import aligned_rotation_error_deg, rotation_offsets

__all__ = [
    "HELD_OUT",
    "SEQUENCES",
    "MotionSequence",
    "SequenceInfo",
    "aligned_rotation_error_deg",
    "assets_dir",
    "load_sequence",
    "load_split",
    "rotation_offsets",
    "sequence_info",
    "sequence_names",
]
