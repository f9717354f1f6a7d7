"""Input checks the metrics share."""

from __future__ import annotations

import numpy as np


def as_rows(value, name: str, min_points: int = 1) -> np.ndarray:
    """A checked float64 ``(n, d)`` copy of ``value``; images ``(n, H, W, C)`` are flattened."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric (n, d) or (n, H, W, C) array, "
                         f"got {type(value).__name__}") from exc
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected an array of rank >= 2, (n, d) or (n, H, W, C), "
                         f"got shape {arr.shape}")
    if arr.shape[0] < min_points:
        raise ValueError(f"{name}: expected at least {min_points} points, got {arr.shape[0]}")
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected non-empty points, got shape {np.shape(value)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr
