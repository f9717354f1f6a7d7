"""Level Set GAN (Sagel & Gottwald): a critic whose zero level set models the data.

A scalar critic ``f`` should vanish on the data manifold and not on the
generated points; the generator moves its samples onto ``f^{-1}(0)``.
Eq. (4) of the paper is

    L(theta, vartheta) = E_x[f(x)^2] - E_z[f(g(z))^2],

which the critic minimises and the generator maximises, i.e. the generator
minimises ``E_z[f(g(z))^2]`` (its only term that depends on ``vartheta``).

One ``train_step`` is one pass of the paper's Algorithm 1: one critic step on
the data batch and a batch of codes, then ``n_gen`` generator steps, each on
fresh codes. Line 5 of Algorithm 1 prints the critic loss as
``sum f(z_i)^2 - sum f(g(z_i))^2``: a typo for eq. (4)'s ``f(x_i)^2``
(METHODS.md §4). Means replace the sums, so the learning rate does not
depend on the batch size.

The critic loss is unbounded below: scaling ``f`` up at the generated points
lowers it without limit, and the paper reports that ``L`` "tends to explode"
(§4), which larger ``n_gen`` mitigates. Two optional bounds are offered,
both off by default as in the paper: ``clip_value`` clips every critic
weight to ``[-c, c]`` after each step (WGAN's remedy; 0.01 is its value),
and ``bounded_head`` passes the critic's output through ``tanh`` so
``f^2 <= 1`` and ``L`` lies in ``[-1, 1]``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen.models.base import GenerativeModel


def level_set_losses(f_data, f_gen):
    """``(critic_loss, generator_loss)`` of eq. (4) from critic values.

    ``critic_loss = mean f(x)^2 - mean f(g(z))^2`` (minimised by the critic);
    ``generator_loss = mean f(g(z))^2`` (minimised by the generator).
    """
    f_data = tf.cast(tf.reshape(f_data, [-1]), tf.float32)
    f_gen = tf.cast(tf.reshape(f_gen, [-1]), tf.float32)
    gen_term = tf.reduce_mean(tf.square(f_gen))
    return tf.reduce_mean(tf.square(f_data)) - gen_term, gen_term


@keras.saving.register_keras_serializable(package="tfgen")
class LevelSetGAN(GenerativeModel):
    """Level Set GAN.

    Args:
      generator: codes -> data.
      critic: data -> one scalar per example (``(n, 1)`` or ``(n,)``), no
        output activation.
      prior: latent distribution (the paper: U[-1, 1]^2 on the toy, Gaussian
        on images).
      n_gen: generator steps per critic step (paper: "larger n_gen" tames the
        exploding loss; unstated value, 5 by METHODS.md §4).
      clip_value: clip critic weights to ``[-c, c]`` after each critic step
        (None: off).
      bounded_head: apply ``tanh`` to the critic's output.

    Compile with ``compile(optimizer=G_opt, critic_optimizer=f_opt)``
    (RMSProp in the paper); without ``critic_optimizer`` the critic gets a
    fresh copy of the generator's optimizer. ``model.train_steps`` counts
    critic steps (one per ``train_step``).
    """

    _keras_args = ("generator", "critic", "prior")

    def __init__(self, generator, critic, prior, *, n_gen: int = 5, clip_value: float | None = None,
                 bounded_head: bool = False, seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self._check_network(critic, "critic", unit="scalar")
        if int(n_gen) < 1:
            raise ValueError(f"n_gen must be >= 1, got {n_gen}")
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be positive or None, got {clip_value}")
        self.critic = critic
        self.n_gen = int(n_gen)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.bounded_head = bool(bounded_head)
        self.critic_optimizer = None
        self._declare_trackers("critic_loss", "f_data_sq", "f_gen_sq")

    def compile(self, optimizer="rmsprop", critic_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self._compile_second_optimizer("critic_optimizer", critic_optimizer, self.critic)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    @property
    def train_steps(self):
        # n_gen generator updates per step: count critic updates instead
        return self.critic_optimizer.iterations

    def level_set_function(self, x, training=False):
        """``f(x)``, shape ``(n,)``: the data manifold is modelled as ``f = 0``."""
        f = tf.reshape(self.critic(x, training=training), [-1])
        return tf.tanh(f) if self.bounded_head else f

    def train_step(self, data):
        x = self._unpack(data)
        n = tf.shape(x)[0]
        f_vars = self.critic.trainable_variables
        g_vars = self.generator.trainable_variables

        # All codes are drawn before the first update moves the step counter.
        codes = [self._sample_local_codes(n, salt=i) for i in range(1 + self.n_gen)]

        # Critic step: minimise eq. (4) (Alg. 1 line 5, with x_i for the typo's z_i).
        x_gen = self.generator(codes[0], training=True)
        with tf.GradientTape() as tape:
            f_data = self.level_set_function(x, training=True)
            f_gen = self.level_set_function(x_gen, training=True)
            critic_loss, _ = level_set_losses(f_data, f_gen)
            scaled = self.critic_optimizer.scale_loss(self._replica_scale(critic_loss))
        self.critic_optimizer.apply_gradients(zip(tape.gradient(scaled, f_vars), f_vars))
        if self.clip_value is not None:
            for v in f_vars:
                v.assign(tf.clip_by_value(v, -self.clip_value, self.clip_value))

        # n_gen generator steps, each on fresh codes: minimise E f(g(z))^2.
        for z in codes[1:]:
            with tf.GradientTape() as tape:
                f_g = self.level_set_function(self.generator(z, training=True), training=True)
                g_loss = tf.reduce_mean(tf.square(tf.cast(f_g, tf.float32)))
                scaled = self.optimizer.scale_loss(self._replica_scale(g_loss))
            self.optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))

        return self._track(critic_loss=critic_loss,
                           f_data_sq=tf.reduce_mean(tf.square(tf.cast(f_data, tf.float32))),
                           f_gen_sq=g_loss)

    def get_config(self):
        return {**super().get_config(), "n_gen": self.n_gen, "clip_value": self.clip_value,
                "bounded_head": self.bounded_head}
