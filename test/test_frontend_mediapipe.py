"""MediaPipe BlazePose front end on real photos and video frames (model shipped in the mediapipe wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from petr_ros.detection import (  # noqa: E402
    HogPersonDetector,
    box_iou,
    boxes_from_keypoints,
    non_max_suppression,
    same_person,
)
from petr_ros.frontends import Detection2D  # noqa: E402
from petr_ros.frontends.mediapipe import (  # noqa: E402
    BLAZEPOSE_TO_COCO,
    BlazePosePersonDetector,
    MediaPipeFrontEnd,
    available_model_complexities,
    blazepose_to_coco,
    region_from_alignment_points,
)
from petr_ros.skeleton import COCO_JOINT_NAMES  # noqa: E402

ASSETS = Path(os.environ.get("PETR_ASSETS", Path(__file__).resolve().parents[1] / "assets"))
COCO = {name: i for i, name in enumerate(COCO_JOINT_NAMES)}


def load_rgb(name: str) -> np.ndarray:
    path = ASSETS / name
    assert path.is_file(), f"missing asset {path}: run scripts/fetch_assets.sh"
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def video_frame(index: int, width: int = 960) -> np.ndarray:
    cap = cv2.VideoCapture(str(ASSETS / "sports2d_demo.mp4"))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok, f"could not read frame {index} of sports2d_demo.mp4"
    h, w = bgr.shape[:2]
    return np.ascontiguousarray(cv2.resize(bgr, (width, round(h * width / w)))[:, :, ::-1])


@pytest.fixture(scope="module")
def still() -> MediaPipeFrontEnd:
    front = MediaPipeFrontEnd(static_image_mode=True)
    yield front
    front.close()


def test_mapping_follows_mediapipe_landmark_names() -> None:
    import mediapipe as mp

    landmark = mp.solutions.pose.PoseLandmark
    for coco_name, blaze_index in zip(COCO_JOINT_NAMES, BLAZEPOSE_TO_COCO, strict=True):
        assert landmark(blaze_index).name.lower() == coco_name
    with pytest.raises(ValueError, match=r"\(33, >=3\)"):
        blazepose_to_coco(np.zeros((17, 3)))


def test_messi_one_person_inside_body_with_consistent_sides(still: MediaPipeFrontEnd) -> None:
    image = load_rgb("messi5.jpg")  # 548x342, a footballer facing the camera, kicking towards the image right
    dets = still.detect(image, None)
    assert len(dets) == 1
    det = dets[0]
    assert isinstance(det, Detection2D)
    assert det.keypoints.shape == (17, 2) and det.scores.shape == (17,) and det.box.shape == (4,)
    assert det.keypoints.dtype == np.float32 and np.all((det.scores >= 0) & (det.scores <= 1))
    assert det.scores.mean() > 0.8
    kp = {name: det.keypoints[i] for name, i in COCO.items()}
    # The body region of this photo (hand-measured: outstretched right hand at about x=70, left boot at
    # x=455, head top y=60, right boot y=335); the head points around the face at about (245, 105).
    assert np.all((det.keypoints[:, 0] > 60) & (det.keypoints[:, 0] < 470))
    assert np.all((det.keypoints[:, 1] > 55) & (det.keypoints[:, 1] < 342))
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        assert 215 < kp[name][0] < 275 and 85 < kp[name][1] < 130, (name, kp[name])
    # Facing the camera: his left side is on the image right, for shoulders and hips alike.
    assert kp["left_shoulder"][0] > kp["right_shoulder"][0]
    assert kp["left_hip"][0] > kp["right_hip"][0]
    # Each limb chain stays on its own side: the left wrist is nearer the left elbow than the right elbow.
    for a, b in (("wrist", "elbow"), ("elbow", "shoulder"), ("ankle", "knee"), ("knee", "hip")):
        for side, other in (("left", "right"), ("right", "left")):
            own = np.linalg.norm(kp[f"{side}_{a}"] - kp[f"{side}_{b}"])
            assert own < np.linalg.norm(kp[f"{side}_{a}"] - kp[f"{other}_{b}"]), (side, a, b)
    # Upright torso: shoulders above hips (y down), the box is the keypoints' extent.
    assert max(kp["left_shoulder"][1], kp["right_shoulder"][1]) < min(kp["left_hip"][1], kp["right_hip"][1])
    np.testing.assert_allclose(det.box, boxes_from_keypoints(det.keypoints[None], det.scores[None])[0])


def test_boxes_give_crops_in_image_pixels(still: MediaPipeFrontEnd) -> None:
    image = load_rgb("basketball1.png")  # 640x480 grey, the player on the left is fully visible
    whole = still.detect(image, None)
    assert len(whole) == 1
    inside = still.detect(image, np.array([[30, 80, 170, 480]], np.float32))
    assert len(inside) == 1
    # The crop's keypoints come back in full-image pixels: the same person, within a few pixels.
    both = (whole[0].scores > 0.8) & (inside[0].scores > 0.8)
    assert both.sum() >= 12
    err = np.linalg.norm(whole[0].keypoints[both] - inside[0].keypoints[both], axis=1)
    assert np.median(err) < 5.0, err
    assert still.detect(image, np.zeros((0, 4), np.float32)) == []
    assert still.detect(image, np.array([[600, 0, 640, 40]], np.float32)) == []  # an empty corner: nobody


def test_hog_finds_both_people_in_a_video_frame() -> None:
    frame = video_frame(80)  # the man on the box (upper left) and the woman walking on the grass (right)
    hog_boxes, hog_scores = HogPersonDetector().detect(frame)
    assert len(hog_boxes) >= 1 and hog_scores.shape == (len(hog_boxes),)
    front = MediaPipeFrontEnd(detector="hog")
    try:
        dets = front.detect(frame, None)
    finally:
        front.close()
    assert len(dets) == 2, [d.box for d in dets]
    boxes = np.stack([d.box for d in dets])
    assert box_iou(boxes, boxes)[0, 1] == 0.0  # two different people
    on_box, walker = sorted(dets, key=lambda d: d.box[1])
    assert on_box.box[3] < 260 < walker.box[1]  # standing on the box vs on the grass
    for det in dets:
        hips_y = det.keypoints[[COCO["left_hip"], COCO["right_hip"]], 1].mean()
        ankles_y = det.keypoints[[COCO["left_ankle"], COCO["right_ankle"]], 1].mean()
        assert ankles_y > hips_y  # both stand upright


def test_video_mode_follows_the_person_smoothly() -> None:
    front = MediaPipeFrontEnd(static_image_mode=False)
    try:
        # The upper-left 800x600 of the full-resolution frames, where the man stands on the box: in the whole
        # 1768x994 frame he is small for BlazePose's own detector (the HOG path is the answer to that).
        tracks = [front.detect(np.ascontiguousarray(video_frame(i, width=1768)[:600, 300:1100]), None)
                  for i in range(0, 6)]
    finally:
        front.close()
    assert all(len(t) == 1 for t in tracks)
    pairs = zip(tracks[:-1], tracks[1:], strict=True)
    steps = [np.median(np.linalg.norm(a[0].keypoints - b[0].keypoints, axis=1)) for a, b in pairs]
    height = tracks[0][0].box[3] - tracks[0][0].box[1]
    assert max(steps) < 0.05 * height  # consecutive frames at 30 fps: small moves, no jumps between people


def test_bad_input_and_configuration(still: MediaPipeFrontEnd) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        still.detect(np.zeros((10, 10), np.uint8), None)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        still.detect(np.zeros((10, 10, 3), np.float32), None)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        still.detect(np.zeros((64, 64, 3), np.uint8), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="model_complexity"):
        MediaPipeFrontEnd(model_complexity=3)
    with pytest.raises(ValueError, match="detector"):
        MediaPipeFrontEnd(detector="yolo")
    with pytest.raises(ValueError, match="min_detection_confidence"):
        MediaPipeFrontEnd(min_detection_confidence=1.5)
    assert 1 in available_model_complexities()  # "full" ships in the wheel
    for missing in {0, 2} - set(available_model_complexities()):
        # Missing model files are an error, never a run-time download.
        with pytest.raises(ValueError, match="does not ship"):
            MediaPipeFrontEnd(model_complexity=missing)


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 20], [1, 1, 11, 21], [50, 50, 60, 70]], np.float32)
    keep = non_max_suppression(boxes, np.array([0.5, 0.9, 0.1]), iou_threshold=0.5)
    assert keep.tolist() == [1, 2]
    with pytest.raises(ValueError, match="scores"):
        non_max_suppression(boxes, np.ones(2))


def test_region_from_alignment_points_is_blazeposes_square() -> None:
    upright = region_from_alignment_points(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert (upright.cx, upright.cy) == (100.0, 200.0)
    assert upright.side == pytest.approx(2 * 80 * 1.25) and upright.radius == pytest.approx(80)
    assert upright.rotation == pytest.approx(0.0)  # scale point straight above the hips: no turn
    lying = region_from_alignment_points(np.array([100.0, 200.0]), np.array([180.0, 200.0]))
    assert abs(lying.rotation) == pytest.approx(np.pi / 2)  # body axis along the image x axis


def test_blazepose_detector_views_cover_the_image() -> None:
    detector = BlazePosePersonDetector(zoom=3.0)
    try:
        views = detector.views(1920, 1088)
        assert views[0] == (0, 0, 1920)  # the whole image first
        tiles = views[1:]
        assert all(side == 640 for _, _, side in tiles)
        covered = np.zeros((1920, 1088), bool)
        for x, y, side in tiles:
            assert 0 <= x and x + side <= 1088 and 0 <= y and y + side <= 1920
            covered[y:y + side, x:x + side] = True
        assert covered.all()
        assert detector.views(100, 100) == [(0, 0, 100)]  # square and small: nothing to zoom into
    finally:
        detector.close()
    with pytest.raises(ValueError, match="zoom"):
        BlazePosePersonDetector(zoom=0.5)


def test_blazepose_detector_finds_the_footballer() -> None:
    detector = BlazePosePersonDetector()
    try:
        image = load_rgb("messi5.jpg")
        found = detector.detect(image)
        assert found, "no person found in messi5.jpg"
        best = found[0]
        region = best.region
        assert best.score > 0.5
        # The hip centre of the kicking footballer (hand-measured: hips at about x 230-290, y 190-220).
        assert 200 < region.cx < 320 and 160 < region.cy < 250, region
        assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []  # a black image: nobody
    finally:
        detector.close()


def test_blazepose_front_end_finds_and_follows_both_people() -> None:
    front = MediaPipeFrontEnd(detector="blazepose")
    try:
        per_frame = [front.detect(video_frame(i), None) for i in range(78, 84)]
    finally:
        front.close()
    # The man on the box and the woman on the grass, found at once (the small man through a zoomed tile within
    # the first frames) and then followed in every frame.
    assert all(len(dets) == 2 for dets in per_frame[3:]), [len(d) for d in per_frame]
    for dets in per_frame[3:]:
        on_box, walker = sorted(dets, key=lambda d: d.box[1])
        assert on_box.box[3] < 260 < walker.box[1]
        assert not same_person(on_box.keypoints, on_box.scores, walker.keypoints, walker.scores)


def test_blazepose_front_end_concurrent_workers_give_the_same_people() -> None:
    frames = [video_frame(i) for i in range(78, 82)]
    results = []
    for workers in (1, 2):
        front = MediaPipeFrontEnd(detector="blazepose", workers=workers)
        try:
            results.append([front.detect(f, None) for f in frames])
        finally:
            front.close()
    for serial, concurrent in zip(*results, strict=True):
        assert len(serial) == len(concurrent)
        for a, b in zip(serial, concurrent, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)


def test_same_person_tells_overlapping_people_apart() -> None:
    rng = np.random.default_rng(0)
    body = np.stack([rng.uniform(100, 250, 17), np.linspace(100, 400, 17)], axis=1)
    scores = np.full(17, 0.9)
    assert same_person(body, scores, body + 5.0, scores)  # one person found twice
    partial = scores.copy()
    partial[8:] = 0.0  # a partial skeleton over the full one
    assert same_person(body, scores, body + 3.0, partial)
    behind = body + np.array([50.0, 60.0])  # someone standing behind, boxes overlapping much
    assert box_iou(boxes_from_keypoints(body[None]), boxes_from_keypoints(behind[None]))[0, 0] > 0.3
    assert not same_person(body, scores, behind, scores)
    from petr_ros.skeleton import COCO_FLIP_PERMUTATION

    swapped = body[list(COCO_FLIP_PERMUTATION)] + 2.0  # the same person with left and right swapped
    assert same_person(body, scores, swapped, scores, flip=COCO_FLIP_PERMUTATION)
    with pytest.raises(ValueError, match="permutation"):
        same_person(body, scores, swapped, scores, flip=(0, 1, 2))
    with pytest.raises(ValueError, match="same_person"):
        same_person(body, scores, body[:5], scores[:5])


def test_blazepose_keeps_the_man_behind_the_woman() -> None:
    """Pose2Sim cam01 frames 60-80: the man on the treadmill goes partly behind the woman in front, the bystander
    stands at the top left. HOG never boxed the man there; the BlazePose detector finds all three and follows
    them (boxes of the three from test/data/pose2sim_cam01_people.npz and the reference)."""
    from petr_ros.detection import PeopleTally

    video = ASSETS / "pose2sim_multi" / "cam01.mp4"
    assert video.is_file(), f"missing {video}: run scripts/fetch_assets.sh"
    data = Path(__file__).resolve().parent / "data"
    with np.load(data / "pose2sim_cam01_people.npz") as people:
        man, bystander = people["man"], people["bystander"]
    cap = cv2.VideoCapture(str(video))
    front = MediaPipeFrontEnd()
    tally = PeopleTally(("man", "bystander"))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
        for f in range(60, 81):
            ok, bgr = cap.read()
            assert ok, f"could not read frame {f} of {video}"
            dets = front.detect(np.ascontiguousarray(bgr[:, :, ::-1]), None)
            assert 2 <= len(dets) <= 3, (f, [d.box for d in dets])  # the woman is the third
            tally.add(np.array([d.box for d in dets]).reshape(-1, 4), np.stack([man[f], bystander[f]]))
    finally:
        cap.release()
        front.close()
    summary = tally.summary()
    assert summary["found_man"] == 1.0 and summary["found_bystander"] == 1.0, summary
