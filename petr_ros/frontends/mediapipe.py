"""MediaPipe BlazePose as a 2D front end: the pose model that ships inside the `mediapipe` wheel (Apache-2.0).

BlazePose predicts 33 landmarks; the 17 COCO points are a subset of them, so no learned mapping is involved.
The legacy `mediapipe.solutions.pose.Pose` graph runs offline with the model files in the wheel
(`pose_detection.tflite`, `pose_landmark_full.tflite`). It tracks one person per graph, so several people are
handled by running it on padded per-person crops (boxes given by the caller, or found by OpenCV's HOG people
detector plus the previous frame's keypoint boxes).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from typing import Any

import numpy as np

from petr_ros.detection import HogPersonDetector, boxes_from_keypoints, check_boxes, non_max_suppression
from petr_ros.frontends import Detection2D
from petr_ros.preprocessing import expand_boxes

LOG = logging.getLogger(__name__)

# BlazePose landmark index of each COCO-17 keypoint (COCO order, see petr_ros.skeleton.COCO_JOINT_NAMES).
# BlazePose: 0 nose, 2/5 left/right eye (centre), 7/8 ears, 11-16 shoulders/elbows/wrists, 23-28 hips/knees/ankles.
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
BLAZEPOSE_NUM_LANDMARKS = 33

# Model file of each `model_complexity` inside mediapipe's package folder. Only "full" (1) ships in the PyPI
# wheel; lite (0) and heavy (2) come e.g. from npm @mediapipe/pose and must be copied next to it.
_LANDMARK_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
DETECTORS = ("none", "hog")


def mediapipe_model_path(model_complexity: int) -> str:
    """Path of the BlazePose landmark model for `model_complexity` inside the installed mediapipe package."""
    if model_complexity not in _LANDMARK_MODELS:
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mediapipe front end needs the 'mediapipe' package (pip install mediapipe==0.10.21)")
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "modules", "pose_landmark", _LANDMARK_MODELS[model_complexity])


def available_model_complexities() -> tuple[int, ...]:
    """The model complexities whose model file is present (so nothing gets downloaded at run time)."""
    try:
        return tuple(c for c in _LANDMARK_MODELS if os.path.isfile(mediapipe_model_path(c)))
    except ImportError:
        return ()


def blazepose_to_coco(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(33, 3+) BlazePose landmarks (x px, y px, score, ...) -> COCO-17 keypoints (17, 2) and scores (17,)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != BLAZEPOSE_NUM_LANDMARKS or lm.shape[1] < 3:
        raise ValueError(f"BlazePose landmarks must have shape (33, >=3) as (x, y, score), got shape {lm.shape}")
    sel = lm[list(BLAZEPOSE_TO_COCO)]
    return sel[:, :2].astype(np.float32), np.clip(sel[:, 2], 0.0, 1.0).astype(np.float32)


class MediaPipeFrontEnd:
    """KeypointFrontEnd on MediaPipe BlazePose (COCO-17 keypoints in pixels, visibility as scores).

    detect(image, boxes):
      * boxes given (N, 4): one BlazePose run per padded box crop (multi-person), in static mode per crop;
      * no boxes, detector="none": the whole image, one person (video mode tracks that person across calls
        unless static_image_mode);
      * no boxes, detector="hog" (default): OpenCV HOG person boxes merged with the previous call's keypoint
        boxes (so a person HOG misses for a frame keeps being followed), each crop run as above; when that finds
        nobody, the whole image is tried once as in detector="none". While people are tracked HOG runs every
        `hog_interval` calls only (newcomers are picked up within that many frames).
    """

    name = "mediapipe"

    def __init__(
        self,
        model_complexity: int = 1,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        min_keypoint_score: float = 0.3,
        detector: str = "hog",
        max_people: int = 4,
        crop_padding: float = 0.25,
        smooth_landmarks: bool = True,
        hog_interval: int = 3,
    ) -> None:
        if model_complexity not in _LANDMARK_MODELS:
            raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
        path = mediapipe_model_path(model_complexity)
        if not os.path.isfile(path):
            # mediapipe would otherwise try to download the file at run time, which this package never does.
            raise ValueError(
                f"BlazePose model_complexity={model_complexity} needs {path}, which the installed mediapipe does "
                f"not ship (available: {available_model_complexities()}); copy the file there "
                "(e.g. from npm @mediapipe/pose) or use model_complexity=1"
            )
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_tracking_confidence", min_tracking_confidence),
                            ("min_keypoint_score", min_keypoint_score)):  # fmt: skip
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if int(max_people) < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people!r}")
        if int(hog_interval) < 1:
            raise ValueError(f"hog_interval must be >= 1 (run HOG every n-th call while people are tracked), "
                             f"got {hog_interval!r}")
        if not 0.0 <= float(crop_padding) <= 2.0:
            raise ValueError(f"crop_padding must be in [0, 2] (fraction of the box size), got {crop_padding!r}")
        import mediapipe as mp  # heavy import, only when this front end is used

        self._mp_pose = mp.solutions.pose
        self.model_complexity = int(model_complexity)
        self.static_image_mode = bool(static_image_mode)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.min_keypoint_score = float(min_keypoint_score)
        self.detector = detector
        self.max_people = int(max_people)
        self.crop_padding = float(crop_padding)
        self.smooth_landmarks = bool(smooth_landmarks)
        self._whole = self._make_pose(self.static_image_mode)  # whole-image graph (tracks in video mode)
        self._crop = self._make_pose(True)  # per-crop graph: crops of different people must not share tracking
        self._hog = HogPersonDetector() if detector == "hog" else None
        self.hog_interval = int(hog_interval)
        self._previous_boxes = np.zeros((0, 4), np.float32)
        self._calls = 0
        self._lock = threading.Lock()  # mediapipe graphs are not re-entrant

    def _make_pose(self, static: bool) -> Any:
        return self._mp_pose.Pose(
            static_image_mode=static,
            model_complexity=self.model_complexity,
            smooth_landmarks=self.smooth_landmarks,
            enable_segmentation=False,
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )

    def close(self) -> None:
        """Release the mediapipe graphs."""
        with self._lock:
            for graph in (self._whole, self._crop):
                graph.close()

    def reset(self) -> None:
        """Forget the tracked person(s): the next call starts from a fresh detection."""
        with self._lock:
            self._whole.close()
            self._whole = self._make_pose(self.static_image_mode)
            self._previous_boxes = np.zeros((0, 4), np.float32)
            self._calls = 0

    def detect(self, image_rgb: np.ndarray, boxes: np.ndarray | None = None) -> list[Detection2D]:
        """COCO-17 keypoints of the people in an (H, W, 3) uint8 RGB image, optionally inside (N, 4) boxes."""
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 2:
            raise ValueError(f"image_rgb must be an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}")
        image = np.ascontiguousarray(image)
        with self._lock:
            if boxes is not None:
                return self._detect_in_boxes(image, check_boxes(boxes))
            if self.detector == "none":
                found = self._run(self._whole, image, (0, 0))
                return [found] if found is not None else []
            return self._detect_hog(image)

    def _detect_hog(self, image: np.ndarray) -> list[Detection2D]:
        # While people are tracked, HOG (the costlier step) only runs every `hog_interval` calls to catch newcomers.
        self._calls += 1
        if len(self._previous_boxes) == 0 or self._calls % self.hog_interval == 0:
            hog_boxes, hog_scores = self._hog.detect(image)
        else:
            hog_boxes, hog_scores = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        # Previous keypoint boxes first (ranked above any HOG box) so a tracked person keeps its crop.
        candidates = np.concatenate([self._previous_boxes, hog_boxes], axis=0)
        ranks = np.concatenate([np.full(len(self._previous_boxes), 1e3, np.float32), hog_scores])
        keep = non_max_suppression(candidates, ranks, iou_threshold=0.5)
        found = self._detect_in_boxes(image, candidates[keep])
        if not found:
            single = self._run(self._crop, image, (0, 0))
            found = [single] if single is not None else []
        self._previous_boxes = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        return found

    def _detect_in_boxes(self, image: np.ndarray, boxes: np.ndarray) -> list[Detection2D]:
        h, w = image.shape[:2]
        found: list[Detection2D] = []
        # Crops of at least 3:4 (width:height) about each box, then padded: a person seen side on has a narrow
        # keypoint box, and BlazePose's detector needs the whole body with some context in its crop.
        crops = expand_boxes(boxes, aspect=0.75, padding=1.0 + 2.0 * self.crop_padding) if len(boxes) else boxes
        for box in crops:
            x0, y0, x1, y1 = _clip_box(box, w, h)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue  # box outside the image or degenerate: nothing to look at
            det = self._run(self._crop, image[y0:y1, x0:x1], (x0, y0))
            if det is None:
                continue
            # Two boxes on one person (e.g. a HOG box and a tracked box) give the same skeleton: keep the surer one.
            same = [i for i, other in enumerate(found) if _same_person(det, other)]
            if same:
                if det.scores.mean() > found[same[0]].scores.mean():
                    found[same[0]] = det
                continue
            found.append(det)
            if len(found) >= self.max_people:
                break
        return found

    def _run(self, graph: Any, image: np.ndarray, offset: tuple[int, int]) -> Detection2D | None:
        result = graph.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None
        h, w = image.shape[:2]
        lm = np.array([(p.x * w + offset[0], p.y * h + offset[1], p.visibility)
                       for p in result.pose_landmarks.landmark], dtype=np.float64)  # fmt: skip
        keypoints, scores = blazepose_to_coco(lm)
        if float(scores.mean()) < self.min_keypoint_score:
            return None
        box = boxes_from_keypoints(keypoints[None], scores[None], min_score=self.min_keypoint_score)[0]
        return Detection2D(keypoints=keypoints, scores=scores, box=box)


def _clip_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """A box clipped to the image, as integer pixel bounds."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))


def _same_person(a: Detection2D, b: Detection2D, tolerance: float = 0.15, containment: float = 0.6) -> bool:
    """True when two detections are one person seen through two overlapping crops: their keypoint boxes mostly
    overlap (intersection over the smaller box above `containment`; a crop that cuts a person gives a partial
    skeleton inside the full one), or their confident keypoints lie in about the same places (median distance
    below `tolerance` of the larger box's height)."""
    ix = max(0.0, float(min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])))
    iy = max(0.0, float(min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])))
    smaller = min(float(np.prod(a.box[2:] - a.box[:2])), float(np.prod(b.box[2:] - b.box[:2])))
    if smaller > 0 and ix * iy / smaller > containment:
        return True
    both = (a.scores >= 0.3) & (b.scores >= 0.3)
    if both.sum() < 3:
        return False
    dist = np.linalg.norm(a.keypoints[both] - b.keypoints[both], axis=1)
    height = max(a.box[3] - a.box[1], b.box[3] - b.box[1], 1.0)
    return bool(np.median(dist) < tolerance * height)
