"""The k-NN estimator of KL(P || Q) of Wang, Kulkarni & Verdú (METHODS.md 6(b)).

Wang, Kulkarni & Verdú, "Divergence Estimation for Multidimensional Densities
Via k-Nearest-Neighbor Distances", IEEE Trans. Inf. Theory 55(5), 2009.
With ``X_1..X_n ~ P`` and ``Y_1..Y_m ~ Q`` in ``R^d``, ``rho_k(i)`` the distance
from ``X_i`` to its k-th nearest neighbour among the other X and ``nu_k(i)``
to its k-th nearest neighbour among the Y:

* ``mode="fixed"`` (eq. 5)::

      D = (d/n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

  consistent, but its bias vanishes only asymptotically; SGN's objective is
  the case k = 1, n = m (METHODS.md 1).
* ``mode="adaptive"``, the bias-reduced choice (eqs. 25/29): a ball of radius
  ``eps(i) = max(rho_k(i), nu_k(i))`` (k = 1 in the paper), the counts
  ``a_i = #{X_j, j != i, within eps(i)}`` and ``b_i = #{Y_j within eps(i)}``, and::

      D = (d/n) sum_i log(nu_{b_i}(i) / rho_{a_i}(i))
          + (1/n) sum_i [psi(a_i) - psi(b_i)] + log(m / (n - 1))

  (``psi`` the digamma function; ``log p(X_i) ~ psi(a_i) - log(n-1) - d log rho``
  and likewise for q, so more X than Y in the same ball means p > q there).

The neighbour SEARCH runs in float32 (:mod:`tfgen.ops.knn`, matmul form), but
the distances that enter the logarithms are recomputed in float64 as
``||x_i - z_j||`` for the neighbours found: the matmul form loses about
``1e-7 * ||x||^2`` to cancellation, which the ``d * log`` factor would amplify
into a visible bias in high d. ``eps`` is added to every distance so duplicate
points give a finite log, as public implementations do.

In high d the ``d * log`` factor turns a small bias in the distances into a
large one in D, so ``return_details=True`` also reports the mean log ratio
``(1/n) sum_i log(nu(i) / rho(i))`` that METHODS.md recommends reporting.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf
from scipy.special import digamma

from tfgen.metrics._arrays import as_rows
from tfgen.ops.distances import pairwise_sq_distances
from tfgen.ops.knn import BACKENDS, make_index

__all__ = ["knn_kl", "KNN_KL_MODES"]

KNN_KL_MODES = ("fixed", "adaptive")



def _row_distances(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``||a_i - b_{idx_i}||`` in float64, by differences (no cancellation)."""
    diff = a - b[idx]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),   # block of x
    tf.TensorSpec([None, None], tf.float32),   # all of x
    tf.TensorSpec([None, None], tf.float32),   # all of y
    tf.TensorSpec([], tf.int32),               # row offset of the block in x
    tf.TensorSpec([], tf.int32),               # k of the ball radius
])
def _adaptive_block(xb, x, y, offset, k):
    """Per row of a block: the counts ``a_i``, ``b_i`` inside ``eps(i)`` and the
    indices of the farthest X and Y inside it (``rho_{a_i}``, ``nu_{b_i}``).

    The full distance rows are needed for counting, so this works on
    ``block x (n + m)`` matrices; comparing against a radius taken from the
    same float32 matrix keeps the point that defines the radius inside the ball.
    """
    dxx = pairwise_sq_distances(xb, x)
    rows = tf.range(tf.shape(xb)[0]) + offset
    own = tf.equal(rows[:, None], tf.range(tf.shape(x)[0])[None, :])
    dxx = tf.where(own, tf.constant(np.inf, tf.float32), dxx)
    dxy = pairwise_sq_distances(xb, y)
    rho_k2 = -tf.math.top_k(-dxx, k=k).values[:, -1]
    nu_k2 = -tf.math.top_k(-dxy, k=k).values[:, -1]
    radius2 = tf.maximum(rho_k2, nu_k2)[:, None]
    in_x = dxx <= radius2
    in_y = dxy <= radius2
    a = tf.reduce_sum(tf.cast(in_x, tf.int32), axis=1)
    b = tf.reduce_sum(tf.cast(in_y, tf.int32), axis=1)
    far_x = tf.argmax(tf.where(in_x, dxx, -1.0), axis=1, output_type=tf.int32)
    far_y = tf.argmax(tf.where(in_y, dxy, -1.0), axis=1, output_type=tf.int32)
    return a, b, far_x, far_y


def knn_kl(x, y, k: int = 1, mode: str = "fixed", backend: str = "exact",
           chunk_size: int = 1024, eps: float = 1e-10, return_details: bool = False,
           index_options: dict | None = None):
    """WKV k-NN estimate of ``KL(P || Q)`` from ``x ~ P`` and ``y ~ Q``.

    Args:
      x: ``(n, d)`` sample of P (images ``(n, H, W, C)`` are flattened).
      y: ``(m, d)`` sample of Q, same d.
      k: the neighbour order (fixed mode), or the order whose distances set the
        ball radius ``max(rho_k, nu_k)`` (adaptive mode; WKV use k = 1).
      mode: ``"fixed"`` (eq. 5) or ``"adaptive"`` (bias-reduced, eqs. 25/29).
      backend: ``"exact"`` or ``"scann"`` (fixed mode only; falls back to exact
        with a warning when ScaNN is not installed). Adaptive mode counts points
        inside a radius, which needs full distance rows, so it is exact only.
      chunk_size: rows of ``x`` per block for the exact computations; memory is
        about ``chunk_size x (n + m)`` floats.
      eps: added to every distance, so duplicate points give a finite log.
      return_details: return a dict instead of the float.
      index_options: extra options for :func:`tfgen.ops.knn.make_index` with
        the ScaNN backend (``mode``, ``num_leaves``, ``reorder_k`` ...).

    Returns:
      The estimate (a float; it can be negative at finite n), or with
      ``return_details`` a dict with ``kl``, ``mean_log_ratio`` (the mean of
      ``log(nu/rho)`` over the neighbours used), ``n``, ``m``, ``d``, ``k``,
      ``mode`` and ``backend``.
    """
    if mode not in KNN_KL_MODES:
        raise ValueError(f"mode must be one of {KNN_KL_MODES}, got {mode!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if mode == "adaptive" and backend != "exact":
        raise ValueError("mode='adaptive' needs backend='exact': it counts every point inside "
                         "a radius, which an approximate top-k search cannot do")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not (isinstance(eps, numbers.Real) and eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    x64 = as_rows(x, "x")
    y64 = as_rows(y, "y")
    n, d = x64.shape
    m = y64.shape[0]
    if y64.shape[1] != d:
        raise ValueError(f"x and y must have the same number of features per point, "
                         f"got {d} and {y64.shape[1]}")
    if n < k + 1:
        raise ValueError(f"x needs at least k + 1 = {k + 1} points (each point's k-th neighbour "
                         f"is searched among the others), got n={n}")
    if m < k:
        raise ValueError(f"y needs at least k = {k} points, got m={m}")
    x32, y32 = x64.astype(np.float32), y64.astype(np.float32)

    if mode == "fixed":
        options = dict(index_options or {})
        options.setdefault("chunk_size", int(chunk_size))
        ix, _ = make_index(backend, **options).fit(x32).search(x32, k, exclude_self=True)
        iy, _ = make_index(backend, **options).fit(y32).search(x32, k)
        rho = _row_distances(x64, x64, ix.numpy()[:, k - 1].astype(np.int64))
        nu = _row_distances(x64, y64, iy.numpy()[:, k - 1].astype(np.int64))
        digamma_term = 0.0
    else:
        xt, yt = tf.constant(x32), tf.constant(y32)
        parts = [_adaptive_block(xt[s:s + chunk_size], xt, yt, tf.constant(s, tf.int32),
                                 tf.constant(int(k), tf.int32))
                 for s in range(0, n, int(chunk_size))]
        a, b, far_x, far_y = (np.concatenate([p[j].numpy() for p in parts]) for j in range(4))
        rho = _row_distances(x64, x64, far_x.astype(np.int64))
        nu = _row_distances(x64, y64, far_y.astype(np.int64))
        digamma_term = float(np.mean(digamma(a.astype(np.float64)) - digamma(b.astype(np.float64))))

    log_ratio = np.log(nu + eps) - np.log(rho + eps)
    mean_log_ratio = float(np.mean(log_ratio))
    kl = d * mean_log_ratio + digamma_term + math.log(m / (n - 1))
    if not return_details:
        return kl
    return {"kl": kl, "mean_log_ratio": mean_log_ratio, "n": n, "m": m, "d": d, "k": int(k),
            "mode": mode, "backend": backend}
