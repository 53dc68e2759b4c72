"""Counting found / missed / false people per frame (petr_ros.detection.match_boxes, PeopleTally)."""

from __future__ import annotations

import numpy as np
import pytest

from petr_ros.detection import PeopleTally, count_people, match_boxes

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
