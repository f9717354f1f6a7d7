"""KDE-GAN (generator reversal, Algorithm 2): the step's wiring against the
ops it is built from, the prior after training, and the shared harness."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from harness import check_all
import tfgen
from tfgen.distributions import KDE, Gaussian
from tfgen.models import KDEGAN, networks
from test_gram import ring_data

LATENT = 4


def make_kde_gan(sgd=False, capacity=64, **kwargs):
    options = {"reversal_steps": 6, "reversal_lr": 0.5, **kwargs}

    def make():
        keras.utils.set_random_seed(11)
        g = networks.mlp(LATENT, (32,), 2, activation="tanh", name="generator")
        d = networks.mlp(2, (32,), 1, activation="leaky_relu", name="discriminator")
        model = KDEGAN(g, d, KDE(LATENT, capacity=capacity, bandwidth=0.1), **options)
        opt = (lambda: keras.optimizers.SGD(0.05)) if sgd else (lambda: keras.optimizers.RMSprop(3e-4))
        model.compile(opt(), discriminator_optimizer=opt())
        return model
    return make


def test_step_reverses_the_batch_and_refits_the_prior():
    """After one step the prior holds exactly the codes ``ops.reverse`` finds
    for the batch (reversed against G(z_g), z_g from the unfitted prior, with
    the step's seeds), and the logged step count is the reversal's."""
    model = make_kde_gan(threshold=1e-3)()
    x = ring_data(64)
    twin = make_kde_gan(threshold=1e-3)()
    seed_g, seed_r = twin._step_seed(1), twin._step_seed(2)
    x_g = twin.generator(twin.prior.sample(64, seed=seed_g), training=False)
    want = tfgen.ops.reverse(twin.generator, x, steps=6, lr=0.5, reference=x_g, threshold=1e-3,
                             gamma=1e-4, init_scale=1e-4, seed=seed_r)

    logs = model.train_on_batch(x, return_dict=True)
    assert int(model.prior.count) == 64
    np.testing.assert_allclose(model.prior.codes.numpy()[:64], want.codes.numpy(), rtol=1e-5, atol=1e-6)
    assert logs["reversal_steps"] == float(want.steps)
    assert 1 <= logs["reversal_steps"] <= 6
    np.testing.assert_allclose(logs["reversal_error"], float(tf.reduce_mean(want.error)), rtol=1e-5)


def test_step_trains_the_gan_on_noise_from_the_refitted_kde():
    """The GAN steps of an iteration use z drawn from the KDE *after* its refit
    on this batch's codes: replaying reversal, refit, draw and the two SGD
    steps by hand on a twin gives the same weights."""
    from tfgen.models.gan import discriminator_loss, generator_loss

    model = make_kde_gan(sgd=True, threshold=1e-3)()
    twin = make_kde_gan(sgd=True, threshold=1e-3)()
    x = ring_data(64)
    x_g = twin.generator(twin.prior.sample(64, seed=twin._step_seed(1)), training=False)
    rev = tfgen.ops.reverse(twin.generator, x, steps=6, lr=0.5, reference=x_g, threshold=1e-3,
                            gamma=1e-4, init_scale=1e-4, seed=twin._step_seed(2))
    twin.prior.fit(rev.codes)
    z = twin.prior.sample(64, seed=twin._step_seed(3))
    d, g = twin.discriminator, twin.generator
    with tf.GradientTape() as tape:
        loss = discriminator_loss(d(x, training=True), d(g(z, training=True), training=True))
    for v, grad in zip(d.trainable_variables, tape.gradient(loss, d.trainable_variables)):
        v.assign_sub(0.05 * grad)
    with tf.GradientTape() as tape:
        loss = generator_loss(d(g(z, training=True), training=True))
    for v, grad in zip(g.trainable_variables, tape.gradient(loss, g.trainable_variables)):
        v.assign_sub(0.05 * grad)

    model.train_on_batch(x)
    for a, b in zip(model.generator.get_weights() + model.discriminator.get_weights(),
                    g.get_weights() + d.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_threshold_controls_the_reversal_length():
    """tau = -inf stops after one step, tau = +inf runs to the cap (the stopping
    rule is wired to the model's options)."""
    x = ring_data(64)
    quick = make_kde_gan(threshold=-np.inf)().train_on_batch(x, return_dict=True)
    full = make_kde_gan(threshold=np.inf)().train_on_batch(x, return_dict=True)
    assert quick["reversal_steps"] == 1
    assert full["reversal_steps"] == 6
    # "inf" as a strict JSON file spells it (tfgen.jsonio) is the same number; nonsense is refused
    assert make_kde_gan(threshold="inf")().threshold == np.inf
    with pytest.raises(ValueError, match="threshold must be a number.*'off'"):
        make_kde_gan(threshold="off")()
    with pytest.raises(ValueError, match="got NaN"):
        make_kde_gan(threshold=float("nan"))()


def test_fixed_schedule_skips_the_reference_batch_and_xla_changes_nothing():
    """With tau = +inf the test cannot stop the loop: no reference batch is generated
    or reversed, and the prior gets the same data codes as a reversal beside a
    reference (each code's descent is its own); XLA compilation of the loop gives
    the same step."""
    x = ring_data(64)
    twin = make_kde_gan(threshold=np.inf)()
    x_g = twin.generator(twin.prior.sample(64, seed=twin._step_seed(1)), training=False)
    with_reference = tfgen.ops.reverse(twin.generator, x, steps=6, lr=0.5, reference=x_g,
                                       threshold=np.inf, gamma=1e-4, init_scale=1e-4,
                                       seed=twin._step_seed(2))
    model = make_kde_gan(threshold=np.inf)()
    calls = []
    original = tfgen.ops.reverse

    def spy(*args, **kwargs):
        calls.append(kwargs.get("reference"))
        return original(*args, **kwargs)

    import tfgen.models.kde_gan as kde_gan_module
    kde_gan_module.ops.reverse = spy
    try:
        logs = model.train_on_batch(x, return_dict=True)
    finally:
        kde_gan_module.ops.reverse = original
    assert calls == [None]
    # no statistic without the test: not logged (a NaN would stop the Trainer as diverged)
    assert logs["reversal_steps"] == 6 and "reversal_mmd2" not in logs
    np.testing.assert_allclose(model.prior.codes.numpy()[:64], with_reference.codes.numpy(),
                               rtol=1e-5, atol=1e-6)
    for threshold in (1e-3, np.inf):
        plain, xla = make_kde_gan(threshold=threshold)(), make_kde_gan(threshold=threshold,
                                                                       reversal_jit_compile=True)()
        a = plain.train_on_batch(x, return_dict=True)
        b = xla.train_on_batch(x, return_dict=True)
        assert a["reversal_steps"] == b["reversal_steps"]
        for u, v in zip(plain.get_weights(), xla.get_weights()):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    assert xla.get_config()["reversal_jit_compile"] is True


def test_export_warns_until_the_prior_is_fitted_on_training_images(tmp_path):
    model = make_kde_gan()()
    model.fit(ring_data(64), batch_size=64, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="fit_prior"):
        model.export(str(tmp_path / "a"))
    model.fit_prior(ring_data(64), batch_size=32)
    assert model.prior_fit_size == 64
    loaded = keras.models.load_model(_saved(model, tmp_path))
    assert loaded.prior_fit_size == 64        # kept in the config
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.export(str(tmp_path / "b"))


def _saved(model, tmp_path):
    path = str(tmp_path / "m.keras")
    model.save(path)
    return path


def test_fit_prior_stores_codes_of_the_training_images():
    model = make_kde_gan(capacity=100, threshold=np.inf, reversal_steps=200, reversal_lr=2.0)()
    x = ring_data(150)
    stats = model.fit_prior(x, batch_size=40)
    assert stats["n"] == 100 and int(model.prior.count) == 100   # capped at the capacity
    assert stats["mean_steps"] == 200
    codes = model.prior.codes.numpy()[:100]
    # the codes are reversals of the first 100 images: G(code) is closer to its
    # own image than an untrained G's random outputs are to the data (~ring radius 2)
    recon = np.asarray(model.generator(codes))
    err = np.mean(np.sum((recon - x[:100]) ** 2, axis=1))
    assert err < 0.5 * np.mean(np.sum((x[:100] - x[:100].mean(0)) ** 2, axis=1)), err
    np.testing.assert_allclose(np.mean((recon - x[:100]) ** 2), stats["mean_error"], rtol=1e-3)
    with pytest.raises(ValueError, match="shape"):
        model.fit_prior(np.zeros((10, 3), np.float32))


def test_harness(tmp_path):
    check_all(make_kde_gan(), ring_data(), batch_size=64, tmp_path=tmp_path,
              make_sgd_model=make_kde_gan(sgd=True))


def test_bad_arguments():
    g = networks.mlp(LATENT, [8], 2)
    d = networks.mlp(2, [8], 1)
    with pytest.raises(ValueError, match="KDE prior"):
        KDEGAN(g, d, Gaussian(LATENT))
    with pytest.raises(ValueError, match="reversal_steps"):
        KDEGAN(g, d, KDE(LATENT), reversal_steps=0)
    with pytest.raises(ValueError, match="gamma"):
        KDEGAN(g, d, KDE(LATENT), gamma=0.0)
    with pytest.raises(ValueError, match="integer"):
        KDEGAN(g, d, KDE(LATENT), reversal_steps=2.5)
    with pytest.raises(ValueError, match="capacity"):
        small = KDEGAN(g, d, KDE(LATENT, capacity=8))
        small.compile("sgd")
        small.train_on_batch(ring_data(16))


def test_with_prior_capacity_keeps_the_networks():
    model = make_kde_gan(capacity=64)()
    model.train_on_batch(ring_data(64))
    small = model.with_prior_capacity(20)
    assert small.prior.capacity == 20 and int(small.prior.count) == 0
    assert small.generator is model.generator and small.discriminator is model.discriminator
    assert small.reversal_steps == model.reversal_steps
    small.fit_prior(ring_data(40), batch_size=20)
    assert int(small.prior.count) == 20
