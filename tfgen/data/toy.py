"""Two-dimensional Gaussian-mixture toy sets, generated from a seed (no download).

These are the toy problems the papers use to show mode coverage:

* ``ring8``: 8 Gaussians on a circle of radius 2 with std 0.2. GRAM-nets' reference code
  builds this set as ``Ring(8, 2, 0.2)``; the GRAM paper's text says std 0.01, which is
  the named variant ``ring8-paper``. We default to the code's value because that is what
  produced the paper's figures.
* ``grid25``: a 5x5 grid of Gaussians at {-4, -2, 0, 2, 4}^2 with std 0.05, the usual
  GAN mode-collapse toy.
* ``two_gaussians``: two Gaussians at (-2, 0) and (2, 0) with std 0.5.

All mixtures have equal weights and isotropic components. The label of a point is the index
of the component that drew it (the row of ``centers``), which mode-coverage metrics use.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["ring_centers", "grid_centers", "TOY_SETS", "toy_spec", "sample_mixture"]

# Default sizes of the generated splits; `n=` overrides them.
DEFAULT_SIZES = {"train": 20000, "test": 5000}
# Each split draws from its own stream derived from the seed, so train and test never share
# points even with the same seed (and a test set is not a prefix of a train set).
_SPLIT_STREAM = {"train": 0, "test": 1}


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """Centres of ``n_modes`` equally spaced points on a circle, the first at ``(radius, 0)``.

    Returns:
        float64 array of shape ``(n_modes, 2)``.
    """
    n_modes = _positive_int(n_modes, "n_modes")
    radius = _positive_float(radius, "radius")
    angles = 2.0 * np.pi * np.arange(n_modes) / n_modes
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def grid_centers(n_per_side: int = 5, spacing: float = 2.0) -> np.ndarray:
    """Centres of an ``n_per_side`` x ``n_per_side`` grid centred on the origin.

    With the defaults the centres are {-4, -2, 0, 2, 4}^2. Row ``i * n_per_side + j`` is the
    point ``(x_i, y_j)``.

    Returns:
        float64 array of shape ``(n_per_side**2, 2)``.
    """
    n_per_side = _positive_int(n_per_side, "n_per_side")
    spacing = _positive_float(spacing, "spacing")
    ticks = (np.arange(n_per_side) - (n_per_side - 1) / 2.0) * spacing
    xx, yy = np.meshgrid(ticks, ticks, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _ring(n_modes=8, radius=2.0, std=0.2):
    return ring_centers(n_modes, radius), std


def _ring_paper(n_modes=8, radius=2.0, std=0.01):
    return ring_centers(n_modes, radius), std


def _grid(std=0.05, spacing=2.0, n_per_side=5):
    return grid_centers(n_per_side, spacing), std


def _two_gaussians(std=0.5, centers=((-2.0, 0.0), (2.0, 0.0))):
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] < 1 or not np.all(np.isfinite(c)):
        raise ValueError(f"option centers: expected a finite (K, 2) array with K >= 1, got shape {c.shape}")
    return c, std


# name -> (builder, option names, one-line description). Builders return (centers, std).
TOY_SETS = {
    "ring8": (_ring, ("n_modes", "radius", "std"),
              "8 Gaussians on a circle of radius 2, std 0.2 (GRAM-nets' code, Ring(8,2,0.2))"),
    "ring8-paper": (_ring_paper, ("n_modes", "radius", "std"),
                    "8 Gaussians on a circle of radius 2, std 0.01 (the GRAM-nets paper's text)"),
    "grid25": (_grid, ("std", "spacing", "n_per_side"),
               "5x5 grid of Gaussians at {-4,-2,0,2,4}^2, std 0.05"),
    "two_gaussians": (_two_gaussians, ("std", "centers"),
                      "two Gaussians at (-2,0) and (2,0), std 0.5"),
}


def toy_spec(name: str, **options) -> tuple[np.ndarray, float]:
    """The mixture ``(centers (K, 2), std)`` of toy set ``name`` with ``options`` applied.

    Raises:
        ValueError: an option the set does not have, or a bad value.
    """
    builder, allowed, _ = TOY_SETS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name!r} does not take option(s) {unknown}; its options are {list(allowed)}")
    centers, std = builder(**options)
    std = _positive_float(std, "std")
    return np.asarray(centers, dtype=np.float64), std


def sample_mixture(centers: np.ndarray, std: float, n: int, seed: int, split: str):
    """Draw ``n`` points from the equal-weight isotropic mixture; returns ``(x float32 (n,2), y int64 (n,))``.

    The stream is ``SeedSequence([seed, split_index])``, so a split is reproducible from the seed
    and differs from the other split's.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_STREAM[split]]))
    y = rng.integers(len(centers), size=n).astype(np.int64)
    x = centers[y] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def _positive_int(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"option {what}: expected a positive integer, got {v!r}")
    return int(v)


def _positive_float(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"option {what}: expected a finite number > 0, got {v!r}")
    return float(v)
