"""WGAN-GP: the gradient penalty against finite differences, finite where the
critic is flat, the interpolation, one step against a manual Algorithm 1
iteration, the critic's estimate of a known Wasserstein distance, and the shared harness."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
from tfgen.distributions import Gaussian
from tfgen.models import WGANGP, networks
from tfgen.models.wgan_gp import critic_losses, gradient_penalty, interpolate
from test_gram import ring_data


def make_wgan(sgd=False, latent=4, n_critic=2, **kwargs):
    def make():
        keras.utils.set_random_seed(11)
        g = networks.mlp(latent, (32, 32), 2, name="generator")
        # no output bias: it cancels in E D(x) - E D(x~) and has no gradient,
        # which the harness (every weight moves) would flag
        d = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="leaky_relu"),
                              keras.layers.Dense(32, activation="leaky_relu"),
                              keras.layers.Dense(1, use_bias=False)], name="critic")
        model = WGANGP(g, d, Gaussian(latent), n_critic=n_critic, **kwargs)
        opt = (lambda: keras.optimizers.SGD(0.01)) if sgd else (lambda: keras.optimizers.Adam(1e-4, 0.5, 0.9))
        model.compile(opt(), critic_optimizer=opt())
        return model
    return make


def test_gradient_penalty_against_finite_differences():
    keras.utils.set_random_seed(0)
    critic = networks.mlp(3, (16,), 1, activation="tanh")
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    h = 1e-3
    norms = []
    for row in x:
        grad = []
        for j in range(3):
            e = np.zeros(3, np.float32)
            e[j] = h
            up = float(critic(np.float32(row + e)[None])[0, 0])
            down = float(critic(np.float32(row - e)[None])[0, 0])
            grad.append((up - down) / (2 * h))
        norms.append(np.linalg.norm(grad))
    want = np.mean((np.array(norms) - 1.0) ** 2)
    np.testing.assert_allclose(float(gradient_penalty(critic, x)), want, rtol=2e-3)


def test_gradient_penalty_is_finite_where_the_critic_is_flat():
    """A critic with zero weights has zero input gradient everywhere: the
    penalty is (0 - 1)^2 = 1, and its gradient is finite (tf.norm's is NaN)."""
    critic = networks.mlp(2, (8,), 1)
    for v in critic.trainable_variables:
        v.assign(tf.zeros_like(v))
    x = tf.constant(ring_data(16))
    with tf.GradientTape() as tape:
        penalty = gradient_penalty(critic, x)
    grads = tape.gradient(penalty, critic.trainable_variables)
    np.testing.assert_allclose(float(penalty), 1.0, rtol=1e-5)  # the norm floor is 1e-6
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)


def test_interpolation_and_critic_loss():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], np.float32)
    y = np.array([[4.0, 4.0], [3.0, 3.0], [0.0, 2.0]], np.float32)
    eps = np.array([1.0, 0.5, 0.25], np.float32)
    np.testing.assert_allclose(interpolate(x, y, eps), [[0, 0], [2, 2], [0.5, 1.5]], rtol=1e-6)
    # L_D = E D(fake) - E D(real) + lambda * penalty; W = E D(real) - E D(fake)
    loss, w = critic_losses(np.array([3.0, 1.0]), np.array([-1.0, 0.0]), 0.5, gp_weight=10.0)
    np.testing.assert_allclose(float(w), 2.5, rtol=1e-6)
    np.testing.assert_allclose(float(loss), -2.5 + 5.0, rtol=1e-6)


def test_step_matches_manual_algorithm_1():
    """n_critic = 2 critic steps, each on its own strided slice of the batch,
    its own codes and its own uniform eps per example; then one generator
    step on fresh codes (plain SGD)."""
    model = make_wgan(sgd=True)()
    ref = make_wgan(sgd=True)()
    x = ring_data(32)
    d, g = ref.critic, ref.generator
    for i, x_i in enumerate([x[0::2], x[1::2]]):
        z = model.prior.sample(16, seed=model._step_seed(salt=2 * i))
        eps = tf.random.stateless_uniform([16], model._step_seed(salt=2 * i + 1))
        assert 0.0 <= float(tf.reduce_min(eps)) and float(tf.reduce_max(eps)) <= 1.0
        x_gen = g(z, training=True)
        with tf.GradientTape() as tape:
            penalty = gradient_penalty(d, interpolate(x_i, x_gen, eps))
            loss, _ = critic_losses(d(x_i), d(x_gen), penalty, 10.0)
        for v, gr in zip(d.trainable_variables, tape.gradient(loss, d.trainable_variables)):
            v.assign_sub(0.01 * gr)
    z = model.prior.sample(16, seed=model._step_seed(salt=4))
    with tf.GradientTape() as tape:
        g_loss = -tf.reduce_mean(d(g(z, training=True)))
    for v, gr in zip(g.trainable_variables, tape.gradient(g_loss, g.trainable_variables)):
        v.assign_sub(0.01 * gr)
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["critic_loss"], float(loss), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], float(g_loss), rtol=1e-5)
    # the double backward pass reorders float32 sums between runs on a
    # multi-threaded CPU; a wrong slice, code or eps moves weights by >= 1e-4
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_linear_critic_reaches_the_closed_form_optimum():
    """Generator frozen at the identity (N(0, 1) samples), data N(3, 1), a
    linear critic f(x) = s x + c. Its gradient is s everywhere, so the
    population critic loss is -3 s + lambda (|s| - 1)^2, minimised at
    s* = 1 + 3 / (2 lambda): 1.15 for lambda = 10, where the Wasserstein
    estimate is 3 s* = 3.45 (the penalty's known upward bias of W1 = 3).
    A wrong sign of either term, or a penalty on the wrong points, moves s."""
    keras.utils.set_random_seed(1)
    g = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                 bias_initializer="zeros")], name="generator")
    d = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.5))],
                         name="critic")
    model = WGANGP(g, d, Gaussian(1), n_critic=5, gp_weight=10.0, seed=1)
    model.compile(keras.optimizers.SGD(0.0), critic_optimizer=keras.optimizers.Adam(5e-3))
    data = np.random.default_rng(0).normal(3.0, 1.0, size=(16384, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).batch(5 * 256, drop_remainder=True).repeat()
    logs = model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0).history
    slope = float(d.get_weights()[0][0, 0])
    np.testing.assert_allclose(slope, 1.15, atol=0.02)
    # on fresh samples (the logged values are means over the whole epoch)
    x, z = data[-4096:], model.prior.sample(4096, seed=3)
    w = float(tf.reduce_mean(d(x)) - tf.reduce_mean(d(g(z))))
    np.testing.assert_allclose(w, 3.45, atol=0.1)
    assert np.all(np.isfinite(logs["critic_loss"]))


def test_harness(tmp_path):
    check_all(make_wgan(), ring_data(), batch_size=64, tmp_path=tmp_path, make_sgd_model=make_wgan(sgd=True))


def test_bad_arguments():
    g = networks.mlp(4, [8], 2)
    with pytest.raises(ValueError, match="BatchNormalization"):
        WGANGP(g, networks.mlp(2, [8], 1, batch_norm=True), Gaussian(4))
    with pytest.raises(ValueError, match="n_critic"):
        WGANGP(g, networks.mlp(2, [8], 1), Gaussian(4), n_critic=0)
    with pytest.raises(ValueError, match="gp_weight"):
        WGANGP(g, networks.mlp(2, [8], 1), Gaussian(4), gp_weight=-1.0)
    with pytest.raises(ValueError, match="one score"):
        WGANGP(g, networks.mlp(2, [8], 4), Gaussian(4))


_ONE_STEP = r'''
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path[:0] = [os.path.join(os.getcwd(), "tests"), os.path.join(os.getcwd(), "tests", "models")]
import numpy as np
import test_wgan_gp as T
model = T.make_wgan(sgd=True)()
logs = model.train_on_batch(T.ring_data(32), return_dict=True)
print(repr(float(logs["critic_loss"])), repr(float(sum(np.abs(w).sum() for w in model.get_weights()))))
'''


def test_step_is_the_same_in_every_process():
    """Two critic updates and a generator update in one traced step give the same
    loss and weights in every process. With TensorFlow's Grappler dependency
    optimizer on, ~20% of processes took another (stale-read) path;
    ``GenerativeModel.compile`` turns it off (``models.base.keep_update_order``)."""
    import subprocess
    import sys

    model = make_wgan(sgd=True)()
    assert tf.config.optimizer.get_experimental_options().get("dependency_optimization") is False
    here = model.train_on_batch(ring_data(32), return_dict=True)
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", _ONE_STEP], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(6)]
    outputs = {p.communicate(timeout=240)[0].strip() for p in procs}
    assert len(outputs) == 1, f"the step differs between processes: {sorted(outputs)}"
    loss, _ = next(iter(outputs)).split()
    assert float(loss) == pytest.approx(float(here["critic_loss"]), rel=1e-6)
