"""The OpenCV stick-figure drawer shared by the node's debug image and the synthetic training videos."""

from __future__ import annotations

import numpy as np

from petr_ros.kinematics import winter_rest_pose
from petr_ros.render import draw_skeleton_cv2
from petr_ros.skeleton import JOINT_INDEX

COLOURS = {"left": (255, 0, 0), "right": (0, 0, 255), "centre": (0, 255, 0)}


def _keypoints() -> np.ndarray:
    rest = winter_rest_pose(1.75)[:, :2]  # x right, y down: a T-pose seen from the front
    return (rest - rest.min(axis=0)) * 200 + 20


def test_joints_and_bones_take_their_side_colours() -> None:
    kp = _keypoints()
    img = np.zeros((int(kp[:, 1].max()) + 40, int(kp[:, 0].max()) + 40, 3), np.uint8)
    draw_skeleton_cv2(img, kp, COLOURS, thickness=2, antialias=False)
    for name, side in [("left_wrist", "left"), ("right_wrist", "right"), ("head", "centre"), ("left_ankle", "left")]:
        x, y = np.round(kp[JOINT_INDEX[name]]).astype(int)
        assert tuple(img[y, x]) == COLOURS[side], name
    # a point midway along the left forearm is drawn in the left colour
    mid = np.round(0.5 * (kp[JOINT_INDEX["left_elbow"]] + kp[JOINT_INDEX["left_wrist"]])).astype(int)
    assert tuple(img[mid[1], mid[0]]) == COLOURS["left"]


def test_hidden_joints_and_their_bones_are_not_drawn() -> None:
    kp = _keypoints()
    img = np.zeros((int(kp[:, 1].max()) + 40, int(kp[:, 0].max()) + 40, 3), np.uint8)
    visible = np.ones(17, bool)
    visible[JOINT_INDEX["right_wrist"]] = False
    draw_skeleton_cv2(img, kp, COLOURS, thickness=2, visible=visible, antialias=False)
    x, y = np.round(kp[JOINT_INDEX["right_wrist"]]).astype(int)
    assert not img[y, x].any()
    x, y = np.round(kp[JOINT_INDEX["right_elbow"]]).astype(int)
    assert tuple(img[y, x]) == COLOURS["right"]


def test_debug_image_draws_each_person_in_its_palette_colours() -> None:
    from petr_ros.render import draw_persons_cv2, person_colours
    from petr_ros.results import PersonResult

    kp = _keypoints()
    image = np.zeros((int(kp[:, 1].max()) + 40, int(kp[:, 0].max()) + 40, 3), np.uint8)
    confidences = np.ones(17)
    confidences[JOINT_INDEX["right_wrist"]] = 0.1  # below the drawing threshold: not drawn
    person = PersonResult(4, np.zeros((17, 3)), np.zeros((17, 3)), np.tile([0.0, 0.0, 0.0, 1.0], (17, 1)), kp,
                          confidences, np.array([5.0, 5.0, image.shape[1] - 5.0, image.shape[0] - 5.0]), 0.9)
    drawn = draw_persons_cv2(image, [person])
    assert not image.any()  # a copy: the input is untouched
    colours = {side: np.array([int(v * 255) for v in c]) for side, c in person_colours(4).items()}
    for name, side in [("left_wrist", "left"), ("right_elbow", "right"), ("head", "centre")]:
        x, y = np.round(kp[JOINT_INDEX[name]]).astype(int)
        np.testing.assert_allclose(drawn[y, x], colours[side], atol=2)  # the joint's dot, anti-aliased centre
    x, y = np.round(kp[JOINT_INDEX["right_wrist"]]).astype(int)
    assert not drawn[y, x].any()
    assert np.all(drawn[5, 20:-20] == colours["centre"])  # the box's top edge
    # Another person, another colour.
    assert person_colours(4)["left"] != person_colours(5)["left"]
