"""Golden tests for ``tfgen.ops.density_ratio`` (GRAM eq. 8) and
``pearson_divergence`` (GRAM eq. 9): direct NumPy solves in float64, hand
values, and the ratio of two known Gaussians."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import density_ratio, pairwise_sq_distances, pearson_divergence


def np_gram(a, b, sigma):
    """exp(-||a_i - b_j||^2 / (2 sigma^2)) by broadcasting in float64 (not the matmul form)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2.0 * sigma ** 2))


def np_ratio(k_qq, k_qp, eps):
    """(N/M) (K_qq + eps I)^{-1} K_qp 1, solved by LU in float64."""
    k_qq, k_qp = np.asarray(k_qq, np.float64), np.asarray(k_qp, np.float64)
    n, m = k_qp.shape
    return (n / m) * np.linalg.solve(k_qq + eps * np.eye(n), k_qp @ np.ones(m))


def _points(n, d, seed, shift=0.0):
    return np.random.RandomState(seed).randn(n, d) + shift


# --- (a) against a direct solve -----------------------------------------------------

def test_hand_values():
    # 1x1: K_qq = [1], K_qp = [.5, .3] (M = 2): r = (1/2) * 0.8 / (1 + eps)
    assert density_ratio([[1.0]], [[0.5, 0.3]], eps=0.0).numpy() == pytest.approx([0.4], rel=1e-6)
    assert density_ratio([[1.0]], [[0.5, 0.3]], eps=1.0).numpy() == pytest.approx([0.2], rel=1e-6)
    # 2x2: [[1, .5], [.5, 1]]^{-1} = (4/3) [[1, -.5], [-.5, 1]]; K_qp 1 = [1, 0];
    # solve = [4/3, -2/3]; N/M = 2/1  ->  r = [8/3, -4/3]
    got = density_ratio([[1.0, 0.5], [0.5, 1.0]], [[1.0], [0.0]], eps=0.0).numpy()
    np.testing.assert_allclose(got, [8 / 3, -4 / 3], rtol=1e-6)


@pytest.mark.parametrize("n, m", [(6, 6), (5, 9), (8, 3)])  # N != M: the N/M scale matters
@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_matches_numpy_solve_float64(n, m, eps):
    q, p = _points(n, 2, n), _points(m, 2, 100 + m, shift=0.5)
    k_qq, k_qp = np_gram(q, q, 1.0), np_gram(q, p, 1.0)
    got = density_ratio(k_qq, k_qp, eps=eps)
    assert got.dtype == tf.float64 and got.shape == (n,)
    # rtol 1e-6, not 1e-12: eps reaches the float64 solve rounded to float32
    # (see test_float64_eps_is_not_rounded_to_float32).
    np.testing.assert_allclose(got.numpy(), np_ratio(k_qq, k_qp, eps), rtol=1e-6, atol=1e-9)


def test_float64_eps_is_not_rounded_to_float32():
    # K_qq = [0], K_qp = [1], N = M = 1: r = 1 / eps = 10 exactly.
    got = density_ratio(np.zeros((1, 1)), np.ones((1, 1)), eps=0.1).numpy()
    assert got[0] == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize("n, m", [(6, 6), (5, 9)])
def test_matches_numpy_solve_float32(n, m):
    q, p = _points(n, 2, n), _points(m, 2, 100 + m, shift=0.5)
    k_qq, k_qp = np_gram(q, q, 1.0), np_gram(q, p, 1.0)
    got = density_ratio(k_qq.astype(np.float32), k_qp.astype(np.float32), eps=0.1)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), np_ratio(k_qq, k_qp, 0.1), rtol=1e-4, atol=1e-5)


def test_batched_over_bandwidths():
    # (S, N, N) and (S, N, M) stacks, one solve per bandwidth (GRAM then averages over S).
    q, p = _points(7, 3, 0), _points(4, 3, 1, shift=0.3)
    sigmas = [0.5, 1.0, 3.0]
    k_qq = np.stack([np_gram(q, q, s) for s in sigmas])
    k_qp = np.stack([np_gram(q, p, s) for s in sigmas])
    got = density_ratio(k_qq, k_qp, eps=1e-3).numpy()
    assert got.shape == (3, 7)
    for s in range(3):
        np.testing.assert_allclose(got[s], np_ratio(k_qq[s], k_qp[s], 1e-3), rtol=1e-5)


# --- (b), (c) the ratio of known densities ---------------------------------------------

def _gaussian_ratio_estimate(n, m, mu, seed, sigma=1.0, eps=1.0):
    rs = np.random.RandomState(seed)
    q = rs.randn(n, 1).astype(np.float32)          # q = N(0, 1), the denominator
    p = (rs.randn(m, 1) + mu).astype(np.float32)    # p = N(mu, 1), the numerator
    k_qq = tf.exp(-pairwise_sq_distances(q) / (2.0 * sigma ** 2))
    k_qp = tf.exp(-pairwise_sq_distances(q, p) / (2.0 * sigma ** 2))
    return q[:, 0], density_ratio(k_qq, k_qp, eps=eps).numpy()


def test_ratio_of_two_gaussians_matches_the_true_ratio():
    # p/q for N(0.5, 1) over N(0, 1) is exp(0.5 x - 0.125), in [0.53, 1.46] on |x| < 1.
    # Settings: N = M = 2000, sigma = 1 (a std, about the data's scale) and
    # eps = 1. The ridge matters: K_qq's eigenvalues grow with N, so the
    # training default eps = 1e-3 (batches of ~200) is nearly unregularised at
    # N = 2000; the fit then chases sampling noise (median relative error
    # 0.09-0.12 over seeds, 90th percentile up to 0.3, and some negative r).
    # eps = 1 ~ N * 1e-3, the usual KMM scaling, gave median relative errors
    # of 0.01-0.05 and 90th percentiles <= 0.12 over 8 seeds (and mean r in
    # [0.995, 0.998]: the ridge shrinks r slightly toward 0). The bounds below
    # leave about 2x headroom on those figures.
    mu = 0.5
    x, r = _gaussian_ratio_estimate(2000, 2000, mu, seed=0)
    true = np.exp(mu * x - mu ** 2 / 2)
    inner = np.abs(x) < 1.0                      # where q has most of its mass
    rel = np.abs(r[inner] - true[inner]) / true[inner]
    assert np.median(rel) < 0.10
    assert np.percentile(rel, 90) < 0.25
    # The ratio increases with x: compare the mean r on either side of 0.
    assert r[(x > 0.3) & (x < 1)].mean() > r[(x > -1) & (x < -0.3)].mean() + 0.3
    # E_q[p/q] = 1.
    assert abs(r.mean() - 1.0) < 0.02


def test_ratio_is_not_the_inverse_ratio():
    # Guards the orientation: the estimate is p/q, not q/p. On x in (0.5, 1)
    # p/q = exp(0.5 x - 0.125) lies in [1.13, 1.46] while q/p lies in [0.69, 0.88]
    # (observed median of r there: 1.31).
    x, r = _gaussian_ratio_estimate(2000, 2000, 0.5, seed=1)
    assert np.median(r[(x > 0.5) & (x < 1.0)]) > 1.1


def test_ratio_with_unequal_sample_sizes():
    # N = 2000 q points, M = 1500 p points: the N/M scale keeps E_q[r] = 1.
    mu = 0.5
    x, r = _gaussian_ratio_estimate(2000, 1500, mu, seed=2)
    true = np.exp(mu * x - mu ** 2 / 2)
    inner = np.abs(x) < 1.0
    assert np.median(np.abs(r[inner] - true[inner]) / true[inner]) < 0.10
    assert abs(r.mean() - 1.0) < 0.02


def test_ratio_is_one_for_one_distribution():
    # p = q = N(0, 1): the true ratio is 1 everywhere. Observed over 8 seeds:
    # mean r in [0.997, 0.999], median |r - 1| on |x| < 1 at most 0.06.
    x, r = _gaussian_ratio_estimate(2000, 2000, 0.0, seed=3)
    assert abs(r.mean() - 1.0) < 0.02
    assert np.median(np.abs(r[np.abs(x) < 1.0] - 1.0)) < 0.10


# --- (d) gradients ---------------------------------------------------------------------

def _ratio_from_points(q, p, sigma, eps):
    k_qq = tf.exp(-pairwise_sq_distances(q) / (2.0 * sigma ** 2))
    k_qp = tf.exp(-pairwise_sq_distances(q, p) / (2.0 * sigma ** 2))
    return density_ratio(k_qq, k_qp, eps=eps)


def test_gradient_wrt_points_is_finite():
    q = tf.Variable(_points(50, 2, 0).astype(np.float32))
    p = tf.Variable(_points(40, 2, 1, shift=0.5).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = pearson_divergence(_ratio_from_points(q, p, 1.0, 1e-3))
    gq, gp = tape.gradient(loss, [q, p])
    assert np.all(np.isfinite(gq.numpy())) and np.all(np.isfinite(gp.numpy()))
    assert np.any(gq.numpy() != 0) and np.any(gp.numpy() != 0)


def test_gradient_wrt_points_matches_finite_differences():
    # float64 central differences of sum(w * r) through kernels and the solve.
    q0, p0 = _points(6, 2, 2), _points(5, 2, 3, shift=0.5)
    w = np.random.RandomState(4).randn(6)

    def objective(q, p):
        return tf.reduce_sum(w * _ratio_from_points(q, p, 1.0, 0.1))

    qv, pv = tf.Variable(q0), tf.Variable(p0)
    with tf.GradientTape() as tape:
        f = objective(qv, pv)
    gq, gp = [g.numpy() for g in tape.gradient(f, [qv, pv])]
    h = 1e-6
    for arr, grad, other_is_q in ((q0, gq, False), (p0, gp, True)):
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            if other_is_q:
                fd[idx] = (objective(q0, plus) - objective(q0, minus)).numpy() / (2 * h)
            else:
                fd[idx] = (objective(plus, p0) - objective(minus, p0)).numpy() / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


# --- (e) the float64 fallback ----------------------------------------------------------

def _near_singular_kernels():
    # 20 points and 20 copies perturbed by 1e-4: K_qq has ~20 eigenvalues
    # near 1e-8, below float32 resolution, so the float32 Cholesky of
    # K_qq + 1e-7 I breaks down while the float64 one does not.
    rs = np.random.RandomState(0)
    q = rs.randn(20, 2)
    q = np.concatenate([q, q + 1e-4 * rs.randn(20, 2)])
    p = rs.randn(30, 2) + 0.3
    return np_gram(q, q, 1.0).astype(np.float32), np_gram(q, p, 1.0).astype(np.float32)


def _assert_solves_the_system(r, k_qq, k_qp, eps):
    # The system is ill-conditioned (cond ~ 1e9: the float32-rounded K_qq has
    # eigenvalues down to -8e-8, so K_qq + 1e-7 I is barely positive definite),
    # and the solution moves by O(1) under a 1e-8 change of the right-hand side
    # (e.g. K_qp 1 summed in float32 vs float64). So compare residuals, which a
    # backward-stable float64 solve keeps small, not solutions: in float64,
    # ||(K_qq + eps I) r (M/N) - K_qp 1|| / ||K_qp 1|| (observed ~2e-6, most
    # of it from rounding r to float32; NaN or garbage would be O(1)).
    n, m = k_qp.shape
    a = k_qq.astype(np.float64) + eps * np.eye(n)
    b = k_qp.astype(np.float64).sum(1)
    x = np.asarray(r, np.float64) * (m / n)
    assert np.linalg.norm(a @ x - b) / np.linalg.norm(b) < 2e-5


def test_float64_fallback_rescues_a_failed_float32_cholesky():
    k_qq, k_qp = _near_singular_kernels()
    eps = 1e-7
    a32 = tf.constant(k_qq) + eps * tf.eye(40)
    assert not np.all(np.isfinite(np.tril(tf.linalg.cholesky(a32).numpy())))  # precondition
    got = density_ratio(k_qq, k_qp, eps=eps)
    assert got.dtype == tf.float32
    assert np.all(np.isfinite(got.numpy()))
    _assert_solves_the_system(got.numpy(), k_qq, k_qp, eps)


def test_float64_fallback_inside_tf_function():
    k_qq, k_qp = _near_singular_kernels()
    r = tf.function(lambda a, b: density_ratio(a, b, eps=1e-7))(tf.constant(k_qq), tf.constant(k_qp))
    assert np.all(np.isfinite(r.numpy()))
    _assert_solves_the_system(r.numpy(), k_qq, k_qp, 1e-7)


def _fallback_gradients(compile_fn):
    k_qq, k_qp = _near_singular_kernels()
    kqq, kqp = tf.Variable(k_qq), tf.Variable(k_qp)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(density_ratio(kqq, kqp, eps=1e-7))
        return tape.gradient(loss, [kqq, kqp])

    return [g.numpy() for g in (tf.function(step) if compile_fn else step)()]


def test_float64_fallback_gradient_is_finite_eagerly():
    for g in _fallback_gradients(compile_fn=False):
        assert np.all(np.isfinite(g))


def test_float64_fallback_gradient_is_finite_in_tf_function():
    for g in _fallback_gradients(compile_fn=True):
        assert np.all(np.isfinite(g))


def test_singular_kqq_with_zero_eps_stays_finite():
    """Eq. 8's plain inverse (eps = 0) with duplicated q points: K_qq is singular
    and the Cholesky fails in float32 and float64; the solve falls back to the
    pseudo-inverse, whose answer is finite, consistent and of minimum norm."""
    q = _points(10, 2, 5)
    q = np.concatenate([q, q[:3]])                 # three exact duplicates
    p = _points(12, 2, 6)
    k_qq, k_qp = np_gram(q, q, 1.0), np_gram(q, p, 1.0)
    got = density_ratio(k_qq.astype(np.float32), k_qp.astype(np.float32), eps=0.0).numpy()
    assert np.all(np.isfinite(got))
    # Any solution must reproduce K_qq r = (N/M) K_qp 1 (the minimum-norm one is a valid choice).
    np.testing.assert_allclose(k_qq @ got, (13 / 12) * k_qp.sum(1), rtol=1e-3, atol=1e-3)
    # the minimum-norm solution: duplicated points share their ratio
    np.testing.assert_allclose(got[10:], got[:3], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, (13 / 12) * np.linalg.pinv(k_qq) @ k_qp.sum(1), rtol=1e-3, atol=1e-3)
    # and in float64, where the first Cholesky is already the float64 one
    got64 = density_ratio(k_qq, k_qp, eps=0.0).numpy()
    np.testing.assert_allclose(got64, got, rtol=1e-3, atol=1e-3)
    # the gradient through the fallback: d sum(r) / d K_qp = (N/M) A^+ 1 1^T, exact for b
    k_qp_t = tf.constant(k_qp.astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(k_qp_t)
        total = tf.reduce_sum(density_ratio(tf.constant(k_qq.astype(np.float32)), k_qp_t, eps=0.0))
    want = (13 / 12) * np.linalg.pinv(k_qq) @ np.ones((13, 1)) @ np.ones((1, 12))
    np.testing.assert_allclose(tape.gradient(total, k_qp_t).numpy(), want, rtol=1e-3, atol=1e-3)
    # a matrix with a NaN in it is not singular but broken: NaN out (no error), for the
    # Trainer's divergence guard, in and out of a graph
    broken = k_qq.astype(np.float32).copy()
    broken[0, 1] = broken[1, 0] = np.nan
    for fn in (density_ratio, tf.function(density_ratio)):
        assert np.all(np.isnan(fn(broken, k_qp.astype(np.float32), eps=0.0).numpy()))


# --- Pearson divergence (eq. 9) -----------------------------------------------------------

R = [0.5, 1.5, 2.0]
# (r - 1)^2 = 0.25, 0.25, 1.0  ->  mean 0.5;   sum r = 4.0;   mean r = 4/3


@pytest.mark.parametrize("lam, positivity, expected", [
    (1.0, "sum", 0.5 + 4.0),
    (0.5, "sum", 0.5 + 0.5 * 4.0),
    (1.0, "mean", 0.5 + 4.0 / 3.0),
    (2.0, "mean", 0.5 + 2.0 * 4.0 / 3.0),
    (0.0, "sum", 0.5),
    (0.0, "mean", 0.5),
])
def test_pearson_divergence_hand_values(lam, positivity, expected):
    got = pearson_divergence(tf.constant(R), lam=lam, positivity=positivity).numpy()
    assert got == pytest.approx(expected, rel=1e-6)


def test_pearson_divergence_defaults_are_sum_and_lambda_one():
    assert pearson_divergence(tf.constant(R)).numpy() == pytest.approx(4.5, rel=1e-6)


def test_pearson_divergence_reduces_over_the_last_axis():
    # Row 2: r = [1, 1, 1]: (r-1)^2 = 0, sum r = 3.
    got = pearson_divergence(tf.constant([R, [1.0, 1.0, 1.0]])).numpy()
    np.testing.assert_allclose(got, [4.5, 3.0], rtol=1e-6)


def test_pearson_divergence_against_numpy_random():
    r = np.random.RandomState(7).randn(2, 3, 11)
    got = pearson_divergence(r, lam=0.3, positivity="mean").numpy()
    np.testing.assert_allclose(got, ((r - 1) ** 2).mean(-1) + 0.3 * r.mean(-1), rtol=1e-12)


def test_pearson_divergence_unknown_positivity_raises():
    with pytest.raises(ValueError, match="positivity"):
        pearson_divergence(tf.constant(R), positivity="clip")


# --- the hand-written gradient of the SPD solve ---------------------------------------
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_spd_solve_gradient_matches_autodiff_of_a_general_solve(dtype):
    """spd_solve's custom gradient equals TF's autodiff through tf.linalg.solve,
    for a symmetric A built from M (so both see the same function of M), batched."""
    from tfgen.ops.density_ratio import spd_solve

    rng = np.random.default_rng(3)
    m = tf.constant(rng.normal(size=(2, 6, 6)), dtype)
    b = tf.constant(rng.normal(size=(2, 6, 1)), dtype)
    w = tf.constant(rng.normal(size=(2, 6, 1)), dtype)

    def loss(solve):
        with tf.GradientTape() as tape:
            tape.watch([m, b])
            a = tf.matmul(m, m, transpose_b=True) + 0.5 * tf.eye(6, dtype=dtype)
            out = tf.reduce_sum(w * solve(a, b))
        return out, tape.gradient(out, [m, b])

    v1, (gm1, gb1) = loss(spd_solve)
    v2, (gm2, gb2) = loss(tf.linalg.solve)
    tol = 1e-10 if dtype == tf.float64 else 2e-4
    np.testing.assert_allclose(v1, v2, rtol=tol)
    np.testing.assert_allclose(gm1, gm2, rtol=tol, atol=tol)
    np.testing.assert_allclose(gb1, gb2, rtol=tol, atol=tol)
