"""The variational autoencoder (Kingma & Welling, 2014): the IML paper's VAE
baseline (``shared/papers/iml-learned-base-distribution.txt`` §4.1, eq. 2).

The encoder maps ``x`` to the mean and log-variance of ``q(h|x) = N(mu,
diag(exp(log_var)))``; a code ``h = mu + exp(log_var / 2) * eps`` is drawn by
reparameterisation and decoded. One ``train_step`` minimises the negative
evidence lower bound (eq. 2), averaged over the batch::

    -ELBO(x) = -log p(x | h) + KL(q(h|x) || N(0, I))
    KL = -1/2 sum_k (1 + log_var_k - mu_k^2 - exp(log_var_k))

``likelihood="bernoulli"`` (images in [0, 1], the decoder ending in a
sigmoid): ``-log p(x|h) = -sum_pixels [x log y + (1 - x) log(1 - y)]``;
``"gaussian"``: ``sum_pixels (x - y)^2 / (2 s^2)`` plus its constant, with a
fixed ``s = observation_scale``. The paper's networks: decoder
``K -> 600 (tanh) -> 784 (sigmoid)``, encoder the mirror image
``784 -> 600 (tanh) -> 2K``. Samples are the decoder's output (the Bernoulli
means) at codes from the prior ``N(0, I)``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfgen import distributions
from tfgen.models.base import GenerativeModel

_LIKELIHOODS = ("bernoulli", "gaussian")
_EPS = 1e-7  # keeps log(y) and log(1 - y) finite at saturated sigmoid outputs


@keras.saving.register_keras_serializable(package="tfgen")
class VAE(GenerativeModel):
    """Variational autoencoder.

    Args:
      generator: the decoder ``p(x|h)``, codes -> data (a sigmoid output for
        the Bernoulli likelihood).
      prior: ``Gaussian(K)`` with ``loc=0, scale=1`` (the KL term is the closed
        form against ``N(0, I)``).
      encoder: data -> ``2K`` values: the posterior mean, then the log-variance.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.
      observation_scale: ``s`` of the Gaussian likelihood.
    """

    _keras_args = ("generator", "prior", "encoder")

    def __init__(self, generator, prior, encoder, *, likelihood: str = "bernoulli",
                 observation_scale: float = 0.1, **kwargs):
        super().__init__(generator, prior, **kwargs)
        if not (isinstance(prior, distributions.Gaussian) and prior._loc0 == 0.0 and prior._scale0 == 1.0):
            raise ValueError("VAE needs the standard normal prior tfgen.distributions.Gaussian(K) "
                             f"(its KL term is in closed form), got {prior!r}")
        self._check_network(encoder, "encoder")
        if tuple(encoder.output_shape[1:]) != (2 * self.latent_dim,):
            raise ValueError(f"the encoder must output 2 * latent_dim = {2 * self.latent_dim} values "
                             f"(mean and log-variance), got shape {encoder.output_shape[1:]}")
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
        if not observation_scale > 0:
            raise ValueError(f"observation_scale must be positive, got {observation_scale}")
        self.encoder = encoder
        self.likelihood, self.observation_scale = likelihood, float(observation_scale)
        self._declare_trackers("loss", "reconstruction", "kl")

    def posterior(self, x, training=False):
        """``(mean, log_var)`` of ``q(h|x)``, each ``(n, K)``."""
        out = tf.cast(self.encoder(x, training=training), tf.float32)  # float32 under mixed precision
        return out[:, :self.latent_dim], out[:, self.latent_dim:]

    def encode(self, x, training=False):
        """The posterior means: the codes of ``x``."""
        return self.posterior(x, training=training)[0]

    def reconstruct(self, x):
        return self.generate(self.encode(x))

    def negative_log_likelihood(self, x, y):
        """``-log p(x | h)`` per example, for decoder output ``y``."""
        n = tf.shape(x)[0]
        x, y = tf.reshape(tf.cast(x, tf.float32), [n, -1]), tf.reshape(tf.cast(y, tf.float32), [n, -1])
        if self.likelihood == "bernoulli":
            y = tf.clip_by_value(y, _EPS, 1 - _EPS)
            return -tf.reduce_sum(x * tf.math.log(y) + (1 - x) * tf.math.log(1 - y), axis=-1)
        s = self.observation_scale
        dim = tf.cast(tf.shape(x)[1], tf.float32)
        return tf.reduce_sum(tf.square(x - y), -1) / (2 * s * s) + dim * (math.log(s) + 0.5 * math.log(2 * math.pi))

    @staticmethod
    def kl_to_standard_normal(mean, log_var):
        """``KL(N(mean, exp(log_var)) || N(0, I))`` per example (closed form)."""
        return -0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), axis=-1)

    def negative_elbo(self, x, eps, training=False):
        """``(loss, reconstruction, kl)``, batch means, with the noise ``eps (n, K)`` given."""
        mean, log_var = self.posterior(x, training=training)
        h = mean + tf.exp(0.5 * log_var) * eps
        recon = tf.reduce_mean(self.negative_log_likelihood(x, self.generate(h, training=training)))
        kl = tf.reduce_mean(self.kl_to_standard_normal(mean, log_var))
        return recon + kl, recon, kl

    def train_step(self, data):
        x = tf.cast(self._unpack(data), tf.float32)
        # The noise of the global batch, sliced: R replicas draw what one device draws.
        eps = self._sample_local(lambda n, seed: tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed),
                                 tf.shape(x)[0], salt=1)
        variables = self.generator.trainable_variables + self.encoder.trainable_variables
        with tf.GradientTape() as tape:
            loss, recon, kl = self.negative_elbo(x, eps, training=True)
            scaled = self.optimizer.scale_loss(self._replica_scale(loss))  # loss scaling under mixed_float16
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._track(loss=loss, reconstruction=recon, kl=kl)

    def get_config(self):
        return {**super().get_config(), "likelihood": self.likelihood,
                "observation_scale": self.observation_scale}
