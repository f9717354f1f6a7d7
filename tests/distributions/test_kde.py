"""The KDE prior (KDE-GAN, Alg. 2): log-densities against NumPy, sample moments,
the unfitted fallback, seeding, fitting eagerly / in a graph / under
MirroredStrategy, bad input, save/load/export, and the held-out likelihood
sweep (paper Fig. 10)."""

import math
import warnings

import numpy as np
import keras
import pytest
import tensorflow as tf
from scipy import special, stats

from tfgen.distributions import KDE, heldout_log_likelihood

DIM = 3


def _codes(n=40, dim=DIM, seed=0, offset=2.0):
    """Codes away from the origin (so a stray zero row of the buffer would show)."""
    rng = np.random.default_rng(seed)
    return (offset + rng.normal(size=(n, dim)) * np.linspace(0.5, 1.5, dim)).astype("float32")


def _log_prob_numpy(z, codes, h, w=0.0, s=1.0):
    """float64 log of (1 - w) * mean_j N(z; c_j, h^2 I) + w * N(z; 0, s^2 I)."""
    z, codes = np.asarray(z, np.float64), np.asarray(codes, np.float64)
    d = z.shape[1]
    sq = ((z[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    comp = -0.5 * d * np.log(2 * np.pi * h**2) - sq / (2 * h**2)
    log_kde = special.logsumexp(comp, axis=1) - np.log(len(codes))
    if w == 0:
        return log_kde
    log_bg = stats.multivariate_normal(np.zeros(d), s**2 * np.eye(d)).logpdf(z)
    return np.logaddexp(np.log1p(-w) + log_kde, np.log(w) + log_bg)


def _query_points(codes, seed=1):
    rng = np.random.default_rng(seed)
    return np.concatenate([codes[:10] + 0.2 * rng.normal(size=(10, codes.shape[1])),  # near codes
                           rng.normal(size=(10, codes.shape[1])) * 3,                # anywhere
                           [[0.0] * codes.shape[1], [8.0] + [-6.0] * (codes.shape[1] - 1)]]
                          ).astype("float32")


# --- log_prob ----------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [0.0, 0.3])
def test_log_prob_matches_numpy_and_tfp(w):
    codes, h, s = _codes(), 0.4, 2.0
    kde = KDE(DIM, capacity=64, bandwidth=h, background_weight=w, background_scale=s).fit(codes)
    z = _query_points(codes)
    want = _log_prob_numpy(z, codes, h, w, s)
    np.testing.assert_allclose(kde.log_prob(z).numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kde.distribution().log_prob(z).numpy(), want, rtol=1e-4, atol=1e-4)
    # In a graph (count a tensor there) both forms agree too.
    lp, dist_lp = tf.function(lambda x: (kde.log_prob(x), kde.distribution().log_prob(x)))(z)
    np.testing.assert_allclose(lp.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dist_lp.numpy(), want, rtol=1e-4, atol=1e-4)


def test_log_prob_in_blocks_matches_numpy():
    """Several blocks with a ragged last one: the padding must not leak into the result."""
    codes, h = _codes(n=25), 0.3
    kde = KDE(DIM, capacity=32, bandwidth=h).fit(codes)
    kde._chunk_rows = 7
    z = np.concatenate([_query_points(codes), _query_points(codes, seed=2)[:9]])  # 31 rows
    np.testing.assert_allclose(kde.log_prob(z).numpy(), _log_prob_numpy(z, codes, h), rtol=1e-4, atol=1e-4)


def test_log_prob_tiny_bandwidth_far_from_origin():
    """Matmul-form distances are centred on the codes: no float32 cancellation at h = 0.01, |z| ~ 100."""
    codes, h = _codes(n=20, offset=100.0), 0.01
    kde = KDE(DIM, capacity=20, bandwidth=h).fit(codes)
    z = codes + 0.01 * np.random.default_rng(3).normal(size=codes.shape).astype("float32")
    np.testing.assert_allclose(kde.log_prob(z).numpy(), _log_prob_numpy(z, codes, h), rtol=1e-4, atol=2e-2)


@pytest.mark.parametrize("w", [0.0, 0.3])
def test_unfitted_log_prob_is_background(w):
    s = 2.0
    kde = KDE(DIM, capacity=8, background_weight=w, background_scale=s)
    z = _query_points(_codes())
    want = stats.multivariate_normal(np.zeros(DIM), s**2 * np.eye(DIM)).logpdf(z)
    np.testing.assert_allclose(kde.log_prob(z).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kde.distribution().log_prob(z).numpy(), want, rtol=1e-5, atol=1e-5)
    dist_lp = tf.function(lambda x: kde.distribution().log_prob(x))(z)
    np.testing.assert_allclose(dist_lp.numpy(), want, rtol=1e-5, atol=1e-5)


def test_log_prob_wrong_shape_raises():
    kde = KDE(DIM, capacity=8)
    for bad in (np.zeros((4, DIM + 1), "float32"), np.zeros((DIM,), "float32")):
        with pytest.raises(ValueError, match="shape"):
            kde.log_prob(bad)


# --- sampling ----------------------------------------------------------------------------------

N = 20_000


def test_sample_moments_match_mixture():
    codes, h = _codes(n=200, seed=4), 0.5
    z = KDE(DIM, capacity=256, bandwidth=h).fit(codes).sample(N, seed=0).numpy()
    # Mixture mean = mean of codes; covariance = cov(codes) (ddof=0) + h^2 I.
    # Standard errors: mean ~ 1.6 / sqrt(2e4) ~ 0.012; variance ~ 2.6 * sqrt(2 / 2e4) ~ 0.03.
    np.testing.assert_allclose(z.mean(0), codes.mean(0), atol=0.05)
    want_cov = np.cov(codes.T, ddof=0) + h**2 * np.eye(DIM)
    np.testing.assert_allclose(np.cov(z.T), want_cov, atol=0.12)
    assert z.dtype == np.float32 and z.shape == (N, DIM)


def test_sample_moments_with_background():
    codes, h, w, s = _codes(n=200, seed=4), 0.5, 0.25, 3.0
    z = KDE(DIM, capacity=256, bandwidth=h, background_weight=w, background_scale=s).fit(codes).sample(
        N, seed=1).numpy()
    mu_c = codes.mean(0)
    mean = (1 - w) * mu_c
    second = (1 - w) * (np.cov(codes.T, ddof=0) + h**2 * np.eye(DIM) + np.outer(mu_c, mu_c)) + w * s**2 * np.eye(DIM)
    np.testing.assert_allclose(z.mean(0), mean, atol=0.08)
    np.testing.assert_allclose(np.cov(z.T), second - np.outer(mean, mean), atol=0.25)
    # The share of background draws is w: with a tiny bandwidth the KDE draws sit
    # on the codes and the background draws (almost surely) do not.
    spiky = KDE(DIM, capacity=256, bandwidth=1e-5, background_weight=w, background_scale=s).fit(codes)
    z = spiky.sample(5000, seed=1).numpy()
    dist = np.sqrt(((z[:, None, :] - codes[None, :, :]) ** 2).sum(-1)).min(1)
    assert abs(np.mean(dist > 1e-3) - w) < 0.025  # sd of the share ~0.006


def test_samples_lie_on_the_codes_when_bandwidth_is_tiny():
    codes = _codes(n=5)
    kde = KDE(DIM, capacity=16, bandwidth=1e-4).fit(codes)  # 11 zero rows in the buffer
    z = kde.sample(5000, seed=2).numpy()
    dist = np.sqrt(((z[:, None, :] - codes[None, :, :]) ** 2).sum(-1))
    assert dist.min(1).max() < 1e-3  # every draw is at one of the 5 codes (never a zero row)
    counts = np.bincount(dist.argmin(1), minlength=5) / len(z)
    np.testing.assert_allclose(counts, 0.2, atol=0.03)  # j ~ U{1..count}


def test_unfitted_samples_are_background():
    s = 2.0
    for w in (0.0, 0.3):
        z = KDE(DIM, capacity=8, bandwidth=0.1, background_weight=w, background_scale=s).sample(N, seed=0).numpy()
        np.testing.assert_allclose(z.mean(0), 0.0, atol=0.05)
        np.testing.assert_allclose(z.std(0), s, atol=0.05)
        assert abs(np.corrcoef(z.T)[0, 1]) < 0.03


def test_same_seed_same_samples_different_seed_different():
    kde = KDE(DIM, capacity=64, bandwidth=0.2, background_weight=0.2).fit(_codes())
    a, b, c = (kde.sample(64, seed=s).numpy() for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # A second instance fitted on the same codes draws the same codes.
    other = KDE(DIM, capacity=64, bandwidth=0.2, background_weight=0.2).fit(_codes())
    np.testing.assert_array_equal(other.sample(64, seed=7).numpy(), a)


def test_tf_function_with_tensor_seed_and_n_matches_eager():
    kde = KDE(DIM, capacity=64, bandwidth=0.2, background_weight=0.2).fit(_codes())
    sample = tf.function(lambda n, seed: kde.sample(n, seed=seed))
    for s in (3, 4):
        np.testing.assert_array_equal(sample(tf.constant(16), tf.constant(s, tf.int64)).numpy(),
                                      kde.sample(16, seed=s).numpy())
    assert not np.allclose(sample(tf.constant(16), tf.constant(3)).numpy(),
                           sample(tf.constant(16), tf.constant(4)).numpy())
    assert kde.sample(0, seed=0).shape == (0, DIM)


# --- fitting -----------------------------------------------------------------------------------

def test_fit_stores_codes_in_order_and_refit_clears_old_rows():
    kde = KDE(DIM, capacity=10)
    assert int(kde.count) == 0
    kde.fit(_codes(n=8))
    kde.fit(_codes(n=3, seed=5).astype("float64"))  # float64 input is cast
    assert int(kde.count) == 3
    np.testing.assert_array_equal(kde.codes.numpy()[:3], _codes(n=3, seed=5))
    np.testing.assert_array_equal(kde.codes.numpy()[3:], 0.0)


def test_fit_in_tf_function_with_unknown_batch_equals_eager():
    graph_kde, eager_kde = KDE(DIM, capacity=10, seed=3), KDE(DIM, capacity=10, seed=3)

    @tf.function(input_signature=[tf.TensorSpec([None, DIM], tf.float32)])
    def fit_and_sample(codes):
        graph_kde.fit(codes)
        return graph_kde.sample(32, seed=1)

    for n in (7, 3, 25):  # one trace; the last one exceeds capacity
        codes = _codes(n=n, seed=n)
        got = fit_and_sample(codes).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eager_kde.fit(codes)
        assert int(graph_kde.count) == min(n, 10)
        np.testing.assert_array_equal(graph_kde.codes.numpy(), eager_kde.codes.numpy())
        np.testing.assert_array_equal(got, eager_kde.sample(32, seed=1).numpy())
    assert fit_and_sample.experimental_get_tracing_count() == 1


def test_fit_more_than_capacity_keeps_a_seeded_random_subset():
    codes = _codes(n=50)
    with pytest.warns(UserWarning, match="capacity"):
        kde = KDE(DIM, capacity=20, seed=0).fit(codes)
    kept = kde.codes.numpy()
    assert int(kde.count) == 20
    idx = [int(np.flatnonzero((codes == row).all(1))[0]) for row in kept]  # each kept row is an input row
    assert len(set(idx)) == 20 and idx == sorted(idx)                      # distinct, in input order
    assert idx != list(range(20))                                          # a random subset, not the head
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(KDE(DIM, capacity=20, seed=0).fit(codes).codes.numpy(), kept)
    with pytest.warns(UserWarning):
        assert not np.array_equal(KDE(DIM, capacity=20, seed=1).fit(codes).codes.numpy(), kept)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, DIM + 1), "float32"), "shape"),
    (np.zeros((DIM,), "float32"), "shape"),
    (np.zeros((2, 2, DIM), "float32"), "shape"),
    (np.zeros((0, DIM), "float32"), "empty"),
    (np.array([[0.0, np.nan, 1.0]], "float32"), "NaN"),
    (np.array([[0.0, np.inf, 1.0]], "float32"), "NaN or Inf"),
    (np.array([["a", "b", "c"]]), "numeric"),
], ids=["wrong-dim", "rank1", "rank3", "empty", "nan", "inf", "strings"])
def test_fit_bad_input_raises_and_keeps_old_fit(bad, match):
    kde = KDE(DIM, capacity=8).fit(_codes(n=4))
    before = kde.codes.numpy()
    with pytest.raises(ValueError, match=match):
        kde.fit(bad)
    assert int(kde.count) == 4
    np.testing.assert_array_equal(kde.codes.numpy(), before)


def test_fit_bad_input_in_graph_raises():
    kde = KDE(DIM, capacity=8)
    fit = tf.function(lambda c: kde.fit(c) and None, input_signature=[tf.TensorSpec([None, DIM], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        fit(np.array([[0.0, np.nan, 1.0]], "float32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
        fit(np.zeros((0, DIM), "float32"))
    assert int(kde.count) == 0
    with pytest.raises(ValueError, match="shape"):  # a static shape is checked at trace time
        tf.function(lambda c: kde.fit(c) and None)(np.zeros((2, DIM + 1), "float32"))


@pytest.mark.parametrize("kwargs", [
    dict(dim=0), dict(capacity=0), dict(capacity=-3), dict(capacity=2.5), dict(bandwidth=0.0),
    dict(bandwidth=-1.0), dict(bandwidth=float("nan")), dict(background_weight=-0.1),
    dict(background_weight=1.0), dict(background_scale=0.0),
])
def test_bad_constructor_args_raise(kwargs):
    with pytest.raises(ValueError):
        KDE(**{"dim": DIM, **kwargs})


def test_bandwidth_variable_is_read():
    kde = KDE(DIM, capacity=8, bandwidth=0.1).fit(_codes(n=4))
    a = kde.sample(200, seed=0).numpy()
    kde.bandwidth.assign(0.2)
    b = kde.sample(200, seed=0).numpy()
    kde.bandwidth.assign(1e-6)
    centres = kde.sample(200, seed=0).numpy()
    np.testing.assert_allclose(b - centres, 2 * (a - centres), rtol=1e-3, atol=1e-5)  # z = Z[j] + h * eps
    assert kde.get_config()["bandwidth"] == 0.1  # the Python default stays in the config


def test_variables_non_trainable_only_first_replica():
    kde = KDE(DIM, capacity=8)
    names = sorted(v.path.split("/")[-1] for v in kde.weights)
    assert names == ["bandwidth", "codes", "count"]
    assert kde.trainable_weights == [] and len(kde.non_trainable_weights) == 3
    assert all(v.aggregation == "only_first_replica" for v in kde.weights)
    assert kde.count.dtype == "int32" and tuple(kde.codes.shape) == (8, DIM)


def test_fit_under_mirrored_strategy_with_gathered_codes():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs 2 logical CPU devices (tests/conftest.py)")
    # the session's one strategy: a second MirroredStrategy in one process can
    # reuse collective instance keys and abort an unrelated later all-gather
    from harness import two_replica_strategy

    strategy = two_replica_strategy()
    codes = _codes(n=6)
    with strategy.scope():
        kde = KDE(DIM, capacity=10, bandwidth=0.2)

    @tf.function
    def step(local):
        def replica_fn(x):
            kde.fit(tf.distribute.get_replica_context().all_gather(x, axis=0))
            return kde.sample(4, seed=3)
        return strategy.run(replica_fn, args=(local,))

    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(codes[3 * ctx.replica_id_in_sync_group:3 * ctx.replica_id_in_sync_group + 3]))
    samples = strategy.experimental_local_results(step(local))
    assert kde.count.numpy() == 6
    np.testing.assert_array_equal(kde.codes.numpy()[:6], codes)
    np.testing.assert_array_equal(samples[0].numpy(), samples[1].numpy())
    np.testing.assert_array_equal(samples[0].numpy(), KDE(DIM, capacity=10, bandwidth=0.2).fit(codes).sample(
        4, seed=3).numpy())


# --- serialization, save/load, export -------------------------------------------------------

@keras.saving.register_keras_serializable(package="tfgen_tests")
class PriorHolder(keras.Model):
    """The smallest model that carries a prior (as a GenerativeModel does)."""

    def __init__(self, prior, **kwargs):
        super().__init__(**kwargs)
        self.prior = prior
        self.built = True

    def call(self, n):
        return self.prior.sample(n)

    def get_config(self):
        return {"name": self.name, "prior": keras.saving.serialize_keras_object(self.prior)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["prior"] = keras.saving.deserialize_keras_object(config.pop("prior"))
        return cls(**config)


def _fitted():
    kde = KDE(DIM, capacity=16, bandwidth=0.3, background_weight=0.1, background_scale=1.5, seed=4)
    kde.fit(_codes(n=9))
    kde.bandwidth.assign(0.07)  # changed after fitting: must survive too
    return kde


def test_config_round_trip_gives_an_unfitted_kde():
    kde = _fitted()
    cfg = kde.get_config()
    assert {k: cfg[k] for k in ("dim", "capacity", "bandwidth", "background_weight", "background_scale",
                                "seed")} == dict(dim=DIM, capacity=16, bandwidth=0.3, background_weight=0.1,
                                                 background_scale=1.5, seed=4)
    fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(kde))
    assert type(fresh) is KDE and fresh.get_config() == cfg
    assert int(fresh.count) == 0 and float(fresh.bandwidth) == pytest.approx(0.3)


def test_keras_save_load_keeps_codes_count_bandwidth(tmp_path):
    model = PriorHolder(_fitted())
    path = str(tmp_path / "holder.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    p, q = model.prior, loaded.prior
    assert type(q) is KDE
    assert int(q.count) == 9
    np.testing.assert_array_equal(q.codes.numpy(), p.codes.numpy())
    assert float(q.bandwidth) == pytest.approx(0.07)
    np.testing.assert_array_equal(q.sample(32, seed=5).numpy(), p.sample(32, seed=5).numpy())


def test_savedmodel_export_samples_the_fitted_prior(tmp_path):
    kde = _fitted()
    archive = keras.export.ExportArchive()
    archive.track(kde)
    archive.add_endpoint("sample", lambda n, seed: kde.sample(n, seed=seed), input_signature=[
        tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
    archive.write_out(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    got = served.sample(tf.constant(32), tf.constant(5, tf.int64)).numpy()
    np.testing.assert_array_equal(got, kde.sample(32, seed=5).numpy())
    # The export reads its variables: the samples sit near the fitted codes, not at N(0, I) draws.
    dist = np.sqrt(((got[:, None, :] - kde.codes.numpy()[None, :9]) ** 2).sum(-1)).min(1)
    assert np.mean(dist < 0.5) > 0.8


# --- held-out latent likelihood (paper Fig. 10) ---------------------------------------------

def test_heldout_log_likelihood_recovers_gaussian_entropy():
    rng = np.random.default_rng(0)
    codes, heldout = rng.normal(size=(4000, 1)), rng.normal(size=(2000, 1))
    bandwidths = [0.001, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0]
    curve = heldout_log_likelihood(codes, heldout, bandwidths)
    assert [c["bandwidth"] for c in curve] == bandwidths
    best = max(curve, key=lambda c: c["mean"])
    # -E log N(x; 0, 1) = 0.5 log(2 pi e) ~ 1.419; the sem here is ~0.016, the
    # KDE's excess cross-entropy at its best bandwidth ~0.005.
    assert best["mean"] == pytest.approx(-0.5 * math.log(2 * math.pi * math.e), abs=0.05)
    assert 0.1 <= best["bandwidth"] <= 0.5
    assert 0.01 < best["sem"] < 0.03
    assert curve[0]["mean"] < best["mean"] - 1.0  # h = 0.001: spiky, far worse


def test_heldout_log_likelihood_matches_numpy_and_kde_log_prob():
    codes, heldout = _codes(n=30).astype("float64"), _query_points(_codes(n=30))
    curve = heldout_log_likelihood(codes, heldout, [0.3, 1.0], chunk_size=7)
    for c in curve:
        ll = _log_prob_numpy(heldout, codes, c["bandwidth"])
        assert c["mean"] == pytest.approx(ll.mean(), rel=1e-10)
        assert c["sem"] == pytest.approx(ll.std() / math.sqrt(len(ll)), rel=1e-10)
        kde_ll = KDE(DIM, capacity=30, bandwidth=c["bandwidth"]).fit(codes).log_prob(heldout).numpy()
        assert c["mean"] == pytest.approx(kde_ll.mean(), abs=1e-3)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((0, 2)), np.zeros((3, 2)), [0.1]), "codes is empty"),
    ((np.zeros((4, 2)), np.zeros((3, 3)), [0.1]), "heldout must have shape"),
    ((np.zeros(4), np.zeros((3, 1)), [0.1]), "codes must have shape"),
    ((np.array([[np.nan, 0.0]]), np.zeros((3, 2)), [0.1]), "NaN"),
    ((np.zeros((4, 2)), np.zeros((3, 2)), []), "bandwidths"),
    ((np.zeros((4, 2)), np.zeros((3, 2)), [0.1, -1.0]), "bandwidths"),
])
def test_heldout_log_likelihood_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        heldout_log_likelihood(*args)
