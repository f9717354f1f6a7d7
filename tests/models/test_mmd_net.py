"""MMD-net (GMMN): the shared harness and the loss against the MMD op."""

import numpy as np
import keras
import pytest

from harness import check_all
import tfgen
from tfgen.distributions import Gaussian, Uniform
from tfgen.models import MMDNet, networks
from test_gram import ring_data


def make_mmd_net(sgd=False, **kwargs):
    def make():
        keras.utils.set_random_seed(4)
        model = MMDNet(networks.mlp(4, [32, 32], 2, name="generator"), Gaussian(4), **kwargs)
        model.compile(keras.optimizers.SGD(0.05) if sgd else keras.optimizers.RMSprop(1e-3))
        return model
    return make


def test_harness(tmp_path):
    check_all(make_mmd_net(bandwidths=(0.5, 1.0)), ring_data(), batch_size=64, tmp_path=tmp_path,
              make_sgd_model=make_mmd_net(sgd=True, bandwidths=(0.5, 1.0)))


@pytest.mark.parametrize("estimator,loss", [("biased", "mmd"), ("unbiased", "mmd2")])
def test_step_loss_matches_op(estimator, loss):
    model = make_mmd_net(bandwidths=(0.5, 2.0), estimator=estimator, loss=loss)()
    x = ring_data(64)
    z = model.prior.sample(64, seed=model._step_seed())
    mmd2 = float(tfgen.ops.mmd2(x, model.generator(z, training=True), [0.5, 2.0], estimator=estimator))
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["mmd2"], mmd2, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(logs["loss"], np.sqrt(mmd2) if loss == "mmd" else mmd2, rtol=1e-4, atol=1e-7)


def test_image_generator_harness(tmp_path):
    """Image-shaped data (N, 8, 8, 1) flow through the same loss (flattened)."""
    def factory(optimizer):
        def make():
            keras.utils.set_random_seed(5)
            model = MMDNet(networks.mlp(6, [16], (8, 8, 1), output_activation="sigmoid"), Uniform(6),
                           bandwidths="median")
            model.compile(optimizer())
            return model
        return make
    x = np.random.default_rng(0).uniform(size=(128, 8, 8, 1)).astype("float32")
    check_all(factory(lambda: keras.optimizers.Adam(1e-3)), x, batch_size=32, tmp_path=tmp_path,
              make_sgd_model=factory(lambda: keras.optimizers.SGD(0.05)))


def test_bad_arguments():
    g = networks.mlp(4, [8], 2)
    with pytest.raises(ValueError, match="estimator"):
        MMDNet(g, Gaussian(4), estimator="vstat")
    with pytest.raises(ValueError, match="loss"):
        MMDNet(g, Gaussian(4), loss="l2")
    with pytest.raises(ValueError, match="prior"):
        MMDNet(g, "gaussian")
