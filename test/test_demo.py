"""The main job end to end on a few frames: the Sports2D video through the real petr_node (shipped MediaPipe front
end + shipped lifter) over real DDS; then geometric sanity of what the node published, read back from the bag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from petr_ros.ros.demo import SPORTS2D_FOCAL_PX
from petr_ros.skeleton import JOINT_INDEX, NUM_JOINTS

REPO = Path(__file__).resolve().parents[1]
J = JOINT_INDEX
FRAMES = 8
# Video frames 72..100, every 4th (the full demo's spacing): the man stands on the box facing the camera (jumping
# jacks), the woman walks across the grass, side on. Both stand upright.
FIRST, LAST = 72, 100


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    env = dict(os.environ)
    env["ROS_LOG_DIR"] = str(out / "ros_log")
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    domain = 110 + os.getpid() % 10  # 110..119: away from the node tests' 70..101 and the demo's own 150..199
    args = [sys.executable, "-m", "petr_ros.ros.demo", "--output", str(out), "--frames", str(FRAMES),
            "--first-frame", str(FIRST), "--last-frame", str(LAST), "--gif-frames", str(FRAMES),
            "--sheet-frames", "2", "--domain-id", str(domain), "--focal-px", str(SPORTS2D_FOCAL_PX)]
    proc = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


def skeletons_from_bag(out: Path) -> list[list[object]]:
    from petr_ros.ros.bag import read_bag

    return [m.msg.skeletons for m in read_bag(out / "demo_bag", topics=["/petr_node/skeletons"])]


def test_outputs_and_summary(demo_run: Path) -> None:
    summary = json.loads((demo_run / "summary.json").read_text())
    assert summary["frames_published"] == FRAMES and summary["frames_answered"] == FRAMES
    assert summary["video_frames_spanned"] == [FIRST, LAST]
    assert summary["people_per_frame"]["max"] == 2  # the man on the box and the walker
    assert summary["backend"] == "mediapipe"
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]
    assert summary["processed_rate_hz"] > 0
    assert "latency" in (demo_run / "summary.txt").read_text()
    from PIL import Image

    with Image.open(demo_run / "demo.png") as png:
        assert png.width > 1000 and png.height > 300
    with Image.open(demo_run / "demo.gif") as gif:
        assert gif.n_frames == FRAMES
    from petr_ros.ros.bag import bag_topics, read_bag

    topics = bag_topics(demo_run / "demo_bag")
    assert topics["/petr_node/skeletons"] == "petr_ros_msgs/msg/SkeletonArray"
    assert topics["/petr_node/markers"] == "visualization_msgs/msg/MarkerArray"
    assert topics["/petr_node/poses"] == "geometry_msgs/msg/PoseArray"
    counts = {t: 0 for t in topics}
    for m in read_bag(demo_run / "demo_bag"):
        counts[m.topic] += 1
    for topic in ("/petr_node/skeletons", "/petr_node/markers", "/petr_node/poses",
                  "/demo/camera/image_raw/compressed"):
        assert counts[topic] == FRAMES, counts
    # Two people tracked through the clip: two ids, each seen in most frames.
    ids = [sk.person_id for frame in skeletons_from_bag(demo_run) for sk in frame]
    values, seen = np.unique(ids, return_counts=True)
    assert len(values) == 2 and seen.min() >= FRAMES - 1, dict(zip(values, seen, strict=True))


def _arrays(sk: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pos = np.array([[p.x, p.y, p.z] for p in sk.positions])
    quat = np.array([[q.x, q.y, q.z, q.w] for q in sk.orientations])
    kp = np.asarray(sk.keypoints_2d, np.float64).reshape(NUM_JOINTS, 2)
    conf = np.asarray(sk.confidences, np.float64)
    return pos, quat, kp, conf


def test_geometry_matches_the_people_in_the_frames(demo_run: Path) -> None:
    from petr_ros.kinematics import quaternion_to_matrix

    people = [sk for frame in skeletons_from_bag(demo_run) for sk in frame]
    assert len(people) >= 2 * FRAMES - 2
    checked_sides = facing_checked = standing = 0
    ratios: dict[str, list[float]] = {}
    for sk in people:
        pos, quat, kp, conf = _arrays(sk)
        assert np.all(np.isfinite(pos)) and np.all(pos[:, 2] > 0.1)  # in front of the camera
        # Unit quaternions, w >= 0 (the message convention).
        np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1.0, atol=1e-4)
        assert np.all(quat[:, 3] >= -1e-6)

        # Left/right: where the 2D image separates a left joint from its right twin clearly (frontal view), the
        # 3D joints project in the same x-order. Side-on (the walker), the 2D gap is small and the order is not
        # determinable from the image, so those pairs are not judged.
        height_px = kp[:, 1].max() - kp[:, 1].min()
        u = pos[:, 0] / pos[:, 2]  # image x up to the (positive) focal length and principal point
        for left, right in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
            gap = kp[J[left], 0] - kp[J[right], 0]
            if abs(gap) > 0.08 * height_px and min(conf[J[left]], conf[J[right]]) > 0.5:
                assert np.sign(u[J[left]] - u[J[right]]) == np.sign(gap), (sk.person_id, left, gap)
                checked_sides += 1
        # Facing: a person whose left shoulder is on the image right faces the camera, so the body frame's z axis
        # (x = towards the left hip, y = down, z = x cross y) points away from the camera (+z).
        shoulder_gap = kp[J["left_shoulder"], 0] - kp[J["right_shoulder"], 0]
        if abs(shoulder_gap) > 0.12 * height_px:
            root_z = np.asarray(quaternion_to_matrix(quat[0]))[:, 2]
            assert np.sign(root_z[2]) == np.sign(shoulder_gap), (sk.person_id, root_z, shoulder_gap)
            facing_checked += 1

        # Bone lengths: per skeleton within loose human bounds, the medians below within anthropometric ranges.
        def bone(a: str, b: str, pos: np.ndarray = pos) -> float:
            return float(np.linalg.norm(pos[J[a]] - pos[J[b]]))

        trunk = bone("pelvis", "spine") + bone("spine", "thorax")
        for side in ("left", "right"):
            thigh, calf = bone(f"{side}_hip", f"{side}_knee"), bone(f"{side}_knee", f"{side}_ankle")
            upper, lower = bone(f"{side}_shoulder", f"{side}_elbow"), bone(f"{side}_elbow", f"{side}_wrist")
            ratios.setdefault("thigh/calf", []).append(thigh / calf)
            ratios.setdefault("upper/lower arm", []).append(upper / lower)
            ratios.setdefault("thigh/trunk", []).append(thigh / trunk)
        for a, b in (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist")):
            ratios.setdefault(f"left/right {a}-{b}", []).append(
                bone(f"left_{a}", f"left_{b}") / bone(f"right_{a}", f"right_{b}"))
        for name, values in ratios.items():
            assert 0.45 < values[-1] < 2.3, (sk.person_id, name, values[-1])

        # Standing (2D: ankles well below the hips): in 3D too the feet are below the hips (y down) by a leg,
        # and the person is about as tall as a person.
        ankles_2d = kp[[J["left_ankle"], J["right_ankle"]], 1].mean()
        if ankles_2d - kp[J["pelvis"], 1] > 0.3 * height_px:
            ankles_3d = pos[[J["left_ankle"], J["right_ankle"]], 1].mean()
            assert ankles_3d - pos[J["pelvis"], 1] > 0.5, (sk.person_id, ankles_3d, pos[J["pelvis"]])
            stature = ankles_3d - pos[J["head"], 1]
            assert 1.3 < stature < 2.2, (sk.person_id, stature)
            standing += 1
    assert checked_sides >= FRAMES  # the man faces the camera in these frames: his sides are judged every time
    assert facing_checked >= FRAMES // 2
    assert standing >= FRAMES
    # Placed with the video's intrinsics (CameraInfo), metrically: both people 5-20 m away, and the man standing on
    # the box (about 2 m tall) has his feet well above the woman's on the grass (y down).
    assert {sk.placement for sk in people} == {1}  # Skeleton.PLACEMENT_INTRINSICS
    pairs = 0
    for frame in skeletons_from_bag(demo_run):
        for sk in frame:
            assert 5.0 < sk.positions[0].z < 20.0, sk.positions[0]
        if len(frame) == 2:
            on_box, walker = sorted(frame, key=lambda sk: sk.box[1])  # higher in the image first
            feet = [np.mean([sk.positions[J[a]].y for a in ("left_ankle", "right_ankle")]) for sk in (on_box, walker)]
            assert feet[1] - feet[0] > 1.0, feet
            pairs += 1
    assert pairs >= FRAMES - 1
    # Anthropometric ranges for the typical skeleton (Winter: thigh/calf 1.0, upper/lower arm 1.27, thigh/trunk
    # 0.85; left/right symmetric).
    expected = {"thigh/calf": (0.8, 1.25), "upper/lower arm": (0.95, 1.65), "thigh/trunk": (0.65, 1.25)}
    for name, values in ratios.items():
        lo, hi = expected.get(name, (0.85, 1.18))
        assert lo < float(np.median(values)) < hi, (name, np.round(values, 2))


def test_renderer_draws_where_the_keypoints_are(tmp_path: Path) -> None:
    from petr_ros.kinematics import joint_rotations, matrix_to_quaternion, winter_rest_pose
    from petr_ros.render import (
        MarkerPrimitive,
        PanelRenderer,
        contact_sheet,
        joint_colours,
        save_gif,
        save_png,
        skeleton_primitives,
    )
    from petr_ros.results import PersonResult

    rest = winter_rest_pose(1.75)
    quats = matrix_to_quaternion(joint_rotations(rest))
    keypoints = rest[:, :2] * 100 + np.array([300.0, 200.0])  # a front view of the T-pose, pixels
    # Pure red, green and blue pixels can only be the joint axes when no colour of the person's palette is one.
    person_id = 5
    palette = joint_colours(person_id)[:, :3] * 255
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        assert not np.any((palette[:, channel] > 150) & (palette[:, others].max(axis=1) < 90)), palette
    view = PersonResult(person_id, rest, rest + np.array([0.0, 0.0, 3.0]), quats, keypoints, np.ones(NUM_JOINTS),
                        np.array([100.0, 50.0, 500.0, 350.0]), 1.0)
    image = np.zeros((400, 600, 3), np.uint8)
    renderer = PanelRenderer()
    panel = renderer.render(image, [view], title="test")
    assert panel.shape == (400, 1000, 3) and panel.dtype == np.uint8
    # Every keypoint is drawn: the pixel under it (in figure coordinates) is no longer the black image.
    shown = renderer.ax2d.transData.transform(keypoints)
    for x, y in shown:
        assert panel[int(round(400 - y)), int(round(x))].max() > 40, (x, y)
    # The 3D half has the bones, joints and joint axes: red, green and blue axis pixels are all there.
    right = panel[:, 600:].astype(int)
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        pure = (right[:, :, channel] > 150) & (right[:, :, others].max(axis=2) < 90)
        assert pure.sum() > 20, channel
    prims = skeleton_primitives(view)
    assert [p.kind for p in prims] == ["lines", "lines", "spheres"] and len(prims[1].points) == 2 * 3 * NUM_JOINTS
    with pytest.raises(ValueError, match="even number"):
        MarkerPrimitive("lines", np.zeros((3, 3)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="must match"):
        MarkerPrimitive("spheres", np.zeros((3, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="kind"):
        MarkerPrimitive("arrows", np.zeros((2, 3)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="same|shape"):
        contact_sheet([panel, panel[:10]])
    sheet = contact_sheet([panel, panel, panel], columns=2, gap=4)
    assert sheet.shape == (2 * 400 + 4, 2 * 1000 + 4, 3)
    png = save_png(tmp_path / "sheet.png", sheet)
    gif = save_gif(tmp_path / "anim.gif", [panel, panel[::-1].copy()], fps=5, scale=0.5)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (sheet.shape[1], sheet.shape[0])
    with Image.open(gif) as im:
        assert im.n_frames == 2 and im.size == (500, 200)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left
