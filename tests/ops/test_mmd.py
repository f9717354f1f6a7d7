"""Golden tests for ``tfgen.ops.mmd``: MMD^2 against NumPy double loops over
all pairs (Gretton et al. 2012, eq. 3 for the U-statistic), with a sum of
Gaussian kernels over several bandwidths."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import mmd, mmd2, mmd2_from_kernels

STDS = [0.5, 1.0, 2.0]
GAMMAS = [1.0 / (2.0 * s * s) for s in STDS]  # exp(-gamma d) = exp(-d / (2 s^2))

# The same three kernels written in each parameterisation.
PARAMETERIZATIONS = [
    pytest.param("std", STDS, id="std"),
    pytest.param("variance", [s * s for s in STDS], id="variance"),
    pytest.param("gamma", GAMMAS, id="gamma"),
]


def k_sum(a, b, gammas):
    """sum_g exp(-g ||a - b||^2) for two single points."""
    d = float(np.sum((np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()) ** 2))
    return sum(math.exp(-g * d) for g in gammas)


def loop_mmd2(x, y, gammas, estimator):
    n, m = len(x), len(y)
    sxx = sum(k_sum(x[i], x[j], gammas) for i in range(n) for j in range(n)
              if estimator == "biased" or i != j)
    syy = sum(k_sum(y[i], y[j], gammas) for i in range(m) for j in range(m)
              if estimator == "biased" or i != j)
    sxy = sum(k_sum(x[i], y[j], gammas) for i in range(n) for j in range(m))
    if estimator == "biased":
        return sxx / n ** 2 + syy / m ** 2 - 2.0 * sxy / (n * m)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


def _rand(shape, seed, shift=0.0):
    return (np.random.RandomState(seed).randn(*shape) + shift).astype(np.float32)


# --- values against the double loop ---------------------------------------------

@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("parameterization, bandwidths", PARAMETERIZATIONS)
def test_mmd2_matches_double_loop(parameterization, bandwidths, estimator):
    x, y = _rand((9, 3), 0), _rand((6, 3), 1, shift=0.7)  # N != M
    got = mmd2(x, y, bandwidths, parameterization, estimator).numpy()
    assert got == pytest.approx(loop_mmd2(x, y, GAMMAS, estimator), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd2_image_shaped_inputs(estimator):
    x, y = _rand((5, 4, 4, 1), 2), _rand((7, 4, 4, 1), 3, shift=0.3)
    got = mmd2(x, y, [4.0, 16.0], "variance", estimator).numpy()
    assert got == pytest.approx(loop_mmd2(x, y, [1 / 8.0, 1 / 32.0], estimator), rel=1e-5, abs=1e-6)


def test_mmd2_single_bandwidth_hand_value():
    # x = {0}, y = {1}, gamma = 1:  k(0) + k(0) - 2 k(1) = 2 - 2/e.
    got = mmd2(np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32), 1.0, "gamma").numpy()
    assert got == pytest.approx(2.0 - 2.0 / math.e, rel=1e-6)


def test_mmd2_sums_over_bandwidths_hand_value():
    # gammas {1, 2}: k(0) = 2, k(1) = e^-1 + e^-2;  MMD^2 = 2 + 2 - 2 (e^-1 + e^-2).
    got = mmd2(np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32), [1.0, 2.0], "gamma").numpy()
    assert got == pytest.approx(4.0 - 2.0 * (math.exp(-1) + math.exp(-2)), rel=1e-6)


def test_mmd2_from_kernels_hand_values():
    # k_xx = [[1, .5], [.5, 1]], k_yy = [[1, .2], [.2, 1]], k_xy = [[.1, .3], [.3, .1]]
    # biased:   (3/4) + (2.4/4) - 2 (0.8/4) = 0.75 + 0.6 - 0.4 = 0.95
    # unbiased: off-diagonals only: 1.0/2 + 0.4/2 - 2 (0.8/4) = 0.5 + 0.2 - 0.4 = 0.3
    kxx = tf.constant([[1.0, 0.5], [0.5, 1.0]])
    kyy = tf.constant([[1.0, 0.2], [0.2, 1.0]])
    kxy = tf.constant([[0.1, 0.3], [0.3, 0.1]])
    assert mmd2_from_kernels(kxx, kxy, kyy, "biased").numpy() == pytest.approx(0.95, rel=1e-6)
    assert mmd2_from_kernels(kxx, kxy, kyy, "unbiased").numpy() == pytest.approx(0.3, rel=1e-6)


def test_mmd2_from_kernels_unequal_sizes_unbiased():
    # N = 3, M = 2; the cross term averages all N*M entries.
    rs = np.random.RandomState(4)
    a, b = rs.rand(3, 3), rs.rand(2, 2)
    kxx, kyy = (a + a.T) / 2, (b + b.T) / 2
    kxy = rs.rand(3, 2)
    expected = ((kxx.sum() - np.trace(kxx)) / 6 + (kyy.sum() - np.trace(kyy)) / 2
                - 2 * kxy.mean())
    assert mmd2_from_kernels(kxx, kxy, kyy, "unbiased").numpy() == pytest.approx(expected, rel=1e-12)


# --- statistical behaviour ---------------------------------------------------------

@pytest.mark.parametrize("parameterization, bandwidths", PARAMETERIZATIONS)
def test_biased_mmd2_of_identical_sets_is_zero(parameterization, bandwidths):
    # V-statistic: mean(K) + mean(K) - 2 mean(K) = 0 exactly in exact arithmetic.
    # k_xy is computed without the exact-zero diagonal of k_xx, so allow rounding.
    x = _rand((20, 3), 5)
    assert abs(mmd2(x, x.copy(), bandwidths, parameterization).numpy()) < 1e-6


def test_unbiased_is_centred_where_biased_is_not():
    # 40 independent pairs of samples of one distribution (N = M = 30, 2-D).
    # The U-statistic has mean 0: its average must sit within 3 standard errors
    # of 0. The V-statistic is biased upward by about 2 (S - E k) / N > 0
    # (S = number of kernels), so its average must be many standard errors above 0.
    u, v = [], []
    for t in range(40):
        x, y = _rand((30, 2), 100 + t), _rand((30, 2), 200 + t)
        u.append(mmd2(x, y, GAMMAS, "gamma", "unbiased").numpy())
        v.append(mmd2(x, y, GAMMAS, "gamma", "biased").numpy())
    u, v = np.array(u), np.array(v)
    se_u = u.std(ddof=1) / math.sqrt(len(u))
    assert abs(u.mean()) < 3 * se_u
    assert v.mean() > 10 * v.std(ddof=1) / math.sqrt(len(v))
    assert np.all(v > u)  # the diagonal terms (k = S) only ever add


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_shifted_distributions_give_clearly_positive_mmd2(estimator):
    x, y0 = _rand((200, 2), 6), _rand((200, 2), 7)
    y1 = _rand((200, 2), 8, shift=1.0)
    same = mmd2(x, y0, GAMMAS, "gamma", estimator).numpy()
    shifted = mmd2(x, y1, GAMMAS, "gamma", estimator).numpy()
    assert shifted > 0.1
    assert abs(same) < 0.1 * shifted


# --- mmd = sqrt(mmd2) ------------------------------------------------------------

@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("parameterization, bandwidths", PARAMETERIZATIONS)
def test_mmd_is_sqrt_of_mmd2(parameterization, bandwidths, estimator):
    x, y = _rand((8, 2), 9), _rand((8, 2), 10, shift=1.0)
    m2 = loop_mmd2(x, y, GAMMAS, estimator)
    assert m2 > 0
    got = mmd(x, y, bandwidths, parameterization, estimator).numpy()
    assert got == pytest.approx(math.sqrt(m2), rel=1e-5)


def test_mmd_floors_a_negative_unbiased_estimate():
    # A draw (found by trying seeds) where the U-statistic is negative; mmd is then sqrt(floor).
    x, y = _rand((10, 2), 11), _rand((10, 2), 111)
    assert mmd2(x, y, GAMMAS, "gamma", "unbiased").numpy() < 0
    assert mmd(x, y, GAMMAS, "gamma", "unbiased", floor=1e-12).numpy() == pytest.approx(1e-6, rel=1e-5)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("parameterization, bandwidths", [
    pytest.param("std", None, id="default-std"),
    pytest.param("gamma", GAMMAS, id="gamma"),
])
def test_mmd_gradient_is_finite_when_x_equals_y(parameterization, bandwidths, estimator):
    # sqrt has an infinite slope at 0; the floor must keep the gradient finite.
    x = tf.Variable(_rand((12, 3), 13))
    y = tf.Variable(_rand((12, 3), 13))
    kwargs = {} if bandwidths is None else {"bandwidths": bandwidths, "parameterization": parameterization}
    with tf.GradientTape() as tape:
        loss = mmd(x, y, estimator=estimator, **kwargs)
    gx, gy = tape.gradient(loss, [x, y])
    assert np.isfinite(loss.numpy())
    assert gx is not None and gy is not None
    assert np.all(np.isfinite(gx.numpy())) and np.all(np.isfinite(gy.numpy()))


def test_biased_mmd2_gradient_matches_closed_form():
    # d/dx_i of the V-statistic with k = exp(-g ||a - b||^2), dk/da = -2 g (a - b) k:
    #   (2/N^2) sum_j dk(x_i, x_j)/dx_i - (2/(N M)) sum_j dk(x_i, y_j)/dx_i
    # (the factor 2 on the first term: x_i appears as both arguments of k_xx).
    x, y = _rand((5, 2), 14).astype(np.float64), _rand((4, 2), 15, shift=0.5).astype(np.float64)
    gammas = [0.5, 2.0]
    n, m = len(x), len(y)
    expected = np.zeros_like(x)
    for i in range(n):
        for g in gammas:
            for j in range(n):
                diff = x[i] - x[j]
                expected[i] += 2.0 / n ** 2 * (-2 * g * diff * math.exp(-g * diff @ diff))
            for j in range(m):
                diff = x[i] - y[j]
                expected[i] -= 2.0 / (n * m) * (-2 * g * diff * math.exp(-g * diff @ diff))
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = mmd2(xv, y, gammas, "gamma", "biased")
    np.testing.assert_allclose(tape.gradient(loss, xv).numpy(), expected, rtol=1e-8, atol=1e-12)


def test_unknown_estimator_raises():
    x = _rand((3, 2), 16)
    with pytest.raises(ValueError, match="estimator"):
        mmd2(x, x, 1.0, "gamma", estimator="linear")
    with pytest.raises(ValueError, match="estimator"):
        mmd(x, x, 1.0, "gamma", estimator="linear")
    k = tf.eye(3)
    with pytest.raises(ValueError, match="estimator"):
        mmd2_from_kernels(k, k, k, "Biased")
