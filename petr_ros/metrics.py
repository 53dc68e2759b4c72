"""Pose metrics: MPJPE, P-MPJPE, N-MPJPE, MPBVE, bone-direction and rotation errors, per-joint and per-action
breakdowns, and the skeleton-consistency and temporal measures (bone-length CV, left/right asymmetry, joint-limit
violations, acceleration and acceleration error) that need no labels or compare sequences.

Unit agnostic: errors come out in the unit of the inputs (pass millimetres to report millimetres, as Human3.6M
papers do; angles are degrees). Inputs are (..., J, 3) point sets (any batch shape; J = 17 where a metric needs the
skeleton's bones). Every function takes numpy arrays or torch tensors: numpy in -> Python float (reduction="mean")
or numpy array (reduction="none"); torch in -> tensor, differentiable (usable as a training loss), same device and
dtype. Bad input raises ValueError naming the offending shape.

The sequence measures (section "Sequences") take numpy (T, 17, 3) poses of consecutive frames and allow NaN for a
joint that is missing in a frame (a reference joint that is not valid): whatever touches it is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from petr_ros.kinematics import _as_input, _check_tensor, bone_vectors, joint_rotations, kinematic_constraint_weights
from petr_ros.skeleton import BONE_CHILDREN, BONE_NAMES, BONE_PARENTS, JOINT_NAMES, NUM_BONES, NUM_JOINTS, ROOT

_TINY = 1e-12
_REDUCTIONS = ("mean", "none")


def _pair(
    pred: Any, target: Any, tail: tuple[int | None, ...], dims: tuple[int, ...] = ()
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Validate two inputs of the same shape; returns (pred, target) as tensors and the output converter.

    dims: allowed sizes of the last axis where tail leaves it open (None).
    """
    for name, x in (("pred", pred), ("target", target)):
        shape = tuple(np.shape(x)) if not isinstance(x, torch.Tensor) else tuple(x.shape)
        if dims and (len(shape) < 2 or shape[-1] not in dims):
            raise ValueError(f"{name} must have shape (..., J, {'|'.join(map(str, dims))}), got shape {shape}")
    if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor):
        like = pred if isinstance(pred, torch.Tensor) else target
        p = _check_tensor(torch.as_tensor(pred, device=like.device), "pred", tail)
        t = _check_tensor(torch.as_tensor(target, device=like.device), "target", tail)
        dtype = torch.promote_types(p.dtype, t.dtype)
        p, t = p.to(dtype), t.to(dtype)

        def back(x: torch.Tensor) -> Any:
            return x

    else:
        p, _ = _as_input(pred, "pred", tail)
        t, _ = _as_input(target, "target", tail)

        def back(x: torch.Tensor) -> Any:
            return float(x) if x.ndim == 0 else x.detach().cpu().numpy()

    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    return p, t, back


def _reduce(err: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return err.mean() if reduction == "mean" else err


def _root_relative(x: torch.Tensor, root: int | None) -> torch.Tensor:
    if root is None:
        return x
    if not -x.shape[-2] <= root < x.shape[-2]:
        raise ValueError(f"root {root} is not a joint of poses with shape {tuple(x.shape)}")
    return x - x[..., root : root + 1, :]


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """sqrt with exact zeros and a zero (not NaN) gradient at 0: the plain norm's gradient at 0 is NaN."""
    positive = sq > _TINY * _TINY
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = a - b
    return _safe_sqrt((d * d).sum(-1))


# --- Position errors -------------------------------------------------------------------------------------------
def per_joint_errors(pred: Any, target: Any, root: int | None = 0) -> Any:
    """(..., J, D) -> (..., J) Euclidean error per joint after subtracting joint `root` (None: no alignment).

    D = 3 (3D joints) or 2 (2D keypoints).
    """
    p, t, back = _pair(pred, target, (None, None), dims=(2, 3))
    return back(_dist(_root_relative(p, root), _root_relative(t, root)))


def mpjpe(pred: Any, target: Any, root: int | None = 0, reduction: str = "mean") -> Any:
    """Mean per-joint position error (protocol 1): root-aligned at joint `root` (None: absolute positions).

    reduction="none" returns the (..., J) per-joint errors. Points may be 3D or 2D (..., J, 2).
    """
    p, t, back = _pair(pred, target, (None, None), dims=(2, 3))
    return back(_reduce(_dist(_root_relative(p, root), _root_relative(t, root)), reduction))


def n_mpjpe(pred: Any, target: Any, root: int | None = 0, reduction: str = "mean") -> Any:
    """MPJPE after the scale-only alignment of each root-relative prediction: s = <p, t> / <p, p> (3D or 2D)."""
    p, t, back = _pair(pred, target, (None, None), dims=(2, 3))
    p, t = _root_relative(p, root), _root_relative(t, root)
    scale = (p * t).sum((-1, -2), keepdim=True) / (p * p).sum((-1, -2), keepdim=True).clamp_min(_TINY)
    return back(_reduce(_dist(scale * p, t), reduction))


def _procrustes_t(p: torch.Tensor, t: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Similarity-align each pose p (..., J, 3) to t: s R p + c, R a proper rotation (det +1)."""
    mu_p, mu_t = p.mean(-2, keepdim=True), t.mean(-2, keepdim=True)
    p0, t0 = p - mu_p, t - mu_t
    M = t0.transpose(-1, -2) @ p0  # (..., 3, 3) = sum_i t_i p_i^T
    U, S, Vh = torch.linalg.svd(M)
    # Sign correction: if the best orthogonal map is a reflection, flip the weakest axis to get a rotation.
    sign = torch.sign(torch.linalg.det(U @ Vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(S)
    d = torch.cat((d[..., :2], sign[..., None]), dim=-1)
    R = (U * d[..., None, :]) @ Vh
    if scale:
        s = (S * d).sum(-1) / (p0 * p0).sum((-1, -2)).clamp_min(_TINY)
    else:
        s = torch.ones_like(S[..., 0])
    return s[..., None, None] * (p0 @ R.transpose(-1, -2)) + mu_t


def procrustes_align(pred: Any, target: Any, scale: bool = True) -> Any:
    """(..., J, 3) -> pred aligned to target by the best similarity transform (rotation, translation, scale)."""
    p, t, _ = _pair(pred, target, (None, 3))
    out = _procrustes_t(p, t, scale)
    return out if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor) else out.detach().numpy()


def p_mpjpe(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """MPJPE after similarity Procrustes alignment of each pose (protocol 2): rotation (det +1), translation, scale.

    Reflections are never used: a mirrored prediction keeps an error.
    """
    p, t, back = _pair(pred, target, (None, 3))
    return back(_reduce(_dist(_procrustes_t(p, t), t), reduction))


def mpbve(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean per-bone vector error: mean L2 distance between unit bone vectors (body-size independent, in [0, 2]).

    Inputs (..., 17, 3); reduction="none" gives (..., 16) per bone.
    """
    p, t, back = _pair(pred, target, (NUM_JOINTS, 3))
    bp, bt = bone_vectors(p), bone_vectors(t)
    up = bp / torch.sqrt((bp * bp).sum(-1, keepdim=True).clamp_min(_TINY * _TINY))
    ut = bt / torch.sqrt((bt * bt).sum(-1, keepdim=True).clamp_min(_TINY * _TINY))
    return back(_reduce(_dist(up, ut), reduction))


def bone_direction_error_deg(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Angle in degrees between each predicted bone and the true one (body-size independent, in [0, 180]).

    Inputs (..., 17, 3); reduction="none" gives (..., 16) per bone (bone b ends at joint b + 1).
    """
    p, t, back = _pair(pred, target, (NUM_JOINTS, 3))
    bp, bt = bone_vectors(p), bone_vectors(t)
    cross = torch.linalg.cross(bp, bt, dim=-1)
    # atan2(|a x b|, a . b) is accurate near 0 and 180 degrees where acos of the normalised dot product is not.
    angle = torch.atan2(_safe_sqrt((cross * cross).sum(-1)), (bp * bt).sum(-1))
    return back(_reduce(torch.rad2deg(angle), reduction))


# --- Rotation errors -------------------------------------------------------------------------------------------
def rotation_error_deg(R_pred: Any, R_true: Any, reduction: str = "mean") -> Any:
    """Geodesic angle of R_pred^T R_true in degrees, (..., 3, 3) inputs; reduction="none" gives (...)."""
    p, t, back = _pair(R_pred, R_true, (3, 3))
    rel = p.transpose(-1, -2) @ t
    # atan2(sin, cos) is accurate over [0, pi] where acos((trace - 1) / 2) loses precision near 0.
    axial = torch.stack(
        (rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]), -1
    )
    sin = 0.5 * _safe_sqrt((axial * axial).sum(-1))
    cos = 0.5 * (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1)
    return back(_reduce(torch.rad2deg(torch.atan2(sin, cos)), reduction))


def rotation_matrix_mae(R_pred: Any, R_true: Any, reduction: str = "mean") -> Any:
    """Mean absolute difference of rotation-matrix entries (the thesis's rotation metric); "none" gives (...)."""
    p, t, back = _pair(R_pred, R_true, (3, 3))
    return back(_reduce((p - t).abs().mean((-1, -2)), reduction))


# --- Breakdowns ------------------------------------------------------------------------------------------------
def breakdown(errors: Any, labels: Sequence[Any]) -> dict[str, float]:
    """Mean error per label: errors (N, ...) (trailing dims averaged), labels N values -> {str(label): mean}."""
    err = errors.detach().cpu().numpy() if isinstance(errors, torch.Tensor) else np.asarray(errors, dtype=np.float64)
    labels = [str(label) for label in labels]
    if err.ndim == 0 or err.shape[0] != len(labels):
        raise ValueError(f"need one label per row of errors, got errors of shape {err.shape} and {len(labels)} labels")
    per_row = err.reshape(err.shape[0], -1).mean(axis=1)
    out: dict[str, float] = {}
    for label in sorted(set(labels)):
        mask = np.array([lab == label for lab in labels])
        out[label] = float(per_row[mask].mean())
    return out


def _names(count: int, kind: str) -> list[str]:
    if kind == "joint" and count == NUM_JOINTS:
        return list(JOINT_NAMES)
    if count == NUM_BONES:
        return list(BONE_NAMES)
    return [f"{kind}_{i}" for i in range(count)]


def evaluate_poses(
    pred: Any,
    target: Any,
    actions: Sequence[Any] | None = None,
    rotations_pred: Any = None,
    rotations_true: Any = None,
) -> dict[str, Any]:
    """All metrics overall, per joint and per action, as a JSON-serialisable dict.

    pred, target: (N, J, 3) (17 joints for MPBVE; other J skip it), in any unit (errors come out in that unit).
    actions: N labels (e.g. Human3.6M action names) for the per-action breakdown; "mean_over_actions" is the
    unweighted mean of the per-action values, as Human3.6M tables report.
    rotations_pred / rotations_true: optional (N, K, 3, 3) rotations (K = 17 joints or 16 bones).
    """
    p, t, _ = _pair(pred, target, (None, 3))
    if p.ndim != 3:
        raise ValueError(f"pred and target must have shape (N, J, 3), got shape {tuple(p.shape)}")
    p, t = p.detach().cpu().double(), t.detach().cpu().double()  # a report, not a loss: any device, no graph
    n, j = p.shape[0], p.shape[1]
    if actions is not None and len(actions) != n:
        raise ValueError(f"actions must have one label per pose ({n}), got {len(actions)}")

    per_pose_joint: dict[str, np.ndarray] = {
        "mpjpe": mpjpe(p, t, reduction="none").numpy(),
        "n_mpjpe": n_mpjpe(p, t, reduction="none").numpy(),
        "p_mpjpe": p_mpjpe(p, t, reduction="none").numpy(),
    }
    if j == NUM_JOINTS:
        per_pose_joint["mpbve"] = mpbve(p, t, reduction="none").numpy()
    if (rotations_pred is None) != (rotations_true is None):
        raise ValueError("give both rotations_pred and rotations_true, or neither")
    if rotations_pred is not None:
        rp, rt, _ = _pair(rotations_pred, rotations_true, (None, 3, 3))
        if rp.ndim != 4 or rp.shape[0] != n:
            raise ValueError(f"rotations must have shape ({n}, K, 3, 3), got shape {tuple(rp.shape)}")
        rp, rt = rp.detach().cpu().double(), rt.detach().cpu().double()
        per_pose_joint["rotation_error_deg"] = rotation_error_deg(rp, rt, reduction="none").numpy()
        per_pose_joint["rotation_matrix_mae"] = rotation_matrix_mae(rp, rt, reduction="none").numpy()

    result: dict[str, Any] = {"num_poses": int(n), "num_joints": int(j)}
    for name, values in per_pose_joint.items():
        result[name] = float(values.mean())
    per_part: dict[str, dict[str, float]] = {}
    for name, values in per_pose_joint.items():
        kind = "bone" if name == "mpbve" else "joint"
        per_part[name] = {
            label: float(v) for label, v in zip(_names(values.shape[1], kind), values.mean(0), strict=True)
        }
    result["per_joint"] = per_part
    if actions is not None:
        per_action: dict[str, dict[str, float]] = {}
        labels = [str(a) for a in actions]
        for label in sorted(set(labels)):
            per_action[label] = {"count": labels.count(label)}
        for name, values in per_pose_joint.items():
            for label, mean in breakdown(values, actions).items():
                per_action[label][name] = mean
        result["per_action"] = per_action
        result["mean_over_actions"] = {
            name: float(np.mean([per_action[a][name] for a in per_action])) for name in per_pose_joint
        }
    return result


# --- Sequences: skeleton consistency and temporal measures (numpy, NaN = missing joint) -------------------------
# The limb bones as (right, left) child joints (bone = parent(child) -> child): thigh, shank, upper arm, forearm.
LIMB_PAIRS: dict[str, tuple[int, int]] = {"thigh": (2, 5), "shank": (3, 6), "upper_arm": (15, 12), "forearm": (16, 13)}
LIMB_JOINTS: tuple[int, ...] = tuple(j for pair in LIMB_PAIRS.values() for j in pair)


def _sequence(joints: Any, name: str, min_frames: int = 1) -> np.ndarray:
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_JOINTS, 3) or x.shape[0] < min_frames:
        raise ValueError(f"{name} must be a sequence (T >= {min_frames}, {NUM_JOINTS}, 3), got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"{name} (shape {x.shape}) contains infinite values (use NaN for a missing joint)")
    return x


def bone_lengths_over_time(joints: Any) -> np.ndarray:
    """(T, 17, 3) -> (T, 16) bone lengths, NaN where an end of the bone is missing."""
    x = _sequence(joints, "joints")
    return np.linalg.norm(x[:, BONE_CHILDREN] - x[:, BONE_PARENTS], axis=-1)


def bone_length_cv(joints: Any) -> np.ndarray:
    """(T, 17, 3) -> (16,) coefficient of variation (std / mean, a fraction) of each bone's length over the frames
    where it is present; NaN for a bone present in fewer than 2 frames. A rigid skeleton gives 0."""
    lengths = bone_lengths_over_time(joints)
    enough = np.isfinite(lengths).sum(0) >= 2
    cv = np.full(NUM_BONES, np.nan)
    kept = lengths[:, enough]
    cv[enough] = np.nanstd(kept, axis=0) / np.nanmean(kept, axis=0)
    return cv


def limb_length_cv(joints: Any) -> float:
    """Mean bone-length CV (fraction) of the 8 limb bones (thighs, shanks, upper arms, forearms) over a track."""
    return float(np.nanmean(bone_length_cv(joints)[[j - 1 for j in LIMB_JOINTS]]))


def left_right_asymmetry(joints: Any) -> float:
    """Mean over frames and the 4 limb pairs of |left - right| / mean(left, right) bone length (a fraction; a
    symmetric skeleton gives 0). Pairs with a missing side in a frame are left out."""
    lengths = bone_lengths_over_time(joints)
    right = lengths[:, [r - 1 for r, _ in LIMB_PAIRS.values()]]
    left = lengths[:, [left_ - 1 for _, left_ in LIMB_PAIRS.values()]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.abs(left - right) / (0.5 * (left + right))
    return float(np.nanmean(ratio)) if np.isfinite(ratio).any() else float("nan")


def joint_limit_violations(joints: Any) -> float:
    """Share of (frame, bone) pairs whose joint angles lie outside kinematics.JOINT_ANGLE_LIMITS (0 .. 1), from the
    rotations the positions imply (kinematics.joint_rotations); frames with a missing joint are left out."""
    x = _sequence(joints, "joints")
    x = x[np.isfinite(x).all(axis=(1, 2))]
    if len(x) == 0:
        return float("nan")
    local = joint_rotations(x, frame="local")[:, 1:]
    weights, _ = kinematic_constraint_weights(local)
    return float(np.mean(np.asarray(weights) > 1))


def _second_difference(x: np.ndarray, root: int | None) -> np.ndarray:
    if root is not None:
        x = x - x[:, root : root + 1]
    return x[2:] - 2.0 * x[1:-1] + x[:-2]


def acceleration(joints: Any, root: int | None = ROOT) -> float:
    """Mean joint acceleration magnitude |x[t+1] - 2 x[t] + x[t-1]| in units per frame^2 (jitter, label-free),
    joints relative to `root` (None: absolute). Needs T >= 3 consecutive frames."""
    acc = np.linalg.norm(_second_difference(_sequence(joints, "joints", 3), root), axis=-1)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def acceleration_error(pred: Any, target: Any, root: int | None = ROOT) -> float:
    """Mean |acc(pred) - acc(target)| per joint and frame, units per frame^2 (the acceleration error of temporal
    pose papers), both relative to `root`. Same shape (T >= 3, 17, 3), consecutive frames."""
    p, t = _sequence(pred, "pred", 3), _sequence(target, "target", 3)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}")
    err = np.linalg.norm(_second_difference(p, root) - _second_difference(t, root), axis=-1)
    return float(np.nanmean(err)) if np.isfinite(err).any() else float("nan")
