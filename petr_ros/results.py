"""`PersonResult`: one person of one frame as the pipeline returns it, the messages carry it and the pictures draw
it (pure data, no ROS, no torch: the renderer and the message decoders use it without loading a model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PersonResult:
    """One person's pose in one frame (numpy arrays; H3.6M-17 joint order, `petr_ros.skeleton`)."""

    person_id: int  # stable across frames with tracking; the index in the frame without
    joints3d: np.ndarray  # (17, 3) metres, root-relative (pelvis at the origin), camera optical axes
    joints3d_camera: np.ndarray  # (17, 3) metres, placed in the camera optical frame (root-relative + root)
    rotations: np.ndarray  # (17, 4) global joint rotations in the camera frame, quaternions (x, y, z, w)
    keypoints2d: np.ndarray  # (17, 2) pixels in the input image
    confidences: np.ndarray  # (17,) in [0, 1]
    box: np.ndarray  # (4,) x0 y0 x1 y1 pixels
    score: float  # mean keypoint confidence
    metric: bool = False  # True: root from camera intrinsics (least squares); False: on its ray at a default depth
