"""Input checks shared by the pure-logic modules: one wording for every shape/NaN/empty error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def check_points(
    points: Any,
    name: str,
    joints: int | None = None,
    dims: int | Sequence[int] = 3,
    dtype: Any = None,
    allow_empty: bool = False,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return `points` as an array of shape (..., joints, dims) or raise ValueError naming the offending shape.

    joints=None accepts any joint count; dims may be one size or several allowed sizes.
    Empty batches and non-finite values are errors unless allowed.
    """
    arr = np.asarray(points) if dtype is None else np.asarray(points, dtype=dtype)
    allowed_dims = (dims,) if isinstance(dims, int) else tuple(dims)
    joint_txt = "J" if joints is None else str(joints)
    dim_txt = "|".join(str(d) for d in allowed_dims)
    if arr.ndim < 2 or arr.shape[-1] not in allowed_dims or (joints is not None and arr.shape[-2] != joints):
        raise ValueError(f"{name} must have shape (..., {joint_txt}, {dim_txt}), got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {arr.shape}): at least one pose is needed")
    if not allow_nan and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} (shape {arr.shape}) contains {bad} NaN/inf values")
    return arr

