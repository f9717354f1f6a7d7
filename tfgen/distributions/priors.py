"""Latent priors: keras-serializable layers around TensorFlow-Probability distributions.

A prior is a ``keras.layers.Layer`` so that a model tracks its variables:
checkpoints, ``.keras`` files and SavedModel exports all carry them, and a
learned prior (later: KDE, GaussianMixture) is what a served model samples
from. Sampling is stateless: ``sample(n, seed)`` with the same integer seed
gives the same codes, in eager mode, in ``tf.function`` and in an export.
"""

from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def as_stateless_seed(seed) -> tf.Tensor:
    """An int seed (Python or scalar tensor) or a ``[2]`` seed -> a ``[2]`` int32 stateless seed.

    ``seed=None`` draws a fresh seed, so unseeded calls differ as users
    expect: from NumPy's global generator eagerly, and from a stateful TF op
    inside a ``tf.function`` (a NumPy draw there would be frozen at tracing).
    """
    if seed is None:
        if not tf.executing_eagerly():
            return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
        seed = int(np.random.randint(0, 2**31 - 1))
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise ValueError(f"seed must be an integer, got dtype {seed.dtype.name}")
    if seed.shape.rank == 0:
        # The two 32-bit words of a 64-bit seed, so every int64 seed (a
        # serving request's) maps to its own stateless seed.
        return tf.bitcast(tf.cast(seed, tf.int64), tf.int32)
    return tf.cast(seed, tf.int32)


@keras.saving.register_keras_serializable(package="tfgen")
class Prior(keras.layers.Layer):
    """Base class of the latent distributions. Subclasses implement ``distribution()``."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        dim = int(dim)
        if dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.dim = dim
        self.built = True

    def distribution(self) -> tfd.Distribution:
        raise NotImplementedError

    def sample(self, n, seed=None) -> tf.Tensor:
        """``(n, dim)`` float32 codes; same ``seed``, same codes."""
        return tf.cast(self.distribution().sample(n, seed=as_stateless_seed(seed)), tf.float32)

    def log_prob(self, z) -> tf.Tensor:
        """``(n,)`` log-density of codes ``z (n, dim)``."""
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank != 2 or z.shape[-1] not in (None, self.dim):
            raise ValueError(f"z must have shape (n, {self.dim}), got {z.shape}")
        return self.distribution().log_prob(z)

    def call(self, n):
        return self.sample(n)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="tfgen")
class Gaussian(Prior):
    """Isotropic Gaussian ``N(loc, scale^2 I)`` (GRAM's ring experiments: ``N(0, I)``)."""

    def __init__(self, dim: int, loc: float = 0.0, scale: float = 1.0, **kwargs):
        super().__init__(dim, **kwargs)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.loc = self.add_weight(shape=(dim,), initializer=keras.initializers.Constant(loc),
                                   trainable=False, name="loc")
        self.scale = self.add_weight(shape=(dim,), initializer=keras.initializers.Constant(scale),
                                     trainable=False, name="scale")
        self._loc0, self._scale0 = float(loc), float(scale)

    def distribution(self):
        return tfd.MultivariateNormalDiag(loc=self.loc, scale_diag=self.scale)

    def sample(self, n, seed=None):
        # A plain stateless draw: same law as distribution().sample, without
        # TFP's per-call overhead in every training step.
        eps = tf.random.stateless_normal(tf.stack([n, self.dim]), seed=as_stateless_seed(seed))
        return self.loc + self.scale * eps

    def get_config(self):
        return {**super().get_config(), "loc": self._loc0, "scale": self._scale0}


@keras.saving.register_keras_serializable(package="tfgen")
class Uniform(Prior):
    """Uniform on the box ``[low, high]^dim`` (GRAM's MNIST: ``U[-1, 1]^100``; SGN: ``U[0, 1]^100``)."""

    def __init__(self, dim: int, low: float = -1.0, high: float = 1.0, **kwargs):
        super().__init__(dim, **kwargs)
        if not high > low:
            raise ValueError(f"need low < high, got low={low}, high={high}")
        self.low = self.add_weight(shape=(dim,), initializer=keras.initializers.Constant(low),
                                   trainable=False, name="low")
        self.high = self.add_weight(shape=(dim,), initializer=keras.initializers.Constant(high),
                                    trainable=False, name="high")
        self._low0, self._high0 = float(low), float(high)

    def distribution(self):
        return tfd.Independent(tfd.Uniform(low=self.low, high=self.high), reinterpreted_batch_ndims=1)

    def sample(self, n, seed=None):
        # A plain stateless draw (see Gaussian.sample).
        u = tf.random.stateless_uniform(tf.stack([n, self.dim]), seed=as_stateless_seed(seed))
        return self.low + (self.high - self.low) * u

    def get_config(self):
        return {**super().get_config(), "low": self._low0, "high": self._high0}


@keras.saving.register_keras_serializable(package="tfgen")
class BinaryMeanMixture(Prior):
    """SGN's Gaussian-mixture source (SGN paper §3): C equally weighted components
    ``N(m_c, sigma^2 I)`` whose means ``m_c`` are random binary vectors in
    ``{0, 1}^dim``, drawn once at construction from ``seed`` and then kept
    (as non-trainable variables, so a saved model keeps the same means).
    """

    def __init__(self, dim: int, n_components: int = 32, scale: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(dim, **kwargs)
        if int(n_components) <= 0:
            raise ValueError(f"n_components must be positive, got {n_components}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.n_components, self.seed, self._scale0 = int(n_components), int(seed), float(scale)
        means = np.random.default_rng(seed).integers(0, 2, size=(self.n_components, dim)).astype("float32")
        self.means = self.add_weight(shape=means.shape, initializer=keras.initializers.Constant(means),
                                     trainable=False, name="means")
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(scale),
                                     trainable=False, name="scale")

    def distribution(self):
        c = self.n_components
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([c])),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=self.means, scale_diag=tf.fill([c, self.dim], tf.convert_to_tensor(self.scale))))

    def get_config(self):
        return {**super().get_config(), "n_components": self.n_components,
                "scale": self._scale0, "seed": self.seed}
