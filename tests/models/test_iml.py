"""IML: the invertible activations, the invertible perceptron's exact inverse and
log-likelihood against brute force, the two stages, and the shared harness."""

import math

import numpy as np
import keras
import pytest
import tensorflow as tf

import tfgen
from harness import check_all
from tfgen.distributions import GaussianMixture, HiddenMarkovModel
from tfgen.models import IML, networks
from tfgen.models.iml import InvertibleActivation, InvertibleDense, invertible_perceptron


# ---- activations (eqs. 9-10) -------------------------------------------------------------------
@pytest.mark.parametrize("kind,preset,threshold,slope,bias_hi,bias_lo", [
    # METHODS.md §5, computed by hand from the saturation levels / the slope.
    ("tanh", "code", 2.646652, 0.0199, 0.937332, -0.937332),
    ("sigmoid", "code", 9.210240, 9.999e-5, 0.998979, 0.0010209),
    ("tanh", "paper", 2.99322, 0.01, 0.965055, -0.965055),
    ("sigmoid", "paper", 4.58486, 0.01, 0.944049, 0.055951),
])
def test_activation_constants(kind, preset, threshold, slope, bias_hi, bias_lo):
    a = InvertibleActivation.preset(kind, preset)
    np.testing.assert_allclose([a.threshold, a.slope, a.bias_hi, a.bias_lo],
                               [threshold, slope, bias_hi, bias_lo], rtol=2e-5, atol=2e-7)


@pytest.mark.parametrize("kind", ["tanh", "sigmoid"])
@pytest.mark.parametrize("preset", ["code", "paper"])
def test_activation_is_c1_and_inverts(kind, preset):
    a = InvertibleActivation.preset(kind, preset)
    for join in (a.threshold, -a.threshold):
        t = tf.constant([join - 1e-7, join + 1e-7], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = a(t)
        dy = tape.gradient(y, t).numpy()
        # value and slope agree on both sides of the join
        assert abs(float(y[1] - y[0])) < 1e-6
        np.testing.assert_allclose(dy[0], dy[1], rtol=1e-5)
        np.testing.assert_allclose(dy, a.slope, rtol=1e-5)
    t = tf.constant(np.linspace(-30, 30, 4001), tf.float64)
    np.testing.assert_allclose(a.inverse(a(t)).numpy(), t.numpy(), atol=1e-9)
    # strictly increasing (so invertible) everywhere
    assert np.all(np.diff(a(t).numpy()) > 0)
    # log |d act^{-1}/dy| against a central difference of the inverse
    y = a(tf.constant([-12.0, -3.5, -1.0, 0.3, 2.0, 5.0, 11.0], tf.float64))
    eps = 1e-7
    fd = (a.inverse(y + eps) - a.inverse(y - eps)) / (2 * eps)
    np.testing.assert_allclose(a.log_abs_inverse_derivative(y).numpy(), np.log(fd.numpy()), atol=1e-4)


def test_activation_rejects_bad_levels():
    with pytest.raises(ValueError, match="saturation level"):
        InvertibleActivation.saturating("sigmoid", 0.3)
    with pytest.raises(ValueError, match="slope"):
        InvertibleActivation.with_slope("sigmoid", 0.3)
    with pytest.raises(ValueError, match="preset"):
        InvertibleActivation.preset("tanh", "other")


# ---- the invertible perceptron -----------------------------------------------------------------
def test_dense_left_inverse_is_exact_and_needs_enough_units():
    keras.utils.set_random_seed(0)
    layer = InvertibleDense(7, "tanh")
    x = tf.random.normal([16, 3])
    back, _, lin = layer.inverse(layer(x))
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=2e-4)
    k = layer.kernel.numpy().astype(np.float64)
    np.testing.assert_allclose(float(lin), -0.5 * np.linalg.slogdet(k @ k.T)[1], rtol=1e-4)
    with pytest.raises(ValueError, match="units >= inputs"):
        InvertibleDense(2)(tf.zeros([1, 3]))


def _numpy_forward(model, h):
    """The generator in float64 NumPy, from its weights."""
    (w1, b1), (w2, b2) = [(l.kernel.numpy().astype(np.float64), l.bias.numpy().astype(np.float64))
                          for l in model._chain]
    a1, a2 = model._chain[0].act, model._chain[1].act
    return a2(tf.constant(a1(tf.constant(h @ w1 + b1)).numpy() @ w2 + b2)).numpy()


def _fd_jacobian(f, h, eps=1e-5):
    cols = [(f(h + eps * e) - f(h - eps * e)) / (2 * eps) for e in np.eye(h.shape[-1])]
    return np.stack(cols, axis=-1)  # (L, K)


def _gaussian_logpdf(h):
    return -0.5 * np.sum(h ** 2, -1) - 0.5 * h.shape[-1] * math.log(2 * math.pi)


def test_log_prob_square_network_is_exact_change_of_variables():
    """All layers square (3 -> 3 -> 3): eq. (6) is exact, so the layerwise
    formula, the manifold volume and a brute-force finite-difference
    ``log p(h) - log|det J_f(h)|`` all agree."""
    keras.utils.set_random_seed(1)
    model = IML(invertible_perceptron(3, (3,), hidden=3, preset="paper"), tfgen.distributions.Gaussian(3))
    h = np.random.default_rng(0).normal(size=(6, 3)) * 0.5
    x = model.generate(tf.constant(h, tf.float32))
    brute = np.array([_gaussian_logpdf(hi) - np.linalg.slogdet(
        _fd_jacobian(lambda v: _numpy_forward(model, v[None])[0], hi))[1] for hi in h])
    np.testing.assert_allclose(model.log_prob(x).numpy(), brute, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(model.log_prob(x, method="manifold").numpy(), brute, rtol=2e-3, atol=2e-3)


def test_log_prob_rectangular_network_against_brute_force():
    """2 -> 5 -> 9: ``manifold`` equals ``log p(h) - 1/2 log det(J^T J)`` from a
    finite-difference Jacobian; ``layerwise`` equals the paper's formula written
    out in NumPy (activation terms of every unit, per-layer Gram volumes)."""
    keras.utils.set_random_seed(2)
    model = IML(invertible_perceptron(2, (9,), hidden=5), tfgen.distributions.Gaussian(2))
    h = np.random.default_rng(1).normal(size=(5, 2)) * 0.3
    x = model.generate(tf.constant(h, tf.float32))
    jac = [_fd_jacobian(lambda v: _numpy_forward(model, v[None])[0], hi) for hi in h]
    manifold = np.array([_gaussian_logpdf(hi) - 0.5 * np.linalg.slogdet(j.T @ j)[1] for hi, j in zip(h, jac)])
    np.testing.assert_allclose(model.log_prob(x, method="manifold").numpy(), manifold, rtol=2e-3, atol=2e-3)

    (w1, b1), (w2, b2) = [(l.kernel.numpy().astype(np.float64), l.bias.numpy().astype(np.float64))
                          for l in model._chain]
    x64 = x.numpy().astype(np.float64)
    a1, a2 = model._chain[0].act, model._chain[1].act

    def inv_dense(y, w, b, act):
        pre = act.inverse(tf.constant(y)).numpy()
        return np.linalg.solve(w @ w.T, w @ (pre - b).T).T, \
            np.sum(act.log_abs_inverse_derivative(tf.constant(y)).numpy(), -1), \
            -0.5 * np.linalg.slogdet(w @ w.T)[1]

    y1, out_act, out_lin = inv_dense(x64, w2, b2, a2)
    hh, hid_act, hid_lin = inv_dense(y1, w1, b1, a1)
    np.testing.assert_allclose(hh, h, atol=1e-3)
    layerwise = _gaussian_logpdf(hh) + out_act + hid_act + out_lin + hid_lin
    np.testing.assert_allclose(model.log_prob(x).numpy(), layerwise, rtol=1e-4, atol=1e-3)
    # match_code drops exactly the output activation's term (the reference code's inverse_forward)
    code = IML(model.generator, model.prior, match_code=True)
    np.testing.assert_allclose(code.log_prob(x).numpy(), layerwise - out_act, rtol=1e-4, atol=1e-3)


def test_log_prob_rejects_bad_input():
    model = IML(invertible_perceptron(2, (9,), hidden=5), tfgen.distributions.Gaussian(2))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match="method"):
        model.log_prob(np.zeros((3, 9), np.float32), method="exact")
    enc = networks.mlp(9, [8], 2, name="encoder")
    general = IML(networks.mlp(2, [8], 9, name="decoder"), tfgen.distributions.Gaussian(2), enc)
    with pytest.raises(ValueError, match="invertible perceptron"):
        general.log_prob(np.zeros((3, 9), np.float32))
    with pytest.raises(ValueError, match="needs an encoder"):
        IML(networks.mlp(2, [8], 9), tfgen.distributions.Gaussian(2))
    with pytest.raises(ValueError, match="latent_dim <= hidden"):
        invertible_perceptron(10, (9,), hidden=5)


# ---- the two stages ------------------------------------------------------------------------------
def _clustered_codes(n, rng):
    centers = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    labels = rng.integers(0, 3, n)
    return (centers[labels] + 0.2 * rng.normal(size=(n, 2))).astype(np.float32), centers


def test_stage_two_recovers_the_code_clusters():
    """Data made by an invertible perceptron from a 3-cluster code distribution:
    the exact encoder maps it back, and ``fit_prior`` puts one mixture
    component on each cluster; the model's samples then decode from them."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    gen = invertible_perceptron(2, (4, 4, 1), hidden=8)
    h, centers = _clustered_codes(1200, rng)
    x = gen(h).numpy()
    model = IML(gen, GaussianMixture(2, 3, n_init=2, seed=0), prior_fit_size=1000)
    report = model.fit_prior(x, seed=0)
    assert report["n"] == 1000
    means = model.prior.means.numpy()
    err = np.sqrt(((means[:, None] - centers[None]) ** 2).sum(-1)).min(0)  # each true centre's nearest component
    assert np.all(err < 0.1), err
    np.testing.assert_allclose(np.sort(model.prior.mixture_weights().numpy()), [1 / 3] * 3, atol=0.06)
    z = model.prior.sample(600, seed=1).numpy()
    nearest = np.argmin(((z[:, None] - centers[None]) ** 2).sum(-1), 1)
    assert np.bincount(nearest, minlength=3).min() > 120  # all three clusters sampled


def test_stage_one_reconstruction_improves():
    """A general autoencoder (MLP encoder and decoder) on 2-D data embedded in 6-D:
    ``fit`` lowers the reconstruction error more than 5-fold."""
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(1)
    h, _ = _clustered_codes(512, rng)
    lift = rng.normal(size=(2, 6)).astype(np.float32)
    x = np.tanh(h @ lift * 0.5).astype(np.float32)
    model = IML(networks.mlp(2, [32], 6, name="decoder"), GaussianMixture(2, 3),
                networks.mlp(6, [32], 2, name="encoder"))
    model.compile(keras.optimizers.Adam(3e-3))
    before = float(tf.reduce_mean((model.reconstruct(x) - x) ** 2))
    model.fit(x, batch_size=128, epochs=60, verbose=0, shuffle=False)
    after = float(tf.reduce_mean((model.reconstruct(x) - x) ** 2))
    assert after < before / 5, (before, after)


def test_hmm_base_distribution_over_sequences():
    """An HMM base over code sequences that alternate between two clusters:
    ``fit_prior`` takes a list of sequences, and the fitted chain alternates."""
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(2)
    gen = invertible_perceptron(2, (6,), hidden=6)
    a, b = np.array([-1.5, 0.5]), np.array([1.5, -0.5])
    seqs = []
    for _ in range(20):
        t = np.arange(30)
        codes = np.where((t % 2 == 0)[:, None], a, b) + 0.1 * rng.normal(size=(30, 2))
        seqs.append(gen(codes.astype(np.float32)).numpy())
    model = IML(gen, HiddenMarkovModel(2, n_states=2))
    with pytest.raises(ValueError, match="list of sequences"):
        model.fit_prior(np.concatenate(seqs))
    report = model.fit_prior(seqs, seed=0)
    assert report["n"] == 600
    trans = model.prior.transition_probs.numpy()
    np.testing.assert_allclose(np.diag(trans), [0.0, 0.0], atol=0.05)


# ---- the shared harness and the export ------------------------------------------------------
def _digits_like(n=256):
    rng = np.random.default_rng(6)
    h, _ = _clustered_codes(n, rng)
    keras.utils.set_random_seed(60)
    return invertible_perceptron(2, (4, 4, 1), hidden=8)(h).numpy()


def make_iml(sgd=False):
    def make():
        keras.utils.set_random_seed(7)
        model = IML(invertible_perceptron(3, (4, 4, 1), hidden=8), GaussianMixture(3, 2))
        model.compile(keras.optimizers.SGD(0.05) if sgd else keras.optimizers.Adam(1e-3))
        return model
    return make


def test_harness(tmp_path):
    check_all(make_iml(), _digits_like(), batch_size=64, tmp_path=tmp_path, make_sgd_model=make_iml(sgd=True))


def test_export_serves_log_prob(tmp_path):
    model = make_iml()()
    x = _digits_like(32)
    model.fit_prior(x, seed=0)
    model.export(str(tmp_path / "export"))
    exported = tfgen.load(str(tmp_path / "export"))
    np.testing.assert_allclose(exported.log_prob(x), model.log_prob(x).numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(exported.sample(8, seed=3), model.sample(8, seed=3), atol=1e-5)
    assert "log_prob" in exported.info["signatures"]


def test_general_autoencoder_harness(tmp_path):
    def factory(sgd=False):
        def make():
            keras.utils.set_random_seed(8)
            model = IML(networks.mlp(3, [16], (4, 4, 1), output_activation="sigmoid", name="decoder"),
                        GaussianMixture(3, 2), networks.mlp((4, 4, 1), [16], 3, name="encoder"))
            model.compile(keras.optimizers.SGD(0.05) if sgd else keras.optimizers.Adam(1e-3))
            return model
        return make
    check_all(factory(), _digits_like(), batch_size=64, tmp_path=tmp_path, make_sgd_model=factory(True))


# ---- the spectrally weighted loss (audio chunks) -------------------------------------------
def _chunks(n=300, length=64, seed=9):
    """Chunks with a loud low tone and a weak high one, plus a little noise: a steep spectrum."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 2))
    x = (np.cos(2 * np.pi * 3 * t / length + phase[:, :1]) + 0.05 * np.cos(2 * np.pi * 21 * t / length + phase[:, 1:])
         + 0.01 * rng.normal(size=(n, length)))
    return x.astype(np.float32)


def make_spectral_iml(gamma=0.5, length=64, data=None, sgd=False):
    def make():
        keras.utils.set_random_seed(11)
        model = IML(networks.mlp(4, [32], (length,), name="decoder"), GaussianMixture(4, 2),
                    networks.mlp((length,), [32], 4, name="encoder"), spectral_whitening=gamma)
        model.compile(keras.optimizers.SGD(0.01) if sgd else keras.optimizers.Adam(1e-3))
        if data is not None:
            model.adapt(data)
        return model
    return make


@pytest.mark.parametrize("length", [64, 63])
def test_spectral_loss_against_the_full_dft(length):
    """The loss from the real DFT with bin multiplicities equals ``1/N^2 sum_k w_k |E_k|^2``
    over the full (two-sided) NumPy DFT, weights mirrored; with unit weights it is the
    squared error (Parseval), for even and odd lengths."""
    x = _chunks(length=length)
    model = make_spectral_iml(length=length)()
    w = model.adapt(x)
    power = np.mean(np.abs(np.fft.rfft(x.astype(np.float64), axis=1)) ** 2, 0)
    expected_w = power ** -0.5
    np.testing.assert_allclose(w / w[0], expected_w / expected_w[0], rtol=1e-6)  # w_k ~ P_k^-gamma
    full_w = np.concatenate([w, w[1:(length + 1) // 2][::-1]])  # bins N-1 .. N/2+1 mirror 1 .. 
    assert len(full_w) == length and np.isclose(full_w.sum(), length)  # scaled: sum_k m_k w_k = N
    rng = np.random.default_rng(0)
    recon = x + rng.normal(size=x.shape).astype(np.float32) * np.linspace(0.1, 1, length, dtype=np.float32)
    err_f = np.abs(np.fft.fft((recon - x).astype(np.float64), axis=1)) ** 2
    expected = np.mean(np.sum(err_f * full_w, 1)) / length ** 2
    np.testing.assert_allclose(float(model.reconstruction_loss(recon, x)), expected, rtol=1e-5)
    model.spectral_weights.assign(np.ones_like(w, dtype=np.float32))
    np.testing.assert_allclose(float(model.reconstruction_loss(recon, x)), np.mean((recon - x) ** 2), rtol=1e-5)


def test_spectral_loss_weights_the_weak_band_up():
    """An error of the same size costs more in the weak high band than in the loud
    low band, by the ratio of their powers to the power -gamma."""
    x = _chunks()
    model = make_spectral_iml(gamma=0.5)()
    model.adapt(x)
    t = np.arange(64)
    low, high = [np.tile(0.1 * np.cos(2 * np.pi * f * t / 64), (4, 1)).astype(np.float32) for f in (3, 21)]
    zero = np.zeros_like(low)
    ratio = float(model.reconstruction_loss(high, zero)) / float(model.reconstruction_loss(low, zero))
    power = np.mean(np.abs(np.fft.rfft(x.astype(np.float64), axis=1)) ** 2, 0)
    np.testing.assert_allclose(ratio, (power[21] / power[3]) ** -0.5, rtol=1e-4)
    assert ratio > 10


def test_spectral_loss_refuses_what_it_cannot_do():
    x = _chunks()
    model = make_spectral_iml()()
    with pytest.raises(ValueError, match=r"call model.adapt\(training_chunks\) before fit"):
        model.fit(x, epochs=1, batch_size=50, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        model.adapt(x[:, :32])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        IML(networks.mlp(4, [8], (64,)), GaussianMixture(4, 2), networks.mlp((64,), [8], 4),
            spectral_whitening=2.0)
    with pytest.raises(ValueError, match="1-D chunks"):
        IML(networks.mlp(4, [8], (8, 8)), GaussianMixture(4, 2), networks.mlp((8, 8), [8], 4),
            spectral_whitening=0.5)
    assert make_spectral_iml(gamma=0.0)().adapt(x) is None  # the squared error needs nothing


def test_spectral_loss_harness(tmp_path):
    """Save, load, export, resume and distribution keep the adapted weights."""
    x = _chunks(256)
    check_all(make_spectral_iml(data=x), x, batch_size=64, tmp_path=tmp_path,
              make_sgd_model=make_spectral_iml(data=x, sgd=True))


def test_trainer_adapts_a_fresh_run_and_a_resumed_one_keeps_its_weights(tmp_path):
    from tfgen.trainers import Trainer, recipes
    from tfgen.trainers.recipes import NetworkSpec
    x = _chunks(400, length=800)  # in memory, of the fsdd chunks' shape
    recipe = recipes.get("iml-fsdd").replace(
        name="iml-chunks", batch_size=50, steps=8, steps_per_epoch=4, latent_dim=4,
        prior="gmm", prior_options={"n_components": 2}, generator=NetworkSpec("mlp", (16,)),
        encoder=NetworkSpec("mlp", (16,)), model_options={"prior_fit_size": 0, "spectral_whitening": 0.5})
    kw = dict(verbose=0, evaluate_at_end=False, sample_pictures=False, data=x)
    model = Trainer(recipe.replace(steps=4), tmp_path / "run", **kw).run()
    w = model.spectral_weights.numpy()
    power = np.mean(np.abs(np.fft.rfft(x.astype(np.float64), axis=1)) ** 2, 0)
    np.testing.assert_allclose(w / w[0], (power / power[0]) ** -0.5, rtol=1e-5)
    white = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)  # would adapt to flat weights
    resumed = Trainer(recipe, tmp_path / "run", data=white, **{k: v for k, v in kw.items() if k != "data"}).run()
    assert int(resumed.train_steps) == 8
    np.testing.assert_array_equal(resumed.spectral_weights.numpy(), w)  # from the checkpoint, not re-adapted
    loaded = keras.models.load_model(str(tmp_path / "run" / "model.keras"))
    np.testing.assert_array_equal(loaded.spectral_weights.numpy(), w)
    assert loaded.spectral_whitening == 0.5


@pytest.mark.parametrize("length", [16, 15])
def test_spectral_loss_gradient_against_finite_differences(length):
    """TF's gradient through ``rfft`` with the bin multiplicities, against central
    differences of the two-sided NumPy formula (float64), for arbitrary weights."""
    rng = np.random.default_rng(3)
    model = make_spectral_iml(length=length)()
    w = rng.uniform(0.1, 3.0, length // 2 + 1)
    model.spectral_weights.assign(w.astype(np.float32))
    x = rng.normal(size=(3, length))
    r = tf.Variable(rng.normal(size=(3, length)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = model.reconstruction_loss(r, x.astype(np.float32))
    grad = tape.gradient(loss, r).numpy()
    full_w = np.concatenate([w, w[1:(length + 1) // 2][::-1]])

    def f(rr):
        return np.mean(np.sum(np.abs(np.fft.fft(rr - x, axis=1)) ** 2 * full_w, 1)) / length ** 2

    r0, eps = r.numpy().astype(np.float64), 1e-4
    fd = np.zeros_like(r0)
    for idx in np.ndindex(*r0.shape):
        d = np.zeros_like(r0)
        d[idx] = eps
        fd[idx] = (f(r0 + d) - f(r0 - d)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7)
