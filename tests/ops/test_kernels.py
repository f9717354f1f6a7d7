"""Golden tests for ``tfgen.ops.kernels``: hand values of the three bandwidth
parameterisations (METHODS.md §2, ambiguity 5) and NumPy's median."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import gamma_from_bandwidth, gaussian_kernel, gaussian_kernels, median_heuristic

D = np.array([[0.0, 1.0, 4.0], [2.0, 0.5, 9.0]], np.float32)


# --- one kernel ----------------------------------------------------------------

@pytest.mark.parametrize("parameterization, bandwidth, expected", [
    # std s=2:       exp(-d / (2 * 2^2)) = exp(-d / 8)
    ("std", 2.0, np.exp(-D / 8.0)),
    # variance s=2:  exp(-d / (2 * 2))   = exp(-d / 4)
    ("variance", 2.0, np.exp(-D / 4.0)),
    # gamma g=2:     exp(-2 d)
    ("gamma", 2.0, np.exp(-2.0 * D)),
])
def test_gaussian_kernel_parameterizations(parameterization, bandwidth, expected):
    got = gaussian_kernel(D, bandwidth, parameterization).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_gaussian_kernel_hand_values():
    # d = 1, std 1 -> exp(-1/2) = 0.6065306597; d = 4, variance 0.5 -> exp(-4) = 0.0183156389
    assert gaussian_kernel(tf.constant(1.0), 1.0, "std").numpy() == pytest.approx(0.6065306597, rel=1e-6)
    assert gaussian_kernel(tf.constant(4.0), 0.5, "variance").numpy() == pytest.approx(0.0183156389, rel=1e-6)
    assert gaussian_kernel(tf.constant(0.0), 3.0, "gamma").numpy() == 1.0


def test_std_and_variance_agree_when_variance_is_std_squared():
    np.testing.assert_allclose(gaussian_kernel(D, 1.5, "std").numpy(),
                               gaussian_kernel(D, 2.25, "variance").numpy(), rtol=1e-6)


def test_gaussian_kernel_keeps_float64():
    got = gaussian_kernel(D.astype(np.float64), 0.3, "std")
    assert got.dtype == tf.float64
    # Log space at float32 precision: the exact float64 check is below.
    np.testing.assert_allclose(np.log(got.numpy()), -D.astype(np.float64) / (2 * 0.09), rtol=1e-6)


@pytest.mark.parametrize("parameterization, bandwidth, d", [
    ("std", 0.3, 1.8),       # gamma = 1 / (2 * 0.09) = 50/9, not a float32 number
    ("variance", 0.1, 2.0),  # gamma = 1 / (2 * 0.1) = 5, but 0.1 itself is rounded
    ("gamma", 0.1, 100.0),   # gamma = 0.1
])
def test_float64_kernel_uses_a_float64_gamma(parameterization, bandwidth, d):
    # Each case is exp(-10) in exact arithmetic.
    got = gaussian_kernel(tf.constant(d, tf.float64), bandwidth, parameterization).numpy()
    assert got == pytest.approx(math.exp(-10.0), rel=1e-12)


@pytest.mark.parametrize("parameterization, bandwidth, d", [
    ("std", 0.3, 1.8), ("variance", 0.1, 2.0), ("gamma", 0.1, 100.0)])
def test_float64_stacked_kernels_use_a_float64_gamma(parameterization, bandwidth, d):
    # The same exp(-10) cases as above, through gaussian_kernels.
    got = gaussian_kernels(tf.constant([[d]], tf.float64), [bandwidth], parameterization).numpy()
    assert got[0, 0, 0] == pytest.approx(math.exp(-10.0), rel=1e-12)


def test_gaussian_kernel_takes_a_tensor_bandwidth():
    # e.g. the median heuristic's output
    got = gaussian_kernel(D, tf.constant(2.0), "std").numpy()
    np.testing.assert_allclose(got, np.exp(-D / 8.0), rtol=1e-6)


@pytest.mark.parametrize("parameterization, bandwidth, gamma", [
    ("std", 0.5, 2.0), ("variance", 0.5, 1.0), ("gamma", 0.5, 0.5)])
def test_gamma_from_bandwidth(parameterization, bandwidth, gamma):
    assert float(gamma_from_bandwidth(bandwidth, parameterization)) == pytest.approx(gamma)


# --- stacked kernels -----------------------------------------------------------

@pytest.mark.parametrize("parameterization, gamma_of", [
    ("std", lambda s: 1.0 / (2.0 * s * s)),
    ("variance", lambda s: 1.0 / (2.0 * s)),
    ("gamma", lambda s: s),
])
def test_gaussian_kernels_stack_in_bandwidth_order(parameterization, gamma_of):
    bws = [0.5, 4.0, 1.0]  # deliberately unsorted
    got = gaussian_kernels(D, bws, parameterization).numpy()
    assert got.shape == (3, 2, 3)
    for s, bw in enumerate(bws):
        np.testing.assert_allclose(got[s], np.exp(-gamma_of(bw) * D), rtol=1e-6)


@pytest.mark.parametrize("parameterization", ["std", "variance", "gamma"])
def test_gaussian_kernels_scalar_bandwidth_gives_one_slice(parameterization):
    got = gaussian_kernels(D, 2.0, parameterization).numpy()
    assert got.shape == (1, 2, 3)
    np.testing.assert_allclose(got[0], gaussian_kernel(D, 2.0, parameterization).numpy(), rtol=1e-6)


def test_gaussian_kernels_std_inside_tf_function():
    @tf.function
    def f(d):
        return gaussian_kernels(d, [1.0, 2.0], "std")

    got = f(tf.constant(D)).numpy()
    np.testing.assert_allclose(got[1], np.exp(-D / 8.0), rtol=1e-6)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [0.0], -2.0, [float("nan")]])
def test_gaussian_kernels_bad_bandwidths_raise(bad):
    with pytest.raises(ValueError, match="bandwidths"):
        gaussian_kernels(D, bad, "gamma")


def test_unknown_parameterization_raises():
    with pytest.raises(ValueError, match="parameterization"):
        gaussian_kernel(D, 1.0, "sigma")
    with pytest.raises(ValueError, match="parameterization"):
        gaussian_kernels(D, [1.0], "sigma")
    with pytest.raises(ValueError, match="parameterization"):
        gamma_from_bandwidth(1.0, "bandwidth")


@pytest.mark.parametrize("parameterization", ["std", "variance", "gamma"])
def test_gaussian_kernel_negative_bandwidth_raises(parameterization):
    with pytest.raises(ValueError):
        gaussian_kernel(D, -1.0, parameterization)


# --- median heuristic -----------------------------------------------------------

@pytest.mark.parametrize("n", [7, 8])  # odd: the middle value; even: mean of the two middle
def test_median_heuristic_is_sqrt_of_numpy_median(n):
    d = np.random.RandomState(n).uniform(0.0, 10.0, size=n).astype(np.float32)
    got = median_heuristic(d).numpy()
    assert got == pytest.approx(math.sqrt(np.median(d)), rel=1e-6)


def test_median_heuristic_hand_values():
    # odd  [9, 1, 4]     -> median 4   -> 2
    # even [9, 1, 4, 16] -> (4+9)/2 = 6.5 -> sqrt(6.5)
    assert median_heuristic(np.array([9.0, 1.0, 4.0], np.float32)).numpy() == pytest.approx(2.0)
    assert median_heuristic(np.array([9.0, 1.0, 4.0, 16.0], np.float32)).numpy() == pytest.approx(
        math.sqrt(6.5), rel=1e-6)


def test_median_heuristic_over_all_entries_of_a_distance_matrix():
    # All N*N entries, diagonal zeros included (kmm.jl's get_heuristic_σ).
    x = np.random.RandomState(0).randn(6, 2)
    d = ((x[:, None] - x[None]) ** 2).sum(-1).astype(np.float32)
    assert median_heuristic(d).numpy() == pytest.approx(math.sqrt(np.median(d)), rel=1e-5)


def test_median_heuristic_passes_no_gradient():
    d = tf.Variable([1.0, 4.0, 9.0])
    with tf.GradientTape() as tape:
        s = median_heuristic(d)
    assert tape.gradient(s, d) is None


def test_gaussian_kernels_takes_a_bandwidth_tensor_inside_tf_function():
    """A graph-computed bandwidth (the models' median heuristic) gives the same
    stack as the same values passed as a Python list."""
    d = tf.constant(np.random.default_rng(0).uniform(0, 4, size=(5, 7)), tf.float32)

    @tf.function
    def with_tensor(bw):
        return gaussian_kernels(d, bw, "variance")

    np.testing.assert_allclose(with_tensor(tf.constant([0.5, 2.0])),
                               gaussian_kernels(d, [0.5, 2.0], "variance"), rtol=1e-6)
