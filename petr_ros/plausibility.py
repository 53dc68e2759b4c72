"""Which of a frame's estimated people are plausible enough to publish: the per-frame ghost filter.

`reject_implausible` takes the people a `PoseEstimator` returned for one image and keeps those that pass every
check, counting the rejected ones by reason (for /diagnostics). It knows nothing of ROS.

Checks, in order (a person is counted once, under the first reason that rejects it):
  * ``non_finite``: NaN/inf in the 3D joints, 2D keypoints, rotations, confidences or score (nothing downstream
    can use such a skeleton);
  * ``low_score``: mean keypoint confidence below ``min_score``;
  * ``few_joints``: fewer than ``min_confident_joints`` joints with confidence >= ``joint_score`` (a few
    confident points are not a body: partial skeletons on clutter);
  * ``outside_image``: most confident joints outside the image (a skeleton extrapolated beyond the frame);
  * ``too_small``: the confident joints span less than ``min_size_px``, or less than ``min_size_fraction`` of
    the image's longer side (below what the 2D models resolve: a 30-pixel "person" on a table);
  * ``flat``: the confident joints' 2D extent is much wider than tall and the body lies across the image
    although its 3D skeleton is upright (a lying person is wide and tall in 3D alike: the check compares the 2D
    shape with the lifted one);
  * ``proportions``: a 3D limb (thigh, shank, upper arm, forearm, trunk) longer or shorter than
    ``max_bone_ratio`` times its share of the body in the Winter anthropometric model, or a left limb more
    than ``max_asymmetry`` times its right counterpart (or the reverse);
  * ``duplicate``: the same person as another person of the frame with a higher score (`detection.same_person`:
    joints in the same places, either side labelling), or a small skeleton lying inside a surer person's
    (confident keypoint box at least ``part_containment`` inside theirs and at most ``part_area`` of its area):
    a partial skeleton found on a part of someone (legs, a raised arm), or a skeleton attached to a surer
    person: at least ``attached_fraction`` of its confident joints on that person's joints (any labels, within a
    tenth of their size), or, lying flat in the image (wider than tall by ``max_flatness`` / 1.25), a fifth of
    them (the landmark model's second guess at someone, a body stretched out sideways from their shoulders).
    Someone standing behind another person shares a few joint places with them by chance (measured: up to 40 %
    of the man's joints on the Pose2Sim video), hence the half (attached_fraction 0: off).

The proportion limits are wide on purpose: the shipped single-frame lifter itself gives real people limbs up to
about 5.4 times their Winter share and left/right ratios up to about 4.4 in fast poses (a jump off a box;
measured on the Pose2Sim and Sports2D videos, 99th percentiles 2.7 and 2.3), so tighter limits would drop real
people; they catch only the grossly broken skeletons (9 times, from crops cutting a person).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from petr_ros.bone_lengths import measure_bone_lengths
from petr_ros.detection import attached_to, boxes_touch, part_of, same_person
from petr_ros.estimator import PersonPose
from petr_ros.kinematics import WINTER_FRACTIONS
from petr_ros.skeleton import FLIP_PERMUTATION

REASONS: tuple[str, ...] = (
    "non_finite", "low_score", "few_joints", "outside_image", "too_small", "flat", "proportions", "duplicate",
)

# Bones checked for proportions, by the joint each ends at (bone b ends at joint b + 1, H3.6M-17 order):
# thighs (2, 5), shanks (3, 6), upper arms (12, 15), forearms (13, 16), trunk (7, 8).
_PROPORTION_BONES = np.array([2, 3, 5, 6, 7, 8, 12, 13, 15, 16]) - 1
# (left bone, right bone) pairs: thigh, shank, upper arm, forearm.
_SYMMETRIC_BONES = ((5 - 1, 2 - 1), (6 - 1, 3 - 1), (12 - 1, 15 - 1), (13 - 1, 16 - 1))


@dataclass
class PlausibilitySettings:
    """Thresholds of `reject_implausible` (the module docstring says what each check does).

    min_score: people whose mean keypoint confidence (PersonPose.score) is lower are rejected (the node's
    `min_person_score`). min_confident_joints 0, min_size_px 0, max_flatness 0, max_bone_ratio 0,
    max_asymmetry 0 and duplicates False turn the respective check off.
    """

    min_score: float = 0.3
    joint_score: float = 0.5
    min_confident_joints: int = 8
    min_inside_fraction: float = 0.5
    min_size_px: float = 40.0
    min_size_fraction: float = 0.08
    max_flatness: float = 2.5
    max_bone_ratio: float = 6.0
    max_asymmetry: float = 5.0
    duplicates: bool = True
    part_containment: float = 0.85
    part_area: float = 0.5
    attached_fraction: float = 0.5

    @classmethod
    def scores_only(cls, min_score: float = 0.3) -> PlausibilitySettings:
        """Only the checks the node always had (finite values, min_score): every other check off."""
        return cls(min_score=min_score, min_confident_joints=0, min_inside_fraction=0.0, min_size_px=0.0,
                   min_size_fraction=0.0, max_flatness=0.0, max_bone_ratio=0.0, max_asymmetry=0.0,
                   duplicates=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}")
        for name in ("min_score", "joint_score", "min_inside_fraction", "min_size_fraction", "part_containment",
                     "part_area", "attached_fraction"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0 <= int(self.min_confident_joints) <= 17:
            raise ValueError(f"min_confident_joints must be in [0, 17], got {self.min_confident_joints!r}")
        if self.min_size_px < 0:
            raise ValueError(f"min_size_px must be >= 0 (0: off), got {self.min_size_px!r}")
        for name in ("max_flatness", "max_bone_ratio", "max_asymmetry"):
            value = float(getattr(self, name))
            if value != 0.0 and value < 1.0:
                raise ValueError(f"{name} must be >= 1 (0: off), got {value!r}")

    def replaced(self, **changes: object) -> PlausibilitySettings:
        """A copy with some thresholds changed (validated again)."""
        return replace(self, **changes)


def _is_finite(person: PersonPose) -> bool:
    arrays = (person.joints3d, person.keypoints2d, person.rotations, person.confidences)
    return bool(math.isfinite(float(person.score)) and all(np.isfinite(a).all() for a in arrays))


def bone_length_ratios(joints3d: np.ndarray) -> np.ndarray:
    """(16,) each 3D bone's share of the skeleton's summed bone length over its share in the Winter model
    (1: Winter's proportions; scale-free, so a small or distant person scores the same)."""
    lengths = measure_bone_lengths(np.asarray(joints3d, np.float64).reshape(17, 3))
    total = float(lengths.sum())
    if total <= 1e-9:
        return np.zeros(len(lengths))
    return (lengths / total) / (WINTER_FRACTIONS / WINTER_FRACTIONS.sum())


def _proportions_ok(person: PersonPose, settings: PlausibilitySettings) -> bool:
    if not settings.max_bone_ratio and not settings.max_asymmetry:
        return True
    ratios = bone_length_ratios(person.joints3d)
    if settings.max_bone_ratio:
        r = ratios[_PROPORTION_BONES]
        if np.any(r > settings.max_bone_ratio) or np.any(r < 1.0 / settings.max_bone_ratio):
            return False
    if settings.max_asymmetry:
        for left, right in _SYMMETRIC_BONES:
            lo, hi = sorted((ratios[left], ratios[right]))
            if hi > settings.max_asymmetry * max(lo, 1e-9):
                return False
    return True


def _flat(person: PersonPose, confident: np.ndarray, max_flatness: float) -> bool:
    """2D extent far wider than tall while the lifted 3D body is not (a lying person is wide in both)."""
    pts = np.asarray(person.keypoints2d, np.float64)[confident]
    width, height = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
    if width <= max_flatness * max(height, 1e-9):
        return False
    joints = np.asarray(person.joints3d, np.float64)
    vertical = np.ptp(joints[:, 1])
    horizontal = max(np.ptp(joints[:, 0]), np.ptp(joints[:, 2]))
    return bool(vertical > horizontal)


def reject_implausible(
    people: list[PersonPose], settings: PlausibilitySettings, image_shape: tuple[int, int]
) -> tuple[list[PersonPose], dict[str, int]]:
    """The plausible people of one frame (input order kept) and the number rejected per reason (every reason in
    `REASONS` is a key, zero included). image_shape: (height, width) of the image the people were found in."""
    if len(image_shape) < 2 or int(image_shape[0]) < 1 or int(image_shape[1]) < 1:
        raise ValueError(f"image_shape must be (height, width) with both >= 1, got {image_shape!r}")
    height, width = int(image_shape[0]), int(image_shape[1])
    counts = dict.fromkeys(REASONS, 0)
    single: list[PersonPose] = []  # people that pass every check on their own
    for person in people:
        reason = _single_person_reason(person, settings, height, width)
        if reason is None:
            single.append(person)
        else:
            counts[reason] += 1
    if not settings.duplicates:
        return single, counts
    # Duplicates: the surest of each group of skeletons on one person is kept.
    boxes = [_confident_box(p, settings.joint_score) for p in single]
    kept_ids: list[int] = []
    for i in sorted(range(len(single)), key=lambda k: -float(single[k].score)):
        a = single[i]
        # Skeletons whose confident boxes do not even touch cannot be one person: skip the joint comparisons.
        near = [k for k in kept_ids if boxes_touch(boxes[i], boxes[k])]
        if any(_part_of(boxes[i], boxes[k], settings) or _attached(a, single[k], settings)
               or same_person(a.keypoints2d, a.confidences, single[k].keypoints2d, single[k].confidences,
                              flip=FLIP_PERMUTATION) for k in near):
            counts["duplicate"] += 1
        else:
            kept_ids.append(i)
    return [single[i] for i in sorted(kept_ids)], counts


def _confident_box(person: PersonPose, joint_score: float) -> np.ndarray:
    pts = np.asarray(person.keypoints2d, np.float64)
    good = np.asarray(person.confidences) >= joint_score
    pts = pts[good] if good.sum() >= 2 else pts
    return np.array([*pts.min(axis=0), *pts.max(axis=0)])


def _attached(person: PersonPose, other: PersonPose, settings: PlausibilitySettings) -> bool:
    """Many of `person`'s confident joints lie on `other`'s joints (whatever their labels)."""
    if not settings.attached_fraction:
        return False
    return attached_to(person.keypoints2d, person.confidences, other.keypoints2d, other.confidences,
                       min_score=settings.joint_score, fraction=settings.attached_fraction,
                       lying_aspect=settings.max_flatness / 1.25 if settings.max_flatness else math.inf)


def _part_of(inner: np.ndarray, outer: np.ndarray, settings: PlausibilitySettings) -> bool:
    return part_of(inner, outer, settings.part_containment, settings.part_area)


def _single_person_reason(person: PersonPose, settings: PlausibilitySettings, height: int, width: int) -> str | None:
    """The first check that rejects this person on its own, or None."""
    if not _is_finite(person):
        return "non_finite"
    if float(person.score) < settings.min_score:
        return "low_score"
    conf = np.asarray(person.confidences)
    confident = conf >= settings.joint_score
    if int(confident.sum()) < settings.min_confident_joints:
        return "few_joints"
    if confident.sum() < 2:
        confident = conf >= np.sort(conf)[-2]  # the two surest joints still give a size
    pts = np.asarray(person.keypoints2d)[confident]
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    if settings.min_inside_fraction and inside.mean() < settings.min_inside_fraction:
        return "outside_image"
    size = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
    if size < settings.min_size_px or size < settings.min_size_fraction * max(height, width):
        return "too_small"
    if settings.max_flatness and _flat(person, confident, settings.max_flatness):
        return "flat"
    if not _proportions_ok(person, settings):
        return "proportions"
    return None
