"""Comparing joint rotations with a source's measured ones.

A source's segment frames are its own (a BVH joint's axes, a simulated body's axes): they differ from the
package's joint frames (`kinematics.joint_rotations`, rest T-pose facing the camera) by one fixed rotation per
joint. `rotation_offsets` finds that rotation from a whole sequence (the least-squares fit over all frames), so
what is left in `aligned_rotation_error_deg` is the error that changes with the motion.
"""

from __future__ import annotations

import numpy as np

from petr_ros.metrics import rotation_error_deg


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones((*m.shape[:-2], 3))
    fix[..., 2] = d
    return (u * fix[..., None, :]) @ vt


def rotation_offsets(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(J, 3, 3) fixed right offsets C_j with estimated[t, j] @ C_j ~ truth[t, j] over all frames t.

    estimated, truth: (T, J, 3, 3) world rotations. C_j is the rotation nearest to sum_t estimated^T truth, which
    minimises sum_t |estimated C - truth|_F^2.
    """
    est, tru = np.asarray(estimated, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if est.shape != tru.shape or est.ndim != 4 or est.shape[-2:] != (3, 3):
        raise ValueError(f"estimated and truth must both be (T, J, 3, 3), got {est.shape} and {tru.shape}")
    return _nearest_rotation(np.einsum("tjki,tjkl->jil", est, tru))


def aligned_rotation_error_deg(
    estimated: np.ndarray, truth: np.ndarray, offsets: np.ndarray | None = None
) -> np.ndarray:
    """(T, J) geodesic error (degrees) of estimated @ C against truth; C from `rotation_offsets` unless given
    (give the offsets fitted on ground truth-derived rotations to keep a per-sequence fit from hiding errors)."""
    est, tru = np.asarray(estimated, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    c = rotation_offsets(est, tru) if offsets is None else np.asarray(offsets, dtype=np.float64)
    return np.asarray(rotation_error_deg(est @ c[None], tru, reduction="none"))
