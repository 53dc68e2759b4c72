"""Stable person ids across frames: box IoU + keypoint distance, Hungarian assignment, constant-velocity guess.

Pure logic (no ROS). The node and the demo call `PersonTracker.update(poses)` once per frame with the
`PersonPose`s of that frame and get them back with `person_id` set.

A new track whose box touches a person already tracked is *tentative* until it has been seen in `confirm_hits`
frames in a row: its poses come back with `person_id == TENTATIVE` and it is dropped at its first miss. The
landmark model's second guesses at someone (a partial skeleton stretched from a person's shoulders, legs found
twice) live for one or two frames next to that person (measured on the Sports2D video: 3 such tracks, of 1-2
frames, in 120 frames), while a person who stays is confirmed a few frames later. A new person away from everyone
tracked, and everyone in the first frame, is confirmed at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from petr_ros.detection import box_iou, boxes_touch, check_boxes

# Keypoints closer than this fraction of the person's box height (median over confident joints) count as the
# same person even when the boxes hardly overlap (a fast walker, an arm swinging out of the box).
KEYPOINT_GATE = 0.25
_MIN_KEYPOINT_SCORE = 0.3
DEFAULT_IOU_THRESHOLD = 0.3
DEFAULT_MAX_MISSED = 5
DEFAULT_CONFIRM_HITS = 3
TENTATIVE = -1  # person_id of a pose whose track is not confirmed yet
_IMPOSSIBLE = 1e6


@dataclasses.dataclass
class _Track:
    person_id: int  # TENTATIVE until confirmed
    box: np.ndarray  # (4,) last observed
    keypoints: np.ndarray  # (K, 2) last observed
    confidences: np.ndarray  # (K,)
    velocity: np.ndarray  # (2,) pixels per update, of the box centre
    missed: int = 0
    hits: int = 1

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints moved on by the velocity for each frame since the last observation."""
        shift = self.velocity * (self.missed + 1)
        return self.box + np.tile(shift, 2), self.keypoints + shift


class PersonTracker:
    """Give each person a stable `person_id` (0, 1, 2, ... in order of first appearance).

    iou_threshold: a detection may continue a track when their boxes overlap at least this much (IoU), or when
    their keypoints are within KEYPOINT_GATE of the box height. max_missed: frames a track survives unseen.
    confirm_hits: frames in a row a new track touching a tracked person must be seen before it gets an id
    (module docstring; 1: every new track at once). Ids count confirmed tracks only.
    """

    def __init__(self, iou_threshold: float = DEFAULT_IOU_THRESHOLD, max_missed: int = DEFAULT_MAX_MISSED,
                 confirm_hits: int = DEFAULT_CONFIRM_HITS) -> None:
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed!r}")
        if confirm_hits < 1:
            raise ValueError(f"confirm_hits must be >= 1, got {confirm_hits!r}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.confirm_hits = int(confirm_hits)
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def tracked_ids(self) -> list[int]:
        """Ids of the live confirmed tracks (seen within the last `max_missed` frames)."""
        return [t.person_id for t in self._tracks if t.person_id != TENTATIVE]

    def reset(self) -> None:
        """Forget all tracks; ids start again from 0."""
        self._tracks = []
        self._next_id = 0

    def update(self, poses: Sequence[Any]) -> list[Any]:
        """Assign ids to this frame's poses (PersonPose-like: box, keypoints2d, confidences); same order back, with
        `person_id == TENTATIVE` for the poses of tracks not confirmed yet."""
        poses = list(poses)
        boxes = check_boxes(np.stack([np.asarray(p.box, np.float32) for p in poses]) if poses else np.zeros((0, 4)))
        predicted = [t.predicted() for t in self._tracks]  # (box, keypoints) of each track in this frame
        cost = self._cost(poses, boxes, predicted)
        rows, cols = linear_sum_assignment(cost) if cost.size else (np.zeros(0, int), np.zeros(0, int))
        assigned: dict[int, int] = {}  # pose index -> track index
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] < _IMPOSSIBLE:
                assigned[int(c)] = int(r)

        out = []
        matched_tracks = set(assigned.values())
        # Where the people tracked before this frame are (a new track touching one of them starts tentative).
        known = [box for (box, _), t in zip(predicted, self._tracks, strict=True) if t.person_id != TENTATIVE]
        for i, pose in enumerate(poses):
            kp = np.asarray(pose.keypoints2d, np.float32)
            conf = np.asarray(pose.confidences, np.float32)
            if i in assigned:
                track = self._tracks[assigned[i]]
                centre_shift = (_centre(boxes[i]) - _centre(track.box)) / (track.missed + 1)
                # Damped velocity: a guess for the next frame, not a motion model.
                track.velocity = 0.5 * track.velocity + 0.5 * centre_shift
                track.box, track.keypoints, track.confidences = boxes[i].copy(), kp.copy(), conf.copy()
                track.missed = 0
                track.hits += 1
                if track.person_id == TENTATIVE and track.hits >= self.confirm_hits:
                    track.person_id = self._new_id()
            else:
                tentative = self.confirm_hits > 1 and any(boxes_touch(boxes[i], b) for b in known)
                track = _Track(TENTATIVE if tentative else self._new_id(), boxes[i].copy(), kp.copy(), conf.copy(),
                               np.zeros(2, np.float32))
                self._tracks.append(track)
                matched_tracks.add(len(self._tracks) - 1)
            out.append(dataclasses.replace(pose, person_id=track.person_id))

        survivors = []
        for t_index, track in enumerate(self._tracks):
            if t_index not in matched_tracks:
                track.missed += 1
            # a tentative track must be seen in consecutive frames
            if track.missed <= (self.max_missed if track.person_id != TENTATIVE else 0):
                survivors.append(track)
        self._tracks = survivors
        return out

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _cost(self, poses: list[Any], boxes: np.ndarray,
              predicted: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(tracks, poses) matching cost in [0, 2], _IMPOSSIBLE where neither gate (IoU, keypoints) passes;
        `predicted`: each track's (box, keypoints) moved on to this frame."""
        if not poses or not self._tracks:
            return np.zeros((len(self._tracks), len(poses)))
        iou = box_iou(np.stack([b for b, _ in predicted]), boxes)
        kp_dist = _keypoint_distances([kp for _, kp in predicted], [t.confidences for t in self._tracks], poses, boxes)
        gate = (iou >= self.iou_threshold) | (kp_dist <= KEYPOINT_GATE)
        return np.where(gate, (1.0 - iou) + np.minimum(kp_dist, 1.0), _IMPOSSIBLE)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) * 0.5, (box[1] + box[3]) * 0.5], np.float32)


def _keypoint_distances(track_kps: list[np.ndarray], track_confs: list[np.ndarray], poses: list[Any],
                        boxes: np.ndarray) -> np.ndarray:
    """(tracks, poses): median distance of the joints both see confidently, as a fraction of the pose's box height
    (inf where fewer than 3 such joints, or where the keypoint layouts differ)."""
    kps = [np.asarray(p.keypoints2d, np.float32) for p in poses]
    confs = [np.asarray(p.confidences, np.float32) for p in poses]
    shapes = {k.shape for k in kps + track_kps}
    if len(shapes) != 1:  # mixed layouts: pair by pair (a different layout is never the same person)
        return np.array([[_keypoint_distance(tk, tc, kp, c, box) for kp, c, box in zip(kps, confs, boxes, strict=True)]
                         for tk, tc in zip(track_kps, track_confs, strict=True)]).reshape(len(track_kps), len(poses))
    both = (np.stack(confs)[None] >= _MIN_KEYPOINT_SCORE) & (np.stack(track_confs)[:, None] >= _MIN_KEYPOINT_SCORE)
    dist = np.linalg.norm(np.stack(kps)[None] - np.stack(track_kps)[:, None], axis=-1)  # (tracks, poses, joints)
    # The median over the shared joints: the unshared ones sort last as inf, the median takes the middle of the rest.
    count = both.sum(axis=-1)
    ordered = np.sort(np.where(both, dist, np.inf), axis=-1)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], axis=-1)[..., 0]
    height = np.maximum((boxes[:, 3] - boxes[:, 1]).astype(np.float64), 1.0)
    with np.errstate(invalid="ignore"):
        median = ((lo + hi) / np.float32(2.0)).astype(np.float64)  # np.median's float32 value, exactly
    return np.where(count >= 3, median / height[None], np.inf)


def _keypoint_distance(track_kp: np.ndarray, track_conf: np.ndarray, kp: np.ndarray, conf: np.ndarray,
                       box: np.ndarray) -> float:
    """One track / pose pair of `_keypoint_distances`."""
    if kp.shape != track_kp.shape:
        return float("inf")
    both = (conf >= _MIN_KEYPOINT_SCORE) & (track_conf >= _MIN_KEYPOINT_SCORE)
    if both.sum() < 3:
        return float("inf")
    height = max(float(box[3] - box[1]), 1.0)
    return float(np.median(np.linalg.norm(kp[both] - track_kp[both], axis=1)) / height)
