"""Latent priors: seeding, shapes, log-densities against closed forms, moments,
binary mixture means, keras serialization, variable tracking and bad input."""

import numpy as np
import keras
import pytest
import tensorflow as tf
from scipy import stats

from tfgen.distributions import BinaryMeanMixture, Gaussian, Uniform, as_stateless_seed

DIM = 3

# Each factory builds a prior of dimension DIM with non-default parameters, so a
# prior that ignored its arguments would fail the moment and log_prob checks.
FACTORIES = {
    "gaussian": lambda: Gaussian(DIM, loc=0.5, scale=2.0),
    "uniform": lambda: Uniform(DIM, low=-2.0, high=3.0),
    "mixture": lambda: BinaryMeanMixture(DIM, n_components=4, scale=0.2, seed=5),
}


@pytest.fixture(params=sorted(FACTORIES))
def prior(request):
    return FACTORIES[request.param]()


# --- seeding -----------------------------------------------------------------------------------

def test_same_seed_same_samples_different_seed_different(prior):
    a, b, c = (prior.sample(64, seed=s).numpy() for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_two_instances_same_seed_same_samples():
    name = "mixture"
    a = FACTORIES[name]().sample(32, seed=11).numpy()
    b = FACTORIES[name]().sample(32, seed=11).numpy()
    np.testing.assert_array_equal(a, b)


def test_tf_function_with_tensor_seed_matches_eager(prior):
    @tf.function
    def sample(seed):
        return prior.sample(16, seed=seed)

    for s in (3, 4):
        np.testing.assert_array_equal(sample(tf.constant(s)).numpy(), prior.sample(16, seed=s).numpy())
    # One trace, two seeds: the seed is a graph input, not a baked-in constant.
    assert not np.allclose(sample(tf.constant(3)).numpy(), sample(tf.constant(4)).numpy())
    # int64 tensors and [2] seeds also work in a graph.
    np.testing.assert_array_equal(sample(tf.constant(3, tf.int64)).numpy(), prior.sample(16, seed=3).numpy())
    pair = tf.constant([9, 2], tf.int32)
    np.testing.assert_array_equal(sample(pair).numpy(), prior.sample(16, seed=pair).numpy())


def test_seed_none_differs_between_calls(prior):
    a, b = prior.sample(32).numpy(), prior.sample(32).numpy()
    assert not np.allclose(a, b)


def test_seed_none_differs_between_calls_in_tf_function():
    prior = Gaussian(DIM)

    @tf.function
    def sample():
        return prior.sample(32)

    assert not np.allclose(sample().numpy(), sample().numpy())


def test_as_stateless_seed_values():
    np.testing.assert_array_equal(as_stateless_seed(5).numpy(), [5, 0])
    np.testing.assert_array_equal(as_stateless_seed([4, 9]).numpy(), [4, 9])
    assert as_stateless_seed(5).dtype == tf.int32
    assert as_stateless_seed(None).shape == (2,)
    assert not np.array_equal(as_stateless_seed(None).numpy(), as_stateless_seed(None).numpy())


def test_large_int64_seeds_accepted_and_distinct(prior):
    big = [2**31 + 5, 2**31 + 6, 2**40 + 5, 5 + (2**31 - 1)]  # the last folds to [5, 1], not [5, 0]
    seeds = [tuple(as_stateless_seed(s).numpy()) for s in big]
    seeds += [tuple(as_stateless_seed(tf.constant(s, tf.int64)).numpy()) for s in big]
    assert len(set(seeds[:4])) == 4
    assert seeds[:4] == seeds[4:]  # Python ints and int64 tensors agree
    assert seeds[0] != tuple(as_stateless_seed(5).numpy())
    samples = [prior.sample(8, seed=s).numpy() for s in big]
    for i in range(len(samples)):
        for j in range(i):
            assert not np.allclose(samples[i], samples[j])
    np.testing.assert_array_equal(samples[0], prior.sample(8, seed=2**31 + 5).numpy())


@pytest.mark.parametrize("seed", [1.0, 2.5, np.float32(3.0), tf.constant(1.0)])
def test_float_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        as_stateless_seed(seed)
    with pytest.raises(ValueError, match="seed"):
        Gaussian(2).sample(4, seed=seed)


# --- shapes and dtypes -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5])
def test_sample_shape_and_dtype(prior, n):
    z = prior.sample(n, seed=0)
    assert z.dtype == tf.float32
    assert tuple(z.shape) == (n, DIM)
    assert prior.log_prob(z).shape == (n,)


# --- log_prob against closed forms -------------------------------------------------------------

def test_gaussian_log_prob_matches_scipy():
    loc, scale = 0.5, 2.0
    z = np.random.default_rng(0).normal(size=(10, DIM)).astype("float32") * 3
    want = stats.multivariate_normal(mean=np.full(DIM, loc), cov=np.diag(np.full(DIM, scale**2))).logpdf(z)
    got = Gaussian(DIM, loc=loc, scale=scale).log_prob(z).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_uniform_log_prob_inside_and_outside():
    low, high = -2.0, 3.0
    u = Uniform(DIM, low=low, high=high)
    inside = np.array([[0.0, 0.0, 0.0], [-1.9, 2.9, 0.5], [2.5, -1.5, 1.0]], "float32")
    np.testing.assert_allclose(u.log_prob(inside).numpy(), np.full(3, -DIM * np.log(high - low)), rtol=1e-6)
    outside = np.array([[-2.1, 0.0, 0.0], [0.0, 3.1, 0.0], [0.0, 0.0, 10.0], [-5, -5, -5]], "float32")
    got = u.log_prob(outside).numpy()
    assert np.all(np.isneginf(got)), got


def _mixture_log_prob_numpy(z, means, scale):
    z, means = np.asarray(z, np.float64), np.asarray(means, np.float64)
    d = z.shape[1]
    sq = ((z[:, None, :] - means[None, :, :]) ** 2).sum(-1)                      # (n, C)
    comp = -0.5 * d * np.log(2 * np.pi * scale**2) - sq / (2 * scale**2)       # log N(z; m_c, s^2 I)
    top = comp.max(1, keepdims=True)
    return (top + np.log(np.exp(comp - top).mean(1, keepdims=True)))[:, 0]    # log-mean-exp


def test_mixture_log_prob_matches_numpy():
    scale = 0.2
    p = BinaryMeanMixture(DIM, n_components=4, scale=scale, seed=5)
    means = p.means.numpy()
    rng = np.random.default_rng(1)
    z = np.concatenate([means + 0.1 * rng.normal(size=means.shape),       # near the modes
                        rng.uniform(-0.5, 1.5, size=(6, DIM)),             # in between
                        [[0.5] * DIM, [3.0, -2.0, 1.0]]]).astype("float32")
    want = _mixture_log_prob_numpy(z, means, scale)
    np.testing.assert_allclose(p.log_prob(z).numpy(), want, rtol=1e-4, atol=1e-4)


def test_log_prob_wrong_shape_raises(prior):
    for bad in (np.zeros((4, DIM + 1), "float32"), np.zeros((DIM,), "float32"), np.zeros((2, 2, DIM), "float32")):
        with pytest.raises(ValueError, match="shape"):
            prior.log_prob(bad)


# --- empirical moments (20k samples) ----------------------------------------------------------

N = 20_000


def test_gaussian_moments():
    z = Gaussian(DIM, loc=0.5, scale=2.0).sample(N, seed=0).numpy()
    # Standard error of the mean is 2 / sqrt(20000) ~ 0.014; of the std ~ 0.01.
    np.testing.assert_allclose(z.mean(0), 0.5, atol=0.06)
    np.testing.assert_allclose(z.std(0), 2.0, atol=0.05)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.03  # independent coordinates


def test_uniform_moments_and_bounds():
    low, high = -2.0, 3.0
    z = Uniform(DIM, low=low, high=high).sample(N, seed=0).numpy()
    assert z.min() >= low and z.max() <= high
    np.testing.assert_allclose(z.mean(0), (low + high) / 2, atol=0.05)
    np.testing.assert_allclose(z.std(0), (high - low) / np.sqrt(12), atol=0.03)
    # It fills the box: the extremes are near the edges.
    assert z.min() < low + 0.01 and z.max() > high - 0.01


def test_mixture_samples_near_binary_means():
    dim, c, scale = 6, 4, 0.1
    p = BinaryMeanMixture(dim, n_components=c, scale=scale, seed=2)
    z = p.sample(N, seed=0).numpy()
    nearest = np.round(z)
    residual = z - nearest
    # Each coordinate's signed distance to {0, 1} is N(0, scale^2) (crossing 0.5 is a 5-sigma event).
    np.testing.assert_allclose(residual.std(0), scale, rtol=0.05)
    np.testing.assert_allclose(residual.mean(0), 0.0, atol=0.01)
    assert set(np.unique(nearest)) <= {0.0, 1.0}
    # Every sample rounds to one of the means, and the means are used with equal weight.
    means = p.means.numpy()
    rows, counts = np.unique(nearest, axis=0, return_counts=True)
    mean_rows = {tuple(m) for m in means}
    assert {tuple(r) for r in rows} <= mean_rows
    for r, k in zip(rows, counts):
        share = sum(tuple(m) == tuple(r) for m in means) / c
        assert abs(k / N - share) < 0.02, (r, k / N, share)
    np.testing.assert_allclose(z.mean(0), means.mean(0), atol=0.02)


# --- binary mixture means --------------------------------------------------------------------

def test_mixture_means_binary_and_fixed_by_seed():
    a = BinaryMeanMixture(16, n_components=8, seed=1).means.numpy()
    b = BinaryMeanMixture(16, n_components=8, seed=1).means.numpy()
    c = BinaryMeanMixture(16, n_components=8, seed=2).means.numpy()
    assert a.shape == (8, 16)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- keras serialization ---------------------------------------------------------------------

def test_serialization_round_trip(prior):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(prior))
    assert type(restored) is type(prior)
    assert restored.get_config() == prior.get_config()
    np.testing.assert_array_equal(restored.sample(32, seed=4).numpy(), prior.sample(32, seed=4).numpy())
    for w, v in zip(restored.weights, prior.weights):
        np.testing.assert_array_equal(np.asarray(w), np.asarray(v))


def test_config_keeps_constructor_args():
    assert Gaussian(4, loc=1.5, scale=0.5).get_config()["loc"] == 1.5
    cfg = Uniform(4, low=0.0, high=1.0).get_config()
    assert (cfg["dim"], cfg["low"], cfg["high"]) == (4, 0.0, 1.0)
    cfg = BinaryMeanMixture(4, n_components=3, scale=0.3, seed=9).get_config()
    assert (cfg["dim"], cfg["n_components"], cfg["scale"], cfg["seed"]) == (4, 3, 0.3, 9)


# --- variables ---------------------------------------------------------------------------------

def test_variables_tracked_and_non_trainable(prior):
    assert len(prior.weights) == 2
    assert len(prior.non_trainable_weights) == 2
    assert prior.trainable_weights == []


def test_samples_read_the_variables():
    """Parameters live in the variables: assigning one (as a checkpoint restore does) moves the samples."""
    g = Gaussian(DIM)
    before = g.sample(8, seed=0).numpy()
    g.loc.assign(np.full(DIM, 10.0, "float32"))
    np.testing.assert_allclose(g.sample(8, seed=0).numpy(), before + 10.0, rtol=1e-6)
    m = BinaryMeanMixture(DIM, n_components=2, scale=0.1, seed=0)
    m.means.assign(np.full((2, DIM), 5.0, "float32"))
    np.testing.assert_allclose(m.sample(200, seed=0).numpy().mean(), 5.0, atol=0.05)


# --- bad constructor arguments -----------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: Gaussian(0), lambda: Gaussian(-2), lambda: Uniform(0), lambda: BinaryMeanMixture(0),
    lambda: Gaussian(2, scale=0.0), lambda: Gaussian(2, scale=-1.0), lambda: Gaussian(2, scale=float("nan")),
    lambda: Uniform(2, low=1.0, high=1.0), lambda: Uniform(2, low=1.0, high=0.0),
    lambda: BinaryMeanMixture(2, n_components=0), lambda: BinaryMeanMixture(2, n_components=-1),
    lambda: BinaryMeanMixture(2, scale=0.0), lambda: BinaryMeanMixture(2, scale=-0.1),
], ids=["g-dim0", "g-dim-neg", "u-dim0", "m-dim0", "g-scale0", "g-scale-neg", "g-scale-nan",
        "u-low-eq-high", "u-low-gt-high", "m-comp0", "m-comp-neg", "m-scale0", "m-scale-neg"])
def test_bad_constructor_args_raise(make):
    with pytest.raises(ValueError):
        make()
