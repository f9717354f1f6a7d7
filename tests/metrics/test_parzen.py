"""Gaussian Parzen-window mean log-likelihood (METHODS.md 6(a)): golden values, protocols, errors."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal

from tfgen.metrics.parzen import (
    PROTOCOLS, Protocol, parzen_log_densities, parzen_log_likelihood, parzen_protocol,
    select_bandwidth,
)


def brute_force_ll(samples, test, sigma):
    """Li et al.'s form, a plain float64 double loop: logsumexp - log N - d/2 log(2 pi s^2)."""
    samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
    test = np.asarray(test, np.float64).reshape(len(test), -1)
    n, d = samples.shape
    out = np.empty(len(test))
    for i in range(len(test)):
        logits = np.empty(n)
        for j in range(n):
            diff = test[i] - samples[j]
            logits[j] = -np.dot(diff, diff) / (2 * sigma ** 2)
        top = logits.max()
        out[i] = top + math.log(np.exp(logits - top).sum()) - math.log(n) \
            - 0.5 * d * math.log(2 * math.pi * sigma ** 2)
    return out


def goodfellow_ll(samples, test, sigma):
    """Goodfellow's form: logmeanexp(-1/2 ||(x - mu)/s||^2) - d log(s sqrt(2 pi))."""
    d = samples.shape[1]
    a = -0.5 * (((test[:, None, :] - samples[None]) / sigma) ** 2).sum(-1)
    top = a.max(1, keepdims=True)
    lme = top[:, 0] + np.log(np.exp(a - top).mean(1))
    return lme - d * np.log(sigma * np.sqrt(2 * np.pi))


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    return rng.random((13, 7)), rng.random((11, 7))


@pytest.mark.parametrize("chunk_size,sample_chunk", [(4, None), (3, 5), (100, 1), (11, 13)])
def test_matches_brute_force_loop(tiny, chunk_size, sample_chunk):
    samples, test = tiny
    ref = brute_force_ll(samples, test, 0.3)
    per_point = parzen_log_densities(samples, test, 0.3, chunk_size=chunk_size,
                                     sample_chunk=sample_chunk)[:, 0]
    np.testing.assert_allclose(per_point, ref, rtol=1e-9, atol=0)
    r = parzen_log_likelihood(samples, test, 0.3, chunk_size=chunk_size, sample_chunk=sample_chunk)
    assert r["mean"] == pytest.approx(ref.mean(), rel=1e-9)
    assert r["std_error"] == pytest.approx(ref.std() / math.sqrt(len(ref)), rel=1e-9)
    assert (r["sigma"], r["n_test"], r["n_samples"]) == (0.3, 11, 13)


def test_li_and_goodfellow_forms_agree_and_grid_matches_single_sigma(tiny):
    samples, test = tiny
    grid = [0.1, 0.25, 0.7]
    many = parzen_log_densities(samples, test, grid, chunk_size=4, sample_chunk=6)
    for k, s in enumerate(grid):
        np.testing.assert_allclose(many[:, k], goodfellow_ll(samples, test, s), rtol=1e-9)
        np.testing.assert_allclose(many[:, k], brute_force_ll(samples, test, s), rtol=1e-9)


def test_images_are_flattened_and_float32_tensors_accepted(tiny):
    samples, test = tiny
    s_img = samples[:, :6].reshape(13, 2, 3, 1)
    t_img = tf.constant(test[:, :6].reshape(11, 3, 2, 1), tf.float32)
    r = parzen_log_likelihood(s_img, t_img, 0.2, chunk_size=5)
    ref = brute_force_ll(samples[:, :6], np.float32(test[:, :6]).astype(np.float64), 0.2)
    assert r["mean"] == pytest.approx(ref.mean(), rel=1e-9)


def test_single_sample_at_origin_is_the_gaussian_density():
    rng = np.random.default_rng(0)
    test = rng.normal(size=(9, 5))
    sigma = 0.7
    r = parzen_log_densities(np.zeros((1, 5)), test, sigma, chunk_size=4)[:, 0]
    exact = multivariate_normal(np.zeros(5), sigma ** 2 * np.eye(5)).logpdf(test)
    np.testing.assert_allclose(r, exact, rtol=1e-12)


@pytest.mark.parametrize("sample_chunk", [None, 1])
def test_far_points_do_not_underflow(sample_chunk):
    # ||x - 0||^2 / 2 = 2000: exp(-2000) underflows float64; the second
    # sample is nearer, so with sample_chunk=1 the running max is rescaled.
    x = -math.sqrt(4000.0)  # negative: not mistaken for [0, 255] pixels
    samples = np.array([[0.0], [-2.0]])
    r = parzen_log_likelihood(samples, np.array([[x]]), 1.0, sample_chunk=sample_chunk)
    a, b = -x ** 2 / 2, -(x + 2) ** 2 / 2
    exact = np.logaddexp(a, b) - math.log(2) - 0.5 * math.log(2 * math.pi)
    assert math.isfinite(r["mean"])
    assert r["mean"] == pytest.approx(exact, rel=1e-12)
    assert np.exp(a) == 0.0 and np.exp(b) == 0.0  # a naive log(mean(exp)) would give -inf


def test_select_bandwidth_recovers_kernel_width():
    # Validation points drawn from the KDE itself: a random centre + N(0, 0.2^2).
    rng = np.random.default_rng(1)
    centres = rng.uniform(-5, 5, size=(300, 2))
    val = centres[rng.integers(0, 300, 3000)] + 0.2 * rng.standard_normal((3000, 2))
    grid = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.8]
    best, curve = select_bandwidth(centres, val, grid, chunk_size=256, sample_chunk=128)
    assert best in (0.15, 0.2, 0.25)
    assert list(curve) == grid
    assert curve[best] == max(curve.values())
    assert curve[0.2] > curve[0.05] and curve[0.2] > curve[0.8]
    # coarser grid: the truth is on it and must win outright
    best, _ = select_bandwidth(centres, val, [0.1, 0.2, 0.4])
    assert best == 0.2


def test_presets():
    li = PROTOCOLS["li2015"]
    assert len(li.sigmas) == 20 and li.sigmas[0] == 0.1 and li.sigmas[-1] == 0.29
    assert li.sigmas[5] == 0.15  # rounded: no 0.15000000000000002
    np.testing.assert_allclose(li.sigmas, np.arange(0.10, 0.30, 0.01), atol=1e-12)
    assert (li.n_samples, li.n_validation) == (10_000, 5_000)
    gf = PROTOCOLS["goodfellow2014"]
    assert len(gf.sigmas) == 10
    assert gf.sigmas[0] == pytest.approx(0.1) and gf.sigmas[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(np.log10(gf.sigmas)), 1 / 9, rtol=1e-9)
    assert (gf.n_samples, gf.n_validation) == (10_000, 1_000)
    assert "parzen_ll.py" in gf.description and "kde_eval_mnist" in li.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        li.n_samples = 5


TINY = Protocol(n_samples=50, sigmas=(0.1, 0.2, 0.4), n_validation=20, name="tiny")


def _data(seed=5):
    rng = np.random.default_rng(seed)
    val = rng.random((30, 4))
    val[20:] = 0.5  # rows past n_validation would move sigma if they were used
    return val, rng.random((17, 4))


def test_protocol_with_callable(capsys):
    calls = []

    def sample_fn(n, seed):
        calls.append((n, seed))
        return np.random.default_rng(seed).random((n, 4))

    val, test = _data()
    r = parzen_protocol(sample_fn, val, test, protocol=TINY, seed=7, progress=True)
    assert calls == [(50, 7)]
    samples = sample_fn(50, 7)
    best, curve = select_bandwidth(samples, val[:20], TINY.sigmas)
    _, curve_all = select_bandwidth(samples, val, TINY.sigmas)
    assert r["validation_curve"] == pytest.approx(curve, rel=1e-12)
    assert r["validation_curve"] != pytest.approx(curve_all, rel=1e-3)
    assert r["sigma"] == best
    ref = brute_force_ll(samples, test, best)
    assert r["mean"] == pytest.approx(ref.mean(), rel=1e-9)
    assert r["std_error"] == pytest.approx(ref.std() / math.sqrt(17), rel=1e-9)
    assert (r["protocol"], r["n_samples"], r["n_validation"], r["n_validation_given"],
            r["n_test"]) == ("tiny", 50, 20, 30, 17)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "mean validation LL" in ln]
    assert [ln.split("sigma=")[1].split(":")[0] for ln in lines] == ["0.1", "0.2", "0.4"]


def test_protocol_with_array():
    val, test = _data()
    samples = np.random.default_rng(9).random((60, 2, 2))
    r = parzen_protocol(samples, val, test, protocol=TINY, sample_chunk=7)
    r_first = parzen_protocol(samples[:50], val, test, protocol=TINY)
    assert r["n_samples"] == 50 and r["n_samples_given"] == 60
    assert r["mean"] == pytest.approx(r_first["mean"], rel=1e-9)
    assert r["mean"] == pytest.approx(
        brute_force_ll(samples[:50].reshape(50, 4), test, r["sigma"]).mean(), rel=1e-9)
    with pytest.raises(ValueError, match="needs 50 samples"):
        parzen_protocol(samples[:40], val, test, protocol=TINY)


def test_protocol_errors():
    val, test = _data()
    never = lambda n, seed: pytest.fail("sample_fn called before the inputs were checked")  # noqa: E731
    with pytest.raises(ValueError, match="goodfellow2014.*li2015"):
        parzen_protocol(never, val, test, protocol="gan2014")
    with pytest.raises(ValueError, match="at least 5000"):
        parzen_protocol(never, val, test, protocol="li2015")
    with pytest.raises(ValueError, match="returned 49"):
        parzen_protocol(lambda n, seed: np.zeros((n - 1, 4)), val, test, protocol=TINY)
    with pytest.raises(ValueError, match="test"):
        parzen_protocol(never, val, test[:, :3], protocol=TINY)
    with pytest.raises(ValueError, match="sigmas"):
        Protocol(n_samples=5, sigmas=(0.1, -0.2), n_validation=3)


def test_input_errors(tiny):
    samples, test = tiny
    with pytest.raises(ValueError, match="samples.*rank"):
        parzen_log_likelihood(samples[0], test, 0.2)
    with pytest.raises(ValueError, match="test.*7 features"):
        parzen_log_likelihood(samples, test[:, :5], 0.2)
    bad = test.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="test.*finite"):
        parzen_log_likelihood(samples, bad, 0.2)
    for sigma in (0.0, -0.1, np.inf, [0.1, 0.2]):
        with pytest.raises(ValueError, match="sigma"):
            parzen_log_likelihood(samples, test, sigma)
    with pytest.raises(ValueError, match="sigmas"):
        select_bandwidth(samples, test, [])
    with pytest.raises(ValueError, match="chunk_size"):
        parzen_log_likelihood(samples, test, 0.2, chunk_size=0)
    with pytest.raises(ValueError, match="sample_chunk"):
        parzen_log_likelihood(samples, test, 0.2, sample_chunk=0)
    with pytest.raises(ValueError, match="unexpected keyword"):
        select_bandwidth(samples, test, [0.1], chunksize=3)


def test_warns_on_0_255_pixels(tiny, recwarn):
    samples, test = tiny
    with pytest.warns(UserWarning, match="0, 255"):
        parzen_log_likelihood(samples * 255, test * 255, 20.0)
    with pytest.warns(UserWarning, match="-1, 1"):
        parzen_log_likelihood(samples * 2 - 1, test * 2 - 1, 0.2)
    recwarn.clear()
    parzen_log_likelihood(samples, test, 0.2)  # [0, 1] data: silent
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


# ---- the IML paper's "KDE score" ----------------------------------------------------------------
def test_iml_kde_score_by_hand():
    """Two samples, two test points in 2-D, sigma 0.5: the score is
    mean_i log sum_j N(x_i; mu_j, sigma^2 I) (no -log N), by hand."""
    from tfgen.metrics import iml_kde_score

    mu = np.array([[0.0, 0.0], [1.0, 0.0]])
    x = np.array([[0.0, 0.5], [1.0, 1.0]])
    s = 0.5

    def pdf(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * s * s)) / (2 * np.pi * s * s)

    expected = np.mean([np.log(pdf(xi, mu[0]) + pdf(xi, mu[1])) for xi in x])
    out = iml_kde_score(mu, x, sigma=s, n_samples=2, n_draws=1)
    np.testing.assert_allclose(out["score"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["parzen_comparable"], expected - np.log(2), rtol=1e-12)


def test_iml_kde_score_draws_and_seeds():
    from tfgen.metrics import iml_kde_score

    rng = np.random.default_rng(0)
    test = rng.random((20, 3))
    seeds = []

    def sample(n, seed):
        seeds.append(seed)
        return np.random.default_rng(seed).random((n, 3))

    out = iml_kde_score(sample, test, sigma=0.3, n_samples=50, n_draws=3, seed=7)
    assert seeds == [7, 8, 9]
    per = [parzen_log_likelihood(np.random.default_rng(r).random((50, 3)), test, 0.3)["mean"] + np.log(50)
           for r in (7, 8, 9)]
    np.testing.assert_allclose(out["per_draw"], per, rtol=1e-12)
    np.testing.assert_allclose(out["score"], np.mean(per), rtol=1e-12)
    np.testing.assert_allclose(out["std"], np.std(per), rtol=1e-9)
    with pytest.raises(ValueError, match="n_draws \\* n_samples"):
        iml_kde_score(np.zeros((10, 3)), test, n_samples=50, n_draws=3)
