"""MediaPipe BlazePose as a 2D front end: the pose model that ships inside the `mediapipe` wheel (Apache-2.0).

BlazePose predicts 33 landmarks; the 17 COCO points are a subset of them, so no learned mapping is involved.
Everything runs offline with the model files in the wheel (`pose_detection.tflite`, `pose_landmark_full.tflite`).

Finding several people (detector="blazepose", the default) runs BlazePose's own two stages as MediaPipe graphs
built here from the calculators compiled into the wheel (no other runtime, nothing downloaded): the person
detector (`pose_detection.tflite`, its SSD anchors decoded and suppressed by mediapipe's own calculators, on
224x224 downscaled views of the image: the whole image, then zoomed tiles in turn) gives each person's alignment
points; the landmark model then runs on each person's rotated region of interest directly, and that person's
next region comes from its own auxiliary landmarks, so a followed person needs no detector run, however close to
someone else they stand. The packaged `mediapipe.solutions.pose.Pose` graph (one person per graph) still serves
boxes given by the caller (one static run per padded crop), detector="none" (the whole image, one person) and
detector="hog" (OpenCV's HOG people boxes plus the previous frame's keypoint boxes, as crops).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from petr_ros.detection import (
    HogPersonDetector,
    attached_to,
    boxes_from_keypoints,
    check_boxes,
    non_max_suppression,
    part_of,
    same_person,
)
from petr_ros.frontends import Detection2D
from petr_ros.preprocessing import expand_boxes
from petr_ros.skeleton import COCO_FLIP_PERMUTATION

LOG = logging.getLogger(__name__)

# BlazePose landmark index of each COCO-17 keypoint (COCO order, see petr_ros.skeleton.COCO_JOINT_NAMES).
# BlazePose: 0 nose, 2/5 left/right eye (centre), 7/8 ears, 11-16 shoulders/elbows/wrists, 23-28 hips/knees/ankles.
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
BLAZEPOSE_NUM_LANDMARKS = 33

# Model file of each `model_complexity` inside mediapipe's package folder. Only "full" (1) ships in the PyPI
# wheel; lite (0) and heavy (2) come e.g. from npm @mediapipe/pose and must be copied next to it.
_LANDMARK_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
DETECTORS = ("none", "hog", "blazepose")


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


# --- BlazePose's two stages as separate MediaPipe graphs (detector="blazepose") ----------------------------------
# The detector graph: mediapipe's own tensor conversion, TFLite inference, SSD anchor decoding and weighted NMS,
# with the anchor layout and box coding of `pose_detection.tflite` (224x224 input, 2254 anchors, 4 alignment
# keypoints a box) and a score threshold we choose (the wheel's packaged graph fixes 0.5 and keeps one person).
_DETECTOR_INPUT = 224
_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 224 output_tensor_height: 224 keep_aspect_ratio: true
    output_tensor_float_range { min: -1.0 max: 1.0 } border_mode: BORDER_ZERO } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  output_stream: "TENSORS:detection_tensors"
  options: { [mediapipe.InferenceCalculatorOptions.ext] {
    model_path: "mediapipe/modules/pose_detection/pose_detection.tflite" delegate { xnnpack {} } } }
}
node {
  calculator: "SsdAnchorsCalculator"
  output_side_packet: "anchors"
  options: { [mediapipe.SsdAnchorsCalculatorOptions.ext] {
    num_layers: 5 min_scale: 0.1484375 max_scale: 0.75 input_size_height: 224 input_size_width: 224
    anchor_offset_x: 0.5 anchor_offset_y: 0.5 strides: 8 strides: 16 strides: 32 strides: 32 strides: 32
    aspect_ratios: 1.0 fixed_anchor_size: true } }
}
node {
  calculator: "TensorsToDetectionsCalculator"
  input_stream: "TENSORS:detection_tensors"
  input_side_packet: "ANCHORS:anchors"
  output_stream: "DETECTIONS:unfiltered_detections"
  options: { [mediapipe.TensorsToDetectionsCalculatorOptions.ext] {
    num_classes: 1 num_boxes: 2254 num_coords: 12 box_coord_offset: 0 keypoint_coord_offset: 4
    num_keypoints: 4 num_values_per_keypoint: 2 sigmoid_score: true score_clipping_thresh: 100.0
    reverse_output_order: true x_scale: 224.0 y_scale: 224.0 h_scale: 224.0 w_scale: 224.0
    min_score_thresh: %(min_score)s } }
}
node {
  calculator: "NonMaxSuppressionCalculator"
  input_stream: "unfiltered_detections"
  output_stream: "detections"
  options: { [mediapipe.NonMaxSuppressionCalculatorOptions.ext] {
    min_suppression_threshold: 0.3 overlap_type: INTERSECTION_OVER_UNION algorithm: WEIGHTED } }
}
"""
# The landmark graph: BlazePose's landmark model on a given region of interest (no detector inside), with the
# pose-presence gate of the wheel's own graph (no landmarks when the region holds no person).
_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "auxiliary_landmarks"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
}
"""
# BlazePose's region of interest around its two alignment points (hip centre, a point on the full-body circle):
# a square of 2 x radius x 1.25, turned so the body axis points up in the crop.
_ROI_SCALE = 1.25


@dataclass(frozen=True)
class PoseRegion:
    """A rotated square region of interest for the landmark model, in image pixels (rotation in radians,
    counter-clockwise as mediapipe's NormalizedRect)."""

    cx: float
    cy: float
    side: float
    rotation: float

    @property
    def radius(self) -> float:
        """Radius of the full-body circle the region was made from."""
        return self.side / (2.0 * _ROI_SCALE)


@dataclass(frozen=True)
class PersonDetection:
    """One person found by BlazePose's detector: its score, its region for the landmark model and its
    shoulder centre (pixels), which tells two people apart better than hip centres when one stands behind the
    other, and tells a second guess at the same person's body (same shoulders, another hip) for what it is."""

    score: float
    region: PoseRegion
    shoulder_centre: tuple[float, float]


def region_from_alignment_points(centre: np.ndarray, scale_point: np.ndarray) -> PoseRegion:
    """BlazePose's region of interest from its two alignment points (pixels): centred on `centre`, side
    2 x 1.25 x their distance, rotated so that `scale_point` is straight above the centre."""
    (x0, y0), (x1, y1) = (float(v) for v in np.asarray(centre)[:2]), (float(v) for v in np.asarray(scale_point)[:2])
    radius = math.hypot(x1 - x0, y1 - y0)
    rotation = math.pi / 2.0 - math.atan2(-(y1 - y0), x1 - x0)
    rotation = (rotation + math.pi) % (2.0 * math.pi) - math.pi
    return PoseRegion(x0, y0, 2.0 * radius * _ROI_SCALE, rotation)


def _solution(config: str, outputs: list[str], side_inputs: dict[str, Any] | None = None) -> Any:
    # The options' message types must be registered before the graph text naming them is parsed.
    import mediapipe.calculators.tensor.image_to_tensor_calculator_pb2  # noqa: F401
    import mediapipe.calculators.tensor.inference_calculator_pb2  # noqa: F401
    import mediapipe.calculators.tensor.tensors_to_detections_calculator_pb2  # noqa: F401
    import mediapipe.calculators.tflite.ssd_anchors_calculator_pb2  # noqa: F401
    import mediapipe.calculators.util.non_max_suppression_calculator_pb2  # noqa: F401
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase(graph_config=config, outputs=outputs, side_inputs=side_inputs)


class BlazePosePersonDetector:
    """BlazePose's person detector (`pose_detection.tflite` in the mediapipe wheel): every person whose head and
    torso it sees, as alignment points and a region of interest for the landmark model.

    The model sees 224x224 pixels, so a person under about a tenth of the image height is too small for it in the
    whole image: `views()` lists the whole image and square tiles about `zoom` times closer (overlapping by at
    least `overlap`), and the caller runs them in turn (`detect(image, view)`).
    """

    def __init__(self, min_score: float = 0.3, zoom: float = 3.0, overlap: float = 0.5) -> None:
        if not 0.0 < float(min_score) < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {min_score!r}")
        if not 1.0 <= float(zoom) <= 8.0:
            raise ValueError(f"zoom must be in [1, 8] (how much closer the tiles look than the whole image), "
                             f"got {zoom!r}")
        if not 0.0 <= float(overlap) < 0.9:
            raise ValueError(f"overlap must be in [0, 0.9), got {overlap!r}")
        import cv2

        self._cv2 = cv2
        self.min_score = float(min_score)
        self.zoom = float(zoom)
        self.overlap = float(overlap)
        self.tile_inside_fraction = 0.6
        self._graph = _solution(_DETECTOR_GRAPH % {"min_score": repr(self.min_score)}, ["detections"])
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._graph.close()

    def views(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(x0, y0, side) of the square views to search: the whole image first (side = its longer edge, padded),
        then square tiles `zoom` times closer (at most the shorter edge, at least 448 pixels, and only when that is
        at least 1.5 times closer)."""
        views = [(0, 0, max(height, width))]
        # Tiles smaller than the detector's input would only be upsampled: no closer look than full resolution.
        # At least twice the detector's input: smaller tiles show it parts of people more than small people.
        side = max(int(round(max(height, width) / self.zoom)), 2 * _DETECTOR_INPUT)
        side = min(side, height, width)
        if side * 1.5 > max(height, width):
            return views  # not worth a closer look than the whole image gives
        step = max(1, int(side * (1.0 - self.overlap)))
        xs = sorted({*range(0, max(1, width - side + 1), step), width - side})
        ys = sorted({*range(0, max(1, height - side + 1), step), height - side})
        views.extend((x, y, side) for y in ys for x in xs)
        return views

    def detect(self, image_rgb: np.ndarray, view: tuple[int, int, int] | None = None) -> list[PersonDetection]:
        """People in one square view of an (H, W, 3) uint8 RGB image (default: the whole image), in image pixels,
        best first."""
        image = np.asarray(image_rgb)
        h, w = image.shape[:2]
        x0, y0, side = view if view is not None else (0, 0, max(h, w))
        patch = image[y0:y0 + side, x0:x0 + side]
        ph, pw = patch.shape[:2]
        if ph < 2 or pw < 2:
            return []
        # Downscale here (area filter, sharper than the graph's bilinear resize) and pad to the square the
        # detector sees, so its relative coordinates map back with one scale.
        s = _DETECTOR_INPUT / float(side)
        small = self._cv2.resize(patch, (max(1, round(pw * s)), max(1, round(ph * s))),
                                 interpolation=self._cv2.INTER_AREA)
        square = np.zeros((_DETECTOR_INPUT, _DETECTOR_INPUT, 3), np.uint8)
        square[: small.shape[0], : small.shape[1]] = small[:_DETECTOR_INPUT, :_DETECTOR_INPUT]
        with self._lock:
            result = self._graph.process({"image": square})
        found = []
        is_tile = side < max(h, w)
        for det in result.detections or []:
            kp = det.location_data.relative_keypoints
            centre = np.array([x0 + kp[0].x * side, y0 + kp[0].y * side])
            scale_point = np.array([x0 + kp[1].x * side, y0 + kp[1].y * side])
            region = region_from_alignment_points(centre, scale_point)
            # A tile cuts people at its edges, and the detector then takes a part of someone (legs, a torso) for
            # a whole person: in a tile keep only people whose body circle lies mostly inside it (whoever is
            # larger is seen whole in the whole-image view).
            if is_tile and _inside_fraction(region, (x0, y0, side), h, w) < self.tile_inside_fraction:
                continue
            shoulders = (x0 + kp[2].x * side, y0 + kp[2].y * side)
            found.append(PersonDetection(float(det.score[0]), region, shoulders))
        return sorted(found, key=lambda f: -f.score)


def _inside_fraction(region: PoseRegion, view: tuple[int, int, int], height: int, width: int) -> float:
    """Fraction of the region's body-circle box (centre +- radius, clipped to the image) inside the square view."""
    x0, y0, side = view
    r = max(region.radius, 1e-6)
    bx0, by0 = max(region.cx - r, 0.0), max(region.cy - r, 0.0)
    bx1, by1 = min(region.cx + r, float(width)), min(region.cy + r, float(height))
    area = max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0)
    if area <= 0.0:
        return 0.0
    ix = max(0.0, min(bx1, x0 + side) - max(bx0, x0))
    iy = max(0.0, min(by1, y0 + side) - max(by0, y0))
    return ix * iy / area


class BlazePoseRegionLandmarker:
    """BlazePose's landmark model on a given region of interest: 33 landmarks (x px, y px, visibility) and the
    two alignment points for the next frame's region, or None when the region holds no person."""

    def __init__(self, model_complexity: int = 1) -> None:
        from mediapipe.framework.formats import rect_pb2

        self._rect = rect_pb2.NormalizedRect
        self._graph = _solution(_LANDMARK_GRAPH, ["landmarks", "auxiliary_landmarks"],
                                {"model_complexity": int(model_complexity)})
        self._lock = threading.Lock()  # one graph runs one region at a time

    def close(self) -> None:
        with self._lock:
            self._graph.close()

    def run(self, image_rgb: np.ndarray, region: PoseRegion) -> tuple[np.ndarray, PoseRegion] | None:
        """(33, 3) landmarks in image pixels with visibility, and the region that follows this person next."""
        h, w = image_rgb.shape[:2]
        rect = self._rect(x_center=region.cx / w, y_center=region.cy / h, width=region.side / w,
                          height=region.side / h, rotation=region.rotation)
        with self._lock:
            result = self._graph.process({"image": image_rgb, "roi": rect})
        if result.landmarks is None or result.auxiliary_landmarks is None:
            return None
        lm = np.array([(p.x * w, p.y * h, p.visibility) for p in result.landmarks.landmark], np.float64)
        aux = np.array([(p.x * w, p.y * h) for p in result.auxiliary_landmarks.landmark], np.float64)
        if lm.shape != (BLAZEPOSE_NUM_LANDMARKS, 3) or len(aux) < 2 or not np.isfinite(aux).all():
            return None
        return lm, region_from_alignment_points(aux[0], aux[1])


class MediaPipeFrontEnd:
    """KeypointFrontEnd on MediaPipe BlazePose (COCO-17 keypoints in pixels, visibility as scores).

    detect(image, boxes):
      * boxes given (N, 4): one BlazePose run per padded box crop (multi-person), in static mode per crop;
      * no boxes, detector="none": the whole image, one person (video mode tracks that person across calls
        unless static_image_mode);
      * no boxes, detector="hog": OpenCV HOG person boxes merged with the previous call's keypoint
        boxes (so a person HOG misses for a frame keeps being followed), each crop run as above; when that finds
        nobody, the whole image is tried once as in detector="none". While people are tracked HOG runs every
        `hog_interval` calls only (newcomers are picked up within that many frames).
      * no boxes, detector="blazepose" (default): each person found so far is followed by the landmark model on
        the region its own previous landmarks give (no detector run for it); BlazePose's person detector looks at one
        downscaled view of the image every `detector_interval` calls (the whole image every fourth time, zoomed
        tiles in turn in between: newcomers and small people are picked up within one cycle), at every view on
        every call while nobody is followed, and right around a followed person it lost. New
        people are the detections away from every followed person's shoulder centre. Up to
        `workers` people's regions run concurrently (one landmark graph each; mediapipe releases the GIL while a
        graph runs: 4 people cost 93 ms with 2 workers against 154 ms with 1, benchmarks/benchmark_people_cost.py).
        On the Pose2Sim 3-person video it finds all three people in 100 of 100 frames where HOG found the man
        standing partly behind the woman in 7 (benchmarks/benchmark_people.py).
    """

    name = "mediapipe"

    def __init__(
        self,
        model_complexity: int = 1,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        min_keypoint_score: float = 0.3,
        detector: str = "blazepose",
        max_people: int = 4,
        crop_padding: float = 0.25,
        smooth_landmarks: bool = True,
        hog_interval: int = 3,
        detector_interval: int = 2,
        detector_zoom: float = 3.0,
        detector_min_score: float = 0.3,
        workers: int = 2,
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
                            ("min_keypoint_score", min_keypoint_score)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if int(max_people) < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people!r}")
        if int(hog_interval) < 1:
            raise ValueError(f"hog_interval must be >= 1 (run HOG every n-th call while people are tracked), "
                             f"got {hog_interval!r}")
        if int(detector_interval) < 1:
            raise ValueError(f"detector_interval must be >= 1 (run the person detector every n-th call while "
                             f"people are followed), got {detector_interval!r}")
        if not 1 <= int(workers) <= 16:
            raise ValueError(f"workers must be in [1, 16] (people processed concurrently), got {workers!r}")
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
        self.detector_interval = int(detector_interval)
        self.workers = int(workers)
        self._person_detector: BlazePosePersonDetector | None = None
        self._landmarkers: list[BlazePoseRegionLandmarker] = []
        self._pool: ThreadPoolExecutor | None = None
        self._followed: list[PoseRegion] = []
        self._followed_shoulders: list[tuple[float, float]] = []  # COCO shoulders' midpoint of each followed
        self._view_cycle = 0
        if detector == "blazepose":
            self._person_detector = BlazePosePersonDetector(min_score=detector_min_score, zoom=detector_zoom)
            self._landmarkers = [BlazePoseRegionLandmarker(self.model_complexity) for _ in range(self.workers)]
            if self.workers > 1:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="blazepose")

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
            for graph in (self._whole, self._crop, *self._landmarkers):
                graph.close()
            if self._person_detector is not None:
                self._person_detector.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def reset(self) -> None:
        """Forget the tracked person(s): the next call starts from a fresh detection."""
        with self._lock:
            self._whole.close()
            self._whole = self._make_pose(self.static_image_mode)
            self._previous_boxes = np.zeros((0, 4), np.float32)
            self._calls = 0
            self._followed = []
            self._followed_shoulders = []
            self._view_cycle = 0

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
            if self.detector == "blazepose":
                return self._detect_blazepose(image)
            return self._detect_hog(image)

    def _next_views(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """The detector views to search on this call (see the class docstring): while people are followed, one
        view every `detector_interval` calls, the whole image every fourth time (large newcomers are found soon)
        and the zoomed tiles in turn in between; while nobody is, every view (a full search: that costs about what
        following two people does, and only while nobody is there)."""
        views = self._person_detector.views(height, width)
        tiles = views[1:]
        if not self._followed:
            return views
        if self._calls % self.detector_interval != 0:
            return []
        self._view_cycle += 1
        if self._view_cycle % 4 and tiles:
            return [tiles[(self._view_cycle - self._view_cycle // 4 - 1) % len(tiles)]]
        return views[:1]

    def _detect_blazepose(self, image: np.ndarray) -> list[Detection2D]:
        if self.static_image_mode:  # unrelated images: nobody to follow from the last one, a full search each
            self._followed, self._followed_shoulders, self._calls = [], [], 0
        self._calls += 1
        h, w = image.shape[:2]
        regions = list(self._followed)
        shoulders = list(self._followed_shoulders)
        detected = [d for view in self._next_views(h, w) for d in self._person_detector.detect(image, view)]
        for det in sorted(detected, key=lambda d: -d.score):
            # A detection on someone already followed (or found in another view) adds nothing: its shoulder
            # centre is close to theirs (the detector sometimes guesses a second body, another hip centre, under
            # the same shoulders). People standing one behind the other keep distinct shoulder centres.
            sx, sy = det.shoulder_centre
            if all(math.hypot(sx - ox, sy - oy) > 0.25 * min(det.region.radius, r.radius)
                   for (ox, oy), r in zip(shoulders, regions, strict=True)):
                regions.append(det.region)
                shoulders.append(det.shoulder_centre)
        results = self._run_regions(image, regions)
        # Someone followed but lost in this frame (turned, occluded, moved fast): the detector looks again right
        # there, in a view around the lost region, at once instead of waiting for its turn in the cycle.
        lost = [r for r, res in zip(regions[: len(self._followed)], results, strict=False) if res is None]
        retry = []
        for region in lost:
            side = int(min(max(h, w), max(32.0, 1.2 * region.side)))
            x0 = int(min(max(region.cx - side / 2, 0), max(w - side, 0)))
            y0 = int(min(max(region.cy - side / 2, 0), max(h - side, 0)))
            for again in self._person_detector.detect(image, (x0, y0, side)):
                if math.hypot(again.region.cx - region.cx, again.region.cy - region.cy) < region.radius:
                    retry.append(again.region)
                    break
        if retry:
            regions += retry
            results += self._run_regions(image, retry)
        # One skeleton per person: the surest first, then whoever is not the same person as one kept (the same
        # joints, either side labelling), nor a second guess attached to one (`detection.attached_to`), nor a
        # small skeleton inside one's box (`detection.part_of`: found on their legs or an arm).
        ranked = sorted((r for r in results if r is not None), key=lambda r: -float(r[0].scores.mean()))
        found: list[Detection2D] = []
        followed: list[PoseRegion] = []
        for det, next_region in ranked:
            if any(_same_person(det, other) or _attached(det, other) or part_of(det.box, other.box)
                   for other in found):
                continue
            found.append(det)
            followed.append(next_region)
            if len(found) >= self.max_people:
                break
        self._followed = followed
        self._followed_shoulders = [tuple(d.keypoints[[5, 6]].mean(axis=0).tolist()) for d in found]
        return found

    def _run_regions(self, image: np.ndarray, regions: list[PoseRegion]) -> list[tuple[Detection2D, PoseRegion] | None]:
        """The landmark model on each region (concurrently over `workers` graphs), in the regions' order."""
        if self._pool is None or len(regions) < 2:
            return [self._run_region(self._landmarkers[0], image, r) for r in regions]
        futures = [self._pool.submit(self._run_region, self._landmarkers[i % self.workers], image, r)
                   for i, r in enumerate(regions)]
        return [f.result() for f in futures]

    def _run_region(self, landmarker: BlazePoseRegionLandmarker, image: np.ndarray,
                    region: PoseRegion) -> tuple[Detection2D, PoseRegion] | None:
        if not (region.side >= 16 and math.isfinite(region.cx) and math.isfinite(region.cy)):
            return None
        out = landmarker.run(image, region)
        if out is None:
            return None
        landmarks, next_region = out
        keypoints, scores = blazepose_to_coco(landmarks)
        if float(scores.mean()) < self.min_keypoint_score:
            return None
        box = boxes_from_keypoints(keypoints[None], scores[None], min_score=self.min_keypoint_score)[0]
        return Detection2D(keypoints=keypoints, scores=scores, box=box), next_region

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
                       for p in result.pose_landmarks.landmark], dtype=np.float64)
        keypoints, scores = blazepose_to_coco(lm)
        if float(scores.mean()) < self.min_keypoint_score:
            return None
        box = boxes_from_keypoints(keypoints[None], scores[None], min_score=self.min_keypoint_score)[0]
        return Detection2D(keypoints=keypoints, scores=scores, box=box)


def _clip_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """A box clipped to the image, as integer pixel bounds."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))


def _attached(a: Detection2D, b: Detection2D) -> bool:
    """a is a second guess at person b. Stricter than the ghost filter's half (COCO's five head points make a
    man standing right behind a woman share up to 53 % of his joint places with her on the Pose2Sim video)."""
    return attached_to(a.keypoints, a.scores, b.keypoints, b.scores, fraction=0.65)


def _same_person(a: Detection2D, b: Detection2D) -> bool:
    """Two detections that are one person seen through two overlapping crops or regions."""
    return same_person(a.keypoints, a.scores, b.keypoints, b.scores, flip=COCO_FLIP_PERMUTATION)
