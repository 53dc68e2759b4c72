"""HRNet-W32 as a 2D front end (the PETR backbone): person crops -> heatmaps -> COCO-17 keypoints in pixels.

Person boxes come from the caller; without them the front end uses (tracking mode) boxes around the previous
call's confident keypoints, else the whole frame padded to 3:4 (one person). All people of a frame run as one
batch. The stages are separate methods (`prepare`, `heatmaps`, `decode`) so the benchmark can time each.

The backbone runs in the inference form `runtime` chooses (petr_ros.model.runtime): by default PyTorch with every
BatchNorm folded into its convolution, channels_last and, on the CPU with >= 2 threads, HRNet's parallel branches
on two threads (petr_ros.model.inference; a copy made at start-up, so `model` keeps the trained module and its
state dict). Load new weights into `model`, then call `rebuild_runtime()`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from petr_ros.detection import check_boxes
from petr_ros.frontends import Detection2D
from petr_ros.model.device import resolve_device, resolve_precision
from petr_ros.model.heatmap import DEFAULT_BETA, DEFAULT_WINDOW, decode_heatmaps, heatmap_to_input
from petr_ros.model.hrnet import HRNetW32, load_hrnet_weights
from petr_ros.model.runtime import DEFAULT_RUNTIME, InferenceRuntime, build_runtime
from petr_ros.preprocessing import (
    BOX_PADDING,
    CROP_SIZE,
    check_image,
    crop_people,
    full_frame_box,
    person_boxes_from_keypoints,
    uncrop_points,
)

LOG = logging.getLogger(__name__)


@dataclass
class PreparedBatch:
    """Network input of one frame and what is needed to map results back to the image."""

    images: torch.Tensor  # (N, 3, H, W) on the model's device
    affines: np.ndarray  # (N, 2, 3) image -> crop
    boxes: np.ndarray  # (N, 4) crop boxes in image pixels (3:4, padded)


class HRNetFrontEnd:
    """KeypointFrontEnd on HRNet-W32 (COCO-17 keypoints, heatmap peak values as scores)."""

    name = "hrnet"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        model: nn.Module | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        decoder: str = "soft_argmax",
        beta: float = DEFAULT_BETA,
        window: int | None = DEFAULT_WINDOW,
        quarter_offset: bool = False,
        tracking: bool = True,
        min_keypoint_score: float = 0.3,
        box_padding: float = BOX_PADDING,
        input_size: tuple[int, int] = CROP_SIZE,
        allow_random_weights: bool = False,
        runtime: str = DEFAULT_RUNTIME,
    ) -> None:
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        if model is not None:
            self.model = model
            self.weights_source = f"given module {type(model).__name__}"
        elif weights is not None:
            self.model = load_hrnet_weights(weights)
            self.weights_source = os.fspath(weights)
        elif allow_random_weights:
            LOG.warning(
                "HRNet front end with RANDOM weights (allow_random_weights=True): keypoints are meaningless; "
                "this is for tests and benchmarks only"
            )
            self.model = HRNetW32()
            self.weights_source = "random initialisation"
        else:
            raise ValueError(
                "the HRNet front end needs weights=<pose_hrnet_w32_256x192.pth> or model=<nn.Module> "
                "(allow_random_weights=True only for tests/benchmarks)"
            )
        self.model = self.model.to(self.device).eval()
        if self.device.type == "cuda":  # channels_last speeds up cuDNN convolutions
            self.model = self.model.to(memory_format=torch.channels_last)
        if decoder not in ("soft_argmax", "argmax"):
            raise ValueError(f"unknown heatmap decoder {decoder!r}; use 'soft_argmax' or 'argmax'")
        if not 0.0 <= float(min_keypoint_score) <= 1.0:
            raise ValueError(f"min_keypoint_score must be in [0, 1], got {min_keypoint_score!r}")
        self.decoder = decoder
        self.beta = float(beta)
        self.window = window
        self.quarter_offset = bool(quarter_offset)
        self.tracking = bool(tracking)
        self.min_keypoint_score = float(min_keypoint_score)
        self.box_padding = float(box_padding)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        # runtime.RUNTIMES (torch, torch-eager, ..., onnxruntime, openvino, auto): who runs the backbone, in which
        # form (anything that cannot be built falls back to PyTorch's default form; the reason is logged)
        self.runtime_name = runtime
        self.runtime: InferenceRuntime = self.rebuild_runtime()
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # keypoints (N, 17, 2), scores (N, 17)

    def rebuild_runtime(self) -> InferenceRuntime:
        """(Re)build what runs the backbone from `self.model`'s current weights (start-up; after loading new ones)."""
        w, h = self.input_size
        self.runtime = build_runtime(self.model, self.runtime_name, torch.zeros(1, 3, h, w), self.device,
                                     self.autocast_dtype)
        LOG.info("HRNet backbone %s", self.runtime.reason)
        return self.runtime

    # --- stages -------------------------------------------------------------------------------------------
    def person_boxes(self, image_rgb: np.ndarray, boxes: np.ndarray | None) -> tuple[np.ndarray, float]:
        """The boxes this frame is cropped from (given, tracked from the previous frame, or the full frame) and
        the padding to apply (none for the full frame: the image already is the region of interest)."""
        if boxes is not None:
            return check_boxes(boxes), self.box_padding
        if self.tracking and self._previous is not None:
            return person_boxes_from_keypoints(*self._previous, min_score=self.min_keypoint_score), self.box_padding
        return full_frame_box(image_rgb.shape[1], image_rgb.shape[0]), 1.0

    def prepare(self, image_rgb: np.ndarray, boxes: np.ndarray, padding: float | None = None) -> PreparedBatch:
        """Crop and normalise every box (grown to 3:4, times `padding`) into one (N, 3, H, W) device tensor."""
        pad = self.box_padding if padding is None else padding
        crops, affines, crop_boxes = crop_people(image_rgb, boxes, self.input_size, pad)
        images = torch.from_numpy(crops).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        return PreparedBatch(images=images, affines=affines, boxes=crop_boxes)

    @torch.inference_mode()
    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 17, H/4, W/4) heatmaps by the chosen runtime (PyTorch forms autocast on CUDA)."""
        if self.runtime.form == "compile" and len(images) > 1:  # compiled for batch 1: a new batch would recompile
            return torch.cat([self.runtime(images[i : i + 1]) for i in range(len(images))])
        return self.runtime(images)

    @torch.inference_mode()
    def decode(self, heatmaps: torch.Tensor, affines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps -> (N, 17, 2) image pixels and (N, 17) scores."""
        coords, scores = decode_heatmaps(
            heatmaps, self.decoder, beta=self.beta, window=self.window, quarter_offset=self.quarter_offset
        )
        hm_size = (heatmaps.shape[-1], heatmaps.shape[-2])
        crop_pts = heatmap_to_input(coords, hm_size, self.input_size).cpu().numpy()
        return uncrop_points(crop_pts, affines).astype(np.float32), scores.cpu().numpy().astype(np.float32)

    # --- protocol -----------------------------------------------------------------------------------------
    def detect(self, image_rgb: np.ndarray, boxes: np.ndarray | None = None) -> list[Detection2D]:
        """COCO-17 keypoints for each box (or the tracked / full-frame box); batched over people."""
        image = check_image(image_rgb)
        person_boxes, padding = self.person_boxes(image, boxes)
        if len(person_boxes) == 0:
            self._previous = None
            return []
        batch = self.prepare(image, person_boxes, padding)
        keypoints, scores = self.decode(self.heatmaps(batch.images), batch.affines)
        if self.tracking:
            # follow people whose pose is confident enough; else fall back to the full frame next time
            keep = (scores >= self.min_keypoint_score).sum(axis=1) >= 6
            self._previous = (keypoints[keep], scores[keep]) if keep.any() else None
        return [
            Detection2D(keypoints=keypoints[i], scores=scores[i], box=batch.boxes[i].astype(np.float32))
            for i in range(len(keypoints))
        ]

    def reset(self) -> None:
        """Forget the tracked boxes (a new video / scene)."""
        self._previous = None

    def warmup(self) -> None:
        """One forward on a blank crop (allocations, cuDNN algorithm choice)."""
        w, h = self.input_size
        with torch.inference_mode():
            self.heatmaps(torch.zeros(1, 3, h, w, device=self.device))

    def close(self) -> None:
        self._previous = None
