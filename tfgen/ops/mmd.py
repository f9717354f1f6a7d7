"""Maximum mean discrepancy (Gretton et al. 2012) with sums of Gaussian kernels.

``MMD^2 = E k(x, x') - 2 E k(x, y) + E k(y, y')``; GRAM eq. (10) and the
MMD-net objective (Li et al. 2015; Dziugaite et al. 2015).
"""

from __future__ import annotations

import tensorflow as tf

from tfgen.ops.distances import pairwise_sq_distances
from tfgen.ops.kernels import gaussian_kernels

ESTIMATORS = ("biased", "unbiased")


def mmd2_from_kernels(k_xx, k_xy, k_yy, estimator: str = "biased") -> tf.Tensor:
    """MMD^2 from precomputed Gram matrices (each ``(N, N)``, ``(N, M)``, ``(M, M)``).

    ``biased``: the V-statistic, means over all entries (GRAM's code).
    ``unbiased``: the U-statistic, the diagonals of ``k_xx`` and ``k_yy`` are
    left out (Gretton et al. 2012, eq. 3); it can be negative.
    """
    if estimator == "biased":
        return tf.reduce_mean(k_xx) + tf.reduce_mean(k_yy) - 2.0 * tf.reduce_mean(k_xy)
    if estimator == "unbiased":
        n = tf.cast(tf.shape(k_xx)[-1], k_xx.dtype)
        m = tf.cast(tf.shape(k_yy)[-1], k_yy.dtype)
        sum_xx = tf.reduce_sum(k_xx) - tf.reduce_sum(tf.linalg.diag_part(k_xx))
        sum_yy = tf.reduce_sum(k_yy) - tf.reduce_sum(tf.linalg.diag_part(k_yy))
        return (sum_xx / (n * (n - 1.0)) + sum_yy / (m * (m - 1.0))
                - 2.0 * tf.reduce_mean(k_xy))
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def mmd2(x, y, bandwidths=1.0, parameterization: str = "std",
         estimator: str = "biased") -> tf.Tensor:
    """MMD^2 between samples ``x (N, ...)`` and ``y (M, ...)`` under
    ``k = sum_s exp(-gamma_s ||a - b||^2)`` (a sum over the bandwidths).
    """
    x = tf.convert_to_tensor(x)
    y = tf.cast(tf.convert_to_tensor(y), x.dtype)
    k_xx = tf.reduce_sum(gaussian_kernels(pairwise_sq_distances(x), bandwidths, parameterization), 0)
    k_yy = tf.reduce_sum(gaussian_kernels(pairwise_sq_distances(y), bandwidths, parameterization), 0)
    k_xy = tf.reduce_sum(gaussian_kernels(pairwise_sq_distances(x, y), bandwidths, parameterization), 0)
    return mmd2_from_kernels(k_xx, k_xy, k_yy, estimator)


def mmd(x, y, bandwidths=1.0, parameterization: str = "std", estimator: str = "biased",
        floor: float = 1e-12) -> tf.Tensor:
    """``sqrt(max(MMD^2, floor))``: the generator loss of MMD-nets and GRAM.

    The floor keeps the square root's gradient finite when MMD^2 reaches 0
    (the reference codes clamp at 0, which gives an infinite gradient there).
    """
    return tf.sqrt(tf.maximum(mmd2(x, y, bandwidths, parameterization, estimator), floor))
