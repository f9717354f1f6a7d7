"""The GAN baseline (Goodfellow et al. 2014) as trained by DCGAN (Radford et al. 2016).

A discriminator ``D`` (logits) tells data from generated samples; the
generator ``G`` is trained to fool it. Eq. (1) of the KDE-GAN paper is the
minimax game

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))];

the generator here takes the *non-saturating* loss ``-E_z[log D(G(z))]``
(Goodfellow et al. 2014 §3; METHODS.md §3, ambiguity 5), which has strong
gradients early in training when ``D`` rejects every sample. ``"minimax"``
is offered for comparison.

One iteration is one discriminator step on ``(x, G(z))`` followed by one
generator step on the same codes, the second seeing the updated
discriminator (DCGAN's alternating updates; the KDE-GAN paper App. A: "1 D +
1 G update per iteration"). Data and generated batches go through ``D``
separately, so batch normalisation sees pure batches, as in DCGAN.

Subclasses change where the codes come from by overriding
``generator_codes`` (the KDE-GAN draws them from a kernel density over
reversed data codes).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen.models.base import GenerativeModel

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0):
    """``-E[log D(x)] - E[log(1 - D(G(z)))]`` from logits, per-batch means.

    ``softplus(-l) = -log sigmoid(l)`` and ``softplus(l) = -log(1 - sigmoid(l))``
    are the stable forms. One-sided label smoothing (Salimans et al. 2016)
    replaces the real target 1 by ``1 - label_smoothing``.
    """
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    target = 1.0 - label_smoothing
    real = target * tf.nn.softplus(-real_logits) + (1.0 - target) * tf.nn.softplus(real_logits)
    return tf.reduce_mean(real) + tf.reduce_mean(tf.nn.softplus(fake_logits))


def generator_loss(fake_logits, kind: str = "non_saturating"):
    """``-E[log D(G(z))]`` (non-saturating) or ``E[log(1 - D(G(z)))]`` (minimax)."""
    fake_logits = tf.cast(fake_logits, tf.float32)
    if kind == "non_saturating":
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))
    if kind == "minimax":
        return -tf.reduce_mean(tf.nn.softplus(fake_logits))
    raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {kind!r}")


@keras.saving.register_keras_serializable(package="tfgen")
class GAN(GenerativeModel):
    """Generative adversarial network.

    Args:
      generator: codes -> data.
      discriminator: data -> one logit per example (``(n, 1)`` or ``(n,)``).
      prior: latent distribution.
      generator_loss: ``"non_saturating"`` (default) or ``"minimax"``.
      label_smoothing: one-sided smoothing of the real label (0 = none).

    Compile with ``compile(optimizer=G_opt, discriminator_optimizer=D_opt)``;
    without ``discriminator_optimizer`` the discriminator gets a fresh copy of
    the generator's optimizer. The paper's setting: RMSProp 3e-4 for both.
    """

    _keras_args = ("generator", "discriminator", "prior")

    def __init__(self, generator, discriminator, prior, *, generator_loss: str = "non_saturating",
                 label_smoothing: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self._check_network(discriminator, "discriminator", unit="logit")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.discriminator = discriminator
        self.generator_loss, self.label_smoothing = generator_loss, float(label_smoothing)
        self.discriminator_optimizer = None
        self._declare_trackers(*self._tracker_names())

    def _tracker_names(self):
        return ("d_loss", "g_loss", "d_real", "d_fake")

    # -- two optimizers, one compile ------------------------------------------------
    def compile(self, optimizer="rmsprop", discriminator_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self._compile_second_optimizer("discriminator_optimizer", discriminator_optimizer, self.discriminator)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    # -- one iteration ------------------------------------------------------------------
    def generator_codes(self, x):
        """The codes of this step's generated batch (this replica's slice) and
        extra logs. The GAN draws them from the prior."""
        return self._sample_local_codes(tf.shape(x)[0]), {}

    def train_step(self, data):
        x = self._unpack(data)
        z, extra_logs = self.generator_codes(x)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables

        # Discriminator step on (x, G(z)). Per-replica means divided by the
        # number of replicas sum to the global-batch mean (base.py).
        # (scale_loss is the identity except under a LossScaleOptimizer, whose
        # apply divides the gradients by the same scale.)
        x_gen = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(x, training=True)
            fake_logits = self.discriminator(x_gen, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.label_smoothing)
            scaled = self.discriminator_optimizer.scale_loss(self._replica_scale(d_loss))
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars))

        # Generator step on the same codes against the updated discriminator.
        with tf.GradientTape() as tape:
            g_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = generator_loss(g_logits, self.generator_loss)
            scaled = self.optimizer.scale_loss(self._replica_scale(g_loss))
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))

        # D(x) and D(G(z)) as the discriminator step saw them
        return self._track(d_loss=d_loss, g_loss=g_loss,
                           d_real=tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
                           d_fake=tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
                           **extra_logs)

    def get_config(self):
        return {**super().get_config(), "generator_loss": self.generator_loss,
                "label_smoothing": self.label_smoothing}
