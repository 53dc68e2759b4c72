"""2D keypoint front ends: image -> COCO-17 keypoints per person.

Two implementations: `hrnet` (the PETR backbone, `petr_ros.frontends.hrnet`) and `mediapipe` (BlazePose shipped
in the mediapipe wheel, `petr_ros.frontends.mediapipe`). Both are imported lazily by `make_frontend`, so using
one never imports the other's heavy dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

FRONTENDS = ("hrnet", "mediapipe")


@dataclass
class Detection2D:
    """One person's 2D keypoints from a front end."""

    keypoints: np.ndarray  # (17, 2) COCO-17 order, pixels in the input image
    scores: np.ndarray  # (17,) in [0, 1]
    box: np.ndarray  # (4,) x0 y0 x1 y1

    def __post_init__(self) -> None:
        # float32 arrays of the documented shapes, so a faulty front end fails here and not deep in the lifter
        for name, shape in (("keypoints", (17, 2)), ("scores", (17,)), ("box", (4,))):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"Detection2D.{name} must have shape {shape}, got {value.shape}")
            setattr(self, name, value)


@runtime_checkable
class KeypointFrontEnd(Protocol):
    """What the estimator needs from a 2D front end. Optional extras it uses when present: `reset()` (forget
    tracking state), `close()` (free resources), `warmup()`."""

    name: str

    def detect(self, image_rgb: np.ndarray, boxes: np.ndarray | None) -> list[Detection2D]:
        """(H, W, 3) uint8 RGB and optional (N, 4) person boxes -> one Detection2D per person found."""
        ...


def make_frontend(name: str, **kwargs: Any) -> KeypointFrontEnd:
    """Build the front end called `name` ('hrnet' or 'mediapipe') with its keyword options."""
    if name == "hrnet":
        from petr_ros.frontends.hrnet import HRNetFrontEnd

        return HRNetFrontEnd(**kwargs)
    if name == "mediapipe":
        from petr_ros.frontends.mediapipe import MediaPipeFrontEnd

        return MediaPipeFrontEnd(**kwargs)
    raise ValueError(f"unknown 2D front end {name!r}; use one of {FRONTENDS}")
