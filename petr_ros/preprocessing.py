"""HRNet person crops: boxes (given, full frame, or from keypoints) -> 3:4 affine crops -> ImageNet-normalised
tensors, and the inverse mapping of crop points back to image pixels.

A crop is described by a 2x3 affine matrix A mapping image pixels to crop pixels (u = A[:, :2] @ x + A[:, 2]);
`uncrop_points` applies its inverse. Boxes are (N, 4) float32 x0 y0 x1 y1 (see `petr_ros.detection`).
"""

from __future__ import annotations

import cv2
import numpy as np

from petr_ros.detection import boxes_from_keypoints, check_boxes

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CROP_SIZE = (192, 256)  # (width, height) of the HRNet-W32 256x192 input
CROP_ASPECT = CROP_SIZE[0] / CROP_SIZE[1]  # width / height = 3:4
BOX_PADDING = 1.25  # the official HRNet test-time enlargement of person boxes
KEYPOINT_BOX_MARGIN = 0.15  # keypoints stop at the joints: add 15% per side for head top, hands and feet


def check_image(image: np.ndarray, name: str = "image_rgb") -> np.ndarray:
    """Return an (H, W, 3) uint8 image or raise ValueError naming the offending shape/dtype."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {img.dtype}")
    return img


def expand_boxes(boxes: np.ndarray, aspect: float = CROP_ASPECT, padding: float = BOX_PADDING) -> np.ndarray:
    """Grow boxes about their centres to width/height == aspect (never shrinking a side), then scale by padding."""
    b = check_boxes(boxes)
    if aspect <= 0 or padding <= 0:
        raise ValueError(f"aspect ({aspect}) and padding ({padding}) must be > 0")
    centre = 0.5 * (b[:, :2] + b[:, 2:])
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)  # a 1 px floor keeps degenerate boxes (one keypoint) usable
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    w, h = np.maximum(w, h * aspect), np.maximum(h, w / aspect)
    half = 0.5 * padding * np.stack([w, h], axis=-1)
    return np.concatenate([centre - half, centre + half], axis=-1).astype(np.float32)


def full_frame_box(width: int, height: int) -> np.ndarray:
    """(1, 4) box of the whole image; `crop_affines` pads it to 3:4 around the image centre."""
    return np.array([[0.0, 0.0, float(width), float(height)]], dtype=np.float32)


def person_boxes_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray | None = None, min_score: float = 0.3, margin: float = KEYPOINT_BOX_MARGIN
) -> np.ndarray:
    """Boxes (N, 4) around people's keypoints (N, K, 2), each side pushed out by `margin` of the box size
    (tracking mode: the previous frame's keypoints give this frame's crop)."""
    tight = boxes_from_keypoints(keypoints, scores, min_score)
    size = tight[:, 2:] - tight[:, :2]
    return np.concatenate([tight[:, :2] - margin * size, tight[:, 2:] + margin * size], axis=-1).astype(np.float32)


def crop_affines(boxes: np.ndarray, output_size: tuple[int, int] = CROP_SIZE, padding: float = BOX_PADDING) -> tuple[
    np.ndarray, np.ndarray
]:
    """Affine matrices (N, 2, 3) mapping the expanded boxes onto (width, height) crops; returns (affines, boxes)."""
    out_w, out_h = output_size
    crop_boxes = expand_boxes(boxes, aspect=out_w / out_h, padding=padding)
    scale = out_w / (crop_boxes[:, 2] - crop_boxes[:, 0])  # equal to out_h / box height after expansion
    aff = np.zeros((len(crop_boxes), 2, 3), dtype=np.float64)
    aff[:, 0, 0] = scale
    aff[:, 1, 1] = scale
    aff[:, 0, 2] = -crop_boxes[:, 0] * scale
    aff[:, 1, 2] = -crop_boxes[:, 1] * scale
    return aff, crop_boxes


def normalise_crops(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 ImageNet-normalised, contiguous."""
    x = crops.astype(np.float32) * (1.0 / 255.0)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def crop_people(
    image_rgb: np.ndarray,
    boxes: np.ndarray,
    output_size: tuple[int, int] = CROP_SIZE,
    padding: float = BOX_PADDING,
    normalise: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp each box (extended to the crop's aspect, times padding) to an `output_size` crop.

    Returns (crops, affines (N, 2, 3), crop boxes (N, 4)); crops are (N, 3, H, W) float32 normalised, or
    (N, H, W, 3) uint8 when normalise=False. Outside the image is black (zero), as in HRNet's own pipeline.
    """
    img = check_image(image_rgb)
    affines, crop_boxes = crop_affines(boxes, output_size, padding)
    out_w, out_h = output_size
    crops = np.empty((len(affines), out_h, out_w, 3), dtype=np.uint8)
    for i, aff in enumerate(affines):  # one cv2 call per person; OpenCV has no batched warp
        crops[i] = cv2.warpAffine(img, aff, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return (normalise_crops(crops) if normalise else crops), affines, crop_boxes


def transform_points(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Apply (N, 2, 3) affines to (N, K, 2) points (image -> crop)."""
    pts = np.asarray(points, dtype=np.float64)
    aff = np.asarray(affines, dtype=np.float64)
    return np.einsum("nij,nkj->nki", aff[:, :, :2], pts) + aff[:, None, :, 2]


def uncrop_points(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Map (N, K, 2) crop pixels back to image pixels with the inverse of each (N, 2, 3) affine."""
    pts = np.asarray(points, dtype=np.float64)
    aff = np.asarray(affines, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 2 or aff.shape != (pts.shape[0], 2, 3):
        raise ValueError(f"points (N, K, 2) and affines (N, 2, 3) must match, got {pts.shape} and {aff.shape}")
    inv = np.linalg.inv(aff[:, :, :2])
    return np.einsum("nij,nkj->nki", inv, pts - aff[:, None, :, 2])
