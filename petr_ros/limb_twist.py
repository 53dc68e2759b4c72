"""Joint rotations from positions with the limbs' twist read off the elbow and knee bend.

`kinematics.joint_rotations` cannot see twist about a bone and takes the minimal one. For an upper arm or a
thigh the twist IS visible whenever the elbow or knee is bent: the forearm (shank) then leaves the upper arm
(thigh) in the joint's flexion direction (forwards for the elbow, backwards for the knee in the rest T-pose,
kinematics.JOINT_FRAMES), so the upper arm's rotation must carry that rest flexion direction onto the bend.
`rotations_with_limb_twist` does that for the four proximal limb bones, blending smoothly back to the minimal
twist as the limb straightens (where the bend direction is lost in noise), and re-derives the forearms and
shanks minimally from their corrected parents. Measured against real mocap rotations, this is what the node
publishes (see docs/model_card.md).
"""

from __future__ import annotations

import numpy as np

from petr_ros import kinematics
from petr_ros.skeleton import BONE_CHILDREN, BONE_PARENTS, NUM_JOINTS, PARENTS
from petr_ros.validation import check_points

# (proximal joint j whose rotation R_j carries bone parent(j) -> j, distal joint, the rest direction the distal
# bone bends towards): upper arms bend forwards (the person faces -z), thighs' shanks bend backwards (+z).
_FRONT, _BACK = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
LIMBS: tuple[tuple[int, int, np.ndarray], ...] = (
    (12, 13, _FRONT),  # left upper arm, bend of the left elbow
    (15, 16, _FRONT),  # right upper arm
    (5, 6, _BACK),  # left thigh, bend of the left knee
    (2, 3, _BACK),  # right thigh
)
BEND_FULL = np.radians(25.0)  # bends above this fix the twist fully; below it the minimal twist blends in
_PROXIMAL = [limb[0] for limb in LIMBS]
_DISTAL = [limb[1] for limb in LIMBS]
_PROXIMAL_PARENT = [PARENTS[j] for j in _PROXIMAL]
_BEND_REST = np.stack([limb[2] for limb in LIMBS])
_DISTAL_REST = kinematics.REST_DIRECTIONS[_DISTAL]
# each distal joint is its proximal joint's only child (the wrist of the elbow, the ankle of the knee)
assert all(PARENTS[d] == p and sum(q == p for q in PARENTS) == 1 for p, d in zip(_PROXIMAL, _DISTAL, strict=True))


_LIMB_ENDS, _LIMB_STARTS = np.array(_PROXIMAL + _DISTAL), np.array(_PROXIMAL_PARENT + _PROXIMAL)
_DISTAL_TERMS = kinematics._minimal_rotation_terms_np(_DISTAL_REST)
_EYE = np.eye(3)


def _unit(v: np.ndarray) -> np.ndarray:
    n2 = (v * v).sum(-1, keepdims=True)
    ok = n2 > 1e-24
    return np.where(ok, v / np.sqrt(np.where(ok, n2, 1.0)), 0.0)


def _rotation_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) unit axes, (...) angles -> (..., 3, 3); K @ K = a a^T - |a|^2 I written out."""
    k = kinematics._skew_np(axis)
    k2 = axis[..., :, None] * axis[..., None, :] - (axis * axis).sum(-1)[..., None, None] * _EYE
    return _EYE + np.sin(angle)[..., None, None] * k + (1.0 - np.cos(angle))[..., None, None] * k2


def rotations_with_limb_twist(joints3d: np.ndarray) -> np.ndarray:
    """(..., 17, 3) joints -> (..., 17, 3, 3) global joint rotations (kinematics.joint_rotations' convention), the
    upper arms' and thighs' twist taken from the elbow and knee bend, their children re-derived minimally.
    float64 numpy throughout (this runs per person and frame in the node: no torch, no np.cross/einsum/norm,
    whose fixed costs per call exceed the arithmetic on one pose)."""
    joints = check_points(joints3d, "joints3d", joints=NUM_JOINTS, dims=3).astype(np.float64, copy=False)
    flat = joints.reshape(-1, NUM_JOINTS, 3)
    vectors = flat[:, BONE_CHILDREN] - flat[:, BONE_PARENTS]
    squared = (vectors * vectors).sum(-1)
    if squared.min() > 1e-24:  # no zero-length bone (nearly always): the fast path
        rot = rotations_of_bones(vectors / np.sqrt(squared)[..., None], flat[:, 4] - flat[:, 1])
        if rot is not None:
            return rot.reshape(joints.shape[:-1] + (3, 3))
    return _rotations_with_limb_twist_levels(joints)


def _rotations_with_limb_twist_levels(joints: np.ndarray) -> np.ndarray:
    """rotations_with_limb_twist by kinematics' level-by-level joint rotations (every degenerate case: zero-length
    bones, a bone folded back onto its parent's); float64 (..., 17, 3) joints."""
    rot = kinematics._joint_rotations_np(joints)[0]
    # the four limbs at once, along a limb axis of length 4
    both = _unit(joints[..., _LIMB_ENDS, :] - joints[..., _LIMB_STARTS, :])  # proximal then distal bones
    bone, child = both[..., :4, :], both[..., 4:, :]
    along = (child * bone).sum(-1, keepdims=True)
    perp = child - along * bone
    perp_norm = np.sqrt((perp * perp).sum(-1))
    bend = np.arctan2(perp_norm, along[..., 0])  # 0 = straight limb
    proximal = rot[..., _PROXIMAL, :, :]
    current = (proximal @ _BEND_REST[:, :, None])[..., 0]  # where the rest bend direction points now
    # the twist about the bone that turns `current` onto the observed bend direction, faded out when straight
    perp_u = _unit(perp)
    twist = np.arctan2((kinematics._cross_np(current, perp_u) * bone).sum(-1), (current * perp_u).sum(-1))
    twist = twist * np.clip(bend / BEND_FULL, 0.0, 1.0)
    proximal = _rotation_about(bone, twist) @ proximal
    # the distal bones (forearms, shanks): minimal rotation from their corrected parents, as joint_rotations does
    local_dir = (child[..., None, :] @ proximal)[..., 0, :]  # proximal^T child
    swing = kinematics._minimal_rotation_of_unit_np(_DISTAL_TERMS, local_dir, (child * child).sum(-1).round())
    rot[..., _PROXIMAL, :, :] = proximal
    rot[..., _DISTAL, :, :] = proximal @ swing  # a zero-length distal bone: swing = identity, its parent's frame
    return rot


# --- The fast path: the same rotations in a third of the numpy calls -----------------------------------------
# joint_rotations' R_j = R_p @ minimal(rest_j, R_p^T b_j) equals minimal(R_p rest_j, b_j) @ R_p (a minimal rotation
# turns with the frame it is seen from), and R_p rest_j is the parent's own bone b_p wherever rest_j = rest_p. So
# the minimal rotations of 12 joints (the pelvis' three children, whose R_p rest_j are root-frame axes, and the 9
# whose rest direction is their parent's) come in one batched step and the other 4 (hips -> knees, thorax ->
# clavicles) in a second, instead of one step per tree level; the products R_j = M_j @ R_p follow level by level.
# The forearms' and shanks' rest directions are their parents' too, and the twist keeps the parent's bone where it
# is, so after the twist they are the same M_j times the twisted parent. Every b opposite its u (within 1e-4 of
# 1 + cos = 0) and every zero-length bone goes to the level-by-level path above (bit for bit the previous
# arithmetic); elsewhere both agree within 1e-14 (tested).
_REST = kinematics.REST_DIRECTIONS


def _signed_axis(v: np.ndarray) -> tuple[int, float]:
    i = int(np.argmax(np.abs(v)))
    assert abs(abs(v[i]) - 1.0) < 1e-12 and np.count_nonzero(v) == 1, v
    return i, float(np.sign(v[i]))


# first step: the pelvis' children (u = root frame axis) and the joints whose rest direction is their parent's
_ROOT_CHILDREN = [j for j in range(1, NUM_JOINTS) if PARENTS[j] == 0]
_SAME_REST = [j for j in range(1, NUM_JOINTS) if PARENTS[j] > 0 and np.array_equal(_REST[j], _REST[PARENTS[j]])]
_FIRST = _ROOT_CHILDREN + _SAME_REST
_SECOND = [j for j in range(1, NUM_JOINTS) if j not in _FIRST]
assert _ROOT_CHILDREN == [1, 4, 7] and _SECOND == [2, 5, 11, 14], (_ROOT_CHILDREN, _SECOND)
assert [PARENTS[j] for j in _SECOND] == [1, 4, 8, 8] and _FIRST.index(8) == 5
# u of the first step from [root frame rows x, y, z; unit bones]: a root child's R_0 rest_j = sign * column axis
_FIRST_SOURCE = np.array([_signed_axis(_REST[j])[0] for j in _ROOT_CHILDREN] + [3 + PARENTS[j] - 1 for j in _SAME_REST])
_FIRST_SIGN = np.array([_signed_axis(_REST[j])[1] for j in _ROOT_CHILDREN] + [1.0] * len(_SAME_REST))[:, None]
_FIRST_BONE = np.array(_FIRST) - 1
_SECOND_BONE = np.array(_SECOND) - 1
# the second step's u = R_p rest_j: hips' rest DOWN, thorax's LEFT for the left and RIGHT for the right clavicle
assert [_signed_axis(_REST[j]) for j in _SECOND] == [(1, 1.0), (1, 1.0), (0, 1.0), (0, -1.0)]
_M_ORDER = _FIRST + _SECOND  # joints of the concatenated minimal rotations
_THIRD = [2, 5, 9, 11, 14]  # children of 1, 4, 8, 8, 8
_FOURTH = [10, 12, 15]  # children of 9, 11, 14
_TWISTED = [2, 5, 12, 15]  # the limbs' proximal joints (the order of LIMBS is not needed here)
_FIFTH = [3, 6, 13, 16]  # their only children
assert [PARENTS[j] for j in _THIRD] == [1, 4, 8, 8, 8] and [PARENTS[j] for j in _FOURTH] == [9, 11, 14]
assert [PARENTS[j] for j in _FIFTH] == _TWISTED and sorted(_TWISTED) == sorted(_PROXIMAL)
assert all(np.array_equal(_REST[j], _REST[PARENTS[j]]) for j in _FIFTH)
_M_THIRD = np.array([_M_ORDER.index(j) for j in _THIRD])
_M_FOURTH = np.array([_M_ORDER.index(j) for j in _FOURTH])
_M_FIFTH = np.array([_M_ORDER.index(j) for j in _FIFTH])
_TWIST_BONES = np.array([j - 1 for j in _TWISTED] + [j - 1 for j in _FIFTH])
# the rest bend direction of each twisted limb is +-z: R_p bend = sign * R_p's third column
_TWIST_BEND_SIGN = np.array([_signed_axis(dict((p, b) for p, _, b in LIMBS)[j])[1] for j in _TWISTED])[:, None]
assert all(_signed_axis(limb[2])[0] == 2 for limb in LIMBS)
# joints of the pieces concatenated at the end -> joint order
_SLOTS = [0] + _ROOT_CHILDREN + [8] + _TWISTED + [9, 11, 14] + [10] + _FIFTH
_FROM_SLOTS = np.array([_SLOTS.index(j) for j in range(NUM_JOINTS)])
_INVERSE_BEND_FULL = 1.0 / BEND_FULL
_SUM = np.add.reduce  # ndarray.sum without its Python wrapper
_CYCLE1, _CYCLE2 = np.array([1, 2, 0]), np.array([2, 0, 1])


def _minimal_rotations(u: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """(..., 3) unit u and b -> (..., 3, 3) the minimal rotations u -> b, I + K + K^2 / (1 + u.b) with
    K = b u^T - u b^T = [u x b]x; None when some b is (nearly) opposite its u."""
    one_plus_cos = _SUM(u * b, -1)
    one_plus_cos += 1.0
    if one_plus_cos.min() < 1e-4:
        return None
    outer = u[..., :, None] * b[..., None, :]
    k = np.swapaxes(outer, -1, -2) - outer
    out = k @ k
    out /= one_plus_cos[..., None, None]
    out += k
    out += _EYE
    return out


def rotations_of_bones(units: np.ndarray, side: np.ndarray) -> np.ndarray | None:
    """The fast path of rotations_with_limb_twist: (N, 16, 3) unit bones (bone b ends at joint b + 1) and (N, 3)
    right hip -> left hip vectors -> (N, 17, 3, 3) global rotations with the limb twist, or None for poses it does
    not handle (a bone opposite the direction its minimal rotation starts from, hips along the spine): the caller
    then takes the level-by-level path. No input checks (internal callers)."""
    n = len(units)
    # the root frame (kinematics._root_frame_np): y = spine -> pelvis, x = the hips' side orthogonalised, z = x X y
    rows = np.empty((n, 3, 3))  # R_0^T: the root frame's axes as rows
    x, y, z = rows[:, 0], rows[:, 1], rows[:, 2]
    np.negative(units[:, 6], out=y)
    np.multiply(_SUM(side * y, -1, keepdims=True), y, out=x)
    np.subtract(side, x, out=x)
    squared = _SUM(x * x, -1, keepdims=True)
    if squared.min() <= 1e-24:
        return None
    x /= np.sqrt(squared)
    np.subtract(x[:, _CYCLE1] * y[:, _CYCLE2], x[:, _CYCLE2] * y[:, _CYCLE1], out=z)  # x X y
    first = _minimal_rotations(np.concatenate((rows, units), axis=1)[:, _FIRST_SOURCE] * _FIRST_SIGN,
                               units[:, _FIRST_BONE])
    if first is None:
        return None
    r0 = np.swapaxes(rows, -1, -2)
    r147 = first[:, :3] @ r0[:, None]
    r8 = first[:, 5] @ r147[:, 2]
    down_of_hips = r147[:, :2, :, 1]
    left_of_thorax = r8[:, None, :, 0]
    second = _minimal_rotations(np.concatenate((down_of_hips, left_of_thorax, -left_of_thorax), axis=1),
                                units[:, _SECOND_BONE])
    if second is None:
        return None
    m = np.concatenate((first, second), axis=1)
    thorax = r8[:, None]
    r3 = m[:, _M_THIRD] @ np.concatenate((r147[:, :2], thorax, thorax, thorax), axis=1)
    r4 = m[:, _M_FOURTH] @ r3[:, 2:]
    # the twist of the upper arms and thighs (as _rotations_with_limb_twist_levels, without its unit perp: the
    # angle's atan2 does not need it)
    proximal = np.concatenate((r3[:, :2], r4[:, 1:]), axis=1)
    bones = units[:, _TWIST_BONES]
    bone, child = bones[:, :4], bones[:, 4:]
    along = _SUM(child * bone, -1)
    perp = child - along[..., None] * bone
    bend = np.arctan2(np.sqrt(_SUM(perp * perp, -1)), along)
    current = proximal[..., :, 2] * _TWIST_BEND_SIGN
    skew = kinematics._skew_np(bone)
    bone_x_current = (skew @ current[..., None])[..., 0]
    twist = np.arctan2(_SUM(perp * bone_x_current, -1), _SUM(perp * current, -1))
    twist *= np.minimum(bend * _INVERSE_BEND_FULL, 1.0)
    turn = skew * np.sin(twist)[..., None, None]
    turn += (skew @ skew) * (1.0 - np.cos(twist))[..., None, None]
    turn += _EYE
    proximal = turn @ proximal
    r5 = m[:, _M_FIFTH] @ proximal
    pieces = (r0[:, None], r147, r8[:, None], proximal, r3[:, 2:], r4[:, :1], r5)
    return np.concatenate(pieces, axis=1)[:, _FROM_SLOTS]
