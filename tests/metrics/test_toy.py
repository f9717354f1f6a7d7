"""Mode coverage / high-quality rate (VEEGAN protocol) on known mixtures."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfgen.metrics import mode_stats, toy_mode_stats


def ring(k=8, radius=2.0):
    a = 2 * np.pi * np.arange(k) / k
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def mixture(centers, std, n, seed, modes=None):
    rng = np.random.default_rng(seed)
    modes = np.arange(len(centers)) if modes is None else np.asarray(modes)
    labels = rng.choice(modes, size=n)
    return centers[labels] + std * rng.standard_normal((n, 2)), labels


def test_exact_ring_samples_cover_all_modes_with_the_gaussian_3_sigma_mass():
    centers = ring()
    x, labels = mixture(centers, 0.2, 20000, seed=0)
    s = mode_stats(x, centers, 0.2)
    assert s["modes_covered"] == 8 and s["n_modes"] == 8
    # P(||N(0, s^2 I_2)|| <= 3 s) = 1 - exp(-9/2); binomial sd ~ 7e-4 at n = 20000.
    assert s["high_quality_rate"] == pytest.approx(1 - math.exp(-4.5), abs=3e-3)
    # Ring modes are 1.53 apart, 3-sigma balls (0.6) are disjoint: counts = per-label hits.
    d = np.linalg.norm(x - centers[labels], axis=1)
    expected = np.bincount(labels[d <= 0.6], minlength=8)
    assert s["counts"] == expected.tolist()
    assert s["kl_to_uniform_modes"] < 0.01
    assert s["diverged"] is False
    assert s["min_count"] == math.ceil(0.008 * 20000)


def test_samples_from_three_modes_cover_three():
    centers = ring()
    x, _ = mixture(centers, 0.2, 3000, seed=1, modes=[0, 3, 5])
    s = mode_stats(x, centers, 0.2)
    assert s["modes_covered"] == 3
    assert [c > 0 for c in s["counts"]] == [i in (0, 3, 5) for i in range(8)]
    # 3 modes equally used: KL(p || U_8) = log(8 / 3).
    assert s["kl_to_uniform_modes"] == pytest.approx(math.log(8 / 3), abs=0.01)


def test_uniform_spread_has_low_high_quality_rate():
    centers = ring()
    x = np.random.default_rng(2).uniform(-10, 10, size=(20000, 2))
    s = mode_stats(x, centers, 0.2)
    expected = 8 * np.pi * 0.6 ** 2 / 400  # area of the 8 disjoint balls / square: 0.0226
    assert s["high_quality_rate"] == pytest.approx(expected, abs=0.005)
    assert s["high_quality_rate"] < 0.05


def test_hand_made_counts_and_thresholds():
    centers = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]
    x = [[0, 0], [1, 1], [0, 3.0],  # mode 0, incl. exactly 3 std (inclusive)
         [3.1, 0],                  # just outside mode 0
         [10, 0],                   # mode 1
         [50, 50]]                  # far from everything
    s = mode_stats(x, centers, 1.0)
    assert s["counts"] == [3, 1, 0]
    assert s["high_quality_rate"] == pytest.approx(4 / 6)
    assert s["n_high_quality"] == 4 and s["threshold"] == 3.0
    assert s["min_count"] == 1 and s["modes_covered"] == 2
    p = np.array([0.75, 0.25])
    assert s["kl_to_uniform_modes"] == pytest.approx(float(np.sum(p * np.log(3 * p))))
    assert mode_stats(x, centers, 1.0, min_count=2)["modes_covered"] == 1
    # A wider ball takes in (3.1, 0).
    assert mode_stats(x, centers, 1.0, n_std=3.2)["counts"] == [4, 1, 0]
    # Tensor input gives the same numbers.
    assert mode_stats(tf.constant(x, tf.float32), tf.constant(centers), 1.0)["counts"] == [3, 1, 0]


def test_no_high_quality_sample_gives_infinite_kl():
    s = mode_stats([[5.0, 5.0]], [[0.0, 0.0]], 0.1)
    assert s["modes_covered"] == 0 and s["high_quality_rate"] == 0.0
    assert s["kl_to_uniform_modes"] == math.inf


def test_non_finite_samples_mark_divergence_and_count_as_low_quality():
    centers = ring()
    x = np.repeat(centers, 2, axis=0)  # 16 perfect samples
    x[0] = np.nan
    x[5, 1] = np.inf
    s = mode_stats(x, centers, 0.2)
    assert s["diverged"] is True
    assert s["high_quality_rate"] == pytest.approx(14 / 16)
    assert sum(s["counts"]) == 14 and s["counts"][0] == 1 and s["counts"][2] == 1
    # Even when a centre sits where a NaN might be "imputed" (the origin).
    s0 = mode_stats(np.full((4, 2), np.nan), [[0.0, 0.0], [1.0, 1.0]], 0.2)
    assert s0["high_quality_rate"] == 0.0 and s0["counts"] == [0, 0] and s0["diverged"]


@pytest.mark.parametrize("kwargs, name", [
    (dict(samples=np.zeros(5)), "samples"),
    (dict(samples=np.zeros((0, 2))), "samples"),
    (dict(samples=np.zeros((5, 3))), "samples"),
    (dict(samples=[["a", "b"]]), "samples"),
    (dict(centers=np.zeros((0, 2))), "centers"),
    (dict(centers=[[np.nan, 0.0]]), "centers"),
    (dict(std=0.0), "std"),
    (dict(std=-1.0), "std"),
    (dict(std=float("nan")), "std"),
    (dict(n_std=0.0), "n_std"),
    (dict(min_count=0), "min_count"),
    (dict(min_count=2.5), "min_count"),
])
def test_bad_input_raises_naming_the_argument(kwargs, name):
    args = dict(samples=np.zeros((5, 2)), centers=ring(), std=0.2)
    args.update(kwargs)
    samples, centers, std = args.pop("samples"), args.pop("centers"), args.pop("std")
    with pytest.raises(ValueError, match=name):
        mode_stats(samples, centers, std, **args)


def _data_info():
    try:
        import tfgen.data as data
    except Exception as exc:  # being written concurrently by another helper
        pytest.skip(f"tfgen.data does not import yet: {exc!r}")
    if not hasattr(data, "info"):
        pytest.skip("tfgen.data.info is not available yet")
    return data.info


def test_toy_mode_stats_uses_the_datasets_centres():
    _data_info()
    centers = ring()
    x, _ = mixture(centers, 0.2, 2000, seed=3)
    assert toy_mode_stats(x, "ring8") == mode_stats(x, centers, 0.2)
    x3, _ = mixture(centers, 0.2, 2000, seed=4, modes=[1, 2, 7])
    assert toy_mode_stats(x3, "ring8")["modes_covered"] == 3


def test_toy_mode_stats_grid25():
    _data_info()
    ticks = np.arange(-4.0, 5.0, 2.0)
    centers = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    x, _ = mixture(centers, 0.05, 5000, seed=5)
    s = toy_mode_stats(x, "grid25")
    assert s["modes_covered"] == 25 and s["n_modes"] == 25
    assert s["high_quality_rate"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
