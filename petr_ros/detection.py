"""Person boxes with no weights file: OpenCV's built-in HOG people detector, plus the box helpers (IoU, NMS,
tight keypoint boxes) that the front ends and the tracker share.

Boxes are (N, 4) float32 arrays of x0 y0 x1 y1 in pixels.
"""

from __future__ import annotations

import numpy as np


def check_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    """Return `boxes` as (N, 4) float32 x0 y0 x1 y1 or raise ValueError naming the offending shape/values."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x0 y0 x1 y1, got shape {np.shape(boxes)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} (shape {arr.shape}) contains NaN/inf values")
    if arr.size and ((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])).any():
        raise ValueError(f"{name} must have x1 >= x0 and y1 >= y0, got {arr.tolist()}")
    return arr


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (N, 4) and (M, 4) boxes -> (N, M) in [0, 1]."""
    a = check_boxes(a, "a")
    b = check_boxes(b, "b")
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first."""
    boxes = check_boxes(boxes)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},) to match boxes {boxes.shape}, got {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    iou = box_iou(boxes, boxes)
    for i in order:
        if all(iou[i, k] <= iou_threshold for k in keep):
            keep.append(int(i))
    return np.array(keep, dtype=np.int64)


def boxes_from_keypoints(keypoints: np.ndarray, scores: np.ndarray | None = None, min_score: float = 0.3) -> np.ndarray:
    """Tight boxes (N, 4) around the keypoints (N, K, 2) whose score is >= min_score (all of them when none is)."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[-1] != 2 or kp.shape[1] == 0:
        raise ValueError(f"keypoints must have shape (N, K, 2), got shape {kp.shape}")
    sc = np.ones(kp.shape[:2], np.float32) if scores is None else np.asarray(scores, dtype=np.float32)
    if sc.shape != kp.shape[:2]:
        raise ValueError(f"scores must have shape {kp.shape[:2]} to match keypoints {kp.shape}, got {sc.shape}")
    out = np.empty((kp.shape[0], 4), np.float32)
    for i in range(kp.shape[0]):
        good = sc[i] >= min_score
        pts = kp[i][good] if good.any() else kp[i]
        out[i] = (*pts.min(axis=0), *pts.max(axis=0))
    return out


class HogPersonDetector:
    """OpenCV's default HOG + linear SVM people detector (Dalal & Triggs), built into OpenCV: no weights file.

    The image is downscaled to `work_width` pixels for speed (people must stay taller than the 128 px window);
    `hit_threshold` below 0 trades false positives (rejected later by the pose model) for recall.
    """

    def __init__(self, work_width: int = 640, hit_threshold: float = -0.3, win_stride: int = 8,
                 scale: float = 1.05) -> None:  # fmt: skip
        import cv2

        if work_width < 64:
            raise ValueError(f"work_width must be >= 64 pixels (the HOG window is 64x128), got {work_width}")
        if scale <= 1.0:
            raise ValueError(f"scale must be > 1 (the image pyramid step), got {scale}")
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.work_width = int(work_width)
        self.hit_threshold = float(hit_threshold)
        self.win_stride = int(win_stride)
        self.scale = float(scale)

    def detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 image -> boxes (N, 4) float32 in image pixels and SVM scores (N,), best first."""
        image = np.asarray(image_rgb)
        if image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W[, 3]) uint8 image, got shape {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        s = min(1.0, self.work_width / float(w))
        small = image if s == 1.0 else self._cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                                        interpolation=self._cv2.INTER_AREA)  # fmt: skip
        if small.shape[0] < 128 or small.shape[1] < 64:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        rects, weights = self._hog.detectMultiScale(
            small, hitThreshold=self.hit_threshold, winStride=(self.win_stride, self.win_stride), padding=(8, 8),
            scale=self.scale, groupThreshold=2,
        )
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / s
        scores = np.asarray(weights, np.float32).reshape(-1)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        order = np.argsort(-scores, kind="stable")
        return boxes[order], scores[order]
