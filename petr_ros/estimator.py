"""`PoseEstimator`: one RGB image -> a list of `PersonPose` (3D joints, joint rotations, 2D keypoints).

Pipeline: 2D front end (HRNet-W32 or MediaPipe BlazePose) -> COCO-17 -> H3.6M-17 (`skeleton.coco_to_h36m`) ->
root/scale normalisation -> lifter (PETR or PEBRT, from a checkpoint) -> root-relative 3D joints in camera axes ->
global joint rotations (PETR: from positions, `kinematics.joint_rotations`; PEBRT: predicted) -> quaternions.
This is the API the ROS node and the demo call; it knows nothing of ROS.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from petr_ros import kinematics
from petr_ros.frontends import Detection2D, KeypointFrontEnd, make_frontend
from petr_ros.limb_twist import rotations_with_limb_twist
from petr_ros.model.checkpoint import (
    DEFAULT_LIFTER_PATH,
    MAKE_LIFTER_HINT,
    backbone_frontend_options,
    load_backbone,
    load_lifter,
)
from petr_ros.model.device import DEFAULT_DEVICE, DEFAULT_PRECISION, resolve_device, resolve_precision
from petr_ros.model.lifter import normalize_keypoints_2d
from petr_ros.model.temporal import NumpySequenceLifter
from petr_ros.preprocessing import check_image
from petr_ros.skeleton import coco_to_h36m

LOG = logging.getLogger(__name__)
BACKENDS = ("auto", "hrnet", "mediapipe")
DEFAULT_BACKEND = "auto"


@dataclass
class PersonPose:
    """One person's result, everything in float32 numpy."""

    joints3d: np.ndarray  # (17, 3) metres, root-relative, camera axes
    rotations: np.ndarray  # (17, 4) global joint rotations, quaternions (x, y, z, w)
    keypoints2d: np.ndarray  # (17, 2) pixels in the input image, H3.6M order
    confidences: np.ndarray  # (17,) in [0, 1]
    box: np.ndarray  # (4,) x0 y0 x1 y1 pixels of the person crop
    score: float  # mean keypoint confidence
    person_id: int = -1  # set by tracking


def choose_backend(backend: str, hrnet_weights: str | os.PathLike | None, hrnet_model: nn.Module | None) -> tuple[
    str, str
]:
    """(backend name, the sentence explaining the choice) for backend 'auto' | 'hrnet' | 'mediapipe'."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if backend == "mediapipe":
        return "mediapipe", "2D front end: MediaPipe BlazePose (requested)"
    if backend == "hrnet":
        return "hrnet", "2D front end: HRNet-W32 (requested)"
    if hrnet_model is not None:
        return "hrnet", "2D front end: HRNet-W32 (auto: an HRNet module was given)"
    if hrnet_weights is not None and Path(hrnet_weights).is_file():
        return "hrnet", f"2D front end: HRNet-W32 (auto: weights found at {hrnet_weights})"
    if hrnet_weights is not None:
        return "mediapipe", (
            f"2D front end: MediaPipe BlazePose (auto: HRNet weights {hrnet_weights} not found, falling back)"
        )
    return "mediapipe", "2D front end: MediaPipe BlazePose (auto: no HRNet weights configured)"


class PoseEstimator:
    """Monocular 3D human pose for RGB images; see `estimate`.

    lifter_checkpoint: a `petr_ros.model.checkpoint` file (default: the shipped `petr_ros/data/petr_lifter_cmu.pt`);
    a full PETR checkpoint (image-mode training) also brings its HRNet-W32 backbone, which then is the front end.
    backend: 'auto' (HRNet when `hrnet_model` is given or `hrnet_weights` exists, else MediaPipe), 'hrnet',
    'mediapipe'. device: 'auto' | 'cpu' | 'cuda' | 'cuda:N'. precision: 'auto' (fp16 autocast for the backbone
    on CUDA, fp32 on CPU) | 'fp32' | 'fp16' | 'bf16'. The lifter always runs in fp32 (it is tiny).
    allow_random_hrnet: HRNet with random weights (tests, benchmarks; logged as a warning).
    frontend: any object implementing `KeypointFrontEnd`, used instead of building one.
    frontend_options: extra keyword options for the front end (e.g. decoder='argmax', tracking=False).
    """

    def __init__(
        self,
        lifter_checkpoint: str | os.PathLike | None = None,
        backend: str = DEFAULT_BACKEND,
        hrnet_weights: str | os.PathLike | None = None,
        device: str = DEFAULT_DEVICE,
        precision: str = DEFAULT_PRECISION,
        hrnet_model: nn.Module | None = None,
        allow_random_hrnet: bool = False,
        frontend: KeypointFrontEnd | None = None,
        frontend_options: dict[str, Any] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = precision
        resolve_precision(precision, self.device)  # validate early, before loading anything
        path = Path(lifter_checkpoint) if lifter_checkpoint is not None else DEFAULT_LIFTER_PATH
        if not path.is_file():
            raise FileNotFoundError(f"lifter checkpoint not found: {path}; {MAKE_LIFTER_HINT}")
        self.lifter, self.checkpoint = load_lifter(path, self.device)
        self.lifter_path = path
        # a sequence lifter on the CPU runs as numpy (same joints within float32 rounding, a third of the time)
        self._numpy_lifter = NumpySequenceLifter.for_model(self.lifter)
        options = dict(frontend_options or {})
        if self.checkpoint.is_full_model:
            # A full PETR checkpoint (image-mode training) brings the backbone its lifter was trained on: run it,
            # with the decoder it was trained with; another 2D source would feed the lifter keypoints it never saw.
            if frontend is not None or hrnet_model is not None or hrnet_weights or backend == "mediapipe":
                raise ValueError(
                    f"{path} is a full PETR checkpoint (HRNet-W32 backbone + lifter): it runs its own backbone, so "
                    "give no frontend, hrnet_model, hrnet_weights or backend 'mediapipe' with it"
                )
            hrnet_model = load_backbone(self.checkpoint, self.device)
            options = {**backbone_frontend_options(self.checkpoint), **options}

        if frontend is not None:
            if not isinstance(frontend, KeypointFrontEnd):
                raise TypeError(f"frontend {type(frontend).__name__} does not implement KeypointFrontEnd")
            self.frontend = frontend
            self.backend_name = getattr(frontend, "name", type(frontend).__name__)
            self.backend_reason = f"2D front end: {self.backend_name} (a front-end object was given)"
        else:
            self.backend_name, self.backend_reason = choose_backend(backend, hrnet_weights, hrnet_model)
            if self.backend_name == "hrnet":
                if hrnet_model is None and hrnet_weights is None and not allow_random_hrnet:
                    raise ValueError(
                        "backend 'hrnet' needs hrnet_weights=<pose_hrnet_w32_256x192.pth> (or hrnet_model); "
                        "use backend='mediapipe' or 'auto' otherwise"
                    )
                if hrnet_model is None and hrnet_weights is None:
                    self.backend_reason += " with RANDOM weights (allow_random_hrnet: tests/benchmarks only)"
                self.frontend = make_frontend(
                    "hrnet",
                    weights=hrnet_weights if hrnet_model is None else None,
                    model=hrnet_model,
                    device=self.device,
                    precision=precision,
                    allow_random_weights=allow_random_hrnet,
                    **options,
                )
            else:
                self.frontend = make_frontend("mediapipe", **options)
        LOG.info("%s; lifter %s (%s) on %s", self.backend_reason, path, self.checkpoint.config.variant, self.device)

    @property
    def variant(self) -> str:
        """'petr' or 'pebrt' (from the lifter checkpoint)."""
        return self.checkpoint.config.variant

    def estimate(self, image_rgb: np.ndarray, boxes: np.ndarray | None = None,
                 rotations: bool = True) -> list[PersonPose]:
        """(H, W, 3) uint8 RGB and optional (N, 4) person boxes -> one PersonPose per person found.
        rotations=False: see `lift`."""
        image = check_image(image_rgb)
        detections = self.frontend.detect(image, boxes)
        return self.lift(detections, rotations=rotations)

    def lift(self, detections: list[Detection2D], rotations: bool = True) -> list[PersonPose]:
        """COCO-17 detections -> PersonPose list (the 3D half of `estimate`, batched over people).

        Detections with non-finite keypoints or scores are dropped (logged at debug level). rotations=False skips
        the joint rotations (positions-only lifters: over half of this step) and leaves identity quaternions in
        PersonPose.rotations: for callers that replace them (the pipeline's sequence lifter lifts every person
        again from the track's history and derives the rotations it publishes from that)."""
        finite = [d for d in detections if np.isfinite(d.keypoints).all() and np.isfinite(d.scores).all()]
        if len(finite) < len(detections):
            LOG.debug("dropped %d detection(s) with NaN/inf keypoints", len(detections) - len(finite))
        detections = finite
        if not detections:
            return []
        coco = np.stack([np.asarray(d.keypoints, dtype=np.float64) for d in detections])
        coco_scores = np.stack([np.asarray(d.scores, dtype=np.float64) for d in detections])
        keypoints, confidences = coco_to_h36m(coco, coco_scores)
        if rotations or self.variant == "pebrt":  # PEBRT's rotations come with its joints
            joints3d, matrices = self.lift_keypoints(keypoints)
            quats = kinematics.matrix_to_quaternion(matrices.astype(np.float64)).astype(np.float32)
        else:
            joints3d = self.lift_joints(keypoints)
            quats = np.zeros((len(joints3d), joints3d.shape[1], 4), np.float32)
            quats[..., 3] = 1.0
        conf = np.minimum(np.maximum(confidences, 0.0), 1.0).astype(np.float32)  # np.clip, without its wrapper
        return [
            PersonPose(
                joints3d=joints3d[i],
                rotations=quats[i],
                keypoints2d=keypoints[i].astype(np.float32),
                confidences=conf[i],
                box=np.asarray(d.box, dtype=np.float32).reshape(4),
                score=float(conf[i].mean()),
            )
            for i, d in enumerate(detections)
        ]

    def lift_keypoints(self, keypoints_h36m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 17, 2) H3.6M pixel keypoints -> joints (N, 17, 3) float32 and global rotations (N, 17, 3, 3)."""
        norm = normalize_keypoints_2d(np.asarray(keypoints_h36m, dtype=np.float32))
        if self._numpy_lifter is not None:
            joints = self._numpy_lifter(norm)
            return joints, rotations_with_limb_twist(joints).astype(np.float32)
        with torch.inference_mode():
            out = self.lifter(torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32)).to(self.device))
            joints = out.joints3d.float().cpu().numpy()
            if out.rotations is not None:  # PEBRT predicts its own
                return joints, out.rotations.float().cpu().numpy()
        # Positions-only heads: rotations follow from them, the limbs' twist read off the elbow/knee bend (measured
        # closer to real mocap rotations than the minimal twist; docs/model_card.md).
        return joints, rotations_with_limb_twist(joints).astype(np.float32)

    def lift_joints(self, keypoints_h36m: np.ndarray) -> np.ndarray:
        """(N, 17, 2) H3.6M pixel keypoints -> the lifter's joints (N, 17, 3) float32 only (no rotations)."""
        norm = normalize_keypoints_2d(np.asarray(keypoints_h36m, dtype=np.float32))
        if self._numpy_lifter is not None:
            return self._numpy_lifter(norm)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(norm, dtype=np.float32)).to(self.device)
            return self.lifter(x).joints3d.float().cpu().numpy()

    def warmup(self) -> None:
        """Run every stage once (allocations, cuDNN autotuning, MediaPipe graph start-up)."""
        warm = getattr(self.frontend, "warmup", None)
        if callable(warm):
            warm()
        else:
            self.frontend.detect(np.zeros((256, 192, 3), dtype=np.uint8), None)
        rest = kinematics.winter_rest_pose()[:, :2]
        self.lift_keypoints((rest * 100 + 200)[None].astype(np.float32))
        reset = getattr(self.frontend, "reset", None)
        if callable(reset):
            reset()

    def reset(self) -> None:
        """Forget per-video state (the front end's tracked boxes)."""
        reset = getattr(self.frontend, "reset", None)
        if callable(reset):
            reset()

    def close(self) -> None:
        close = getattr(self.frontend, "close", None)
        if callable(close):
            close()

