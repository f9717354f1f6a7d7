"""Level Set GAN: eq. (4) against a hand computation, one step against a manual
Algorithm 1 step, the optional bounds, a toy manifold fit, the shared harness."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
from tfgen.distributions import Gaussian, Uniform
from tfgen.models import LevelSetGAN, networks
from tfgen.models.level_set_gan import level_set_losses
from test_gram import ring_data


def make_level_set(sgd=False, latent=4, n_gen=2, **kwargs):
    def make():
        keras.utils.set_random_seed(5)
        g = networks.mlp(latent, (32, 32), 2, name="generator")
        f = networks.mlp(2, (32, 32), 1, activation="leaky_relu", name="critic")
        model = LevelSetGAN(g, f, Gaussian(latent), n_gen=n_gen, **kwargs)
        opt = (lambda: keras.optimizers.SGD(0.01)) if sgd else (lambda: keras.optimizers.RMSprop(1e-3))
        model.compile(opt(), critic_optimizer=opt())
        return model
    return make


def test_losses_against_hand_computation():
    # f(x) = (1, -2), f(g(z)) = (3, 0.5): L = (1 + 4)/2 - (9 + 0.25)/2
    critic, gen = level_set_losses(np.array([1.0, -2.0]), np.array([[3.0], [0.5]]))
    np.testing.assert_allclose(float(critic), 2.5 - 4.625, rtol=1e-6)
    np.testing.assert_allclose(float(gen), 4.625, rtol=1e-6)


def test_step_matches_manual_algorithm_1():
    """A critic step on (x, g(z_0)) with eq. (4) (x, not the typo's z, in the
    first term), then n_gen generator steps on fresh codes z_1, z_2 against the
    updated critic (plain SGD: the update is lr * gradient)."""
    model = make_level_set(sgd=True)()
    ref = make_level_set(sgd=True)()
    x = ring_data(32)
    zs = [model.prior.sample(32, seed=model._step_seed(salt=i)) for i in range(3)]
    f, g = ref.critic, ref.generator
    with tf.GradientTape() as tape:
        critic_loss, _ = level_set_losses(f(x, training=True), f(g(zs[0], training=True), training=True))
    for v, gr in zip(f.trainable_variables, tape.gradient(critic_loss, f.trainable_variables)):
        v.assign_sub(0.01 * gr)
    for z in zs[1:]:
        with tf.GradientTape() as tape:
            g_loss = tf.reduce_mean(tf.square(f(g(z, training=True), training=True)))
        for v, gr in zip(g.trainable_variables, tape.gradient(g_loss, g.trainable_variables)):
            v.assign_sub(0.01 * gr)
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["critic_loss"], float(critic_loss), rtol=1e-5)
    np.testing.assert_allclose(logs["f_gen_sq"], float(g_loss), rtol=1e-5)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # one critic step per train_step; n_gen generator steps
    assert int(model.train_steps) == 1 and int(model.optimizer.iterations) == 2


def test_bounds():
    x = ring_data(64)
    clipped = make_level_set(clip_value=0.01)()
    clipped.train_on_batch(x)
    assert max(float(np.max(np.abs(w))) for w in clipped.critic.get_weights()) <= 0.01 + 1e-7
    # tanh head: f^2 <= 1, so the critic loss lies in [-1, 1] even for a huge critic
    bounded = make_level_set(bounded_head=True)()
    for v in bounded.critic.trainable_variables:
        v.assign(v * 100.0)
    logs = bounded.train_on_batch(x, return_dict=True)
    assert -1.0 <= logs["critic_loss"] <= 1.0
    assert float(tf.reduce_max(tf.abs(bounded.level_set_function(x)))) <= 1.0


def test_samples_move_onto_the_data_manifold():
    """Data on the unit circle (a 1-D manifold in 2-D); the generator starts far
    off it (mean distance to the circle > 0.5) and ends within 0.15 of it:
    the critic's zero level set pulls the samples onto the data."""
    keras.utils.set_random_seed(2)
    g = networks.mlp(2, (32, 32), 2, name="generator")
    f = networks.mlp(2, (32, 32), 1, name="critic")
    model = LevelSetGAN(g, f, Uniform(2, low=-1.0, high=1.0), n_gen=5, seed=2)
    model.compile(keras.optimizers.RMSprop(1e-3), critic_optimizer=keras.optimizers.RMSprop(1e-3))
    for v in g.trainable_variables[-1:]:
        v.assign(v + 2.0)  # start off the circle: output bias at (2, 2)
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, 4096)
    data = np.stack([np.cos(angle), np.sin(angle)], 1).astype("float32")

    def off_circle():
        s = np.asarray(model.sample(2000, seed=0))
        return float(np.mean(np.abs(np.linalg.norm(s, axis=1) - 1.0)))

    before = off_circle()
    ds = tf.data.Dataset.from_tensor_slices(data).shuffle(4096, seed=0).batch(128, drop_remainder=True).repeat()
    model.fit(ds, steps_per_epoch=600, epochs=1, verbose=0)
    after = off_circle()
    assert before > 0.5, before
    assert after < 0.15, (before, after)


def test_harness(tmp_path):
    check_all(make_level_set(), ring_data(), batch_size=64, tmp_path=tmp_path,
              make_sgd_model=make_level_set(sgd=True))


def test_bad_arguments():
    g = networks.mlp(4, [8], 2)
    with pytest.raises(ValueError, match="one scalar"):
        LevelSetGAN(g, networks.mlp(2, [8], 3), Gaussian(4))
    with pytest.raises(ValueError, match="n_gen"):
        LevelSetGAN(g, networks.mlp(2, [8], 1), Gaussian(4), n_gen=0)
    with pytest.raises(ValueError, match="clip_value"):
        LevelSetGAN(g, networks.mlp(2, [8], 1), Gaussian(4), clip_value=-1.0)
    with pytest.raises(ValueError, match="inputs of shape"):
        LevelSetGAN(g, networks.mlp(3, [8], 1), Gaussian(4))
