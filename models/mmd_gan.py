"""MMD-GAN (Li, Chang, Cheng, Yang & Póczos, NeurIPS 2017).

The kernel of an MMD-net is learned adversarially: data and samples are
mapped by an encoder (the critic) ``f`` to ``R^h``, where a mixture of
Gaussian kernels (bandwidths 1, 2, 4, 8, 16, ``exp(-d^2 / 2 s^2)``) compares
them. The critic *maximises* MMD in its space and the generator *minimises*
it (their eq. 5, with ``k~ = k o f``). The published code (METHODS.md §2,
the GRAM paper's MMD-GAN baseline) adds two terms and a constraint:

* a **feasible-set** term ``hinge = -mean_j relu(-(mean f(x) - mean f(g(z)))_j)``,
  weighted by ``lambda_rg = 16``, which the critic maximises (keeping the
  data's mean feature above the samples'), and which the code adds to the
  generator's loss too;
* an **autoencoding** penalty: a decoder ``d`` maps features back to data and
  the critic subtracts ``lambda_ae * (mse(x, d(f(x))) + mse(g(z), d(f(g(z)))))``
  (``lambda_ae = 8``), so ``f`` stays injective;
* the encoder's weights (not the decoder's) are **clipped** to
  ``[-0.01, 0.01]`` before each critic step.

So, with ``mmd = sqrt(max(MMD^2_biased, 0))``,

    L_critic = -(mmd + lambda_rg * hinge - lambda_ae * (ae_x + ae_y)),
    L_G      =   mmd + lambda_rg * hinge.

The decoder is optional (``decoder=None`` drops the penalty; so does
``lambda_ae = 0``) and so is the feasible-set term (``lambda_rg = 0``): the
GRAM paper's Table 4 ablates both.

Schedule: the code takes 5 critic steps per generator step, each on a fresh
data batch, and the generator step on one more. One ``train_step`` here is
one such iteration: the dataset's batch holds ``(n_critic + 1) * m`` points,
split into strided slices (see ``GenerativeModel._critic_slices``). The code
also runs 100 critic steps for each of the first 25 generator iterations and
every 500th; that data-dependent step count would need control flow around a
gradient all-reduce, which ``tf.distribute`` does not support, so it is not
run here (a documented deviation). The losses need the global batch (MMD,
feature means), so features are all-gathered across replicas.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen import ops
from tfgen.models.base import GenerativeModel
from tfgen.models.mmd_net import _check_bandwidths, _flat

MMD_GAN_BANDWIDTHS = (1.0, 2.0, 4.0, 8.0, 16.0)


def feasible_set_hinge(f_data, f_gen):
    """``-mean_j relu(-(mean_i f(x_i) - mean_i f(g(z_i)))_j)``, <= 0 (the code's ``one_sided``)."""
    diff = tf.reduce_mean(_flat(f_data), 0) - tf.reduce_mean(_flat(f_gen), 0)
    return -tf.reduce_mean(tf.nn.relu(-diff))


def autoencoder_error(x, x_rec):
    """Mean squared reconstruction error over all elements (the code's ``match(.., 'L2')``)."""
    return tf.reduce_mean(tf.square(_flat(x) - _flat(x_rec)))


@keras.saving.register_keras_serializable(package="tfgen")
class MMDGAN(GenerativeModel):
    """MMD-GAN: a generator trained on MMD in an adversarially trained encoder's space.

    Args:
      generator: codes -> data.
      critic: the encoder, data -> ``R^h``.
      prior: latent distribution.
      decoder: ``R^h`` -> data for the autoencoding penalty, or None.
      bandwidths: Gaussian kernel bandwidths (std), summed.
      n_critic: critic steps per generator step (the code: 5).
      lambda_rg: weight of the feasible-set term (16; 0 drops it).
      lambda_ae: weight of the autoencoding penalty (8; 0 drops it).
      clip_value: encoder weight clipping (0.01; None: off).

    Compile with ``compile(optimizer=G_opt, critic_optimizer=f_opt)``; the
    code uses RMSProp 5e-5 for both. The critic optimizer trains the encoder
    and the decoder.
    """

    _keras_args = ("generator", "critic", "prior", "decoder")

    def __init__(self, generator, critic, prior, decoder=None, *, bandwidths=MMD_GAN_BANDWIDTHS,
                 n_critic: int = 5, lambda_rg: float = 16.0, lambda_ae: float = 8.0,
                 clip_value: float | None = 0.01, seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self._check_network(critic, "critic")
        if decoder is not None:
            if not isinstance(decoder, keras.Model):
                raise ValueError(f"decoder must be a keras.Model or None, got {type(decoder).__name__}")
            if tuple(decoder.input_shape[1:]) != tuple(critic.output_shape[1:]):
                raise ValueError(f"the decoder takes inputs of shape {decoder.input_shape[1:]} but the "
                                 f"critic makes {critic.output_shape[1:]}")
            if tuple(decoder.output_shape[1:]) != self.data_shape:
                raise ValueError(f"the decoder makes {decoder.output_shape[1:]}, not the data shape "
                                 f"{self.data_shape}")
        bandwidths = _check_bandwidths(bandwidths)
        if bandwidths is None:
            raise ValueError("MMD-GAN takes a fixed list of bandwidths, not 'median'")
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if lambda_rg < 0 or lambda_ae < 0:
            raise ValueError(f"lambda_rg and lambda_ae must be >= 0, got {lambda_rg}, {lambda_ae}")
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be positive or None, got {clip_value}")
        self.critic, self.decoder = critic, decoder
        self.bandwidths = bandwidths
        self.n_critic = int(n_critic)
        self.lambda_rg, self.lambda_ae = float(lambda_rg), float(lambda_ae)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.critic_optimizer = None
        self._declare_trackers("critic_loss", "g_loss", "mmd", "hinge", "ae_error")

    @property
    def _critic_networks(self):
        return [self.critic] + ([self.decoder] if self.decoder is not None else [])

    def _critic_variables(self):
        return [v for net in self._critic_networks for v in net.trainable_variables]

    def compile(self, optimizer="rmsprop", critic_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self._compile_second_optimizer("critic_optimizer", critic_optimizer, self._critic_variables())

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def mmd(self, f_data, f_gen):
        """``sqrt(max(MMD^2, 1e-12))`` (biased) between two sets of features, bandwidths summed."""
        return ops.mmd(_flat(f_data), _flat(f_gen), self.bandwidths, "std", "biased")

    def _mmd_terms(self, x, x_gen, training=True):
        """Critic and generator objectives on the global batch, from one forward pass."""
        f_x = self.critic(x, training=training)
        f_y = self.critic(x_gen, training=training)
        f_data, f_gen = self._gather(_flat(f_x)), self._gather(_flat(f_y))
        mmd = self.mmd(f_data, f_gen)
        hinge = feasible_set_hinge(f_data, f_gen)
        return f_x, f_y, mmd, hinge

    def _critic_step(self, x, i):
        if self.clip_value is not None:
            # the code clamps the encoder *before* each critic step, so the
            # generator step sees the last update unclamped
            for v in self.critic.trainable_variables:
                v.assign(tf.clip_by_value(v, -self.clip_value, self.clip_value))
        x_gen = self.generator(self._sample_local_codes(tf.shape(x)[0], salt=i), training=True)
        variables = self._critic_variables()
        with tf.GradientTape() as tape:
            f_x, f_y, mmd, hinge = self._mmd_terms(x, x_gen)
            ae = tf.constant(0.0)
            if self.decoder is not None and self.lambda_ae > 0:
                # a per-example mean over this replica's slice: / replicas sums to the global mean
                ae = (autoencoder_error(x, self.decoder(f_x, training=True))
                      + autoencoder_error(x_gen, self.decoder(f_y, training=True)))
            loss = -(mmd + self.lambda_rg * hinge) + self.lambda_ae * ae
            scaled = self.critic_optimizer.scale_loss(self._replica_scale(loss))
        self.critic_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss, ae

    def train_step(self, data):
        x = self._unpack(data)
        slices = self._critic_slices(x, self.n_critic + 1)
        for i, x_i in enumerate(slices[:-1]):
            critic_loss, ae = self._critic_step(x_i, i)

        x_g = slices[-1]
        z = self._sample_local_codes(tf.shape(x_g)[0], salt=self.n_critic)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            _, _, mmd, hinge = self._mmd_terms(x_g, self.generator(z, training=True))
            g_loss = mmd + self.lambda_rg * hinge
            scaled = self.optimizer.scale_loss(self._replica_scale(g_loss))
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))
        return self._track(critic_loss=critic_loss, g_loss=g_loss, mmd=mmd, hinge=hinge, ae_error=ae)

    def get_config(self):
        return {**super().get_config(), "bandwidths": self.bandwidths, "n_critic": self.n_critic,
                "lambda_rg": self.lambda_rg, "lambda_ae": self.lambda_ae,
                "clip_value": self.clip_value}
