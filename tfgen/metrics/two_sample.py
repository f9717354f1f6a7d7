"""Kernel two-sample test: MMD^2 with a permutation p-value (Gretton et al. 2012, JMLR).

Gretton, Borgwardt, Rasch, Schölkopf & Smola, "A Kernel Two-Sample Test",
JMLR 13 (2012): the statistic is the biased (V, eq. 5) or unbiased (U, eq. 3)
estimate of MMD^2 under a sum of Gaussian kernels (:func:`tfgen.ops.mmd2`),
and its null distribution is approximated by recomputing the statistic after
randomly re-splitting the pooled sample (Sec. 8.3's bootstrap / permutation
approach). The p-value carries the +1 correction that makes a permutation test
exact at any number of permutations (Phipson & Smyth 2010):
``p = (1 + #{perm >= observed}) / (1 + n_permutations)``.

The pooled ``N x N`` Gram matrix ``K`` (``N = n_x + n_y``) is computed once.
A split is a 0/1 vector ``a`` marking the points that play ``x`` (``b = 1 - a``);
then ``sum k(x, x') = a^T K a``, ``sum k(x, y) = a^T K b`` and
``sum k(y, y') = b^T K b``, and the unbiased form subtracts ``a . diag(K)``
and ``b . diag(K)``. A batch of splits is one ``(B, N) @ (N, N)`` matmul.
Both samples are subsampled (seeded) to at most ``max_samples`` each so that
``K`` stays bounded (2000 + 2000 points: 128 MB in float64).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from tfgen.metrics._arrays import as_rows
from tfgen.ops import gaussian_kernel, median_heuristic, pairwise_sq_distances
from tfgen.ops.kernels import PARAMETERIZATIONS
from tfgen.ops.mmd import ESTIMATORS

__all__ = ["mmd_two_sample_test", "mmd_statistic", "permutation_mmd2"]

# Splits evaluated per matmul; B x N floats of scratch per batch.
_PERMUTATION_BATCH = 128



def _int_at_least(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _as_bandwidths(bandwidths) -> list[float]:
    try:
        values = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"bandwidths: expected None, a positive number or a non-empty list of "
                         f"positive numbers, got {bandwidths!r}")
    return [float(v) for v in values]


def _prepare(x, y, bandwidths, parameterization, max_samples, seed, estimator):
    """Validate, flatten, subsample; returns the pooled sample, its kernel and bookkeeping."""
    x = as_rows(x, "x", min_points=2)
    y = as_rows(y, "y", min_points=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected points of the same size as x ({x.shape[1]} values each "
                         f"after flattening), got {y.shape[1]}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
    max_samples = _int_at_least(max_samples, "max_samples", 2)
    if bandwidths is not None:
        bandwidths = _as_bandwidths(bandwidths)

    # Independent streams for the two subsamples and the permutations, so
    # changing max_samples does not change which permutations are drawn.
    ss_x, ss_y, ss_perm = np.random.SeedSequence(seed).spawn(3)
    n_x_input, n_y_input = x.shape[0], y.shape[0]
    x_index = y_index = None
    if n_x_input > max_samples:
        x_index = np.sort(np.random.default_rng(ss_x).choice(n_x_input, max_samples, replace=False))
        x = x[x_index]
    if n_y_input > max_samples:
        y_index = np.sort(np.random.default_rng(ss_y).choice(n_y_input, max_samples, replace=False))
        y = y[y_index]

    pooled = tf.constant(np.concatenate([x, y], axis=0))
    d2 = pairwise_sq_distances(pooled)
    if bandwidths is None:
        # Median heuristic over the pooled sample (all N^2 entries, as in
        # tfgen.ops.median_heuristic). It is invariant to the split, so the
        # permutation test stays valid. It gives a std; convert it to the
        # caller's parameterization.
        sigma = float(median_heuristic(d2).numpy())
        if not sigma > 0:
            raise ValueError("x, y: the median pairwise distance of the pooled sample is 0 "
                             "(more than half the points coincide); pass bandwidths explicitly")
        bandwidths = [{"std": sigma, "variance": sigma ** 2,
                       "gamma": 1.0 / (2.0 * sigma ** 2)}[parameterization]]
    # Bandwidths as float64 tensors: a Python float would reach
    # ops.gaussian_kernel's tf.cast as float32 and round the gamma (1e-8 relative).
    # One bandwidth at a time: peak memory 2 N^2, not (S + 1) N^2.
    kernel = tf.add_n([gaussian_kernel(d2, tf.constant(b, d2.dtype), parameterization)
                       for b in bandwidths])
    return {
        "kernel": kernel.numpy(), "n_x": x.shape[0], "n_y": y.shape[0],
        "n_x_input": n_x_input, "n_y_input": n_y_input,
        "x_index": x_index, "y_index": y_index,
        "bandwidths": bandwidths, "perm_seed": ss_perm,
    }


def permutation_mmd2(kernel, x_mask, estimator: str = "unbiased") -> np.ndarray:
    """MMD^2 for a batch of splits of a pooled sample, from its Gram matrix.

    Args:
      kernel: ``(N, N)`` symmetric Gram matrix of the pooled sample.
      x_mask: ``(B, N)`` 0/1 array; row ``b`` marks the points that play ``x``
        in split ``b`` (the rest play ``y``). Every row must have the same
        number ``n`` of ones, with ``2 <= n <= N - 2``.
      estimator: ``"biased"`` (V-statistic) or ``"unbiased"`` (U-statistic),
        as in :func:`tfgen.ops.mmd2_from_kernels`.

    Returns:
      ``(B,)`` float64 statistics, equal to :func:`tfgen.ops.mmd2` on the
      corresponding split (up to rounding).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    a = np.asarray(x_mask, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    n_total = kernel.shape[0]
    n = a[0].sum()
    m = n_total - n
    b = 1.0 - a
    ka = a @ kernel                      # (B, N): row sums of K over the x-part
    kb = kernel.sum(axis=1)[None] - ka   # over the y-part, by linearity
    s_xx = np.sum(ka * a, axis=1)
    s_xy = np.sum(ka * b, axis=1)
    s_yy = np.sum(kb * b, axis=1)
    if estimator == "biased":
        return s_xx / n ** 2 + s_yy / m ** 2 - 2.0 * s_xy / (n * m)
    if estimator == "unbiased":
        diag = np.diag(kernel)
        return ((s_xx - a @ diag) / (n * (n - 1.0)) + (s_yy - b @ diag) / (m * (m - 1.0))
                - 2.0 * s_xy / (n * m))
    raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")


def mmd_two_sample_test(x, y, *, bandwidths=None, parameterization: str = "std",
                        n_permutations: int = 500, max_samples: int = 2000, seed=0,
                        estimator: str = "unbiased", return_null: bool = False) -> dict:
    """Permutation two-sample test of ``H0: P_x = P_y`` with MMD^2 (Gretton et al. 2012, JMLR).

    Args:
      x: ``(n_x, ...)`` samples (images are flattened to rows).
      y: ``(n_y, ...)`` samples with the same trailing size.
      bandwidths: one or more Gaussian bandwidths (the kernel is their sum),
        read as ``parameterization`` says (see :mod:`tfgen.ops.kernels`).
        None: the median heuristic over the pooled (subsampled) sample,
        ``sigma = sqrt(median ||z_i - z_j||^2)`` (:func:`tfgen.ops.median_heuristic`),
        converted to ``parameterization``.
      parameterization: ``"std"``, ``"variance"`` or ``"gamma"``.
      n_permutations: random re-splits of the pooled sample for the null, >= 1.
      max_samples: each side is subsampled without replacement (seeded) to at
        most this many points, so the pooled Gram matrix is at most
        ``(2 max_samples)^2``.
      seed: seeds the subsampling and the permutations (``numpy`` SeedSequence);
        same seed, same result.
      estimator: ``"unbiased"`` (U-statistic, Gretton eq. 3; can be negative)
        or ``"biased"`` (V-statistic, eq. 5).
      return_null: also return the null statistics and the splits that gave them.

    Returns:
      dict with ``mmd2`` (float), ``p_value`` (``(1 + #{null >= mmd2}) / (1 + n_permutations)``),
      ``bandwidths`` (list of floats, in ``parameterization``), ``parameterization``,
      ``estimator``, ``n_permutations``, ``n_x``/``n_y`` (sizes tested, after
      subsampling), ``n_x_input``/``n_y_input`` (sizes given), ``subsampled`` (bool).
      With ``return_null``: ``null`` (``(n_permutations,)``), ``null_x_indices``
      (``(n_permutations, n_x)``: for each permutation, the rows of the pooled
      sample ``concat(x_used, y_used)`` that played ``x``), and ``x_index`` /
      ``y_index`` (the rows of ``x`` / ``y`` kept by subsampling, or None).

    Raises:
      ValueError: naming the argument, for rank < 2, fewer than 2 samples a
        side, NaN/Inf, mismatched point sizes, a bad bandwidth, estimator,
        parameterization, ``n_permutations`` or ``max_samples``.
    """
    n_permutations = _int_at_least(n_permutations, "n_permutations", 1)
    prep = _prepare(x, y, bandwidths, parameterization, max_samples, seed, estimator)
    kernel, n_x, n_y = prep["kernel"], prep["n_x"], prep["n_y"]
    n_total = n_x + n_y

    identity = np.zeros((1, n_total))
    identity[0, :n_x] = 1.0
    # The observed statistic goes through the same arithmetic as the null, so
    # a split equivalent to the observed one ties exactly (and counts, as it should).
    observed = float(permutation_mmd2(kernel, identity, estimator)[0])

    rng = np.random.default_rng(prep["perm_seed"])
    null = np.empty(n_permutations)
    x_indices = np.empty((n_permutations, n_x), dtype=np.int64) if return_null else None
    for start in range(0, n_permutations, _PERMUTATION_BATCH):
        size = min(_PERMUTATION_BATCH, n_permutations - start)
        # argsort of uniform keys: a uniformly random permutation per row.
        chosen = np.argsort(rng.random((size, n_total)), axis=1)[:, :n_x]
        mask = np.zeros((size, n_total))
        np.put_along_axis(mask, chosen, 1.0, axis=1)
        null[start:start + size] = permutation_mmd2(kernel, mask, estimator)
        if return_null:
            x_indices[start:start + size] = np.sort(chosen, axis=1)

    result = {
        "mmd2": observed,
        "p_value": float((1 + np.sum(null >= observed)) / (1 + n_permutations)),
        "bandwidths": [float(b) for b in prep["bandwidths"]],
        "parameterization": parameterization,
        "estimator": estimator,
        "n_permutations": n_permutations,
        "n_x": n_x,
        "n_y": n_y,
        "n_x_input": prep["n_x_input"],
        "n_y_input": prep["n_y_input"],
        "subsampled": prep["x_index"] is not None or prep["y_index"] is not None,
    }
    if return_null:
        result.update(null=null, null_x_indices=x_indices,
                      x_index=prep["x_index"], y_index=prep["y_index"])
    return result


def mmd_statistic(x, y, *, bandwidths=None, parameterization: str = "std",
                  max_samples: int = 2000, seed=0, estimator: str = "unbiased") -> float:
    """MMD^2 between ``x`` and ``y`` alone (no p-value), e.g. "MMD^2 against the test set".

    Same arguments, defaults, subsampling and bandwidth choice as
    :func:`mmd_two_sample_test`, so the number equals that test's ``mmd2``.
    """
    prep = _prepare(x, y, bandwidths, parameterization, max_samples, seed, estimator)
    identity = np.zeros((1, prep["n_x"] + prep["n_y"]))
    identity[0, :prep["n_x"]] = 1.0
    return float(permutation_mmd2(prep["kernel"], identity, estimator)[0])
