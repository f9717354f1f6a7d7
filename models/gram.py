"""GRAM-nets: generative ratio matching (Srivastava, Xu, Gutmann & Sutton, ICLR 2020).

A critic ``f`` maps data and generated samples to a low-dimensional space
where the density ratio ``p/q`` is preserved: it *maximises* the Pearson
divergence estimate of eq. (9) with the ratio of eq. (8). The generator
minimises the MMD of eq. (10) between ``f(x)`` and ``f(G(z))``. Both losses
come from one forward pass and one set of Gram matrices per step, and both
networks are updated at once (Algorithm 1; the reference Julia code takes
the two gradients from one Zygote pass).

Reference-code choices kept (METHODS.md §2): ridge ``eps = 1e-3`` in the
solve, ratio scale ``N/M``, ratios averaged over bandwidths and MMD^2 summed
over them, ``sqrt`` of the MMD^2 as the generator loss, positivity term
``lam * sum(r)`` with ``lam = 1``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen.models.base import GenerativeModel
from tfgen.models.mmd_net import _check_bandwidths, _flat, kernel_bandwidths
from tfgen import ops
from tfgen.ops.density_ratio import POSITIVITY


@keras.saving.register_keras_serializable(package="tfgen")
class GRAM(GenerativeModel):
    """Generative ratio matching network.

    Args:
      generator: codes -> data.
      critic: data -> ``R^K`` features (K = 10 on the ring, 100 on MNIST).
      prior: latent distribution.
      bandwidths: kernel bandwidths in the critic's space, or ``"median"``.
      parameterization: bandwidth meaning (``"std"``, ``"variance"``, ``"gamma"``).
      eps: ridge of the ratio solve (eq. 8 has none; the code 1e-3).
      lam: weight of the positivity term (eq. 9; 1 in all the paper's runs).
      positivity: ``"sum"`` (eq. 9, JuliaGRAM) or ``"mean"`` (GRAM.jl).
      clip_ratio: clamp ``r`` to ``[0, 1e9]`` and drop the positivity term
        (JuliaGRAM's ``isclip_ratio``).
      gram_dtype: precision of the Gram matrices, the ratio solve and the
        MMD (``"float64"`` by default). With bandwidths much wider than the
        feature spread (sigma = 10, 100 on MNIST) the kernel matrix is nearly
        rank one; its float32 rounding (~1e-6 per entry, from the matmul form
        of the distances) then rivals the ridge ``eps`` and the solve or its
        gradient blows up (seen: gram-mnist hit NaN at step ~2700). The
        matrices are only batch x batch, so float64 costs little.

    Compile with ``compile(optimizer=G_opt, critic_optimizer=f_opt)``; without
    ``critic_optimizer`` the critic gets a fresh copy of the generator's.
    """

    _keras_args = ("generator", "critic", "prior")

    def __init__(self, generator, critic, prior, *, bandwidths=(1.0,), parameterization: str = "std",
                 eps: float = 1e-3, lam: float = 1.0, positivity: str = "sum",
                 clip_ratio: bool = False, gram_dtype: str = "float64", seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self._check_network(critic, "critic")
        if positivity not in POSITIVITY:
            raise ValueError(f"positivity must be 'sum' or 'mean', got {positivity!r}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        ops.gamma_from_bandwidth(1.0, parameterization)
        self.critic = critic
        self.bandwidths = _check_bandwidths(bandwidths)
        self.parameterization, self.eps, self.lam = parameterization, float(eps), float(lam)
        self.positivity, self.clip_ratio = positivity, bool(clip_ratio)
        if gram_dtype not in ("float32", "float64"):
            raise ValueError(f"gram_dtype must be 'float32' or 'float64', got {gram_dtype!r}")
        self.gram_dtype = gram_dtype
        self.critic_optimizer = None
        self._declare_trackers("mmd", "pearson_divergence", "ratio_mean")

    # -- two optimizers, one compile --------------------------------------------
    def compile(self, optimizer="adam", critic_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self._compile_second_optimizer("critic_optimizer", critic_optimizer, self.critic)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    # -- Algorithm 1 ------------------------------------------------------------------
    def ratio_and_mmd(self, f_data, f_gen):
        """``(r, mmd^2)`` from critic features of the data (p) and generated (q) points.

        One set of Gram matrices serves both: ``r`` (eq. 8) averaged over
        bandwidths and MMD^2 (eq. 10, biased) summed over them.
        """
        p = tf.cast(_flat(f_data), self.gram_dtype)
        q = tf.cast(_flat(f_gen), self.gram_dtype)
        sq_qq, sq_qp = ops.pairwise_sq_distances(q), ops.pairwise_sq_distances(q, p)
        sq_pp = ops.pairwise_sq_distances(p)
        bw = kernel_bandwidths(self.bandwidths, sq_pp, sq_qp, sq_qq)
        k_qq = ops.gaussian_kernels(sq_qq, bw, self.parameterization)
        k_qp = ops.gaussian_kernels(sq_qp, bw, self.parameterization)
        k_pp = ops.gaussian_kernels(sq_pp, bw, self.parameterization)
        r = tf.reduce_mean(ops.density_ratio(k_qq, k_qp, eps=self.eps), axis=0)
        if self.clip_ratio:
            r = tf.clip_by_value(r, 0.0, 1e9)
        mmd2 = ops.mmd2_from_kernels(tf.reduce_sum(k_qq, 0), tf.reduce_sum(k_qp, 0),
                                     tf.reduce_sum(k_pp, 0), estimator="biased")
        return tf.cast(r, tf.float32), tf.cast(mmd2, tf.float32)

    def train_step(self, data):
        x = self._unpack(data)
        z = self._sample_local_codes(tf.shape(x)[0])
        with tf.GradientTape(persistent=True) as tape:
            x_gen = self.generator(z, training=True)
            f_data = self._gather(self.critic(x, training=True))
            f_gen = self._gather(self.critic(x_gen, training=True))
            r, mmd2 = self.ratio_and_mmd(f_data, f_gen)
            lam = 0.0 if self.clip_ratio else self.lam
            pearson = ops.pearson_divergence(r, lam=lam, positivity=self.positivity)
            critic_loss = -pearson                      # the critic maximises eq. (9)
            generator_loss = tf.sqrt(tf.maximum(mmd2, 1e-12))
            # scaled inside the tape, so the division is differentiated
            # (scale_loss: the identity except under mixed_float16's LossScaleOptimizer)
            scaled_critic_loss = self.critic_optimizer.scale_loss(self._replica_scale(critic_loss))
            scaled_generator_loss = self.optimizer.scale_loss(self._replica_scale(generator_loss))
        critic_vars = self.critic.trainable_variables
        gen_vars = self.generator.trainable_variables
        critic_grads = tape.gradient(scaled_critic_loss, critic_vars)
        gen_grads = tape.gradient(scaled_generator_loss, gen_vars)
        del tape
        self.critic_optimizer.apply_gradients(zip(critic_grads, critic_vars))
        self.optimizer.apply_gradients(zip(gen_grads, gen_vars))
        return self._track(mmd=generator_loss, pearson_divergence=pearson,
                           ratio_mean=tf.reduce_mean(r))

    def get_config(self):
        return {**super().get_config(), "bandwidths": self.bandwidths,
                "parameterization": self.parameterization, "eps": self.eps, "lam": self.lam,
                "positivity": self.positivity, "clip_ratio": self.clip_ratio,
                "gram_dtype": self.gram_dtype}
