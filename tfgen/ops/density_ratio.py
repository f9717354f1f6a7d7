"""Kernel-mean-matching density ratios and GRAM's Pearson-divergence critic objective.

GRAM (Srivastava et al., "Generative Ratio Matching Networks"), §2.2 and §3.1:
the ratio ``r = p/q`` at the points drawn from q is estimated in closed form
(eq. 8) and the critic maximises the Pearson divergence estimate (eq. 7, 9).
"""

from __future__ import annotations

import tensorflow as tf

POSITIVITY = ("sum", "mean")


def density_ratio(k_qq, k_qp, eps: float = 1e-3) -> tf.Tensor:
    """``r = (N/M) (K_qq + eps I)^{-1} K_qp 1``: the KMM ratio p/q at the q points (eq. 8).

    Args:
      k_qq: ``(..., N, N)`` Gram matrix among the N points drawn from q
        (the generator's, "denominator").
      k_qp: ``(..., N, M)`` Gram matrix between the q points and M points
        drawn from p (the data, "numerator").
      eps: ridge added to the diagonal. Eq. 8 writes a plain inverse; the
        reference Julia code adds 1e-3 I, which makes ``K_qq + eps I``
        symmetric positive definite, so a Cholesky solve applies. ``N/M`` is
        the code's scale (1 for equal batches).

    Returns:
      ``(..., N)`` ratios. Gradients flow through the solve. If the float32
      Cholesky fails (NaN from a near-singular matrix) the solve is redone in
      float64.
    """
    k_qq = tf.convert_to_tensor(k_qq)
    k_qp = tf.convert_to_tensor(k_qp, dtype=k_qq.dtype)
    n = tf.shape(k_qq)[-1]
    m = tf.cast(tf.shape(k_qp)[-1], k_qq.dtype)
    rhs = tf.reduce_sum(k_qp, axis=-1, keepdims=True)  # K_qp 1
    scale = tf.cast(n, k_qq.dtype) / m

    def solve(dtype):
        a = tf.cast(k_qq, dtype) + tf.convert_to_tensor(eps, dtype) * tf.eye(n, dtype=dtype)
        chol = tf.linalg.cholesky(a)
        return tf.cast(tf.linalg.cholesky_solve(chol, tf.cast(rhs, dtype)), k_qq.dtype)

    if k_qq.dtype == tf.float64:
        r = solve(tf.float64)
    else:
        # Decide on a gradient-free float32 factor, then solve inside the
        # branch: a solve computed outside tf.cond would feed NaN into the
        # untaken branch's zero gradient (0 * NaN = NaN) in graph mode.
        a32 = tf.stop_gradient(k_qq) + tf.convert_to_tensor(eps, k_qq.dtype) * tf.eye(n, dtype=k_qq.dtype)
        ok = tf.reduce_all(tf.math.is_finite(tf.linalg.cholesky(a32)))
        r = tf.cond(ok, lambda: solve(k_qq.dtype), lambda: solve(tf.float64))
    return scale * tf.squeeze(r, -1)


def pearson_divergence(r, lam: float = 1.0, positivity: str = "sum") -> tf.Tensor:
    """GRAM's critic objective, to be *maximised* (eq. 9):
    ``L = (1/N) sum_i (r_i - 1)^2 + lam * r^T 1``.

    The first term is the Pearson divergence estimate of eq. 7; the second
    is the positivity constraint of the MMD ratio estimator (lam = 1 in all
    the paper's experiments). ``positivity="sum"`` is ``r^T 1`` as in eq. 9
    and JuliaGRAM; ``"mean"`` is GRAM.jl's ``mean(r)``. ``lam=0`` drops it
    (use it with clipped ratios).
    """
    r = tf.convert_to_tensor(r)
    pd = tf.reduce_mean(tf.square(r - 1.0), axis=-1)
    if positivity == "sum":
        pos = tf.reduce_sum(r, axis=-1)
    elif positivity == "mean":
        pos = tf.reduce_mean(r, axis=-1)
    else:
        raise ValueError(f"positivity must be one of {POSITIVITY}, got {positivity!r}")
    return pd + lam * pos
