"""Mode coverage and high-quality-sample rate on Gaussian-mixture toy data.

The protocol of VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse
in GANs using Implicit Variational Learning", Sec. 5.1), which the GRAM-nets
paper reuses for its ring experiments: a sample is *high quality* when it lies
within ``n_std`` (3) standard deviations of the nearest mixture centre, and a
mode is *covered* when enough high-quality samples fall near it (VEEGAN: at
least 20 of 2500 samples, i.e. 0.8%). The KL divergence between the
distribution of high-quality samples over the modes and the uniform
distribution is the mode-balance score of VEEGAN's Stacked-MNIST table (and
PacGAN, Lin et al. 2018).

Evaluation code: NumPy, run once per report, not in a training hot path.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["mode_stats", "toy_mode_stats", "DEFAULT_MIN_FRACTION"]

# VEEGAN counts a mode as captured with >= 20 high-quality samples out of 2500.
DEFAULT_MIN_FRACTION = 20 / 2500  # 0.008


def _as_points(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric (n, d) array, got {type(value).__name__}") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n, d) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty (n, d) array, got shape {arr.shape}")
    return arr


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:  # 0-d arrays / tensors
            value = float(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: expected a positive finite number, got {value!r}") from exc
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return value


def mode_stats(samples, centers, std, *, n_std: float = 3.0, min_count: int | None = None) -> dict:
    """Mode coverage of ``samples`` against an isotropic Gaussian mixture (VEEGAN protocol).

    Each sample is assigned to its nearest centre (Euclidean). It is *high
    quality* when that distance is at most ``n_std * std`` (VEEGAN uses 3
    standard deviations). Non-finite samples (NaN/Inf, a diverged generator)
    are never high quality, still count in the denominator of the rate, and set
    ``diverged``.

    Args:
      samples: ``(n, d)`` array-like or tensor (``d = 2`` for the toy sets).
      centers: ``(K, d)`` mixture centres, finite.
      std: the components' standard deviation, > 0.
      n_std: radius of the high-quality ball in units of ``std``, > 0.
      min_count: high-quality samples a mode needs to count as covered. Default
        ``ceil(0.008 * n)``: VEEGAN's 20 of 2500 samples, kept proportional to
        ``n`` (always >= 1).

    Returns:
      dict with
        ``modes_covered`` (int): modes with ``>= min_count`` high-quality samples;
        ``n_modes`` (int): ``K``;
        ``high_quality_rate`` (float): high-quality samples / ``n``;
        ``counts`` (list[int]): high-quality samples per mode (row order of ``centers``);
        ``kl_to_uniform_modes`` (float): ``KL(p || U_K) = sum_k p_k log(K p_k)`` where
          ``p`` is the distribution of the high-quality samples over the modes
          (the direction of VEEGAN's / PacGAN's tables). It is 0 for perfect
          balance, finite for empty modes (``0 log 0 = 0``), at most ``log K``
          (all high-quality samples in one mode), and ``inf`` when there is no
          high-quality sample at all (``p`` undefined: the worst score);
        ``diverged`` (bool): some sample is NaN or Inf;
        ``n_samples``, ``n_high_quality``, ``min_count``, ``threshold`` (``n_std * std``).

    Raises:
      ValueError: naming the argument, for a non-2-D or empty ``samples``/``centers``,
        mismatched point dimensions, non-finite centres, ``std``/``n_std`` not
        positive, or ``min_count`` not a positive integer.
    """
    samples = _as_points(samples, "samples")
    centers = _as_points(centers, "centers")
    if samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples: expected points of dimension {centers.shape[1]} (as centers), "
                         f"got shape {samples.shape}")
    if not np.all(np.isfinite(centers)):
        raise ValueError("centers: expected finite values, got NaN or Inf")
    std = _positive_float(std, "std")
    n_std = _positive_float(n_std, "n_std")
    n = samples.shape[0]
    n_modes = centers.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(DEFAULT_MIN_FRACTION * n))
    elif isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) or min_count < 1:
        raise ValueError(f"min_count: expected a positive integer or None, got {min_count!r}")
    min_count = int(min_count)

    finite = np.all(np.isfinite(samples), axis=1)
    diverged = not bool(np.all(finite))
    threshold = n_std * std

    # (n, K) is small for toy data (K <= 25), but block the rows anyway so a
    # million samples do not build a million x K x d temporary.
    nearest = np.zeros(n, dtype=np.int64)
    nearest_d2 = np.full(n, np.inf)
    safe = np.where(finite[:, None], samples, 0.0)
    block = 65536
    for start in range(0, n, block):
        s = safe[start:start + block]
        d2 = np.sum((s[:, None, :] - centers[None, :, :]) ** 2, axis=-1)
        idx = np.argmin(d2, axis=1)
        nearest[start:start + block] = idx
        nearest_d2[start:start + block] = d2[np.arange(len(s)), idx]
    high_quality = finite & (nearest_d2 <= threshold ** 2)

    counts = np.bincount(nearest[high_quality], minlength=n_modes)
    n_hq = int(counts.sum())
    if n_hq == 0:
        kl = math.inf
    else:
        p = counts[counts > 0] / n_hq
        kl = float(np.sum(p * np.log(p * n_modes)))
        kl = max(kl, 0.0)  # rounding can give -1e-17 for a perfect balance

    return {
        "modes_covered": int(np.sum(counts >= min_count)),
        "n_modes": int(n_modes),
        "high_quality_rate": n_hq / n,
        "counts": [int(c) for c in counts],
        "kl_to_uniform_modes": kl,
        "diverged": diverged,
        "n_samples": int(n),
        "n_high_quality": n_hq,
        "min_count": min_count,
        "threshold": threshold,
    }


def toy_mode_stats(samples, dataset: str = "ring8", n_std: float = 3.0, *,
                   min_count: int | None = None, **dataset_options) -> dict:
    """:func:`mode_stats` against a named toy set of :mod:`tfgen.data` (``ring8``, ``grid25``, ...).

    The centres and the component std come from
    ``tfgen.data.info(dataset, **dataset_options)`` (keys ``centers`` and
    ``std``), so the metric always matches the data the model was trained on
    (``ring8``: 8 centres at radius 2, std 0.2; ``grid25``: {-4, ..., 4}^2, std 0.05).
    """
    from tfgen import data as tfgen_data  # lazy: metrics must not need data at import time

    info = tfgen_data.info(dataset, **dataset_options)
    if "centers" not in info or "std" not in info:
        raise ValueError(f"dataset: {dataset!r} is not a Gaussian-mixture toy set "
                         "(tfgen.data.info gives no 'centers'/'std')")
    return mode_stats(samples, info["centers"], info["std"], n_std=n_std, min_count=min_count)
