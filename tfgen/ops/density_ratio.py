"""Kernel-mean-matching density ratios and GRAM's Pearson-divergence critic objective.

GRAM (Srivastava et al., "Generative Ratio Matching Networks"), §2.2 and §3.1:
the ratio ``r = p/q`` at the points drawn from q is estimated in closed form
(eq. 8) and the critic maximises the Pearson divergence estimate (eq. 7, 9).
"""

from __future__ import annotations

import tensorflow as tf

POSITIVITY = ("sum", "mean")


def _pinv_solve(a, b):
    """``A^+ b`` for symmetric ``A`` by its eigendecomposition, eigenvalues below
    ``10 N eps max|w|`` (``tf.linalg.pinv``'s cutoff) counted as zero. Not
    ``tf.linalg.pinv``: its SVD has no gradient for unknown shapes, which a
    ``tf.cond`` under XLA builds even though ``spd_solve`` never uses it."""
    w, v = tf.linalg.eigh(a)
    n = tf.cast(tf.shape(a)[-1], a.dtype)
    cutoff = 10.0 * n * tf.constant(float(tf.experimental.numpy.finfo(a.dtype.as_numpy_dtype).eps), a.dtype)
    cutoff = cutoff * tf.reduce_max(tf.abs(w), axis=-1, keepdims=True)
    inv_w = tf.where(tf.abs(w) > cutoff, 1.0 / tf.where(tf.abs(w) > cutoff, w, tf.ones_like(w)), tf.zeros_like(w))
    return tf.matmul(v, inv_w[..., None] * tf.matmul(v, b, transpose_a=True))


@tf.custom_gradient
def spd_solve(a, b):
    """``x = A^{-1} b`` for symmetric positive definite ``A (..., N, N)`` by Cholesky.

    The gradient is written by hand: ``dL/db = A^{-1} g`` and
    ``dL/dA = -sym(A^{-1} g x^T)``, reusing the forward pass's factor, which
    costs one more triangular solve instead of differentiating through the
    factorisation (2.6x faster for GRAM's 200 x 200 solve, bench/step_cost.py).

    For float32 input whose factor is not finite (a near-singular matrix),
    the factorisation is redone in float64; the backward pass uses whichever
    factor the forward pass used, so no NaN of the failed attempt reaches the
    gradients. (This rescues rounding in the solve, not rounding in ``A``
    itself: build ill-conditioned kernel matrices in float64, as GRAM's
    ``gram_dtype`` does.) A matrix singular even in float64 (eq. 8's plain
    inverse, ``eps = 0``, with duplicated points) gets the minimum-norm
    least-squares solution ``A^+ b``; its gradient then uses ``A^+`` in place
    of ``A^{-1}``, which leaves out the pseudo-inverse's terms for changes of
    the null space.
    """
    chol = tf.linalg.cholesky(a)
    ok = tf.reduce_all(tf.math.is_finite(chol))
    if a.dtype == tf.float64:
        chol64, ok64 = chol, ok
    else:
        chol64 = tf.cond(ok, lambda: tf.cast(chol, tf.float64),
                         lambda: tf.linalg.cholesky(tf.cast(a, tf.float64)))
        ok64 = tf.reduce_all(tf.math.is_finite(chol64))
    # A matrix with NaN or Inf in it (a diverging run) keeps the Cholesky's NaN answer, for
    # the Trainer's divergence guard to see: the eigendecomposition would raise on it.
    singular = tf.logical_and(tf.logical_not(ok64), tf.reduce_all(tf.math.is_finite(a)))

    def solve_with(rhs):
        def fallback():
            rhs64 = tf.cast(rhs, tf.float64)
            # Singular even in float64 (eps = 0 with duplicated points): the
            # minimum-norm least-squares solution, through the pseudo-inverse.
            x64 = tf.cond(singular, lambda: _pinv_solve(tf.cast(a, tf.float64), rhs64),
                          lambda: tf.linalg.cholesky_solve(chol64, rhs64))
            return tf.cast(x64, rhs.dtype)
        return tf.cond(ok, lambda: tf.linalg.cholesky_solve(chol, rhs), fallback)
    x = solve_with(b)

    def grad(g):
        y = solve_with(g)
        da = -tf.matmul(y, x, transpose_b=True)
        # A is read as a symmetric matrix: split the gradient between A_ij and A_ji
        return 0.5 * (da + tf.linalg.matrix_transpose(da)), y

    return x, grad


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
      ``(..., N)`` ratios. Gradients flow through the solve (``spd_solve``).
      If the float32 Cholesky fails (NaN from a near-singular matrix) the
      solve is redone in float64.
    """
    k_qq = tf.convert_to_tensor(k_qq)
    k_qp = tf.convert_to_tensor(k_qp, dtype=k_qq.dtype)
    n = tf.shape(k_qq)[-1]
    m = tf.cast(tf.shape(k_qp)[-1], k_qq.dtype)
    rhs = tf.reduce_sum(k_qp, axis=-1, keepdims=True)  # K_qp 1
    scale = tf.cast(n, k_qq.dtype) / m

    a = k_qq + tf.convert_to_tensor(eps, k_qq.dtype) * tf.eye(n, dtype=k_qq.dtype)
    r = spd_solve(a, rhs)
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
