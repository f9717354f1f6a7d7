"""WGAN-GP (Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017).

The critic ``D`` estimates the Wasserstein-1 distance between data and
samples; the Lipschitz constraint is a soft penalty on the critic's gradient
norm at random points between the two (their Algorithm 1):

    L_D = E[D(x~)] - E[D(x)] + lambda * E[(||grad_xhat D(xhat)||_2 - 1)^2],
    xhat = eps * x + (1 - eps) * x~,   eps ~ U[0, 1] per example,
    L_G = -E[D(G(z))].

Two bugs of popular examples are avoided on purpose:
* ``eps`` is drawn *uniformly per example* (not one value per batch, and
  not from a normal distribution);
* the gradient norm is ``sqrt(sum g^2 + 1e-12)``: ``tf.norm``'s gradient is
  NaN where the gradient vanishes (e.g. a critic that is flat at ``xhat``),
  and one NaN poisons every weight.

One ``train_step`` is one generator iteration of Algorithm 1: ``n_critic``
critic steps, each on its own batch of ``m`` data points, then one generator
step on ``m`` fresh codes. The ``batch_size`` of the dataset is therefore
``n_critic * m`` (the recipes: 5 x 64 = 320); the batch is split into strided
slices (see ``GenerativeModel._critic_slices``). A data-dependent number of
optimizer steps per ``train_step`` would need control flow around a
gradient all-reduce, which ``tf.distribute`` does not support; fixed slices
keep the algorithm exact on any number of replicas.

The critic must not use batch normalisation (the penalty is per example;
the paper uses none or layer normalisation), so a critic with a
``BatchNormalization`` layer is refused.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen.models.base import GenerativeModel


def _flat_norm(g):
    """Per-example Euclidean norm that stays differentiable at 0."""
    g = tf.reshape(tf.cast(g, tf.float32), [tf.shape(g)[0], -1])
    return tf.sqrt(tf.reduce_sum(tf.square(g), axis=1) + 1e-12)


def gradient_penalty(critic, x_hat, training=True):
    """``E[(||grad_xhat D(xhat)||_2 - 1)^2]`` for a batch of points ``x_hat``.

    Differentiable with respect to the critic's weights (a nested tape), and
    finite where the gradient vanishes.
    """
    x_hat = tf.convert_to_tensor(x_hat)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        d_hat = critic(x_hat, training=training)
        # the per-example output: summing over the batch gives each example's own gradient
        total = tf.reduce_sum(tf.cast(d_hat, tf.float32))
    grads = tape.gradient(total, x_hat)
    return tf.reduce_mean(tf.square(_flat_norm(grads) - 1.0))


def interpolate(x, x_gen, eps):
    """``eps * x + (1 - eps) * x_gen`` with one ``eps`` per example (shape ``(n,)``)."""
    eps = tf.reshape(tf.cast(eps, x.dtype), [-1] + [1] * (len(x.shape) - 1))
    return eps * x + (1.0 - eps) * tf.cast(x_gen, x.dtype)


def critic_losses(d_real, d_fake, penalty, gp_weight):
    """``(L_D, wasserstein_estimate)``: ``L_D = E D(x~) - E D(x) + lambda * penalty``."""
    w = tf.reduce_mean(tf.cast(d_real, tf.float32)) - tf.reduce_mean(tf.cast(d_fake, tf.float32))
    return -w + gp_weight * penalty, w


def _has_batch_norm(model) -> bool:
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            return True
    return False


@keras.saving.register_keras_serializable(package="tfgen")
class WGANGP(GenerativeModel):
    """Wasserstein GAN with gradient penalty.

    Args:
      generator: codes -> data.
      critic: data -> one unbounded score per example, without batch
        normalisation.
      prior: latent distribution.
      n_critic: critic steps per generator step (paper: 5).
      gp_weight: lambda (paper: 10).

    Compile with ``compile(optimizer=G_opt, critic_optimizer=D_opt)``; the
    paper uses Adam(1e-4, beta_1=0, beta_2=0.9) for both.
    """

    _keras_args = ("generator", "critic", "prior")

    def __init__(self, generator, critic, prior, *, n_critic: int = 5, gp_weight: float = 10.0,
                 seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self._check_network(critic, "critic", unit="score")
        if _has_batch_norm(critic):
            raise ValueError("the WGAN-GP critic must not use BatchNormalization: the gradient "
                             "penalty is per example (Gulrajani et al. §4); build it without "
                             "(e.g. NetworkSpec('dcgan_critic', batch_norm=False))")
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}")
        self.critic = critic
        self.n_critic, self.gp_weight = int(n_critic), float(gp_weight)
        self.critic_optimizer = None
        self._declare_trackers("critic_loss", "g_loss", "wasserstein", "gradient_penalty")

    def compile(self, optimizer="adam", critic_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self._compile_second_optimizer("critic_optimizer", critic_optimizer, self.critic)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def _critic_step(self, x, i):
        m = tf.shape(x)[0]
        x_gen = self.generator(self._sample_local_codes(m, salt=2 * i), training=True)
        eps = self._sample_local(
            lambda n, seed: tf.random.stateless_uniform([n], seed), m, salt=2 * i + 1)
        x_hat = interpolate(x, x_gen, eps)
        f_vars = self.critic.trainable_variables
        with tf.GradientTape() as tape:
            d_real = self.critic(x, training=True)
            d_fake = self.critic(x_gen, training=True)
            penalty = gradient_penalty(self.critic, x_hat)
            loss, w = critic_losses(d_real, d_fake, penalty, self.gp_weight)
            scaled = self.critic_optimizer.scale_loss(self._replica_scale(loss))
        self.critic_optimizer.apply_gradients(zip(tape.gradient(scaled, f_vars), f_vars))
        return loss, w, penalty

    def train_step(self, data):
        x = self._unpack(data)
        for i, x_i in enumerate(self._critic_slices(x, self.n_critic)):
            critic_loss, w, penalty = self._critic_step(x_i, i)

        m = tf.shape(x_i)[0]
        g_vars = self.generator.trainable_variables
        z = self._sample_local_codes(m, salt=2 * self.n_critic)
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(tf.cast(self.critic(self.generator(z, training=True),
                                                         training=True), tf.float32))
            scaled = self.optimizer.scale_loss(self._replica_scale(g_loss))
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))
        # the last critic step's values
        return self._track(critic_loss=critic_loss, g_loss=g_loss, wasserstein=w,
                           gradient_penalty=penalty)

    def get_config(self):
        return {**super().get_config(), "n_critic": self.n_critic, "gp_weight": self.gp_weight}
