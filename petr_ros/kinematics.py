"""Skeleton kinematics: bones, rotation conversions, joint rotations, forward kinematics, Winter model, limits.

Conventions (docs/design.md, "Frames", "Rotations", "Winter"):
- Matrices act on column vectors; quaternions are (x, y, z, w), unit norm, w >= 0.
- 6D rotations are the first two matrix COLUMNS [r00, r10, r20, r01, r11, r21] (Zhou et al. 2019).
- Euler ZYX angles are returned and taken in the order (z, y, x): R = Rz(a[0]) @ Ry(a[1]) @ Rx(a[2]).
- Rest pose: a T-pose facing the camera in camera axes (x right of the image = the person's left, y down, z forward).

Every public function takes numpy arrays or torch tensors and returns the same kind. The torch path is batched,
differentiable and keeps device and dtype; numpy input is computed with the very same code in float64 (through
torch on the CPU) and returned as numpy in the input's floating dtype (float64 for integer input), except
joint_rotations and matrix_to_quaternion (the node's per-frame path), whose numpy input runs float64 numpy twins
of the same arithmetic (the torch path's result within 1e-11: torch's fixed cost per operation, not the
arithmetic, was most of their time for a few people). Bad input
(wrong shape, NaN/inf, empty batch) raises ValueError naming the offending shape.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from petr_ros.skeleton import BONES, FLIP_PERMUTATION, NUM_BONES, NUM_JOINTS, PARENTS
from petr_ros.validation import check_points

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Length below which a vector counts as zero (units agnostic: metres or millimetres both stay far above it).
_TINY = 1e-12
# Relative tolerance for degenerate 6D input (column norm or sine of the angle between the columns).
ROT6D_TOLERANCE = 1e-6

# --- Rest pose ------------------------------------------------------------------------------------------------
_LEFT = (1.0, 0.0, 0.0)  # the person's left is +x when facing the camera
_RIGHT = (-1.0, 0.0, 0.0)
_DOWN = (0.0, 1.0, 0.0)
_UP = (0.0, -1.0, 0.0)
REST_DIRECTIONS: np.ndarray = np.array(
    [
        (0.0, 0.0, 0.0),  # 0 pelvis (root, no bone)
        _RIGHT,  # 1 right hip
        _DOWN,  # 2 right knee
        _DOWN,  # 3 right ankle
        _LEFT,  # 4 left hip
        _DOWN,  # 5 left knee
        _DOWN,  # 6 left ankle
        _UP,  # 7 spine
        _UP,  # 8 thorax
        _UP,  # 9 neck/nose
        _UP,  # 10 head
        _LEFT,  # 11 left shoulder (clavicle)
        _LEFT,  # 12 left elbow (T-pose arm)
        _LEFT,  # 13 left wrist
        _RIGHT,  # 14 right shoulder
        _RIGHT,  # 15 right elbow
        _RIGHT,  # 16 right wrist
    ],
    dtype=np.float64,
)
REST_DIRECTIONS.setflags(write=False)


def _tree_levels() -> tuple[list[int], list[int], tuple[tuple[int, list[int]], ...]]:
    """The skeleton by depth below the root, for the batched joint rotations: (joints in level order (root first),
    their parents, per level (number of joints, their parents' positions within the level above)).

    A joint's rotation needs only its parent's, so each level is one batched step (5 for the 16 bones)."""
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    order, levels, above = [0], [], [0]
    for d in range(1, max(depth) + 1):
        level = [j for j in range(NUM_JOINTS) if depth[j] == d]
        levels.append((len(level), [above.index(PARENTS[j]) for j in level]))
        order.extend(level)
        above = level
    return order, [PARENTS[j] for j in order[1:]], tuple(levels)


_LEVEL_ORDER, _LEVEL_PARENTS, _LEVELS = _tree_levels()
_FROM_LEVEL_ORDER = [_LEVEL_ORDER.index(j) for j in range(NUM_JOINTS)]  # joint j's position in level order

# --- Winter anthropometric model (fractions of body height, bone order: bone b ends at joint b + 1) -----------
_WINTER_BY_JOINT = {
    1: 0.0955,  # pelvis -> right hip (half the pelvis width 0.191)
    2: 0.245,  # right thigh
    3: 0.246,  # right calf
    4: 0.0955,  # pelvis -> left hip
    5: 0.245,  # left thigh
    6: 0.246,  # left calf
    7: 0.144,  # pelvis -> spine
    8: 0.144,  # spine -> thorax
    9: 0.052,  # thorax -> neck/nose
    10: 0.066,  # neck/nose -> head (half face)
    11: 0.129,  # left clavicle
    12: 0.186,  # left upper arm
    13: 0.146,  # left lower arm
    14: 0.129,  # right clavicle
    15: 0.186,  # right upper arm
    16: 0.146,  # right lower arm
}
WINTER_FRACTIONS: np.ndarray = np.array([_WINTER_BY_JOINT[child] for child, _ in BONES], dtype=np.float64)
WINTER_FRACTIONS.setflags(write=False)


# --- Input handling -------------------------------------------------------------------------------------------
def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _shape_text(tail: tuple[int | None, ...]) -> str:
    return "(..., " + ", ".join("J" if t is None else str(t) for t in tail) + ")"


def _tail_ok(shape: tuple[int, ...], tail: tuple[int | None, ...]) -> bool:
    if len(shape) < len(tail):
        return False
    return all(t is None or s == t for s, t in zip(shape[len(shape) - len(tail) :], tail, strict=True))


def _check_tensor(x: torch.Tensor, name: str, tail: tuple[int | None, ...]) -> torch.Tensor:
    """Torch twin of validation.check_points for any trailing shape (same wording); None = any size."""
    shape = tuple(x.shape)
    if not _tail_ok(shape, tail):
        raise ValueError(f"{name} must have shape {_shape_text(tail)}, got shape {shape}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {shape}): at least one pose is needed")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} (shape {shape}) contains {bad} NaN/inf values")
    return x


def _check_numpy(x: Any, name: str, tail: tuple[int | None, ...]) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not _tail_ok(tuple(arr.shape), tail):
        raise ValueError(f"{name} must have shape {_shape_text(tail)}, got shape {arr.shape}")
    if len(tail) >= 2 and tail[-1] is not None:
        # Point sets go through the shared checker so the empty/NaN wording is the project's one.
        return check_points(arr, name, joints=tail[-2], dims=tail[-1])
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): at least one pose is needed")
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} (shape {arr.shape}) contains {bad} NaN/inf values")
    return arr


def _restorer(x: Any) -> Callable[[torch.Tensor], Any]:
    """Function turning a torch result back into the caller's kind (numpy keeps its floating dtype)."""
    if _is_torch(x):
        return lambda t: t
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return lambda t: t.detach().cpu().numpy().astype(dtype, copy=False)


def _as_input(x: Any, name: str, tail: tuple[int | None, ...]) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """Validate `x` (shape (..., *tail), finite, non-empty) and return (float tensor, restore function)."""
    if _is_torch(x):
        t = _check_tensor(x, name, tail)
        return t, _restorer(t)
    arr = _check_numpy(x, name, tail)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64)), _restorer(arr)


def _const(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(np.array(a), dtype=like.dtype, device=like.device)


# --- Small torch helpers (all differentiable, finite gradients even for zero vectors) ---------------------------
def _norm(v: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    # sqrt of a clamped square sum: the plain norm has an infinite gradient at 0.
    return torch.sqrt((v * v).sum(-1, keepdim=keepdim).clamp_min(_TINY * _TINY))


def _normalize(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors; zero vectors stay zero, with a zero gradient (not 1/_TINY) so a collapsed pose cannot blow up."""
    n2 = (v * v).sum(-1, keepdim=True)
    ok = n2 > _TINY * _TINY
    n = torch.sqrt(torch.where(ok, n2, torch.ones_like(n2)))
    return torch.where(ok, v / n, torch.zeros_like(v))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


@functools.lru_cache(maxsize=32)
def _constants(dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Constant tensors of the hot paths, made once per dtype and device (a fresh torch.tensor per call costs more
    than the arithmetic on one pose). Made outside inference mode so that autograd may save them for backward."""
    with torch.inference_mode(False):
        rest = torch.tensor(REST_DIRECTIONS, dtype=dtype, device=device)
        rest_by_level = rest[_LEVEL_ORDER[1:]]
        return {
            "eye": torch.eye(3, dtype=dtype, device=device),
            "down": torch.tensor(_DOWN, dtype=dtype, device=device),
            "rest": rest,
            # per tree level: rest directions of its joints and a unit vector perpendicular to each
            "level_rest": rest_by_level,
            "level_rest_perpendicular": _perpendicular(rest_by_level),
            # [v]x entries picked from (0, v, -v): rows (0, -z, y), (z, 0, -x), (-y, x, 0)
            "skew_index": torch.tensor([0, 6, 2, 3, 0, 4, 5, 1, 0], device=device),
            # gathers of the batched joint rotations (index tensors: a Python list index costs a conversion per call)
            "level_children": torch.tensor(_LEVEL_ORDER[1:], device=device),
            "level_parents": torch.tensor(_LEVEL_PARENTS, device=device),
            "parent_slots": [torch.tensor(slots, device=device) for _, slots in _LEVELS],
            "from_level_order": torch.tensor(_FROM_LEVEL_ORDER, device=device),
        }


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix [v]x."""
    entries = torch.cat((torch.zeros_like(v[..., :1]), v, -v), dim=-1)
    index = _constants(v.dtype, v.device)["skew_index"]
    return entries.index_select(-1, index).reshape(*v.shape[:-1], 3, 3)


def _eye(like: torch.Tensor, batch: tuple[int, ...]) -> torch.Tensor:
    return _constants(like.dtype, like.device)["eye"].expand(*batch, 3, 3)


def _perpendicular(a: torch.Tensor) -> torch.Tensor:
    """A unit vector perpendicular to each (non-zero) a: a x (the basis axis least aligned with a)."""
    axis = torch.nn.functional.one_hot(a.abs().argmin(-1), 3).to(a.dtype)
    return _normalize(torch.linalg.cross(a, axis, dim=-1))


# --- Bones and the Winter model --------------------------------------------------------------------------------
def winter_bone_lengths(height: Any = 1.75) -> Any:
    """Bone lengths (..., 16) of Winter's model for body heights (float, array (...) or tensor (...))."""
    if _is_torch(height):
        h = height if height.is_floating_point() else height.to(torch.get_default_dtype())
        if h.numel() == 0 or not bool(torch.isfinite(h).all()) or not bool((h > 0).all()):
            raise ValueError(f"height must be positive and finite, got a tensor of shape {tuple(h.shape)}")
        return h[..., None] * _const(WINTER_FRACTIONS, h)
    h = np.asarray(height, dtype=np.float64)
    if h.size == 0 or not np.isfinite(h).all() or not (h > 0).all():
        raise ValueError(f"height must be positive and finite, got shape {h.shape}")
    return h[..., None] * WINTER_FRACTIONS


def winter_rest_pose(height: float = 1.75) -> np.ndarray:
    """(17, 3) rest T-pose of a person of `height` metres, root at the origin, camera axes."""
    lengths = winter_bone_lengths(float(height))
    joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        joints[j] = joints[PARENTS[j]] + REST_DIRECTIONS[j] * lengths[j - 1]
    return joints


_CHILD = [c for c, _ in BONES]
_PARENT = [p for _, p in BONES]


def bone_vectors(joints: ArrayT) -> ArrayT:
    """(..., 17, 3) joints -> (..., 16, 3) bone vectors child - parent, in bone order."""
    t, back = _as_input(joints, "joints", (NUM_JOINTS, 3))
    return back(t[..., _CHILD, :] - t[..., _PARENT, :])


def bone_lengths(joints: ArrayT) -> ArrayT:
    """(..., 17, 3) joints -> (..., 16) bone lengths."""
    t, back = _as_input(joints, "joints", (NUM_JOINTS, 3))
    return back(torch.linalg.vector_norm(t[..., _CHILD, :] - t[..., _PARENT, :], dim=-1))


# --- 6D <-> matrix ---------------------------------------------------------------------------------------------
def _rot6d_to_matrix_t(x: torch.Tensor, name: str = "rot6d") -> torch.Tensor:
    a1, a2 = x[..., 0:3], x[..., 3:6]
    n1 = torch.linalg.vector_norm(a1, dim=-1)
    n2 = torch.linalg.vector_norm(a2, dim=-1)
    scale = torch.maximum(n1, n2)
    sine_area = torch.linalg.vector_norm(torch.linalg.cross(a1, a2, dim=-1), dim=-1)
    with torch.no_grad():
        bad = (n1 <= ROT6D_TOLERANCE * scale) | (n2 <= ROT6D_TOLERANCE * scale)
        bad |= sine_area <= ROT6D_TOLERANCE * n1 * n2
        n_bad = int(bad.sum())
    if n_bad:
        raise ValueError(
            f"{name} (shape {tuple(x.shape)}) has {n_bad} degenerate 6D rotation(s): "
            "a column is ~zero or the two columns are ~parallel"
        )
    b1 = a1 / n1[..., None]
    b2 = a2 - _dot(b1, a2)[..., None] * b1
    b2 = b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)  # columns


def rot6d_to_matrix(x: ArrayT) -> ArrayT:
    """(..., 6) first two matrix columns -> (..., 3, 3) rotation by Gram-Schmidt.

    Raises ValueError (with the number of bad entries) when a column is ~0 or the columns are ~parallel,
    judged relative to the larger column norm (ROT6D_TOLERANCE).
    """
    t, back = _as_input(x, "rot6d", (6,))
    return back(_rot6d_to_matrix_t(t))


def matrix_to_rot6d(R: ArrayT) -> ArrayT:
    """(..., 3, 3) -> (..., 6) = [r00, r10, r20, r01, r11, r21] (the first two columns)."""
    t, back = _as_input(R, "rotations", (3, 3))
    return back(torch.cat((t[..., :, 0], t[..., :, 1]), dim=-1))


# --- Quaternions -----------------------------------------------------------------------------------------------
def _canonical_quaternion(q: torch.Tensor) -> torch.Tensor:
    return torch.where(q[..., 3:4] < 0, -q, q)


def _matrix_to_quaternion_t(R: torch.Tensor) -> torch.Tensor:
    r00, r11, r22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    r01, r02, r10, r12, r20, r21 = R[..., 0, 1], R[..., 0, 2], R[..., 1, 0], R[..., 1, 2], R[..., 2, 0], R[..., 2, 1]
    # Shepperd: 4 q_k^2 for k = w, x, y, z; build the quaternion from the largest one (best conditioned).
    four_sq = torch.stack(
        (1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22), dim=-1
    )
    # Clamped so that the branches not chosen stay finite (their gradients are multiplied by 0, never by inf).
    four_q = 2.0 * torch.sqrt(four_sq.clamp_min(1e-12))  # 4 q_k
    qw, qx, qy, qz = four_q.unbind(-1)
    cands = torch.stack(
        (
            torch.stack(((r21 - r12) / qw, (r02 - r20) / qw, (r10 - r01) / qw, 0.25 * qw), -1),
            torch.stack((0.25 * qx, (r01 + r10) / qx, (r02 + r20) / qx, (r21 - r12) / qx), -1),
            torch.stack(((r01 + r10) / qy, 0.25 * qy, (r12 + r21) / qy, (r02 - r20) / qy), -1),
            torch.stack(((r02 + r20) / qz, (r12 + r21) / qz, 0.25 * qz, (r10 - r01) / qz), -1),
        ),
        dim=-2,
    )  # (..., 4 candidates, 4 components)
    best = four_sq.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return _canonical_quaternion(q / _norm(q, keepdim=True))


def matrix_to_quaternion(R: ArrayT) -> ArrayT:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w) with w >= 0 (Shepperd's method)."""
    if not _is_torch(R):
        arr, dtype = _numpy_input(R, "rotations", (3, 3))
        return _matrix_to_quaternion_np(arr).astype(dtype, copy=False)
    t, back = _as_input(R, "rotations", (3, 3))
    return back(_matrix_to_quaternion_t(t))


def _unit_quaternion_t(q: torch.Tensor, name: str) -> torch.Tensor:
    n = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    with torch.no_grad():
        n_zero = int((n <= _TINY).sum())
    if n_zero:
        raise ValueError(f"{name} (shape {tuple(q.shape)}) has {n_zero} zero quaternion(s)")
    return q / n


def _quaternion_to_matrix_t(q: torch.Tensor) -> torch.Tensor:
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return torch.stack(
        (
            torch.stack((1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)), -1),
            torch.stack((2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)), -1),
            torch.stack((2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)), -1),
        ),
        dim=-2,
    )


def quaternion_to_matrix(q: ArrayT) -> ArrayT:
    """(..., 4) quaternions (x, y, z, w), normalised first -> (..., 3, 3). A zero quaternion is a ValueError."""
    t, back = _as_input(q, "quaternions", (4,))
    return back(_quaternion_to_matrix_t(_unit_quaternion_t(t, "quaternions")))


# --- Axis-angle (rotation vectors) -----------------------------------------------------------------------------
_SMALL_ANGLE = 1e-3  # below this the Taylor series are exact to double precision


def _axis_angle_to_matrix_t(v: torch.Tensor) -> torch.Tensor:
    theta2 = (v * v).sum(-1)
    small = theta2 < _SMALL_ANGLE**2
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)  # sin t / t
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / theta2_safe)
    K = _skew(v)
    return _eye(v, v.shape[:-1]) + a[..., None, None] * K + b[..., None, None] * (K @ K)


def axis_angle_to_matrix(v: ArrayT) -> ArrayT:
    """(..., 3) rotation vectors (axis * angle, radians) -> (..., 3, 3) by Rodrigues' formula (stable near 0)."""
    t, back = _as_input(v, "rotation vectors", (3,))
    return back(_axis_angle_to_matrix_t(t))


def _quaternion_to_axis_angle_t(q: torch.Tensor) -> torch.Tensor:
    """Unit, w >= 0 quaternions -> rotation vectors with angle in [0, pi]."""
    xyz, w = q[..., :3], q[..., 3]
    s2 = (xyz * xyz).sum(-1)
    small = s2 < 1e-8  # |xyz| < 1e-4: series 2/w - 2 s^2 / (3 w^3) is exact to double precision
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    w_safe = torch.where(small, w, torch.ones_like(w))  # w ~ 1 when small, never 0 there
    factor = torch.where(small, 2 / w_safe - 2 * s2 / (3 * w_safe**3), 2 * torch.atan2(s, w) / s)
    return xyz * factor[..., None]


def matrix_to_axis_angle(R: ArrayT) -> ArrayT:
    """(..., 3, 3) -> (..., 3) rotation vectors, angle in [0, pi] (through Shepperd quaternions: stable near 0, pi)."""
    t, back = _as_input(R, "rotations", (3, 3))
    return back(_quaternion_to_axis_angle_t(_matrix_to_quaternion_t(t)))


def quaternion_to_axis_angle(q: ArrayT) -> ArrayT:
    """(..., 4) quaternions (x, y, z, w), normalised first -> (..., 3) rotation vectors, angle in [0, pi]."""
    t, back = _as_input(q, "quaternions", (4,))
    return back(_quaternion_to_axis_angle_t(_canonical_quaternion(_unit_quaternion_t(t, "quaternions"))))


def _axis_angle_to_quaternion_t(v: torch.Tensor) -> torch.Tensor:
    theta2 = (v * v).sum(-1)
    small = theta2 < _SMALL_ANGLE**2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    k = torch.where(small, 0.5 - theta2 / 48 + theta2 * theta2 / 3840, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1 - theta2 / 8 + theta2 * theta2 / 384, torch.cos(theta / 2))
    return _canonical_quaternion(torch.cat((v * k[..., None], w[..., None]), dim=-1))


def axis_angle_to_quaternion(v: ArrayT) -> ArrayT:
    """(..., 3) rotation vectors -> (..., 4) unit quaternions (x, y, z, w), w >= 0."""
    t, back = _as_input(v, "rotation vectors", (3,))
    return back(_axis_angle_to_quaternion_t(t))


# --- Minimal rotation between directions -----------------------------------------------------------------------
def _minimal_rotation_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = torch.broadcast_tensors(a, b)
    a = _normalize(a)
    return _minimal_rotation_of_unit_t(a, _perpendicular(a), _normalize(b))


def _minimal_rotation_of_unit_t(a: torch.Tensor, a_perpendicular: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal rotation a -> b for unit (or zero) a and b of one shape; a_perpendicular = _perpendicular(a)
    (precomputed by callers whose a are constants; it broadcasts)."""
    c = _dot(a, b)
    v = torch.linalg.cross(a, b, dim=-1)
    K = _skew(v)
    K2 = K @ K
    eye = _eye(a, a.shape[:-1])
    # c >= 0: the closed form I + K + K^2 / (1 + c) is well conditioned (1 + c >= 1).
    direct = eye + K + K2 / (1 + c).clamp_min(0.5)[..., None, None]
    # c < 0: half-turn about u (perpendicular to a, along a x b) takes a to -a, then the well-conditioned
    # minimal rotation -a -> b (axis -v, 1 - c >= 1). Their product is the minimal rotation a -> b, exact for b = -a.
    vn2 = (v * v).sum(-1, keepdim=True)
    has_axis = vn2 > 1e-12
    u = torch.where(has_axis, v / torch.sqrt(vn2.clamp_min(1e-12)), a_perpendicular)
    half_turn = 2 * u[..., :, None] * u[..., None, :] - eye
    back_turn = eye - K + K2 / (1 - c).clamp_min(0.5)[..., None, None]
    flipped = back_turn @ half_turn
    return torch.where((c >= 0)[..., None, None], direct, flipped)


def minimal_rotation(a: ArrayT, b: ArrayT) -> ArrayT:
    """(..., 3), (..., 3) directions -> (..., 3, 3) smallest rotation taking a to b (lengths ignored).

    b = -a gives a half-turn about an axis perpendicular to a; a zero vector gives the identity.
    """
    ta, back = _as_input(a, "a", (3,))
    tb, _ = _as_input(b, "b", (3,))
    if ta.dtype != tb.dtype:
        tb = tb.to(ta.dtype)
    _broadcast(("a", ta, 1), ("b", tb, 1))
    return back(_minimal_rotation_t(ta, tb))


# --- Joint rotations and forward kinematics --------------------------------------------------------------------
def _root_frame_t(joints: torch.Tensor) -> torch.Tensor:
    """Body frame of docs/design.md: x = towards the left hip (orthogonalised), y = spine->pelvis, z = x cross y.

    The sideways direction is taken from right hip to left hip: the same as pelvis->left hip when the pelvis is the
    mid-hip (H3.6M, COCO-derived joints), and mirror symmetric and robust when it is not.
    """
    pelvis, left_hip, right_hip, spine = joints[..., 0, :], joints[..., 4, :], joints[..., 1, :], joints[..., 7, :]
    down = pelvis - spine
    y = torch.where(
        (down * down).sum(-1, keepdim=True) > _TINY**2,
        _normalize(down),
        _constants(down.dtype, down.device)["down"].expand_as(down),
    )
    side = left_hip - right_hip
    x = side - _dot(side, y)[..., None] * y
    # Fallback keeps a valid rotation for degenerate input (e.g. an untrained network's collapsed pose).
    x = torch.where((x * x).sum(-1, keepdim=True) > _TINY**2, _normalize(x), _perpendicular(y))
    z = torch.linalg.cross(x, y, dim=-1)
    return torch.stack((x, y, z), dim=-1)


def _joint_rotations_t(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(global (..., 17, 3, 3), local (..., 17, 3, 3)) from positions, one batched step per tree level."""
    const = _constants(joints.dtype, joints.device)
    # every bone at once, in level order; the levels below are views of these
    bones = joints.index_select(-2, const["level_children"]) - joints.index_select(-2, const["level_parents"])
    rest, rest_perpendicular = const["level_rest"], const["level_rest_perpendicular"]
    root = _root_frame_t(joints)[..., None, :, :]
    glob, local = [root], [root]
    start = 0
    for (size, _), parent_slots in zip(_LEVELS, const["parent_slots"], strict=True):
        # a joint's parent is always on the level above: its rotation is already known
        parent_rot = glob[-1].index_select(-3, parent_slots) if glob[-1].shape[-3] > 1 else glob[-1]
        bone = bones[..., start : start + size, :]
        # The bone seen from its parent's frame; the swing from the rest direction to it is the local rotation.
        in_parent = (parent_rot.transpose(-1, -2) @ bone[..., None])[..., 0]
        a = rest[start : start + size].expand_as(in_parent)
        swing = _minimal_rotation_of_unit_t(a, rest_perpendicular[start : start + size], _normalize(in_parent))
        local.append(swing)
        glob.append(parent_rot @ swing)
        start += size
    back = const["from_level_order"]
    return torch.cat(glob, dim=-3).index_select(-3, back), torch.cat(local, dim=-3).index_select(-3, back)


# --- numpy twins of the per-frame hot paths --------------------------------------------------------------------
# The node derives rotations and quaternions of one to a few people per frame from numpy joints; there the torch
# path's fixed cost per operation (about 5-10 us, some 150 operations for joint_rotations) is most of the time.
# These twins do the same arithmetic in float64 numpy (the torch path's float64 result within 1e-12, tested) and
# are what the public functions run for numpy input.
_NP_LEVEL_CHILDREN = np.array(_LEVEL_ORDER[1:])
_NP_LEVEL_PARENTS = np.array(_LEVEL_PARENTS)
_NP_FROM_LEVEL_ORDER = np.array(_FROM_LEVEL_ORDER)
_NP_LEVEL_SLICES = []
_start = 0
for _size, _slots in _LEVELS:
    _NP_LEVEL_SLICES.append((slice(_start, _start + _size), np.array(_slots)))
    _start += _size
del _start, _size, _slots
_NP_EYE = np.eye(3)
_NP_DIAGONAL = np.arange(3)


def _normalize_np(v: np.ndarray) -> np.ndarray:
    n2 = (v * v).sum(-1, keepdims=True)
    ok = n2 > _TINY * _TINY
    return np.where(ok, v / np.sqrt(np.where(ok, n2, 1.0)), 0.0)


_NP_CYCLE1, _NP_CYCLE2 = np.array([1, 2, 0]), np.array([2, 0, 1])
# [v]x = v[_NP_SKEW_INDEX] * _NP_SKEW_SIGN, row-major: rows (0, -z, y), (z, 0, -x), (-y, x, 0)
_NP_SKEW_INDEX = np.array([0, 2, 1, 2, 0, 0, 1, 0, 0])
_NP_SKEW_SIGN = np.array([0.0, -1.0, 1.0, 1.0, 0.0, -1.0, -1.0, 1.0, 0.0])


def _cross_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs about 15 us a call on small arrays; this a third of it
    return a[..., _NP_CYCLE1] * b[..., _NP_CYCLE2] - a[..., _NP_CYCLE2] * b[..., _NP_CYCLE1]


def _skew_np(v: np.ndarray) -> np.ndarray:
    return (v[..., _NP_SKEW_INDEX] * _NP_SKEW_SIGN).reshape(v.shape[:-1] + (3, 3))


def _perpendicular_np(a: np.ndarray) -> np.ndarray:
    axis = np.eye(3)[np.abs(a).argmin(-1)]
    return _normalize_np(_cross_np(a, axis))


def _minimal_rotation_terms_np(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constants of minimal rotations from fixed unit directions a (n, 3): (a, its perpendiculars, (n, 3, 13)
    matrices M with b^T M = ((a x b)^T, a.b, [a x b]x row-major): everything linear in b in one matmul)."""
    a = np.asarray(a, np.float64)
    skew = np.zeros(a.shape[:-1] + (3, 3))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -a[..., 2], a[..., 1], -a[..., 0]
    skew[..., 1, 0], skew[..., 2, 0], skew[..., 2, 1] = a[..., 2], -a[..., 1], a[..., 0]
    cross = np.swapaxes(skew, -1, -2)  # (a x b)_i = sum_j skew_ij b_j: column i of M is row i of skew
    # [v]x entries v[_NP_SKEW_INDEX] * _NP_SKEW_SIGN, each a column of `cross` (signed)
    skew_of_cross = cross[..., _NP_SKEW_INDEX] * _NP_SKEW_SIGN
    return a, _perpendicular_np(a), np.concatenate((cross, a[..., :, None], skew_of_cross), axis=-1)


def _minimal_rotation_of_unit_np(terms: tuple[np.ndarray, np.ndarray, np.ndarray], b: np.ndarray,
                                 b_squared: np.ndarray) -> np.ndarray:
    """numpy twin of _minimal_rotation_of_unit_t: (..., n, 3, 3) minimal rotations from the unit directions of
    `terms` (_minimal_rotation_terms_np) onto unit-or-zero b (..., n, 3), b_squared = b.b (1 or 0).

    Rodrigues about u = (a x b) / |a x b|: R = I + sin [u]x + (1 - cos) (u u^T - I), sin = |a x b|, cos = a.b:
    one formula, well conditioned at every angle, where the torch twin needs two branches (the same rotation).
    With v = a x b it is (1 - w) I + [v]x + (w / |v|^2) v v^T, w = b.b - cos (w = 0 for a zero b: the identity).
    """
    _, a_perpendicular, linear = terms
    terms_of_b = (b[..., None, :] @ linear)[..., 0, :]
    v, c = terms_of_b[..., :3], terms_of_b[..., 3]
    vn2 = (v * v).sum(-1)
    w = b_squared - c
    if vn2.min() > 1e-12:  # every b well away from +-a (nearly always): the axis is v itself
        out = terms_of_b[..., 4:].reshape(v.shape[:-1] + (3, 3)) + (w / vn2)[..., None, None] * (
            v[..., :, None] * v[..., None, :])
        out[..., _NP_DIAGONAL, _NP_DIAGONAL] += (1.0 - w)[..., None]
        return out
    has_axis = vn2 > 1e-30
    vn = np.sqrt(vn2)
    u = np.where(has_axis[..., None], v / np.where(has_axis, vn, 1.0)[..., None], a_perpendicular)
    outer = u[..., :, None] * u[..., None, :]
    out = _NP_EYE + vn[..., None, None] * _skew_np(u) + w[..., None, None] * (outer - _NP_EYE)
    folded = (c < 0) & (vn2 <= 1e-12)
    if folded.any():  # b (almost) opposite a: the torch twin's half-turn about a's fixed perpendicular, then -a -> b
        vb, cb = v[folded], c[folded]
        K = _skew_np(vb)
        K2 = vb[..., :, None] * vb[..., None, :] - (vb * vb).sum(-1)[..., None, None] * _NP_EYE
        p = np.broadcast_to(a_perpendicular, b.shape)[folded]
        half_turn = 2.0 * p[..., :, None] * p[..., None, :] - _NP_EYE
        out[folded] = (_NP_EYE - K + K2 / np.maximum(1.0 - cb, 0.5)[..., None, None]) @ half_turn
    return out


def _root_frame_np(joints: np.ndarray) -> np.ndarray:
    down = joints[..., 0, :] - joints[..., 7, :]  # spine -> pelvis
    side = joints[..., 4, :] - joints[..., 1, :]  # right hip -> left hip
    n2 = (down * down).sum(-1, keepdims=True)
    y = down / np.sqrt(n2) if n2.min() > _TINY**2 else np.where(n2 > _TINY**2, _normalize_np(down), np.array(_DOWN))
    x = side - (side * y).sum(-1, keepdims=True) * y
    n2 = (x * x).sum(-1, keepdims=True)
    x = x / np.sqrt(n2) if n2.min() > _TINY**2 else np.where(n2 > _TINY**2, _normalize_np(x), _perpendicular_np(y))
    return np.stack((x, y, _cross_np(x, y)), axis=-1)


_NP_LEVEL_TERMS = [_minimal_rotation_terms_np(REST_DIRECTIONS[_LEVEL_ORDER[1:]][level])
                   for level, _ in _NP_LEVEL_SLICES]


def _joint_rotations_np(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of _joint_rotations_t for float64 (..., 17, 3): (global, local) (..., 17, 3, 3)."""
    bones = _normalize_np(joints[..., _NP_LEVEL_CHILDREN, :] - joints[..., _NP_LEVEL_PARENTS, :])
    squared = (bones * bones).sum(-1).round()  # 1 for a bone, 0 for a zero-length one
    root = _root_frame_np(joints)[..., None, :, :]
    glob, local = [root], [root]
    for (level, parent_slots), terms in zip(_NP_LEVEL_SLICES, _NP_LEVEL_TERMS, strict=True):
        parent_rot = glob[-1][..., parent_slots, :, :] if glob[-1].shape[-3] > 1 else glob[-1]
        # the unit bone seen from its parent's frame, R^T b, as the row vector b^T R
        in_parent = (bones[..., level, None, :] @ parent_rot)[..., 0, :]
        swing = _minimal_rotation_of_unit_np(terms, in_parent, squared[..., level])
        local.append(swing)
        glob.append(parent_rot @ swing)
    return (np.concatenate(glob, axis=-3)[..., _NP_FROM_LEVEL_ORDER, :, :],
            np.concatenate(local, axis=-3)[..., _NP_FROM_LEVEL_ORDER, :, :])


def _quaternion_numerators() -> tuple[np.ndarray, np.ndarray]:
    """Shepperd's four candidates as one linear map of the flattened matrix: (9, 16) and (16,) such that
    R.flat @ map + offset = per candidate k (w, x, y, z) the numerators of (x, y, z, w) over 4 |q_k|, whose
    k-th one is 4 q_k^2 itself."""
    terms = {  # candidate -> components (x, y, z, w) as {(i, j): sign} of r_ij, "1" the constant
        "w": ({(2, 1): 1, (1, 2): -1}, {(0, 2): 1, (2, 0): -1}, {(1, 0): 1, (0, 1): -1},
              {"1": 1, (0, 0): 1, (1, 1): 1, (2, 2): 1}),
        "x": ({"1": 1, (0, 0): 1, (1, 1): -1, (2, 2): -1}, {(0, 1): 1, (1, 0): 1}, {(0, 2): 1, (2, 0): 1},
              {(2, 1): 1, (1, 2): -1}),
        "y": ({(0, 1): 1, (1, 0): 1}, {"1": 1, (0, 0): -1, (1, 1): 1, (2, 2): -1}, {(1, 2): 1, (2, 1): 1},
              {(0, 2): 1, (2, 0): -1}),
        "z": ({(0, 2): 1, (2, 0): 1}, {(1, 2): 1, (2, 1): 1}, {"1": 1, (0, 0): -1, (1, 1): -1, (2, 2): 1},
              {(1, 0): 1, (0, 1): -1}),
    }
    linear, offset = np.zeros((9, 16)), np.zeros(16)
    for k, candidate in enumerate(terms.values()):
        for i, component in enumerate(candidate):
            for key, sign in component.items():
                if key == "1":
                    offset[4 * k + i] = sign
                else:
                    linear[3 * key[0] + key[1], 4 * k + i] = sign
    return linear, offset


_NP_QUATERNION_LINEAR, _NP_QUATERNION_OFFSET = _quaternion_numerators()
_NP_FOUR_SQUARES = np.array([3, 4, 9, 14])  # 4 q_k^2 among the 16 numerators (candidate k's own component)


def _matrix_to_quaternion_np(R: np.ndarray) -> np.ndarray:
    """numpy twin of _matrix_to_quaternion_t (float64): Shepperd's method, only the chosen candidate built."""
    numerators = R.reshape(R.shape[:-2] + (9,)) @ _NP_QUATERNION_LINEAR + _NP_QUATERNION_OFFSET
    four_sq = numerators[..., _NP_FOUR_SQUARES]
    best = four_sq.argmax(-1)[..., None]
    chosen = np.take_along_axis(numerators.reshape(numerators.shape[:-1] + (4, 4)), best[..., None], axis=-2)
    # the largest 4 q_k^2 is >= 1 (the four sum to 4): no clamp needed for the chosen one
    q = chosen[..., 0, :] / (2.0 * np.sqrt(np.take_along_axis(four_sq, best, axis=-1)))
    q = q / np.sqrt(np.maximum((q * q).sum(-1, keepdims=True), _TINY * _TINY))
    return np.where(q[..., 3:4] < 0, -q, q)


def rotation_quaternions_np(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) float64 rotation matrices (orthonormal: no check, no renormalisation) -> (..., 4) quaternions
    (x, y, z, w), w >= 0: _matrix_to_quaternion_np's Shepperd candidate in fewer numpy calls (plain fancy indexing
    for take_along_axis), for internal callers whose matrices are products of rotations; within 1e-15 of it."""
    flat = R.reshape(-1, 9)
    numerators = flat @ _NP_QUATERNION_LINEAR
    numerators += _NP_QUATERNION_OFFSET
    four_sq = numerators[:, _NP_FOUR_SQUARES]
    best = four_sq.argmax(-1)
    rows = np.arange(len(flat))
    q = numerators.reshape(-1, 4, 4)[rows, best]
    scale = 0.5 / np.sqrt(four_sq[rows, best])
    q *= np.where(q[:, 3] < 0, -scale, scale)[:, None]
    return q.reshape(R.shape[:-2] + (4,))


def _numpy_input(x: Any, name: str, tail: tuple[int | None, ...]) -> tuple[np.ndarray, np.dtype]:
    """Validated float64 numpy array and the dtype to return (the input's floating dtype, float64 for integers)."""
    arr = _check_numpy(x, name, tail)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    return np.asarray(arr, dtype=np.float64), dtype


def _broadcast(*items: tuple[str, torch.Tensor, int]) -> tuple[int, ...]:
    """Common batch shape of (name, tensor, number of trailing non-batch dims) items, or a ValueError.

    (np.broadcast_shapes, not torch's: torch.broadcast_shapes imports sympy on first use, about a second.)
    """
    shapes = [tuple(t.shape[: t.ndim - k]) for _, t, k in items]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = " and ".join(f"{name} {tuple(t.shape)}" for name, t, _ in items)
        raise ValueError(f"batch dimensions must broadcast, got shapes {desc}") from None


def _check_frame(frame: str) -> None:
    if frame not in ("global", "local"):
        raise ValueError(f"frame must be 'global' or 'local', got {frame!r}")


def joint_rotations(joints: ArrayT, frame: str = "global") -> ArrayT:
    """(..., 17, 3) joint positions -> (..., 17, 3, 3) joint rotations.

    Root (0): the body frame from the hips and the spine (identity in the rest pose): x = right hip -> left hip
    orthogonalised to y = spine -> pelvis, z = x cross y. Joint j >= 1: R_j maps
    REST_DIRECTIONS[j] onto the observed bone direction. Twist is not observable from positions; it is chosen
    minimal relative to the parent (R_j = R_parent @ minimal_rotation(rest_j, R_parent^T bone_j)), so the body's
    heading propagates down the limbs and local rotations are anatomically meaningful (see JOINT_ANGLE_LIMITS).
    frame="local" returns L_j = R_parent^T R_j (L_0 = R_0). A zero-length bone gets L_j = identity.
    """
    _check_frame(frame)
    if not _is_torch(joints):
        arr, dtype = _numpy_input(joints, "joints", (NUM_JOINTS, 3))
        glob_np, local_np = _joint_rotations_np(arr)
        return (glob_np if frame == "global" else local_np).astype(dtype, copy=False)
    t, back = _as_input(joints, "joints", (NUM_JOINTS, 3))
    glob, local = _joint_rotations_t(t)
    return back(glob if frame == "global" else local)


def forward_kinematics(rotations: ArrayT, lengths: Any, root: Any = None, frame: str = "global") -> ArrayT:
    """(..., 17, 3, 3) rotations and (..., 16) bone lengths -> (..., 17, 3) joints.

    p_0 = root (zeros by default, (..., 3)), p_j = p_parent + R_j @ (REST_DIRECTIONS[j] * length_j);
    with frame="local", R_j = R_parent @ L_j (R_0 = L_0). Batch dimensions broadcast.
    """
    _check_frame(frame)
    rot, back = _as_input(rotations, "rotations", (NUM_JOINTS, 3, 3))
    if _is_torch(lengths):
        lens = _check_tensor(lengths, "lengths", (NUM_BONES,)).to(rot.dtype)
    else:
        lens = torch.from_numpy(np.asarray(_check_numpy(lengths, "lengths", (NUM_BONES,)), dtype=np.float64))
        lens = lens.to(dtype=rot.dtype, device=rot.device)
    batch = _broadcast(("rotations", rot, 3), ("lengths", lens, 1))
    if root is not None:
        if _is_torch(root):
            r0 = _check_tensor(root, "root", (3,)).to(rot.dtype)
        else:
            r0 = torch.from_numpy(np.asarray(_check_numpy(root, "root", (3,)), dtype=np.float64))
            r0 = r0.to(dtype=rot.dtype, device=rot.device)
        batch = _broadcast(("rotations", rot, 3), ("lengths", lens, 1), ("root", r0, 1))
    else:
        r0 = torch.zeros(3, dtype=rot.dtype, device=rot.device)
    rot = rot.expand(*batch, NUM_JOINTS, 3, 3)
    lens = lens.expand(*batch, NUM_BONES)
    rest = _const(REST_DIRECTIONS, rot)

    glob: list[torch.Tensor] = [rot[..., 0, :, :]]
    pos: list[torch.Tensor] = [r0.expand(*batch, 3)]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        R = glob[p] @ rot[..., j, :, :] if frame == "local" else rot[..., j, :, :]
        glob.append(R)
        pos.append(pos[p] + (R @ rest[j])[..., :] * lens[..., j - 1, None])
    return back(torch.stack(pos, dim=-2))


# --- Euler ZYX -------------------------------------------------------------------------------------------------
def _euler_zyx_from_matrix_t(R: torch.Tensor) -> torch.Tensor:
    r00, r10, r20, r21, r22 = R[..., 0, 0], R[..., 1, 0], R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    cos_y = torch.sqrt((r00 * r00 + r10 * r10).clamp_min(_TINY * _TINY))
    lock = cos_y < 1e-9  # y angle at +-pi/2: z and x rotate about the same axis; put it all on z
    one, zero = torch.ones_like(r00), torch.zeros_like(r00)
    ang_y = torch.atan2(-r20, cos_y)
    # Branch inputs are made safe before atan2 so that the unused branch never produces NaN gradients.
    ang_z = torch.where(
        lock,
        torch.atan2(torch.where(lock, -R[..., 0, 1], zero), torch.where(lock, R[..., 1, 1], one)),
        torch.atan2(torch.where(lock, zero, r10), torch.where(lock, one, r00)),
    )
    ang_x = torch.where(lock, zero, torch.atan2(torch.where(lock, zero, r21), torch.where(lock, one, r22)))
    return torch.stack((ang_z, ang_y, ang_x), dim=-1)


def euler_zyx_from_matrix(R: ArrayT) -> ArrayT:
    """(..., 3, 3) -> (..., 3) angles (z, y, x) with R = Rz(z) Ry(y) Rx(x); y in [-pi/2, pi/2]."""
    t, back = _as_input(R, "rotations", (3, 3))
    return back(_euler_zyx_from_matrix_t(t))


def _matrix_from_euler_zyx_t(a: torch.Tensor) -> torch.Tensor:
    cz, sz = torch.cos(a[..., 0]), torch.sin(a[..., 0])
    cy, sy = torch.cos(a[..., 1]), torch.sin(a[..., 1])
    cx, sx = torch.cos(a[..., 2]), torch.sin(a[..., 2])
    return torch.stack(
        (
            torch.stack((cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx), -1),
            torch.stack((sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx), -1),
            torch.stack((-sy, cy * sx, cy * cx), -1),
        ),
        dim=-2,
    )


def matrix_from_euler_zyx(angles: ArrayT) -> ArrayT:
    """(..., 3) angles (z, y, x) in radians -> (..., 3, 3) = Rz(z) @ Ry(y) @ Rx(x)."""
    t, back = _as_input(angles, "euler angles", (3,))
    return back(_matrix_from_euler_zyx_t(t))


# --- Joint-angle limits and kinematic-constraint weights -------------------------------------------------------
# Each bone's local rotation L (relative to its parent, identity in the rest pose) is read in a per-bone JOINT
# FRAME C (columns = joint axes in rest camera axes): y_J = the bone's rest direction, z_J = the direction the bone
# moves in positive "flexion", x_J = y_J x z_J. The Euler ZYX angles (z, y, x) of C^T L C then mean, for every bone:
#   z: sideways swing (moves the bone from y_J towards -x_J), y: twist-like middle angle, x: flexion (y_J -> z_J).
# Twist about a bone is not observable from joint positions (joint_rotations returns swing-only local rotations),
# so the middle (y) angle is never limited: [-pi/2, pi/2] is its whole range.
# Camera axes in the rest pose: +x the person's left, +y down, +z the person's back (they face -z).
_HALF_PI = math.pi / 2
_OPEN = (-_HALF_PI, _HALF_PI)


def _frame(y_axis: tuple[float, ...], z_axis: tuple[float, ...]) -> np.ndarray:
    y, z = np.array(y_axis, dtype=np.float64), np.array(z_axis, dtype=np.float64)
    return np.stack((np.cross(y, z), y, z), axis=1)


_FRONT, _BACK = (0.0, 0.0, -1.0), (0.0, 0.0, 1.0)
# Left-side and centre bones (child joint -> (joint frame, (z range, y range, x range))). Radians.
_LEFT_CENTRE_LIMITS: dict[int, tuple[np.ndarray, tuple[tuple[float, float], ...]]] = {
    # pelvis -> left hip: rigid with the pelvis; +-0.35 rad (20 deg) tolerates marker placement (the body frame's
    # x axis is this bone, so positions give ~identity). z: up/down tilt, x: forward/back tilt.
    4: (_frame(_LEFT, _FRONT), ((-0.35, 0.35), _OPEN, (-0.35, 0.35))),
    # hip joint (thigh): x = hip flexion (leg forward) -0.6 (35 deg extension) .. 2.4 (137 deg, deep squat/sitting);
    # z = abduction (towards the person's left) -0.6 (adduction across the midline) .. 1.2 (69 deg abduction).
    5: (_frame(_DOWN, _FRONT), ((-0.6, 1.2), _OPEN, (-0.6, 2.4))),
    # knee (calf): x = knee flexion (foot backwards) 0 .. 2.79 rad (thesis); z = varus/valgus and the sideways
    # component that hip rotation puts into the swing-only thigh frame, +-0.6.
    6: (_frame(_DOWN, _BACK), ((-0.6, 0.6), _OPEN, (0.0, 2.79))),
    # pelvis -> spine: x = lumbar flexion (forwards) -0.5 .. 1.2, z = lateral bend +-0.6 (positions give identity:
    # the body frame's y axis is this bone).
    7: (_frame(_UP, _FRONT), ((-0.6, 0.6), _OPEN, (-0.5, 1.2))),
    # spine -> thorax: x = thoracic flexion -0.6 .. 1.0, z = lateral bend +-0.6.
    8: (_frame(_UP, _FRONT), ((-0.6, 0.6), _OPEN, (-0.6, 1.0))),
    # thorax -> neck/nose: the H3.6M nose sits in front of the thorax, so x (flexion) is usually positive:
    # -0.8 .. 1.6 (looking down); z = lateral neck bend +-0.8.
    9: (_frame(_UP, _FRONT), ((-0.8, 0.8), _OPEN, (-0.8, 1.6))),
    # neck/nose -> head top: the head top is above and behind the nose (x negative at rest of a real person):
    # x -1.5 .. 1.0, z +-0.8.
    10: (_frame(_UP, _FRONT), ((-0.8, 0.8), _OPEN, (-1.5, 1.0))),
    # thorax -> left shoulder (clavicle): x = elevation (up) -0.6 .. 0.9; z = retraction (+, backwards) /
    # protraction (-), +-1.0: wide because a torso twist against the pelvis shows up here (the thorax frame is
    # swing-only from the pelvis).
    11: (_frame(_LEFT, _UP), ((-1.0, 1.0), _OPEN, (-0.6, 0.9))),
    # shoulder (upper arm): x = elevation above the T-pose (+) / lowering to the side (-pi/2 = arm hanging),
    # -1.9 .. 1.9; z = horizontal extension (+, backwards) 1.6 .. horizontal flexion (-, forwards/across the chest)
    # -2.4. Arm straight forward is z = -pi/2.
    12: (_frame(_LEFT, _UP), ((-2.4, 1.6), _OPEN, (-1.9, 1.9))),
    # elbow (forearm): x = flexion towards the front, 0 .. 2.62 rad (thesis); the flexion plane turns with the
    # (unobservable) humeral rotation, so z (flexion up/down in the T-pose plane) gets the same magnitude +-2.62.
    13: (_frame(_LEFT, _FRONT), ((-2.62, 2.62), _OPEN, (0.0, 2.62))),
}
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _build_limits() -> tuple[np.ndarray, np.ndarray]:
    frames = np.zeros((NUM_BONES, 3, 3))
    limits = np.zeros((NUM_BONES, 3, 2))
    for child, (frame, ranges) in _LEFT_CENTRE_LIMITS.items():
        frames[child - 1] = frame
        limits[child - 1] = np.array(ranges)
        mirror = FLIP_PERMUTATION[child]
        if mirror != child:
            # Right side = mirror image (x -> -x): C_r = M C_l M, and z and y angles change sign.
            frames[mirror - 1] = _MIRROR @ frame @ _MIRROR
            limits[mirror - 1] = np.array(ranges)
            limits[mirror - 1, :2] = -limits[mirror - 1, :2, ::-1]
    return frames, limits


JOINT_FRAMES, JOINT_ANGLE_LIMITS = _build_limits()
"""JOINT_FRAMES (16, 3, 3): per-bone joint frame C; JOINT_ANGLE_LIMITS (16, 3, 2): [lo, hi] radians of the Euler
ZYX angles (z, y, x) of C^T L C, L = the bone's local rotation (bone b ends at joint b + 1)."""
JOINT_FRAMES.setflags(write=False)
JOINT_ANGLE_LIMITS.setflags(write=False)


def kinematic_constraint_weights(local_rotations: ArrayT, tolerance: float = 1e-6) -> tuple[ArrayT, ArrayT]:
    """(..., 16, 3, 3) bone-local rotations -> (weights (..., 16), clamped rotations (..., 16, 3, 3)).

    weight = 1 + number of Euler axes outside JOINT_ANGLE_LIMITS (by more than `tolerance` radians); the clamped
    rotation has its joint-frame Euler angles clamped into the limits.
    Pass joint_rotations(..., "local")[..., 1:, :, :].
    """
    t, back = _as_input(local_rotations, "local_rotations", (NUM_BONES, 3, 3))
    C = _const(JOINT_FRAMES, t)
    lim = _const(JOINT_ANGLE_LIMITS, t)
    angles = _euler_zyx_from_matrix_t(C.transpose(-1, -2) @ t @ C)
    lo, hi = lim[..., 0], lim[..., 1]
    violated = (angles < lo - tolerance) | (angles > hi + tolerance)
    weights = 1 + violated.sum(-1).to(t.dtype)
    clamped = C @ _matrix_from_euler_zyx_t(torch.clamp(angles, lo, hi)) @ C.transpose(-1, -2)
    # Bones inside their limits keep their exact rotation (the Euler round trip is only accurate to ~1e-15).
    clamped = torch.where(violated.any(-1)[..., None, None], clamped, t)
    return back(weights), back(clamped)


def joint_angles(local_rotations: ArrayT) -> ArrayT:
    """(..., 16, 3, 3) bone-local rotations -> (..., 16, 3) joint-frame Euler ZYX angles (see JOINT_ANGLE_LIMITS)."""
    t, back = _as_input(local_rotations, "local_rotations", (NUM_BONES, 3, 3))
    C = _const(JOINT_FRAMES, t)
    return back(_euler_zyx_from_matrix_t(C.transpose(-1, -2) @ t @ C))
