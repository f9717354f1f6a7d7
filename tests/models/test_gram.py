"""GRAM-nets: the shared harness, the loss against the ops, and the ring of 8."""

import numpy as np
import keras
import pytest

from harness import check_all
import tfgen
from tfgen.distributions import Gaussian
from tfgen.models import GRAM, networks


def make_gram(bandwidths=(1.0,), sgd=False, **kwargs):
    def make():
        keras.utils.set_random_seed(3)
        model = GRAM(networks.mlp(4, [32, 32], 2, name="generator"),
                     networks.mlp(2, [32, 32], 5, name="critic"), Gaussian(4),
                     bandwidths=bandwidths, **kwargs)
        if sgd:
            model.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05))
        else:
            model.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
        return model
    return make


def ring_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, n) * np.pi / 4
    return (2 * np.stack([np.cos(k), np.sin(k)], 1) + 0.2 * rng.normal(size=(n, 2))).astype("float32")


def test_harness(tmp_path):
    check_all(make_gram(), ring_data(), batch_size=64, tmp_path=tmp_path, make_sgd_model=make_gram(sgd=True))


def test_harness_median_bandwidth_and_clip(tmp_path):
    options = dict(bandwidths="median", clip_ratio=True, positivity="mean")
    check_all(make_gram(**options), ring_data(), batch_size=64, tmp_path=tmp_path,
              make_sgd_model=make_gram(sgd=True, **options))


def test_step_losses_match_ops():
    """The logged losses of one step equal eq. (8)-(10) computed from the ops
    on the same features (the step draws its codes from the step seed)."""
    model = make_gram(bandwidths=(0.5, 2.0))()
    x = ring_data(64)
    z = model.prior.sample(64, seed=model._step_seed())
    f_data = model.critic(x, training=True)
    f_gen = model.critic(model.generator(z, training=True), training=True)
    ratios = [tfgen.ops.density_ratio(
        tfgen.ops.gaussian_kernel(tfgen.ops.pairwise_sq_distances(f_gen), s),
        tfgen.ops.gaussian_kernel(tfgen.ops.pairwise_sq_distances(f_gen, f_data), s)) for s in (0.5, 2.0)]
    r = np.mean(ratios, 0)
    pearson = np.mean((r - 1) ** 2) + np.sum(r)
    mmd = np.sqrt(float(tfgen.ops.mmd2(f_gen, f_data, [0.5, 2.0])))
    logs = model.train_on_batch(x, return_dict=True)
    np.testing.assert_allclose(logs["pearson_divergence"], pearson, rtol=1e-4)
    np.testing.assert_allclose(logs["mmd"], mmd, rtol=1e-4)
    np.testing.assert_allclose(logs["ratio_mean"], r.mean(), rtol=1e-4)


def test_critic_ascends_pearson_divergence():
    """With the generator frozen, the critic's updates raise eq. (9) (it is maximised)."""
    model = make_gram()()
    model.compile(keras.optimizers.SGD(0.0), keras.optimizers.Adam(1e-2))
    x = ring_data(256)
    first = model.train_on_batch(x, return_dict=True)["pearson_divergence"]
    for _ in range(30):
        model.train_on_batch(x)
    model.reset_metrics()
    last = model.train_on_batch(x, return_dict=True)["pearson_divergence"]
    assert last > first * 1.05, (first, last)


def test_bad_arguments():
    g, f = networks.mlp(4, [8], 2), networks.mlp(2, [8], 3)
    with pytest.raises(ValueError, match="prior has dim"):
        GRAM(g, f, Gaussian(5))
    with pytest.raises(ValueError, match="critic takes inputs"):
        GRAM(g, networks.mlp(3, [8], 3), Gaussian(4))
    with pytest.raises(ValueError, match="positivity"):
        GRAM(g, f, Gaussian(4), positivity="max")
    with pytest.raises(ValueError, match="bandwidths"):
        GRAM(g, f, Gaussian(4), bandwidths=[-1.0])
    with pytest.raises(ValueError, match="parameterization"):
        GRAM(g, f, Gaussian(4), parameterization="width")
