"""MMD permutation two-sample test (Gretton et al. 2012): statistic, null, calibration, power."""

import numpy as np
import pytest
import tensorflow as tf

from tfgen import ops
from tfgen.metrics import mmd_statistic, mmd_two_sample_test
from tfgen.metrics.two_sample import permutation_mmd2


def ref_mmd2(x, y, bandwidths, parameterization="std", estimator="unbiased"):
    """tfgen.ops.mmd2 in float64 with the bandwidths stated as gammas, exp(-gamma d^2).

    (Stating them as gammas sidesteps ops.gaussian_kernels failing on a list
    of "std" bandwidths, a bug reported to the lead; the kernel is the same.)
    """
    conv = {"std": lambda b: 1 / (2 * b ** 2), "variance": lambda b: 1 / (2 * b),
            "gamma": lambda b: b}[parameterization]
    gammas = [float(conv(b)) for b in np.atleast_1d(bandwidths)]
    return float(ops.mmd2(np.asarray(x, np.float64), np.asarray(y, np.float64), gammas,
                          "gamma", estimator))


def gauss(n, d=5, shift=0.0, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_same_distribution_is_not_rejected():
    r = mmd_two_sample_test(gauss(300, seed=1), gauss(300, seed=2), n_permutations=300, seed=0)
    assert r["p_value"] > 0.05
    assert r["n_x"] == r["n_y"] == 300 and r["subsampled"] is False
    assert len(r["bandwidths"]) == 1


def test_rejection_rate_under_the_null_is_near_the_level():
    # 40 data sets from H0; an exact test rejects ~5% (binomial: P(>= 6 of 40) ~ 5%, >= 8 ~ 0.6%).
    p = np.array([mmd_two_sample_test(gauss(100, seed=2 * i), gauss(100, seed=2 * i + 1),
                                      n_permutations=200, seed=i)["p_value"] for i in range(40)])
    assert np.mean(p <= 0.05) <= 0.15
    # p-values are ~uniform under H0: a broken null (too small or too large) moves the mean.
    assert 0.3 < p.mean() < 0.7


def test_shifted_mean_is_rejected():
    r = mmd_two_sample_test(gauss(300, seed=1), gauss(300, shift=0.5, seed=2), n_permutations=200)
    assert r["p_value"] < 0.01
    assert r["p_value"] == pytest.approx(1 / 201)  # no permutation beats it: the +1 floor


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("bandwidths, parameterization", [(None, "std"), ([0.5, 2.0], "std"),
                                                          (4.0, "variance"), (None, "gamma")])
def test_statistic_matches_ops_mmd2(estimator, bandwidths, parameterization):
    x, y = gauss(120, seed=3), gauss(90, shift=0.2, seed=4)
    r = mmd_two_sample_test(x, y, bandwidths=bandwidths, parameterization=parameterization,
                            estimator=estimator, n_permutations=10)
    bws = r["bandwidths"]
    if bandwidths is None:
        z = np.concatenate([x, y])
        sigma = float(ops.median_heuristic(ops.pairwise_sq_distances(z)))
        expected_bw = {"std": sigma, "variance": sigma ** 2, "gamma": 1 / (2 * sigma ** 2)}
        assert bws == pytest.approx([expected_bw[parameterization]])
    else:
        assert bws == pytest.approx(np.atleast_1d(bandwidths).tolist())
    ref = ref_mmd2(x, y, bws, parameterization, estimator)
    assert r["mmd2"] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert mmd_statistic(x, y, bandwidths=bandwidths, parameterization=parameterization,
                         estimator=estimator) == r["mmd2"]


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_null_statistics_match_a_slow_reference(estimator):
    x, y = gauss(40, d=3, seed=5), gauss(30, d=3, shift=0.3, seed=6)
    r = mmd_two_sample_test(x, y, bandwidths=[1.0, 3.0], estimator=estimator,
                            n_permutations=300, seed=7, return_null=True)
    z = np.concatenate([x, y])
    idx = r["null_x_indices"]
    assert idx.shape == (300, 40) and r["null"].shape == (300,)
    for i in [0, 1, 150, 299]:  # spans several permutation batches
        assert len(set(idx[i])) == 40
        rest = np.setdiff1d(np.arange(70), idx[i])
        ref = ref_mmd2(z[idx[i]], z[rest], [1.0, 3.0], "std", estimator)
        assert r["null"][i] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # The splits are random, not all the same.
    assert len({tuple(row) for row in idx}) == 300
    expected_p = (1 + np.sum(r["null"] >= r["mmd2"])) / 301
    assert r["p_value"] == expected_p
    # Same seed, same result; another seed, other permutations.
    again = mmd_two_sample_test(x, y, bandwidths=[1.0, 3.0], estimator=estimator,
                                n_permutations=300, seed=7, return_null=True)
    np.testing.assert_array_equal(again["null"], r["null"])
    other = mmd_two_sample_test(x, y, bandwidths=[1.0, 3.0], estimator=estimator,
                                n_permutations=300, seed=8, return_null=True)
    assert not np.array_equal(other["null_x_indices"], idx)


def test_permutation_mmd2_on_the_identity_split_is_mmd2():
    x, y = gauss(7, d=2, seed=9), gauss(5, d=2, seed=10)
    z = np.concatenate([x, y])
    k = np.asarray(ops.gaussian_kernel(ops.pairwise_sq_distances(z), tf.constant(1.3, tf.float64)))
    mask = np.r_[np.ones(7), np.zeros(5)]
    for est in ("biased", "unbiased"):
        assert permutation_mmd2(k, mask, est)[0] == pytest.approx(ref_mmd2(x, y, 1.3, "std", est), rel=1e-9, abs=1e-12)


def test_subsampling_when_larger_than_max_samples():
    x, y = gauss(500, seed=11), gauss(80, seed=12)
    r = mmd_two_sample_test(x, y, max_samples=100, n_permutations=20, seed=3, return_null=True)
    assert r["subsampled"] is True
    assert (r["n_x"], r["n_y"], r["n_x_input"], r["n_y_input"]) == (100, 80, 500, 80)
    assert r["y_index"] is None
    xi = r["x_index"]
    assert len(np.unique(xi)) == 100 and xi.min() >= 0 and xi.max() < 500
    assert r["null_x_indices"].shape == (20, 100)
    ref = ref_mmd2(x[xi], y, r["bandwidths"])
    assert r["mmd2"] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # Deterministic for a seed, different for another.
    r2 = mmd_two_sample_test(x, y, max_samples=100, n_permutations=20, seed=3, return_null=True)
    np.testing.assert_array_equal(r2["x_index"], xi)
    r3 = mmd_two_sample_test(x, y, max_samples=100, n_permutations=20, seed=4, return_null=True)
    assert not np.array_equal(r3["x_index"], xi)
    assert mmd_statistic(x, y, max_samples=100, seed=3) == r["mmd2"]


def test_images_are_flattened():
    rng = np.random.default_rng(13)
    x, y = rng.uniform(size=(30, 4, 4, 1)), rng.uniform(size=(25, 4, 4, 1))
    r = mmd_two_sample_test(x, y, bandwidths=2.0, n_permutations=10)
    ref = ref_mmd2(x.reshape(30, -1), y.reshape(25, -1), 2.0)
    assert r["mmd2"] == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kwargs, name", [
    (dict(x=np.zeros(10)), "x"),
    (dict(y=np.zeros(10)), "y"),
    (dict(x=np.zeros((1, 3))), "x"),
    (dict(y=np.zeros((1, 3))), "y"),
    (dict(x=np.full((10, 3), np.nan)), "x"),
    (dict(y=np.r_[np.zeros((9, 3)), [[0, np.inf, 0]]]), "y"),
    (dict(y=np.zeros((10, 4))), "y"),
    (dict(bandwidths=[]), "bandwidths"),
    (dict(bandwidths=[1.0, -1.0]), "bandwidths"),
    (dict(estimator="mean"), "estimator"),
    (dict(parameterization="sigma"), "parameterization"),
    (dict(n_permutations=0), "n_permutations"),
    (dict(max_samples=1), "max_samples"),
])
def test_bad_input_raises_naming_the_argument(kwargs, name):
    args = dict(x=gauss(10, d=3, seed=0), y=gauss(10, d=3, seed=1))
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=name):
        mmd_two_sample_test(x, y, **args)


def test_ties_with_the_observed_statistic_count_towards_the_p_value():
    # Identical points: every split gives exactly the observed statistic, so p = 1.
    x = np.ones((5, 2))
    for est in ("unbiased", "biased"):
        r = mmd_two_sample_test(x, x.copy(), bandwidths=1.0, estimator=est, n_permutations=50)
        assert r["mmd2"] == pytest.approx(0.0, abs=1e-12) and r["p_value"] == 1.0


def test_median_heuristic_degenerate_sample_raises():
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_two_sample_test(np.ones((5, 2)), np.ones((5, 2)))
