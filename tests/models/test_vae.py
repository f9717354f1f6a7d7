"""VAE: the negative ELBO against a NumPy computation, the KL term's closed form,
a step that improves the bound, and the shared harness."""

import math

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
from tfgen.distributions import Gaussian, Uniform
from tfgen.models import VAE, networks


def make_vae(sgd=False, likelihood="bernoulli", latent=3, shape=(4, 4, 1)):
    def make():
        keras.utils.set_random_seed(11)
        dec = networks.mlp(latent, [16], shape, activation="tanh", output_activation="sigmoid", name="decoder")
        enc = networks.mlp(shape, [16], 2 * latent, activation="tanh", name="encoder")
        model = VAE(dec, Gaussian(latent), enc, likelihood=likelihood)
        model.compile(keras.optimizers.SGD(0.05) if sgd else keras.optimizers.Adam(1e-3))
        return model
    return make


def _images(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 4, 4, 1)) < np.linspace(0.1, 0.9, 16).reshape(1, 4, 4, 1)).astype(np.float32)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_negative_elbo_by_hand(likelihood):
    model = make_vae(likelihood=likelihood)()
    x = _images(8)
    eps = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    loss, recon, kl = [float(v) for v in model.negative_elbo(tf.constant(x), tf.constant(eps))]
    out = model.encoder(x).numpy().astype(np.float64)
    mu, lv = out[:, :3], out[:, 3:]
    h = mu + np.exp(0.5 * lv) * eps
    y = model.generator(h.astype(np.float32)).numpy().reshape(8, -1).astype(np.float64)
    xf = x.reshape(8, -1)
    if likelihood == "bernoulli":
        nll = -(xf * np.log(y) + (1 - xf) * np.log(1 - y)).sum(1)
    else:
        s = 0.1
        nll = ((xf - y) ** 2).sum(1) / (2 * s * s) + 16 * (math.log(s) + 0.5 * math.log(2 * math.pi))
    kl_np = 0.5 * (mu ** 2 + np.exp(lv) - 1 - lv).sum(1)
    np.testing.assert_allclose(recon, nll.mean(), rtol=1e-5)
    np.testing.assert_allclose(kl, kl_np.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, recon + kl, rtol=1e-6)


def test_kl_matches_tfp_and_vanishes_at_the_prior():
    import tensorflow_probability as tfp
    tfd = tfp.distributions
    rng = np.random.default_rng(2)
    mean, log_var = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    q = tfd.MultivariateNormalDiag(mean, np.exp(0.5 * log_var))
    p = tfd.MultivariateNormalDiag(np.zeros(4, np.float32), np.ones(4, np.float32))
    np.testing.assert_allclose(VAE.kl_to_standard_normal(mean, log_var).numpy(),
                               tfd.kl_divergence(q, p).numpy(), rtol=1e-5)
    assert float(tf.reduce_max(tf.abs(VAE.kl_to_standard_normal(tf.zeros([2, 4]), tf.zeros([2, 4]))))) == 0.0


def test_step_matches_its_seeded_noise_and_training_improves_the_bound():
    model = make_vae()()
    x = _images(256)
    eps = tf.random.stateless_normal([64, 3], model._step_seed(1))
    expected = float(model.negative_elbo(tf.constant(x[:64]), eps, training=True)[0])
    logs = model.train_on_batch(x[:64], return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    fixed = tf.random.stateless_normal([256, 3], [0, 1])
    before = float(model.negative_elbo(tf.constant(x), fixed)[0])
    model.fit(x, batch_size=64, epochs=40, verbose=0, shuffle=False)
    after = float(model.negative_elbo(tf.constant(x), fixed)[0])
    # the per-pixel Bernoulli entropies of the data bound the best reachable value
    p = np.linspace(0.1, 0.9, 16)
    floor = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)).sum())
    assert after < before - 1.0 and after < floor + 1.5, (before, after, floor)


def test_rejects_bad_parts():
    dec = networks.mlp(3, [8], 16, output_activation="sigmoid")
    with pytest.raises(ValueError, match="2 \\* latent_dim"):
        VAE(dec, Gaussian(3), networks.mlp(16, [8], 3))
    with pytest.raises(ValueError, match="standard normal"):
        VAE(dec, Uniform(3), networks.mlp(16, [8], 6))
    with pytest.raises(ValueError, match="standard normal"):
        VAE(dec, Gaussian(3, scale=2.0), networks.mlp(16, [8], 6))
    with pytest.raises(ValueError, match="likelihood"):
        VAE(dec, Gaussian(3), networks.mlp(16, [8], 6), likelihood="poisson")


def test_harness(tmp_path):
    check_all(make_vae(), _images(), batch_size=64, tmp_path=tmp_path, make_sgd_model=make_vae(sgd=True))
