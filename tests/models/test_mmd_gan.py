"""MMD-GAN: its MMD against the foundation's op and a NumPy computation, the
feasible-set and autoencoding terms by hand, one step against a manual
iteration (clipping included), and the shared harness."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
from tfgen import ops
from tfgen.distributions import Gaussian
from tfgen.models import MMDGAN, networks
from tfgen.models.mmd_gan import MMD_GAN_BANDWIDTHS, autoencoder_error, feasible_set_hinge
from test_gram import ring_data


def make_mmd_gan(sgd=False, latent=4, h=3, decoder=True, n_critic=2, **kwargs):
    def make():
        keras.utils.set_random_seed(13)
        g = networks.mlp(latent, (32, 32), 2, name="generator")
        if decoder:
            f = networks.mlp(2, (32,), h, activation="leaky_relu", name="critic")
        else:  # without the autoencoder, the encoder's output bias cancels in MMD and hinge alike
            f = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="leaky_relu"),
                                  keras.layers.Dense(h, use_bias=False)], name="critic")
        dec = networks.mlp(h, (32,), 2, name="decoder") if decoder else None
        model = MMDGAN(g, f, Gaussian(latent), dec, n_critic=n_critic, **kwargs)
        opt = (lambda: keras.optimizers.SGD(0.01)) if sgd else (lambda: keras.optimizers.RMSprop(1e-3))
        model.compile(opt(), critic_optimizer=opt())
        return model
    return make


def _numpy_mmd(x, y, sigmas):
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * s ** 2)) for s in sigmas)
    return np.sqrt(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_mmd_matches_the_op_and_numpy():
    model = make_mmd_gan()()
    rng = np.random.default_rng(0)
    fx, fy = rng.normal(size=(20, 3)).astype("float32"), rng.normal(1.0, 2.0, size=(15, 3)).astype("float32")
    got = float(model.mmd(fx, fy))
    np.testing.assert_allclose(got, float(ops.mmd(fx, fy, list(MMD_GAN_BANDWIDTHS))), rtol=1e-6)
    np.testing.assert_allclose(got, _numpy_mmd(fx.astype(float), fy.astype(float), MMD_GAN_BANDWIDTHS), rtol=1e-4)


def test_feasible_set_and_autoencoder_terms_by_hand():
    f_data = np.array([[1.0, 0.0], [3.0, 2.0]], np.float32)   # mean (2, 1)
    f_gen = np.array([[0.0, 4.0], [2.0, 0.0]], np.float32)    # mean (1, 2)
    # mean difference (1, -1): only the negative coordinate counts, -(0 + 1) / 2
    np.testing.assert_allclose(float(feasible_set_hinge(f_data, f_gen)), -0.5, rtol=1e-6)
    np.testing.assert_allclose(float(feasible_set_hinge(f_gen + 5, f_gen)), 0.0, atol=1e-7)
    x = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(float(autoencoder_error(x, np.zeros_like(x))), 5.0 / 4, rtol=1e-6)


def test_step_matches_manual_iteration():
    """n_critic = 2 critic steps on strided slices 0 and 1 of three, each
    after clipping the encoder (not the decoder) to [-c, c], as the code
    does; then a generator step on slice 2 (plain SGD)."""
    c = 0.05
    model = make_mmd_gan(sgd=True, clip_value=c)()
    ref = make_mmd_gan(sgd=True, clip_value=c)()
    x = ring_data(48)
    f, g, dec = ref.critic, ref.generator, ref.decoder
    critic_vars = f.trainable_variables + dec.trainable_variables
    for i in range(2):
        for v in f.trainable_variables:
            v.assign(tf.clip_by_value(v, -c, c))
        x_i = x[i::3]
        x_gen = g(model.prior.sample(16, seed=model._step_seed(salt=i)), training=True)
        with tf.GradientTape() as tape:
            fx, fy = f(x_i, training=True), f(x_gen, training=True)
            mmd = ops.mmd(fx, fy, list(MMD_GAN_BANDWIDTHS))
            ae = autoencoder_error(x_i, dec(fx)) + autoencoder_error(x_gen, dec(fy))
            loss = -(mmd + 16.0 * feasible_set_hinge(fx, fy)) + 8.0 * ae
        for v, gr in zip(critic_vars, tape.gradient(loss, critic_vars)):
            v.assign_sub(0.01 * gr)
    z = model.prior.sample(16, seed=model._step_seed(salt=2))
    with tf.GradientTape() as tape:
        fx, fy = f(x[2::3], training=True), f(g(z, training=True), training=True)
        g_loss = ops.mmd(fx, fy, list(MMD_GAN_BANDWIDTHS)) + 16.0 * feasible_set_hinge(fx, fy)
    for v, gr in zip(g.trainable_variables, tape.gradient(g_loss, g.trainable_variables)):
        v.assign_sub(0.01 * gr)
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["critic_loss"], float(loss), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], float(g_loss), rtol=1e-5)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # clipped before the last critic step, then moved by at most one SGD step
    assert max(float(np.max(np.abs(w))) for w in model.critic.get_weights()) <= 1.5 * c
    assert max(float(np.max(np.abs(w))) for w in model.decoder.get_weights()) > 2 * c  # never clipped


def test_critic_increases_the_mmd_between_fixed_sets():
    """With the generator frozen, critic steps raise the MMD between data and
    samples in the encoder's space (the critic maximises it)."""
    model = make_mmd_gan(decoder=False, lambda_rg=0.0, clip_value=None)()
    model.optimizer.learning_rate.assign(0.0)
    x = ring_data(3 * 256)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(3 * 256).repeat()
    first = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history["mmd"][0]
    later = model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0).history["mmd"][-1]
    assert later > 2 * first, (first, later)


def test_harness(tmp_path):
    check_all(make_mmd_gan(), ring_data(), batch_size=72, tmp_path=tmp_path,
              make_sgd_model=make_mmd_gan(sgd=True))


def test_harness_without_decoder(tmp_path):
    check_all(make_mmd_gan(decoder=False), ring_data(), batch_size=72, tmp_path=tmp_path,
              make_sgd_model=make_mmd_gan(sgd=True, decoder=False))


def test_bad_arguments():
    g = networks.mlp(4, [8], 2)
    f = networks.mlp(2, [8], 3)
    with pytest.raises(ValueError, match="decoder takes"):
        MMDGAN(g, f, Gaussian(4), networks.mlp(5, [8], 2))
    with pytest.raises(ValueError, match="decoder makes"):
        MMDGAN(g, f, Gaussian(4), networks.mlp(3, [8], 4))
    with pytest.raises(ValueError, match="median"):
        MMDGAN(g, f, Gaussian(4), bandwidths="median")
    with pytest.raises(ValueError, match="n_critic"):
        MMDGAN(g, f, Gaussian(4), n_critic=0)
    with pytest.raises(ValueError, match="clip_value"):
        MMDGAN(g, f, Gaussian(4), clip_value=0.0)
