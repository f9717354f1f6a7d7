"""with_learned_prior: a fitted base distribution for any zoo model (IML's idea):
codes by reversal / encode / a given encoder recover the clusters the data came
from, and the result samples, saves and exports like any model."""

import numpy as np
import keras
import pytest
import tensorflow as tf

import tfgen
from harness import check_export_roundtrip, check_keras_roundtrip
from tfgen.distributions import KDE, Gaussian, GaussianMixture
from tfgen.models import IML, LearnedPrior, MMDNet, with_learned_prior
from tfgen.models.iml import invertible_perceptron

CENTERS = np.array([[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]], np.float32)


def _linear_model():
    keras.utils.set_random_seed(0)
    gen = keras.Sequential([keras.Input((2,)), keras.layers.Dense(6, name="linear")], name="generator")
    gen.layers[0].kernel.assign(np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32) * 0.8)
    return MMDNet(gen, Gaussian(2))


def _clustered(model, n=600, seed=1):
    rng = np.random.default_rng(seed)
    z = CENTERS[rng.integers(0, 3, n)] + 0.1 * rng.normal(size=(n, 2)).astype(np.float32)
    return model.generate(z).numpy(), z


def _assert_clusters_found(learned):
    means = learned.prior.means.numpy()
    err = np.sqrt(((means[:, None] - CENTERS[None]) ** 2).sum(-1)).min(0)
    assert np.all(err < 0.1), err
    z = learned.prior.sample(600, seed=3).numpy()
    nearest = np.sqrt(((z[:, None] - CENTERS[None]) ** 2).sum(-1))
    # the N(0, I) prior puts ~1/3 of its mass farther than 0.5 from every centre; the learned one almost none
    assert np.mean(nearest.min(1) > 0.5) < 0.02
    assert np.bincount(nearest.argmin(1), minlength=3).min() > 120


def test_reversal_codes_recover_the_clusters():
    model = _linear_model()
    x, z = _clustered(model)
    learned, report = with_learned_prior(model, x, n_components=3, reversal_steps=300, reversal_lr=1.0)
    assert report["encoder"] == "reversal" and report["n"] == 600
    assert report["reconstruction_mse"] < 1e-4, report
    assert isinstance(learned, LearnedPrior) and learned.generator is model.generator
    _assert_clusters_found(learned)
    # the original model keeps its prior
    assert isinstance(model.prior, Gaussian)


def test_given_encoder_and_model_encode():
    model = _linear_model()
    x, z = _clustered(model)
    w = model.generator.layers[0]
    pinv = np.linalg.pinv(w.kernel.numpy())

    def encoder(batch):
        return (np.asarray(batch) - w.bias.numpy()) @ pinv

    learned, report = with_learned_prior(model, x, encoder=encoder, n_components=3)
    assert report["encoder"] == "given"
    _assert_clusters_found(learned)

    keras.utils.set_random_seed(2)
    iml = IML(invertible_perceptron(2, (6,), hidden=4), Gaussian(2))
    x = iml.generate(tf.constant(z)).numpy()
    learned, report = with_learned_prior(iml, x, n_components=3)
    assert report["encoder"] == "encode" and report["reconstruction_mse"] < 1e-6
    _assert_clusters_found(learned)


def test_other_priors_saving_and_export(tmp_path):
    model = _linear_model()
    x, _ = _clustered(model, n=200)
    learned, _ = with_learned_prior(model, x, prior=KDE(2, capacity=200, bandwidth=0.05), reversal_steps=300)
    assert isinstance(learned.prior, KDE)
    check_keras_roundtrip(learned, tmp_path)
    check_export_roundtrip(learned, tmp_path)
    with pytest.raises(NotImplementedError, match="not trained"):
        learned.fit(x, batch_size=50, epochs=1, verbose=0)


def test_bad_input():
    model = _linear_model()
    x, _ = _clustered(model, n=50)
    with pytest.raises(ValueError, match="shape"):
        with_learned_prior(model, x[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        with_learned_prior(model, np.where(np.arange(6) == 0, np.nan, x))
    with pytest.raises(ValueError, match="fewer than n_components"):
        with_learned_prior(model, x[:10], n_components=30)
    with pytest.raises(ValueError, match="dim"):
        with_learned_prior(model, x, prior=GaussianMixture(3, 2))
    with pytest.raises(ValueError, match="GenerativeModel"):
        with_learned_prior(model.generator, x)
