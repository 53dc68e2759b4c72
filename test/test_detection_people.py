"""People geometry of petr_ros.detection: counting found / missed / false people per frame (match_boxes,
PeopleTally) and telling a second skeleton on one person from another person (attached_to, part_of)."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros.detection import PeopleTally, attached_to, count_people, match_boxes, part_of

NAN = [np.nan] * 4


def test_match_is_one_to_one_best_overlap_first() -> None:
    truth = np.array([[0, 0, 10, 20], [100, 0, 110, 20]], np.float32)
    found = np.array([[1, 1, 11, 21], [0, 0, 10, 19], [300, 0, 310, 20]], np.float32)
    pairs = match_boxes(found, truth)
    assert pairs == [(1, 0)]  # the closer of the two boxes on person 0 wins; nothing overlaps person 1
    assert count_people(found, truth) == (1, 1, 2)
    assert match_boxes(np.zeros((0, 4)), truth) == []
    assert count_people(found, np.array([NAN], np.float32)) == (0, 0, 3)  # nobody in view: all false


def test_tally_per_person_and_false_people() -> None:
    tally = PeopleTally(["a", "b"])
    a, b = [0, 0, 10, 20], [50, 0, 60, 20]
    assert tally.add(np.array([a, b]), np.array([a, b])) == (2, 0, 0)
    assert tally.add(np.array([a]), np.array([a, b])) == (1, 1, 0)
    assert tally.add(np.array([a, [200, 0, 210, 20]]), np.array([a, NAN])) == (1, 0, 1)  # b out of view
    s = tally.summary()
    assert s["frames"] == 3 and s["found_a"] == 1.0 and s["found_b"] == 0.5
    assert (s["found"], s["missed"], s["false"], s["frames_with_false"]) == (4, 1, 1, 1)
    assert s["false_per_frame"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one row per person"):
        tally.add(np.array([a]), np.array([a]))


def test_attached_skeleton_versus_someone_behind() -> None:
    rng = np.random.default_rng(1)
    person = np.stack([rng.uniform(100, 200, 17), np.linspace(100, 400, 17)], axis=1)
    scores = np.full(17, 0.9)
    # A second guess: 10 of its 17 joints on the person's joints under other labels, the rest elsewhere.
    guess = np.concatenate([person[::-1][:10] + 2.0, rng.uniform(500, 600, (7, 2))])
    assert attached_to(guess, scores, person, scores)
    # Someone standing behind: 4 of 17 joints happen to fall on the person's joints.
    behind = np.concatenate([person[:4] + 3.0, person[4:] + np.array([80.0, 70.0])])
    assert not attached_to(behind, scores, person, scores)
    # Lying flat sideways out of the person's shoulders: a fifth of its joints on them is enough.
    flat = np.stack([np.linspace(100, 700, 17), rng.uniform(150, 200, 17)], axis=1)
    flat[:4] = person[:4]
    assert attached_to(flat, scores, person, scores)
    assert not attached_to(flat, np.zeros(17), person, scores)  # no confident joints: nothing to compare


def test_part_of_a_larger_box() -> None:
    person = np.array([100, 100, 300, 500], np.float32)
    assert part_of(np.array([150, 300, 250, 480]), person)  # a small skeleton on the legs
    assert not part_of(np.array([120, 120, 290, 490]), person)  # nearly as large: someone else, or the same one
    assert not part_of(np.array([250, 300, 400, 480]), person)  # half outside
    assert not part_of(np.array([150, 300, 150, 480]), person)  # degenerate: no area
