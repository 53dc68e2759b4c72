"""Person boxes with no weights file: OpenCV's built-in HOG people detector, plus the box helpers (IoU, NMS,
tight keypoint boxes) that the front ends and the tracker share.

Boxes are (N, 4) float32 arrays of x0 y0 x1 y1 in pixels.
"""

from __future__ import annotations

import math

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


def boxes_touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes (x0, y0, x1, y1) overlap or touch."""
    return bool(a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3])


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
                 scale: float = 1.05) -> None:
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
                                                        interpolation=self._cv2.INTER_AREA)
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


def match_boxes(found: np.ndarray, truth: np.ndarray, min_iou: float = 0.3) -> list[tuple[int, int]]:
    """One-to-one matches (found index, truth index) between found and true person boxes, greedily by IoU (the
    most overlapping pair first), only pairs with IoU >= min_iou."""
    found = check_boxes(np.asarray(found, np.float32).reshape(-1, 4), "found")
    truth = check_boxes(np.asarray(truth, np.float32).reshape(-1, 4), "truth")
    if not len(found) or not len(truth):
        return []
    iou = box_iou(found, truth)
    pairs: list[tuple[int, int]] = []
    used_f: set[int] = set()
    used_t: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i not in used_f and j not in used_t:
            pairs.append((i, j))
            used_f.add(i)
            used_t.add(j)
    return pairs


def count_people(found: np.ndarray, truth: np.ndarray, min_iou: float = 0.3) -> tuple[int, int, int]:
    """(found, missed, false) people of one frame: true boxes matched one-to-one by a found box (IoU >= min_iou),
    true boxes left unmatched, found boxes left unmatched. NaN rows of `truth` (person not in view) are ignored."""
    truth = np.asarray(truth, np.float32).reshape(-1, 4)
    truth = truth[np.isfinite(truth).all(axis=1)]
    found = np.asarray(found, np.float32).reshape(-1, 4)
    matched = len(match_boxes(found, truth, min_iou))
    return matched, len(truth) - matched, len(found) - matched


def same_person(
    keypoints_a: np.ndarray,
    scores_a: np.ndarray,
    keypoints_b: np.ndarray,
    scores_b: np.ndarray,
    min_score: float = 0.3,
    tolerance: float = 0.15,
    containment: float = 0.8,
    flip: tuple[int, ...] | None = None,
) -> bool:
    """True when two (K, 2) skeletons are one person found twice (two overlapping crops, a partial skeleton over
    the full one): the joints confident in both lie in about the same places (median distance below `tolerance`
    of the taller confident keypoint box), or one confident box lies almost wholly inside the other
    (intersection over the smaller box above `containment`) with the shared joints within twice that distance.

    Two people standing one behind the other overlap a lot in their boxes but not in their joints, so box overlap
    alone never decides. flip: the left/right joint permutation of the layout; when given, a skeleton with its
    sides swapped (the 2D model's classic mistake on a second look at someone) counts as the same person too."""
    ka, kb = np.asarray(keypoints_a, np.float64), np.asarray(keypoints_b, np.float64)
    sa, sb = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    if ka.shape != kb.shape or ka.ndim != 2 or ka.shape[1] != 2 or sa.shape != ka.shape[:1] or sb.shape != sa.shape:
        raise ValueError(f"same_person needs two (K, 2) keypoint arrays with (K,) scores, got {ka.shape} {sa.shape} "
                         f"and {kb.shape} {sb.shape}")
    if flip is not None:
        if sorted(flip) != list(range(len(ka))):
            raise ValueError(f"flip must be a permutation of range({len(ka)}), got {flip}")
        swapped = same_person(ka, sa, kb[list(flip)], sb[list(flip)], min_score, tolerance, containment)
        if swapped or same_person(ka, sa, kb, sb, min_score, tolerance, containment):
            return True
        return False
    box_a = boxes_from_keypoints(ka[None], sa[None], min_score)[0]
    box_b = boxes_from_keypoints(kb[None], sb[None], min_score)[0]
    height = max(float(box_a[3] - box_a[1]), float(box_b[3] - box_b[1]), 1.0)
    both = (sa >= min_score) & (sb >= min_score)
    median = float(np.median(np.linalg.norm(ka[both] - kb[both], axis=1))) if both.sum() >= 3 else math.inf
    if median < tolerance * height:
        return True
    ix = max(0.0, float(min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])))
    iy = max(0.0, float(min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])))
    smaller = min(float(np.prod(box_a[2:] - box_a[:2])), float(np.prod(box_b[2:] - box_b[:2])))
    return bool(smaller > 0 and ix * iy / smaller > containment and median < 2.0 * tolerance * height)


class PeopleTally:
    """Found / missed / false people over the frames of a video, per known person (for benchmarks).

    add(found, truth) per frame: `truth` has one row per known person, always in the same order, NaN where that
    person is not in view (or not to be counted); found boxes are matched one-to-one (`match_boxes`), unmatched
    found boxes count as false people."""

    def __init__(self, names: list[str] | tuple[str, ...], min_iou: float = 0.3) -> None:
        self.names = tuple(names)
        self.min_iou = float(min_iou)
        self.frames = 0
        self.in_view = np.zeros(len(self.names), np.int64)
        self.found = np.zeros(len(self.names), np.int64)
        self.false_people = 0
        self.frames_with_false = 0

    def add(self, found: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
        """Count one frame; returns its (found, missed, false)."""
        truth = np.asarray(truth, np.float32).reshape(-1, 4)
        if len(truth) != len(self.names):
            raise ValueError(f"truth must have one row per person {self.names}, got shape {truth.shape}")
        found = np.asarray(found, np.float32).reshape(-1, 4)
        visible = np.flatnonzero(np.isfinite(truth).all(axis=1))
        pairs = match_boxes(found, truth[visible], self.min_iou)
        self.frames += 1
        self.in_view[visible] += 1
        for _, j in pairs:
            self.found[visible[j]] += 1
        false = len(found) - len(pairs)
        self.false_people += false
        self.frames_with_false += int(false > 0)
        return len(pairs), len(visible) - len(pairs), false

    def summary(self) -> dict[str, float | int]:
        """Per person 'found_<name>' (fraction of the frames in view), totals and false people per frame."""
        out: dict[str, float | int] = {"frames": self.frames}
        for name, seen, hit in zip(self.names, self.in_view, self.found, strict=True):
            out[f"found_{name}"] = float(hit / seen) if seen else float("nan")
        out["found"] = int(self.found.sum())
        out["missed"] = int(self.in_view.sum() - self.found.sum())
        out["false"] = int(self.false_people)
        out["frames_with_false"] = int(self.frames_with_false)
        out["false_per_frame"] = float(self.false_people / self.frames) if self.frames else float("nan")
        return out


def attached_to(
    keypoints_a: np.ndarray,
    scores_a: np.ndarray,
    keypoints_b: np.ndarray,
    scores_b: np.ndarray,
    min_score: float = 0.5,
    fraction: float = 0.5,
    lying_fraction: float = 0.2,
    lying_aspect: float = 2.0,
    tolerance: float = 0.1,
) -> bool:
    """True when skeleton a (K, 2) looks like a second guess at person b rather than someone else: at least
    `fraction` of a's confident joints lie on b's confident joints (whatever their labels, within `tolerance` of
    b's size), or at least `lying_fraction` of them while a is stretched out flat (`lying_aspect` times wider than
    tall: a body drawn sideways out of b's shoulders). Someone standing behind b shares a few joint places with
    b by chance only (up to 40 % measured on the Pose2Sim video)."""
    mine = np.asarray(keypoints_a, np.float64)[np.asarray(scores_a) >= min_score]
    theirs = np.asarray(keypoints_b, np.float64)[np.asarray(scores_b) >= min_score]
    if len(mine) < 2 or len(theirs) < 2:
        return False
    size = max(float(np.ptp(theirs[:, 0])), float(np.ptp(theirs[:, 1])), 1.0)
    nearest = np.linalg.norm(mine[:, None, :] - theirs[None, :, :], axis=2).min(axis=1)
    on_them = float(np.mean(nearest < tolerance * size))
    if on_them >= fraction:
        return True
    lying = float(np.ptp(mine[:, 0])) > lying_aspect * max(float(np.ptp(mine[:, 1])), 1.0)
    return lying and on_them >= lying_fraction


def part_of(inner: np.ndarray, outer: np.ndarray, containment: float = 0.85, max_area: float = 0.5) -> bool:
    """True when box `inner` (4,) lies at least `containment` inside box `outer` and has at most `max_area` of its
    area: a small skeleton found on a part of someone else's body (legs, an arm)."""
    a, b = np.asarray(inner, np.float64).reshape(4), np.asarray(outer, np.float64).reshape(4)
    area_in = float(np.prod(np.maximum(a[2:] - a[:2], 0.0)))
    area_out = float(np.prod(np.maximum(b[2:] - b[:2], 0.0)))
    if area_in <= 0.0 or area_out <= 0.0 or area_in > max_area * area_out:
        return False
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / area_in >= containment
