"""Tests for FID, KID, the Inception Score and the nearest-neighbour distance
(METHODS.md 6(c); KDE-GAN paper App. Tab. 1).

Golden values are closed forms (Fréchet distance of Gaussians, IS of uniform
and one-hot predictions, a hand-computed two-class IS), independent
computations in the test (``sqrtm`` of the symmetric form
``S1^1/2 S2 S1^1/2``, an eigenvalue formula, a double-loop unbiased MMD², a
brute-force nearest neighbour), and sampling tolerances stated where used.
"""

import math
import warnings

import numpy as np
import pytest
import scipy.linalg

from tfgen.metrics import image
from tfgen.metrics import (feature_statistics, fid, frechet_distance, inception_score, kid,
                           nearest_neighbour_distance, polynomial_mmd2)


def random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T + (0 if rank else 0.1 * np.eye(d))


def trace_sqrt_product(s1, s2):
    """Tr sqrt(S1 S2) from the eigenvalues of the symmetric PSD S1^1/2 S2 S1^1/2 (similar to S1 S2)."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None))))


# --------------------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 1.0, 2.0), (-3.0, 0.5, 2.0, 0.1), (1.0, 3.0, 1.0, 3.0)])
def test_frechet_1d_closed_form(m1, s1, m2, s2):
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_distance([m1], [[s1 ** 2]], [m2], [[s2 ** 2]])
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, abs=1e-12)


def test_frechet_commuting_covariances_closed_form():
    # Covariances sharing eigenvectors commute, so sqrtm(S1 S2) = Q diag(sqrt(a b)) Q^T and
    # d^2 = ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(0)
    d = 12
    a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def test_frechet_non_commuting_against_independent_sqrtm():
    rng = np.random.default_rng(1)
    d = 20
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    assert not np.allclose(s1 @ s2, s2 @ s1)  # really non-commuting
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Tr sqrtm(S1 S2) = Tr sqrtm(S1^1/2 S2 S1^1/2): the product is similar to this symmetric matrix
    r1 = scipy.linalg.sqrtm(s1).real
    tr_covmean = np.trace(scipy.linalg.sqrtm(r1 @ s2 @ r1).real)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    got = frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-8)
    assert tr_covmean == pytest.approx(trace_sqrt_product(s1, s2), rel=1e-8)
    # a distance between distinct Gaussians: symmetric, positive; zero for identical ones
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-8)
    assert got > 1.0
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8 * np.trace(s1)


def test_frechet_singular_covariances_are_finite_and_right():
    # Rank-deficient covariances (fewer samples than features, as with small sample sets)
    rng = np.random.default_rng(2)
    d = 40
    s1, s2 = random_spd(rng, d, rank=5), random_spd(rng, d, rank=7)
    mu1, mu2 = np.zeros(d), np.ones(d)
    got = frechet_distance(mu1, s1, mu2, s2)
    expected = d + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-6)


def test_frechet_eps_retry_path(monkeypatch):
    # TTUR: when sqrtm is not finite, add eps*I to both covariances and retry. The first
    # sqrtm is made to fail; the retry must see (S1 + eps I)(S2 + eps I).
    rng = np.random.default_rng(3)
    d, eps = 6, 1e-2
    s1, s2 = random_spd(rng, d, rank=2), random_spd(rng, d, rank=3)
    real_sqrtm = image._sqrtm
    seen = []

    def failing_once(a):
        seen.append(a.copy())
        if len(seen) == 1:
            return np.full_like(a, np.nan)
        return real_sqrtm(a)

    monkeypatch.setattr(image, "_sqrtm", failing_once)
    with pytest.warns(RuntimeWarning, match="not finite"):
        got = frechet_distance(np.zeros(d), s1, np.zeros(d), s2, eps=eps)
    assert len(seen) == 2
    o1, o2 = s1 + eps * np.eye(d), s2 + eps * np.eye(d)
    np.testing.assert_allclose(seen[1], o1 @ o2, rtol=1e-12)
    # TTUR offsets only the sqrtm term, not the traces
    expected = np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(o1, o2)
    assert math.isfinite(got) and got == pytest.approx(expected, rel=1e-8)

    monkeypatch.setattr(image, "_sqrtm", lambda a: np.full_like(a, np.inf))
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="larger eps"):
        frechet_distance(np.zeros(d), s1, np.zeros(d), s2)


def test_frechet_large_imaginary_component_raises():
    # sqrtm(-I) = i I: imaginary diagonal 1 > 1e-3
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))


def test_frechet_small_imaginary_component_is_dropped(monkeypatch):
    rng = np.random.default_rng(4)
    s1, s2 = random_spd(rng, 5), random_spd(rng, 5)
    real_sqrtm = image._sqrtm
    monkeypatch.setattr(image, "_sqrtm", lambda a: real_sqrtm(a) + 5e-4j)
    assert frechet_distance(np.zeros(5), s1, np.zeros(5), s2) == pytest.approx(
        np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2), rel=1e-8)
    monkeypatch.setattr(image, "_sqrtm", lambda a: real_sqrtm(a) + 2e-3j)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(5), s1, np.zeros(5), s2)


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(2), [[np.nan, 0], [0, 1]], np.zeros(2), np.eye(2))


def test_feature_statistics_unbiased():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 3))
    mu, sigma = feature_statistics(x)
    centred = x - x.mean(0)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, centred.T @ centred / 6, rtol=1e-12)  # n - 1
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(x[:1])


def test_fid_same_vs_shifted_gaussians():
    # N(0, I_4) against a second sample of it, and against N(0.5, 4 I_4): closed form
    # ||0.5 1||^2 + Tr(I) + Tr(4I) - 2 Tr(2I) = 1 + 4 + 16 - 16 = 5. Over seeds 0-4 at
    # n = 20,000 the same-distribution FID was 0.0004-0.0011 and the shifted one 4.98-5.04
    # (sd of the mean term alone ~0.03), so the bounds below are > 4 sd.
    rng = np.random.default_rng(0)
    n, d = 20_000, 4
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    z = 2.0 * rng.normal(size=(n, d)) + 0.5
    same, shifted = fid(x, y), fid(x, z)
    assert 0 <= same < 0.01
    assert shifted == pytest.approx(5.0, abs=0.15)
    # images are flattened into features
    assert fid(x.reshape(n, 2, 2, 1), z.reshape(n, 2, 2, 1)) == pytest.approx(shifted, rel=1e-12)
    with pytest.raises(ValueError, match="same number of features"):
        fid(x, z[:, :3])


# --------------------------------------------------------------------------- KID


def brute_force_unbiased_poly_mmd2(x, y, degree=3, coef0=1.0):
    """Unbiased MMD^2 by explicit loops over pairs (i != j within a set)."""
    m, d = x.shape
    gamma = 1.0 / d

    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_full_subsets_match_brute_force_and_draw_without_replacement():
    # With subset_size = n = m every subset is a permutation of the full sets, so each
    # subset gives the full-set statistic exactly: mean = brute force, std = 0. A draw
    # WITH replacement would repeat rows and change the value from subset to subset.
    rng = np.random.default_rng(6)
    m, d = 40, 5
    x = rng.normal(size=(m, d))
    y = 0.8 * rng.normal(size=(m, d)) + 0.7
    expected = brute_force_unbiased_poly_mmd2(x, y)
    mean, std = kid(x, y, subsets=15, subset_size=m, seed=1)
    assert expected > 0.1
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std < 1e-10 * abs(expected)
    assert polynomial_mmd2(x, y) == pytest.approx(expected, rel=1e-10)
    # gamma and coef0 are used as given
    assert polynomial_mmd2(x, y, degree=2, gamma=0.3, coef0=0.5) == pytest.approx(
        _poly(x, y, 2, 0.3, 0.5), rel=1e-10)


def _poly(x, y, degree, gamma, coef0):
    m = len(x)
    k = lambda a, b: (gamma * a @ b.T + coef0) ** degree  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / m ** 2)


def test_kid_near_zero_for_halves_of_one_set():
    # Two disjoint halves of one N(0, I_16) sample. The unbiased MMD^2 has mean 0 under
    # P = Q; at 20 subsets of 500, over data seeds 0-9 the mean had |.| <= 0.0041 (std over
    # subsets 0.003-0.0055), while a 0.25 shift in every coordinate gave 0.19-0.24.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 16))
    mean, std = kid(x[:1000], x[1000:], subsets=20, subset_size=500, seed=0)
    assert abs(mean) < 0.015
    assert 0 < std < 0.02
    shifted, _ = kid(x[:1000], x[1000:] + 0.25, subsets=20, subset_size=500, seed=0)
    assert shifted > 0.1
    # same seed, same subsets
    assert kid(x[:1000], x[1000:], subsets=20, subset_size=500, seed=0) == (mean, std)


def test_kid_caps_subset_size_with_warning():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(50, 4)) + 1
    with pytest.warns(UserWarning, match="subset_size"):
        capped = kid(x, y, subsets=5, subset_size=1000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kid(x, y, subsets=5, subset_size=30, seed=0) == capped
    with pytest.raises(ValueError, match="same number of features"):
        kid(x, y[:, :3])
    with pytest.raises(ValueError, match="real_features"):
        kid(np.full((10, 4), np.nan), y)


# --------------------------------------------------------------------------- Inception Score


def test_inception_score_uniform_is_one():
    p = np.full((100, 10), 0.1)
    mean, std = inception_score(p, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 37])
def test_inception_score_confident_even_predictions_is_class_count(classes):
    # one-hot predictions spread evenly over C classes in every split: IS = C (0 log 0 = 0)
    n, splits = classes * 20, 5
    p = np.eye(classes)[np.arange(n) % classes]
    mean, std = inception_score(p, splits=splits)
    assert mean == pytest.approx(classes, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_two_class_hand_value_and_splits():
    # half [0.9, 0.1], half [0.1, 0.9]: p(y) = [0.5, 0.5], KL = 0.9 log 1.8 + 0.1 log 0.2
    p = np.array([[0.9, 0.1], [0.1, 0.9]] * 50)
    expected = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    mean, std = inception_score(p, splits=10)
    assert mean == pytest.approx(expected, rel=1e-12) and std < 1e-12
    # splits are consecutive blocks: sorted rows make each split one-sided (IS 1)
    sorted_p = p[np.argsort(p[:, 0])]
    assert inception_score(sorted_p, splits=2)[0] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.log(p), splits=2)
    with pytest.raises(ValueError, match="splits"):
        inception_score(p, splits=101)


# --------------------------------------------------------------------------- nearest neighbours


def brute_force_nn(samples, train):
    d2 = ((samples[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    return np.sqrt(d2.min(1)), d2.argmin(1)


def test_nearest_neighbour_distance_exact_matches_brute_force():
    rng = np.random.default_rng(9)
    train = rng.uniform(size=(300, 20))
    samples = rng.uniform(size=(50, 20))
    dist, idx = brute_force_nn(samples, train)
    out = nearest_neighbour_distance(samples, train, backend="exact")
    np.testing.assert_allclose(out["distances"], dist, rtol=1e-12)
    np.testing.assert_array_equal(out["indices"], idx)
    assert out["mean"] == pytest.approx(dist.mean(), rel=1e-12)
    assert out["std"] == pytest.approx(dist.std(), rel=1e-12)
    assert out["recall"] == 1.0 and out["backend"] == "exact"
    # images are flattened; a training image as a sample is at distance 0
    out = nearest_neighbour_distance(train[:5].reshape(5, 4, 5, 1), train.reshape(300, 4, 5, 1),
                                     backend="exact")
    np.testing.assert_array_equal(out["distances"], 0.0)
    # a pre-fitted index is reused (train=None reads its database)
    from tfgen.ops import ExactKNN
    index = ExactKNN().fit(train.astype(np.float32))
    reused = nearest_neighbour_distance(samples, index=index)
    np.testing.assert_allclose(reused["distances"], dist, rtol=1e-6)
    with pytest.raises(ValueError, match="same number of features"):
        nearest_neighbour_distance(samples[:, :10], train, backend="exact")
    with pytest.raises(ValueError, match="train"):
        nearest_neighbour_distance(samples, backend="exact")


def test_nearest_neighbour_distance_scann_recall_and_mean():
    pytest.importorskip("scann")
    rng = np.random.default_rng(10)
    # clustered data in 32-d; 5 of the tree's 71 leaves are searched, so the search is
    # really approximate (recall 0.9925 here; searching 1 leaf with reorder_k=20 gives 0.47)
    centres = rng.uniform(size=(20, 32))
    train = (centres[rng.integers(20, size=5000)] + 0.1 * rng.normal(size=(5000, 32))).astype(np.float32)
    samples = centres[rng.integers(20, size=400)] + 0.1 * rng.normal(size=(400, 32))
    dist, _ = brute_force_nn(samples, train.astype(np.float64))
    for leaves, reorder in [(5, None), (1, 20)]:
        out = nearest_neighbour_distance(samples, train, backend="scann", measure_recall=400,
                                         num_leaves_to_search=leaves, reorder_k=reorder)
        assert out["backend"] == "scann" and out["recall_queries"] == 400
        # the reported recall is the fraction of samples whose ANN neighbour is as close as
        # the true one (all 400 samples checked here)
        assert out["recall"] == pytest.approx(np.mean(out["distances"] <= dist * (1 + 1e-6)),
                                              abs=1e-12)
        assert np.all(out["distances"] >= dist * (1 - 1e-6))  # never closer than the true one
        if leaves == 5:
            assert out["recall"] >= 0.9
            assert out["mean"] == pytest.approx(dist.mean(), rel=0.01)
        else:
            assert out["recall"] < 0.9  # a poor index is reported as such
    partial = nearest_neighbour_distance(samples, train, backend="scann", measure_recall=100,
                                         num_leaves_to_search=5)
    assert partial["recall_queries"] == 100 and partial["recall"] >= 0.9
