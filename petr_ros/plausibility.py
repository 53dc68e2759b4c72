"""Which of a frame's estimated people are plausible enough to publish: the per-frame ghost filter.

`reject_implausible` takes the people a `PoseEstimator` returned for one image and keeps those that pass every
check, counting the rejected ones by reason (for /diagnostics). It knows nothing of ROS.

Checks, in order (a person is counted once, under the first reason that rejects it):
  * ``non_finite``: NaN/inf in the 3D joints, 2D keypoints, rotations, confidences or score (nothing downstream
    can use such a skeleton);
  * ``low_score``: mean keypoint confidence below ``min_score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from petr_ros.estimator import PersonPose

REASONS: tuple[str, ...] = ("non_finite", "low_score")


@dataclass
class PlausibilitySettings:
    """Thresholds of `reject_implausible`.

    min_score: people whose mean keypoint confidence (PersonPose.score) is lower are rejected (the node's
    `min_person_score`).
    """

    min_score: float = 0.3

    def __post_init__(self) -> None:
        if not np.isfinite(self.min_score) or not 0.0 <= float(self.min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score!r}")


def _is_finite(person: PersonPose) -> bool:
    arrays = (person.joints3d, person.keypoints2d, person.rotations, person.confidences)
    return bool(all(np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in arrays)
                and np.isfinite(float(person.score)))


def reject_implausible(
    people: list[PersonPose], settings: PlausibilitySettings, image_shape: tuple[int, int]
) -> tuple[list[PersonPose], dict[str, int]]:
    """The plausible people of one frame (input order kept) and the number rejected per reason (every reason in
    `REASONS` is a key, zero included). image_shape: (height, width) of the image the people were found in."""
    if len(image_shape) < 2 or int(image_shape[0]) < 1 or int(image_shape[1]) < 1:
        raise ValueError(f"image_shape must be (height, width) with both >= 1, got {image_shape!r}")
    counts = dict.fromkeys(REASONS, 0)
    kept: list[PersonPose] = []
    for person in people:
        if not _is_finite(person):
            counts["non_finite"] += 1
        elif float(person.score) < settings.min_score:
            counts["low_score"] += 1
        else:
            kept.append(person)
    return kept, counts
