"""The Gaussian-emission HMM (IML's audio base distribution): log_prob against an
independent NumPy forward algorithm and against brute-force enumeration of state
paths, Baum-Welch recovery of a known chain, monotone EM (also over sequences of
different lengths), seeded sampling with the right initial and transition
frequencies, config/weights round trip, and bad input."""

import itertools

import numpy as np
import keras
import pytest
import tensorflow as tf
from scipy import special

from tfgen.distributions import hmm as hmm_module
from tfgen.distributions.hmm import HiddenMarkovModel

# The known chain of the recovery test: well-separated 2-D emissions.
TRUE_PI = np.array([0.5, 0.5])
TRUE_A = np.array([[0.9, 0.1], [0.2, 0.8]])
TRUE_MEANS = np.array([[0.0, 0.0], [3.0, -2.0]])
TRUE_STDS = np.array([[0.5, 1.0], [1.0, 0.7]])


def _numpy_sample(pi, a, means, stds, length, rng):
    """States and codes of one chain, drawn with NumPy (independent of the sampler under test)."""
    z = np.empty(length, int)
    z[0] = rng.choice(len(pi), p=pi)
    for t in range(1, length):
        z[t] = rng.choice(len(pi), p=a[z[t - 1]])
    return z, means[z] + stds[z] * rng.normal(size=(length, means.shape[1]))


def _log_emissions(x, means, stds):
    """(T, K) float64 log N(x_t; means_k, diag(stds_k^2))."""
    x = np.asarray(x, np.float64)
    z = (x[:, None, :] - means[None]) / stds[None]
    return (-0.5 * (z**2).sum(-1) - np.log(stds).sum(-1)[None] - 0.5 * x.shape[1] * np.log(2 * np.pi))


def _numpy_forward(x, pi, a, means, stds):
    """log p(x_{1:T}) by the forward recursion in the log domain (Rabiner eqs. 19-21)."""
    log_b = _log_emissions(x, means, stds)
    alpha = np.log(pi) + log_b[0]
    for t in range(1, len(x)):
        alpha = special.logsumexp(alpha[:, None] + np.log(a), axis=0) + log_b[t]
    return special.logsumexp(alpha)


def _brute_force(x, pi, a, means, stds):
    """log sum over all K^T state paths of p(path) p(x | path)."""
    log_b = _log_emissions(x, means, stds)
    k, t_len = len(pi), len(x)
    terms = []
    for path in itertools.product(range(k), repeat=t_len):
        lp = np.log(pi[path[0]]) + log_b[0, path[0]]
        for t in range(1, t_len):
            lp += np.log(a[path[t - 1], path[t]]) + log_b[t, path[t]]
        terms.append(lp)
    return special.logsumexp(terms)


def _random_model(k=3, dim=2, seed=0):
    rng = np.random.default_rng(seed)
    return dict(initial_probs=rng.dirichlet(np.ones(k)), transition_probs=rng.dirichlet(np.ones(k), size=k),
                means=rng.normal(size=(k, dim)) * 2, scales=rng.uniform(0.5, 1.5, size=(k, dim)))


def _hmm_from(params, **kwargs):
    k, dim = params["means"].shape
    return HiddenMarkovModel(dim, n_states=k, **kwargs).set_parameters(**params)


def _stored(hmm):
    """The model's parameters in float64, as the NumPy references take them."""
    return (hmm.initial_probs.numpy().astype(np.float64), hmm.transition_probs.numpy().astype(np.float64),
            hmm.means.numpy().astype(np.float64), hmm.scales.numpy().astype(np.float64))


@pytest.fixture(scope="module")
def two_state_data():
    rng = np.random.default_rng(0)
    return [_numpy_sample(TRUE_PI, TRUE_A, TRUE_MEANS, TRUE_STDS, 200, rng)[1].astype("float32")
            for _ in range(20)]


@pytest.fixture(scope="module")
def two_state_fit(two_state_data):
    hmm = HiddenMarkovModel(2, n_states=2)
    return hmm, hmm.fit(two_state_data, seed=0)


# --- log_prob ----------------------------------------------------------------------------------

def test_log_prob_matches_numpy_forward():
    params = _random_model(k=3, dim=2, seed=1)
    hmm = _hmm_from(params)
    ref = _stored(hmm)
    x = np.random.default_rng(2).normal(size=(3, 12, 2)).astype("float32") * 2
    want = np.array([_numpy_forward(s, *ref) for s in x])
    np.testing.assert_allclose(hmm.log_prob(x).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(hmm.log_prob(x[1]).numpy(), want[1], rtol=1e-5)  # one (T, dim) sequence
    np.testing.assert_allclose(tf.function(hmm.log_prob)(x).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(hmm.distribution(12).log_prob(x).numpy(), want, rtol=1e-5)
    # The stored parameters are the ones that were set (float32 rounding aside).
    np.testing.assert_allclose(ref[1], params["transition_probs"], atol=1e-6)


def test_log_prob_matches_brute_force_enumeration():
    params = _random_model(k=3, dim=2, seed=3)
    hmm = _hmm_from(params)
    x = np.random.default_rng(4).normal(size=(4, 2)).astype("float32")
    want = _brute_force(x, *_stored(hmm))
    np.testing.assert_allclose(hmm.log_prob(x).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(_numpy_forward(x, *_stored(hmm)), want, rtol=1e-12)  # the reference agrees too


def test_unfitted_is_iid_standard_normal():
    hmm = HiddenMarkovModel(3, n_states=4)
    x = np.random.default_rng(5).normal(size=(2, 6, 3)).astype("float32")
    want = (-0.5 * x.astype(np.float64)**2 - 0.5 * np.log(2 * np.pi)).sum((1, 2))
    np.testing.assert_allclose(hmm.log_prob(x).numpy(), want, rtol=1e-5)
    assert int(hmm.fitted.numpy()) == 0


# --- fitting -----------------------------------------------------------------------------------

def test_fit_recovers_two_state_chain(two_state_fit):
    hmm, report = two_state_fit
    assert report["converged"] and int(hmm.fitted.numpy()) == 1
    pi, a, means, stds = _stored(hmm)
    order = np.argsort(means[:, 0])  # match states by their means (true state 0 has the smaller x-mean)
    np.testing.assert_allclose(a[np.ix_(order, order)], TRUE_A, atol=0.05)
    np.testing.assert_allclose(means[order], TRUE_MEANS, atol=0.1)
    np.testing.assert_allclose(stds[order], TRUE_STDS, atol=0.1)


def test_history_is_the_log_likelihood_and_never_decreases(two_state_fit, two_state_data):
    hmm, report = two_state_fit
    h = np.array(report["history"])
    assert len(h) == report["iterations"] + 1 and report["log_likelihood"] == h[-1]
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    assert h[-1] > h[0]
    # The last entry is the exact (TFP) log-likelihood per step of the stored parameters.
    total = float(tf.reduce_sum(hmm.log_prob(np.stack(two_state_data))))
    np.testing.assert_allclose(h[-1], total / (20 * 200), rtol=1e-5)


def _ragged_sequences():
    rng = np.random.default_rng(6)
    return [_numpy_sample(TRUE_PI, TRUE_A, TRUE_MEANS, TRUE_STDS, n, rng)[1] for n in (1, 7, 40, 120, 75)]


def test_fit_sequences_of_different_lengths_misspecified():
    """Three states on two-state data, random init, ragged sequences (padded inside fit):
    EM is monotone and its final log-likelihood is the exact one of the stored model."""
    seqs = _ragged_sequences()
    hmm = HiddenMarkovModel(2, n_states=3)
    report = hmm.fit(seqs, init="random", n_init=2, max_iter=30, tol=1e-7, seed=3)
    h = np.array(report["history"])
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1])), np.diff(h).min()
    assert len(report["init_log_likelihoods"]) == 2
    assert report["log_likelihood"] == max(report["init_log_likelihoods"])
    ref = _stored(hmm)
    total = sum(_numpy_forward(s, *ref) for s in seqs)
    np.testing.assert_allclose(h[-1], total / sum(map(len, seqs)), rtol=1e-5)


def test_fit_in_batches_of_sequences_is_the_same_fit(monkeypatch):
    """The E-step summed over several small batches of sequences (as fit does for
    many sequences) gives the fit of one batch."""
    seqs = _ragged_sequences()
    one = HiddenMarkovModel(2, n_states=3).fit(seqs, max_iter=8, tol=0.0, seed=4)
    assert len(hmm_module._padded_batches(seqs, 3)) == 1
    monkeypatch.setattr(hmm_module, "_EM_BLOCK_ENTRIES", 400)  # -> batches of lengths (1, 7, 40), (75,), (120,)
    assert [b[0].shape[0] for b in hmm_module._padded_batches(seqs, 3)] == [3, 1, 1]
    many = HiddenMarkovModel(2, n_states=3).fit(seqs, max_iter=8, tol=0.0, seed=4)
    np.testing.assert_allclose(many["history"], one["history"], rtol=1e-10)


def test_fit_input_forms_and_max_iter(two_state_data, two_state_fit):
    """A (n, T, dim) array fits exactly as the list of its rows; max_iter caps the M-steps."""
    _, report = two_state_fit
    hmm = HiddenMarkovModel(2, n_states=2)
    again = hmm.fit(np.stack(two_state_data), seed=0)
    np.testing.assert_allclose(again["history"], report["history"], rtol=1e-12)
    short = hmm.fit(two_state_data, max_iter=2, seed=0)
    assert short["iterations"] == 2 and not short["converged"] and len(short["history"]) == 3


# --- sampling ----------------------------------------------------------------------------------

THREE_STATE = dict(initial_probs=np.array([0.2, 0.5, 0.3]),
                   transition_probs=np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]]),
                   means=np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]]),
                   scales=np.array([[0.5, 1.0], [1.0, 0.5], [0.7, 0.7]]))


def test_sample_is_deterministic_in_seed():
    hmm = _hmm_from(THREE_STATE)
    a = hmm.sample_sequence(50, n=3, seed=7).numpy()
    assert a.shape == (3, 50, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, hmm.sample_sequence(50, n=3, seed=7).numpy())
    assert not np.array_equal(a, hmm.sample_sequence(50, n=3, seed=8).numpy())
    # In a graph, with tensor length / n / seed (as an export calls it): the same draws.
    graph = tf.function(lambda n, s: hmm.sample(n, seed=s),
                        input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    np.testing.assert_array_equal(graph(tf.constant(50), tf.constant(7, tf.int64)).numpy(),
                                  hmm.sample(50, seed=7).numpy())
    np.testing.assert_array_equal(hmm.sample(50, seed=7).numpy(), hmm.sample_sequence(50, 1, seed=7)[0].numpy())
    assert graph(tf.constant(0), tf.constant(1, tf.int64)).shape == (0, 2)
    assert graph(tf.constant(1), tf.constant(1, tf.int64)).shape == (1, 2)


def test_sample_initial_and_transition_frequencies():
    hmm = _hmm_from(THREE_STATE)
    _, z0 = hmm.sample_sequence(1, n=20_000, seed=1, return_states=True)
    # Standard error of a frequency here <= sqrt(0.25 / 2e4) = 0.0035.
    np.testing.assert_allclose(np.bincount(z0.numpy()[:, 0], minlength=3) / 20_000,
                               THREE_STATE["initial_probs"], atol=0.015)

    codes, states = hmm.sample_sequence(5_000, n=4, seed=2, return_states=True)
    codes, states = codes.numpy(), states.numpy()
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:, :-1].ravel(), states[:, 1:].ravel()), 1)
    # ~6,700 transitions out of each state: standard error <= 0.006.
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), THREE_STATE["transition_probs"], atol=0.025)
    # The emissions belong to the states: per-state moments, and states readable back from the codes.
    for k in range(3):
        x = codes[states == k]
        np.testing.assert_allclose(x.mean(0), THREE_STATE["means"][k], atol=0.05)
        np.testing.assert_allclose(x.std(0), THREE_STATE["scales"][k], atol=0.05)
    nearest = np.argmin(((codes[..., None, :] - THREE_STATE["means"]) ** 2).sum(-1), -1)
    assert (nearest == states).mean() > 0.99


# --- serialization and bad input ---------------------------------------------------------------

def test_config_and_weights_round_trip():
    hmm = _hmm_from(_random_model(k=4, dim=3, seed=9), name="hmm_prior")
    x = np.random.default_rng(10).normal(size=(2, 9, 3)).astype("float32")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(hmm))
    assert isinstance(clone, HiddenMarkovModel) and clone.get_config() == hmm.get_config()
    assert (clone.dim, clone.n_states, clone.name) == (3, 4, "hmm_prior")
    assert len(clone.weights) == 5 and not clone.trainable_weights
    clone.set_weights(hmm.get_weights())
    np.testing.assert_array_equal(clone.log_prob(x).numpy(), hmm.log_prob(x).numpy())
    np.testing.assert_array_equal(clone.sample(20, seed=3).numpy(), hmm.sample(20, seed=3).numpy())
    assert int(clone.fitted.numpy()) == 1


def _bad_calls():
    good = np.zeros((10, 2), "float32")
    with_nan = good.copy()
    with_nan[3, 1] = np.nan
    return [
        (lambda h: HiddenMarkovModel(2, n_states=0), "n_states"),
        (lambda h: HiddenMarkovModel(0, n_states=2), "dim"),
        (lambda h: h.fit([]), "empty"),
        (lambda h: h.fit([good, np.zeros((0, 2))]), r"sequences\[1\] is empty"),
        (lambda h: h.fit([good, np.zeros((5, 3))]), r"sequences\[1\] must have shape \(length, 2\)"),
        (lambda h: h.fit(np.zeros((2, 3, 4, 2))), "shape"),
        (lambda h: h.fit([good, with_nan]), "NaN"),
        (lambda h: h.fit(good[:2]), "fewer than n_states=3"),
        (lambda h: h.fit(good, max_iter=0), "max_iter"),
        (lambda h: h.fit(good, reg=0.0), "reg"),
        (lambda h: h.fit(good, init="spectral"), "init"),
        (lambda h: h.fit(["a", "b"]), "numeric"),
        (lambda h: h.log_prob(np.zeros((4, 3), "float32")), "shape"),
        (lambda h: h.log_prob(np.zeros((2,), "float32")), "shape"),
        (lambda h: h.log_prob(np.zeros((0, 2), "float32")), "length 0"),
        (lambda h: h.distribution(), "length"),
        (lambda h: h.sample_sequence(-1), "length"),
        (lambda h: h.set_parameters(transition_probs=np.full((3, 3), 0.5)), "sum to 1"),
        (lambda h: h.set_parameters(scales=-np.ones((3, 2))), "positive"),
        (lambda h: h.set_parameters(means=np.zeros((2, 2))), r"shape \(3, 2\)"),
    ]


@pytest.mark.parametrize("call, match", _bad_calls())
def test_bad_input_raises(call, match):
    hmm = HiddenMarkovModel(2, n_states=3)
    with pytest.raises(ValueError, match=match):
        call(hmm)
    assert int(hmm.fitted.numpy()) == 0  # nothing was half-set
