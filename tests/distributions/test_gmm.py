"""The EM-fitted full-covariance Gaussian mixture (IML's learned base, METHODS.md §5):
parameter recovery against the truth and against scikit-learn, the monotone
EM log-likelihood, log-densities against SciPy, seeded sampling and its
moments, config/weights round trip, export, reproducible initialisation,
empty components, and bad input."""

import math

import numpy as np
import keras
import pytest
import tensorflow as tf
from scipy import special, stats

from tfgen.distributions.gmm import GaussianMixture

# A known 3-component 2-D mixture: well-separated means, distinct full
# covariances, unequal weights.
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
TRUE_COVS = np.array([[[1.0, 0.6], [0.6, 0.8]],
                      [[0.5, -0.3], [-0.3, 0.6]],
                      [[0.3, 0.1], [0.1, 0.2]]])
N_POINTS = 3000


def _mixture_data(n=N_POINTS, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    noise = np.einsum("nij,nj->ni", np.linalg.cholesky(TRUE_COVS)[labels], rng.normal(size=(n, 2)))
    return (TRUE_MEANS[labels] + noise).astype("float32")


@pytest.fixture(scope="module")
def data():
    return _mixture_data()


@pytest.fixture(scope="module")
def fitted(data):
    gmm = GaussianMixture(2, 3, tol=1e-8, max_iter=100, n_init=2, seed=0)
    report = gmm.fit(data)
    return gmm, report


def _match(fitted_means, true_means):
    """Index of the fitted component nearest each true mean (must be a permutation)."""
    order = [int(np.argmin(((fitted_means - m) ** 2).sum(1))) for m in true_means]
    assert sorted(order) == list(range(len(true_means)))
    return order


def _assign(gmm, weights, means, covs):
    gmm.logits.assign(np.log(weights).astype("float32"))
    gmm.means.assign(np.asarray(means, "float32"))
    gmm.scale_tril.assign(np.linalg.cholesky(covs).astype("float32"))
    return gmm


def _random_mixture(dim, k, seed):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k) * 2.0)
    means = rng.normal(scale=2.0, size=(k, dim))
    a = rng.normal(size=(k, dim, dim)) * 0.6
    covs = a @ np.swapaxes(a, 1, 2) + 0.2 * np.eye(dim)
    return weights, means, covs


def _log_prob_scipy(z, weights, means, covs):
    comp = np.stack([stats.multivariate_normal(m, c).logpdf(np.asarray(z, np.float64))
                     for m, c in zip(means, covs)], 1)
    return special.logsumexp(comp + np.log(weights), axis=1)


# --- fitting ---------------------------------------------------------------------------------

def test_em_recovers_known_mixture(fitted):
    gmm, report = fitted
    assert report["converged"] and int(gmm.fitted) == 1
    order = _match(gmm.means.numpy(), TRUE_MEANS)
    weights, means, covs = (gmm.mixture_weights().numpy()[order], gmm.means.numpy()[order],
                            gmm.covariances().numpy()[order])
    # Tolerances ~3 standard errors of the MLE at n = 3000 (smallest component
    # ~600 points): weights sd ~0.009, means sd <= 0.03, covariance entries sd <= 0.04.
    np.testing.assert_allclose(weights, TRUE_WEIGHTS, atol=0.03)
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.1)
    np.testing.assert_allclose(covs, TRUE_COVS, atol=0.1)


def test_em_matches_scikit_learn_on_the_same_data(fitted, data):
    """Both converge (tol 1e-8) to the same maximum-likelihood estimate."""
    from sklearn.mixture import GaussianMixture as SklearnGMM

    gmm, report = fitted
    ref = SklearnGMM(3, covariance_type="full", tol=1e-8, max_iter=100, random_state=0).fit(data.astype("float64"))
    order = _match(gmm.means.numpy(), ref.means_)
    np.testing.assert_allclose(gmm.mixture_weights().numpy()[order], ref.weights_, atol=1e-5)
    np.testing.assert_allclose(gmm.means.numpy()[order], ref.means_, atol=1e-4)
    np.testing.assert_allclose(gmm.covariances().numpy()[order], ref.covariances_, atol=1e-4)
    assert report["log_likelihood"] == pytest.approx(ref.score(data.astype("float64")), abs=1e-5)


def test_report_is_consistent_with_the_stored_parameters(fitted, data):
    gmm, report = fitted
    assert set(report) == {"log_likelihood_history", "initial_log_likelihood", "n_iter", "converged",
                           "best_init", "log_likelihood", "restart_log_likelihoods"}
    assert report["n_iter"] == len(report["log_likelihood_history"]) >= 1
    assert report["log_likelihood"] == report["log_likelihood_history"][-1]
    assert len(report["restart_log_likelihoods"]) == 2
    assert report["log_likelihood"] == max(report["restart_log_likelihoods"])
    assert report["restart_log_likelihoods"][report["best_init"]] == report["log_likelihood"]
    # The reported final log-likelihood is that of the parameters put in the variables.
    assert float(np.mean(gmm.log_prob(data).numpy())) == pytest.approx(report["log_likelihood"], abs=1e-4)


@pytest.mark.filterwarnings("ignore:GaussianMixture.fit.*did not converge")
def test_log_likelihood_history_never_decreases():
    # Overlapping clusters and one component too many: EM creeps for many iterations.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(400, 2)) * [1.0, 0.5], rng.normal(size=(300, 2)) + [1.5, 0.5],
                        rng.normal(size=(300, 2)) * 0.7 - [0.5, 1.0]]).astype("float32")
    report = GaussianMixture(2, 4, tol=0.0, max_iter=40, n_init=1, seed=3).fit(x)
    hist = np.array([report["initial_log_likelihood"]] + report["log_likelihood_history"])
    assert report["n_iter"] >= 20  # the check covers many iterations
    steps = np.diff(hist)
    assert np.all(steps >= -1e-6 * np.abs(hist[1:])), steps.min()
    assert hist[-1] > hist[0] + 0.01  # and EM did improve on the initialisation


def test_unconverged_fit_warns():
    x = _mixture_data(n=N_POINTS, seed=2)
    with pytest.warns(UserWarning, match="did not converge"):
        report = GaussianMixture(2, 3, tol=0.0, max_iter=2, n_init=1).fit(x)
    assert report["n_iter"] == 2 and not report["converged"]


def test_same_seed_same_fit_and_kmeans_init(data):
    a = GaussianMixture(2, 3, n_init=1, max_iter=5, seed=7)
    b = GaussianMixture(2, 3, n_init=1, max_iter=5, seed=7)
    ra, rb = a.fit(data), b.fit(data)
    assert ra["log_likelihood_history"] == rb["log_likelihood_history"]
    for va, vb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(va, vb)
    # init="kmeans" (Lloyd after k-means++, scikit-learn's default) reaches the same optimum here.
    c = GaussianMixture(2, 3, n_init=1, tol=1e-8, init="kmeans", seed=7)
    c.fit(data)
    order = _match(c.means.numpy(), a.means.numpy())
    np.testing.assert_allclose(c.means.numpy()[order], a.means.numpy(), atol=1e-2)


def test_empty_components_are_guarded():
    """Two distinct codes, three components: k-means++ must repeat a centre, one cluster
    is empty, and the fit still gives a valid mixture."""
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]], "float32"), 10, axis=0)
    gmm = GaussianMixture(2, 3, reg_covar=1e-3, n_init=2, seed=0)
    report = gmm.fit(x)
    weights = gmm.mixture_weights().numpy()
    assert report["converged"] and np.all(np.isfinite(gmm.get_weights()[2]))
    np.testing.assert_allclose(np.sort(weights), [0.0, 0.5, 0.5], atol=1e-6)
    assert np.all(np.isfinite(gmm.log_prob(x).numpy()))
    # Each occupied component sits on one code with covariance reg_covar * I.
    log_n = -math.log(2 * math.pi * 1e-3) + math.log(0.5)
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), log_n, rtol=1e-4)


def test_singular_covariance_without_regularisation_raises():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], "float32"), 5, axis=0)
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, 3, reg_covar=0.0, n_init=1).fit(x)


# --- log_prob --------------------------------------------------------------------------------

def test_log_prob_matches_scipy():
    weights, means, covs = _random_mixture(3, 4, seed=0)
    gmm = _assign(GaussianMixture(3, 4), weights, means, covs)
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(scale=3.0, size=(30, 3)), [[40.0, -30.0, 25.0]]]).astype("float32")
    want = _log_prob_scipy(z, weights, means, covs)
    np.testing.assert_allclose(gmm.log_prob(z).numpy(), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gmm.distribution().log_prob(z).numpy(), want, rtol=1e-4, atol=1e-3)
    got = tf.function(gmm.log_prob, input_signature=[tf.TensorSpec([None, 3], tf.float32)])(z)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)
    gmm._block_rows = 7  # several blocks, a ragged last one
    np.testing.assert_allclose(gmm.log_prob(z).numpy(), want, rtol=1e-5, atol=1e-4)
    assert gmm.log_prob(np.zeros((0, 3), "float32")).shape == (0,)


def test_unfitted_mixture_is_standard_normal():
    gmm = GaussianMixture(3, 4)
    assert int(gmm.fitted) == 0
    z = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    want = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    np.testing.assert_allclose(gmm.log_prob(z).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(gmm.distribution().log_prob(z).numpy(), want, rtol=1e-5)


# --- sampling --------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, k", [(3, 2), (2, 4)], ids=["k<=dim", "k>dim"])
def test_sample_moments_match_the_mixture(dim, k):
    weights, means, covs = _random_mixture(dim, k, seed=dim + k)
    gmm = _assign(GaussianMixture(dim, k), weights, means, covs)
    z = gmm.sample(20_000, seed=0).numpy()
    assert z.shape == (20_000, dim) and z.dtype == np.float32
    mean = weights @ means
    cov = np.einsum("k,kij->ij", weights, covs + np.einsum("ki,kj->kij", means, means)) - np.outer(mean, mean)
    # Standard errors at n = 2e4: mean sqrt(var / n) <= 0.02, covariance entries <= ~0.06.
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(z.mean(0), mean, atol=4 * sd.max() / math.sqrt(20_000))
    np.testing.assert_allclose(np.cov(z.T), cov, atol=4 * math.sqrt(2.0) * sd.max() ** 2 / math.sqrt(20_000))


def test_sample_is_deterministic_in_the_seed():
    weights, means, covs = _random_mixture(3, 4, seed=5)
    gmm = _assign(GaussianMixture(3, 4), weights, means, covs)
    a, b, c = (gmm.sample(64, seed=s).numpy() for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    sample = tf.function(lambda n, seed: gmm.sample(n, seed=seed))
    np.testing.assert_array_equal(sample(tf.constant(64), tf.constant(7, tf.int64)).numpy(), a)


# --- serialisation and export ----------------------------------------------------------------

def test_config_and_weights_round_trip(fitted):
    gmm, _ = fitted
    cfg = gmm.get_config()
    assert {k: cfg[k] for k in ("dim", "n_components", "reg_covar", "tol", "max_iter", "n_init", "init", "seed")} \
        == dict(dim=2, n_components=3, reg_covar=1e-6, tol=1e-8, max_iter=100, n_init=2, init="kmeans++", seed=0)
    fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(gmm))
    assert type(fresh) is GaussianMixture and fresh.get_config() == cfg and int(fresh.fitted) == 0
    fresh.set_weights(gmm.get_weights())
    z = np.random.default_rng(0).normal(scale=3.0, size=(50, 2)).astype("float32")
    np.testing.assert_array_equal(fresh.log_prob(z).numpy(), gmm.log_prob(z).numpy())
    np.testing.assert_array_equal(fresh.sample(32, seed=1).numpy(), gmm.sample(32, seed=1).numpy())
    assert sorted(v.path.split("/")[-1] for v in gmm.weights) == ["fitted", "logits", "means", "scale_tril"]
    assert gmm.trainable_weights == []


def test_savedmodel_export_carries_the_fitted_mixture(fitted, tmp_path):
    gmm, _ = fitted
    archive = keras.export.ExportArchive()
    archive.track(gmm)
    archive.add_endpoint("sample", lambda n, seed: gmm.sample(n, seed=seed),
                         input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    archive.add_endpoint("log_prob", gmm.log_prob, input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    archive.write_out(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_array_equal(served.sample(tf.constant(16), tf.constant(3, tf.int64)).numpy(),
                                  gmm.sample(16, seed=3).numpy())
    z = gmm.sample(16, seed=4)
    np.testing.assert_allclose(served.log_prob(z).numpy(), gmm.log_prob(z).numpy(), rtol=1e-6)


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (np.zeros((10, 3), "float32"), r"shape \(n, 2\)"),
    (np.zeros((10,), "float32"), "shape"),
    (np.zeros((2, 5, 2), "float32"), "shape"),
    (np.zeros((2, 2), "float32"), "at least as many codes as components"),
    (np.zeros((0, 2), "float32"), "at least as many"),
    (np.array([[0.0, np.nan]] * 5, "float32"), "NaN"),
    (np.array([["a", "b"]] * 5), "numeric"),
], ids=["wrong-dim", "rank1", "rank3", "too-few", "empty", "nan", "strings"])
def test_fit_bad_input_raises_and_keeps_the_variables(bad, match):
    gmm = GaussianMixture(2, 3)
    before = gmm.get_weights()
    with pytest.raises(ValueError, match=match):
        gmm.fit(bad)
    for a, b in zip(before, gmm.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    dict(dim=0), dict(n_components=0), dict(n_components=2.5), dict(reg_covar=-1e-6),
    dict(reg_covar=float("nan")), dict(tol=-1.0), dict(max_iter=0), dict(n_init=0), dict(init="random"),
])
def test_bad_constructor_args_raise(kwargs):
    with pytest.raises(ValueError):
        GaussianMixture(**{"dim": 2, "n_components": 3, **kwargs})


def test_log_prob_wrong_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture(2, 3).log_prob(np.zeros((4, 3), "float32"))


def test_fit_in_a_graph_raises():
    gmm = GaussianMixture(2, 3)
    with pytest.raises(RuntimeError, match="eagerly"):
        tf.function(lambda x: gmm.fit(x) and None)(np.zeros((5, 2), "float32"))
