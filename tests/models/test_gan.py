"""The GAN baseline: losses against hand computations, one step against a
manual step, a 1-D fit, and the shared harness."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
from tfgen.distributions import Gaussian
from tfgen.models import GAN, networks
from tfgen.models.gan import discriminator_loss, generator_loss
from test_gram import ring_data


def make_gan(sgd=False, latent=4, hidden=(32, 32), dim=2, **kwargs):
    def make():
        keras.utils.set_random_seed(7)
        g = networks.mlp(latent, hidden, dim, name="generator")
        d = networks.mlp(dim, hidden, 1, activation="leaky_relu", name="discriminator")
        model = GAN(g, d, Gaussian(latent), **kwargs)
        if sgd:
            model.compile(keras.optimizers.SGD(0.05), discriminator_optimizer=keras.optimizers.SGD(0.05))
        else:
            model.compile(keras.optimizers.RMSprop(3e-4), discriminator_optimizer=keras.optimizers.RMSprop(3e-4))
        return model
    return make


def _log_sigmoid(t):
    return -np.log1p(np.exp(-t))


def test_losses_against_hand_computation():
    real = np.array([2.0, -1.0, 0.5], np.float32)
    fake = np.array([-3.0, 0.2], np.float32)
    d_real, d_fake = 1 / (1 + np.exp(-real)), 1 / (1 + np.exp(-fake))
    want_d = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
    np.testing.assert_allclose(float(discriminator_loss(real, fake)), want_d, rtol=1e-6)
    # one-sided label smoothing 0.1: target 0.9 for the real examples
    want_s = -np.mean(0.9 * np.log(d_real) + 0.1 * np.log(1 - d_real)) - np.mean(np.log(1 - d_fake))
    np.testing.assert_allclose(float(discriminator_loss(real, fake, 0.1)), want_s, rtol=1e-6)
    np.testing.assert_allclose(float(generator_loss(fake)), -np.mean(np.log(d_fake)), rtol=1e-6)
    np.testing.assert_allclose(float(generator_loss(fake, "minimax")), np.mean(np.log(1 - d_fake)), rtol=1e-6)
    # stable far in the tails, where sigmoid underflows in float32
    assert np.isfinite(float(discriminator_loss([-200.0], [200.0])))
    np.testing.assert_allclose(float(generator_loss([-200.0])), 200.0, rtol=1e-6)


def test_step_matches_manual_alternating_updates():
    """One train step = a D step on (x, G(z)), then a G step on the same z
    through the *updated* D (plain SGD, so the update is lr * gradient)."""
    model = make_gan(sgd=True)()
    reference = make_gan(sgd=True)()
    x = ring_data(32)
    z = model.prior.sample(32, seed=model._step_seed())
    d, g = reference.discriminator, reference.generator
    with tf.GradientTape() as tape:
        loss = discriminator_loss(d(x, training=True), d(g(z, training=True), training=True))
    grads = tape.gradient(loss, d.trainable_variables)
    for v, gr in zip(d.trainable_variables, grads):
        v.assign_sub(0.05 * gr)
    with tf.GradientTape() as tape:
        g_loss = generator_loss(d(g(z, training=True), training=True))
    grads = tape.gradient(g_loss, g.trainable_variables)
    for v, gr in zip(g.trainable_variables, grads):
        v.assign_sub(0.05 * gr)
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["d_loss"], float(loss), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], float(g_loss), rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_learns_a_shifted_gaussian():
    """A small GAN moves N(0, 1) codes onto N(3, 0.5^2) data: the mean within 0.25, the std within 0.25."""
    keras.utils.set_random_seed(1)
    g = networks.mlp(1, (16,), 1, name="generator")
    d = networks.mlp(1, (16,), 1, activation="leaky_relu", name="discriminator")
    model = GAN(g, d, Gaussian(1), seed=1)
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), discriminator_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    data = np.random.default_rng(0).normal(3.0, 0.5, size=(4096, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).shuffle(4096, seed=0).batch(128, drop_remainder=True).repeat()
    model.fit(ds, steps_per_epoch=1500, epochs=1, verbose=0)
    s = np.asarray(model.sample(4000, seed=0))[:, 0]
    assert abs(s.mean() - 3.0) < 0.25, s.mean()
    assert abs(s.std() - 0.5) < 0.25, s.std()


def test_harness(tmp_path):
    check_all(make_gan(), ring_data(), batch_size=64, tmp_path=tmp_path, make_sgd_model=make_gan(sgd=True))


def test_dcgan_harness(tmp_path):
    """Images, BatchNorm in both networks: the DCGAN builders through the harness."""
    def factory(sgd):
        def make():
            keras.utils.set_random_seed(3)
            g = networks.dcgan_generator(8, (8, 8, 1), base_filters=4)
            d = networks.dcgan_critic((8, 8, 1), 1, base_filters=4, name="discriminator")
            model = GAN(g, d, Gaussian(8))
            opt = (lambda: keras.optimizers.SGD(0.01)) if sgd else (lambda: keras.optimizers.RMSprop(3e-4))
            model.compile(opt(), discriminator_optimizer=opt())
            return model
        return make
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    check_all(factory(False), x, batch_size=16, tmp_path=tmp_path, make_sgd_model=factory(True))


def test_bad_arguments():
    g = networks.mlp(4, [8], 2)
    d = networks.mlp(2, [8], 1)
    with pytest.raises(ValueError, match="generator_loss"):
        GAN(g, d, Gaussian(4), generator_loss="wasserstein")
    with pytest.raises(ValueError, match="label_smoothing"):
        GAN(g, d, Gaussian(4), label_smoothing=1.0)
    with pytest.raises(ValueError, match="one logit"):
        GAN(g, networks.mlp(2, [8], 3), Gaussian(4))
    with pytest.raises(ValueError, match="inputs of shape"):
        GAN(g, networks.mlp(3, [8], 1), Gaussian(4))
    with pytest.raises(ValueError, match="discriminator must be a keras.Model"):
        GAN(g, "d", Gaussian(4))
