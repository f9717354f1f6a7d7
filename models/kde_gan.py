"""KDE-GAN: GAN training with a latent prior learned by generator reversal
(Kilcher, Lucchi & Hofmann, "Generator Reversal", Algorithm 2; the paper is
``shared/papers/kde-gan-generator-reversal.txt``).

Every iteration:

1. a data batch ``x`` and a batch ``x_g = G(z_g)`` generated from the current
   prior are *reversed* together: codes found by gradient descent on
   ``sum_i mean_pixels (G(z_i) - x_i)^2`` from ``z0 ~ N(0, (1e-4)^2 I)``
   (Alg. 1), stopped once the unbiased ``MMD_u^2`` between the two sets of
   codes exceeds ``threshold`` (§4: the reversed data codes can be told
   apart from those of generated samples), or after ``reversal_steps``;
2. the prior, a Gaussian KDE (:class:`tfgen.distributions.KDE`), is refitted
   on the data codes;
3. the noise batch is drawn from it (``z = Z[j] + h * eps``) and one DCGAN
   discriminator step and one generator step are taken on ``G(z)``.

After training, :meth:`KDEGAN.fit_prior` reverses (a subset of) the training
set and stores those codes in the prior, so ``sample`` and the exported
sampling signature draw from the kernel density over codes of training
images. The steps taken per iteration are logged (``reversal_steps``; the
paper's Fig. 5 shows them growing slowly during training).

Choices where the paper is silent (METHODS.md §3): the "kernel bandwidth
1e-4" of the stopping test is read as ``gamma`` in ``exp(-gamma ||z - w||^2)``
(as a standard deviation the test could never trip); the loss is the
per-example mean over pixels summed over the batch; the KDE bandwidth ``h``
defaults to 0.1. Reversal runs the generator in inference mode (batch
normalisation with its moving statistics), as sampling does after training.

With the paper's values the test is, in effect, a test of the mean codes:
for ``gamma ||z - w||^2 << 1``, ``MMD_u^2 ~ 2 gamma ||mean(Z) - mean(W)||^2``,
so ``tau = gamma = 1e-4`` trips only once the two batches' mean codes are
~0.7 apart. On MNIST it did not trip within 50 steps (``MMD_u^2 ~ 1e-6``;
docs/kde_gan.md), so there the cap ``reversal_steps`` sets the reversal.

Under ``tf.distribute`` each replica reverses the whole gathered batch (the
stopping test couples the batch), so the codes, the step count and the
refitted prior are those one device would find.
"""

from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf

from tfgen import ops
from tfgen import distributions
from tfgen.models.gan import GAN


@keras.saving.register_keras_serializable(package="tfgen")
class KDEGAN(GAN):
    """GAN whose latent prior is a kernel density over reversed data codes.

    Args:
      generator, discriminator: as :class:`GAN`.
      prior: a :class:`tfgen.distributions.KDE` with ``capacity`` at least the
        global batch size; before its first fit it samples its broad
        background (``N(0, I)`` by default): the first iteration's prior.
      reversal_steps: the cap ``T_max`` on reversal steps (paper: 5/20/50).
      reversal_lr: gradient-descent step on the codes (paper: 1.0).
      threshold: ``tau`` of the MMD stopping test (paper: 1e-4).
      gamma: kernel ``exp(-gamma ||z - w||^2)`` of the stopping test (1e-4).
      init_scale: ``z0 ~ N(0, init_scale^2 I)`` (paper: 1e-4).
      reversal_jit_compile: compile the reversal loop with XLA
        (``ops.reverse(jit_compile=True)``); same codes, fewer milliseconds.
      generator_loss, label_smoothing, seed: as :class:`GAN`.
    """

    def __init__(self, generator, discriminator, prior, *, reversal_steps: int = 50,
                 reversal_lr: float = 1.0, threshold: float = 1e-4, gamma: float = 1e-4,
                 init_scale: float = 1e-4, prior_fit_size: int = 0, reversal_jit_compile: bool = False,
                 **kwargs):
        if not isinstance(prior, distributions.KDE):
            raise ValueError(f"KDEGAN needs a tfgen.distributions.KDE prior, got {type(prior).__name__}")
        try:  # a float, or "inf" as strict JSON files write it (tfgen.jsonio)
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number (+-inf allowed), got {threshold!r}") from None
        if np.isnan(threshold):
            raise ValueError("threshold must be a number (+-inf allowed), got NaN")
        # Set before the base class declares the trackers: without the test
        # there is no reversal_mmd2 to log (a NaN would read as divergence).
        self._tests_stopping = float(threshold) != float("inf")
        super().__init__(generator, discriminator, prior, **kwargs)
        if int(reversal_steps) < 1:
            raise ValueError(f"reversal_steps must be >= 1, got {reversal_steps}")
        if not reversal_lr > 0:
            raise ValueError(f"reversal_lr must be positive, got {reversal_lr}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}")
        if int(reversal_steps) != reversal_steps:
            raise ValueError(f"reversal_steps must be an integer, got {reversal_steps}")
        self.reversal_steps, self.reversal_lr = int(reversal_steps), float(reversal_lr)
        self.threshold, self.gamma, self.init_scale = float(threshold), float(gamma), float(init_scale)
        # How many training images the prior's codes come from: set by
        # fit_prior, reset by fit (whose steps refit the prior on each batch),
        # kept in the config, so an export of a model fresh from `fit` can warn
        # that its prior holds only the last batch's codes.
        self.prior_fit_size = int(prior_fit_size)
        self.reversal_jit_compile = bool(reversal_jit_compile)

    def _tracker_names(self):
        return (super()._tracker_names() + ("reversal_steps", "reversal_error")
                + (("reversal_mmd2",) if self._tests_stopping else ()))

    # -- Algorithm 2 -------------------------------------------------------------------
    @property
    def tests_stopping(self) -> bool:
        """False when ``threshold = +inf``: the test can never stop the loop, so the
        reference batch is not generated or reversed (half the reversal's work;
        every iteration takes ``reversal_steps``, and ``reversal_mmd2`` is not logged)."""
        return self._tests_stopping

    def reverse(self, x, seed, reference=None):
        """Reverse ``x`` (and ``reference``) with this model's stopping rule."""
        return ops.reverse(self.generator, x, steps=self.reversal_steps, lr=self.reversal_lr,
                           reference=reference if self.tests_stopping else None,
                           threshold=self.threshold, gamma=self.gamma,
                           init_scale=self.init_scale, seed=seed, jit_compile=self.reversal_jit_compile)

    def generator_codes(self, x):
        global_x = self._gather(x)
        if global_x.shape[0] is not None and global_x.shape[0] > self.prior.capacity:
            raise ValueError(f"the KDE prior holds {self.prior.capacity} codes but a training step "
                             f"reverses a batch of {global_x.shape[0]}: raise its capacity")
        n_global = tf.shape(global_x)[0]
        # x_g from the current prior: the KDE of the previous iteration (its
        # background, N(0, I), before the first fit).
        x_g = None
        if self.tests_stopping:
            z_g = self.prior.sample(n_global, seed=self._step_seed(1))
            x_g = self.generator(z_g, training=False)
        rev = self.reverse(global_x, seed=self._step_seed(2), reference=x_g)
        self.prior.fit(rev.codes)
        z = self._sample_local_codes(tf.shape(x)[0], salt=3)
        logs = {"reversal_steps": tf.cast(rev.steps, tf.float32),
                "reversal_error": tf.reduce_mean(rev.error)}
        if self.tests_stopping:
            logs["reversal_mmd2"] = tf.cast(rev.mmd2, tf.float32)
        return z, logs

    # -- after training ------------------------------------------------------------------
    def fit_prior(self, x, *, batch_size: int = 500, seed: int = 0, verbose: bool = False) -> dict:
        """Reverse training images ``x`` and make the prior the KDE over their codes.

        At most ``prior.capacity`` images are used (the first ones: pass a
        shuffled array). Each batch is reversed against a generated batch from
        the prior as fitted so far, with the training stopping rule. Returns
        ``{"n", "mean_steps", "mean_error"}``.
        """
        x = np.asarray(x, np.float32)
        if x.ndim < 2 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {x.shape}")
        n = min(len(x), self.prior.capacity)
        if n == 0:
            raise ValueError("fit_prior needs at least one image")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (the stopping test needs pairs), got {batch_size}")
        codes, steps, errors = [], [], []
        for i, start in enumerate(range(0, n, batch_size)):
            batch = tf.constant(x[start:min(start + batch_size, n)])
            ref_seed = tf.constant([seed, 2 * i], tf.int32)
            x_g = (self.generator(self.prior.sample(len(batch), seed=ref_seed), training=False)
                   if self.tests_stopping else None)
            rev = self.reverse(batch, seed=tf.constant([seed, 2 * i + 1], tf.int32), reference=x_g)
            codes.append(rev.codes.numpy())
            steps.append(int(rev.steps))
            errors.append(rev.error.numpy())
            if verbose:
                print(f"fit_prior: {min(start + batch_size, n)}/{n} images, {steps[-1]} steps")
        self.prior.fit(np.concatenate(codes))
        self.prior_fit_size = n
        return {"n": n, "mean_steps": float(np.mean(steps)),
                "mean_error": float(np.mean(np.concatenate(errors)))}

    def with_prior_capacity(self, capacity: int) -> "KDEGAN":
        """This model (the same generator and discriminator objects) with an
        unfitted KDE prior of another ``capacity``: the size of the prior in
        saved files and exports is ``capacity x latent_dim`` floats. Training
        does not depend on it as long as it holds a batch; call
        :meth:`fit_prior` on the result."""
        prior = distributions.KDE.from_config({**self.prior.get_config(), "capacity": int(capacity)})
        options = {k: v for k, v in self.get_config().items()
                   if k not in ("generator", "discriminator", "prior", "prior_fit_size")}
        model = KDEGAN(self.generator, self.discriminator, prior, **options)
        model.prior.bandwidth.assign(self.prior.bandwidth)
        return model

    def fit(self, *args, **kwargs):
        self.prior_fit_size = 0  # the steps refit the prior on their batches
        return super().fit(*args, **kwargs)

    def export(self, path, **kwargs):
        """As :meth:`GenerativeModel.export`; warns when the prior holds only the
        last training batch's codes (call :meth:`fit_prior` first; ``tfgen
        train`` does)."""
        if self.prior_fit_size == 0:
            import warnings

            warnings.warn("exporting a KDE-GAN whose prior holds only the codes of the last training "
                          "batch: call model.fit_prior(training_images) first", stacklevel=2)
        return super().export(path, **kwargs)

    def get_config(self):
        return {**super().get_config(), "reversal_steps": self.reversal_steps,
                "reversal_lr": self.reversal_lr, "threshold": self.threshold,
                "gamma": self.gamma, "init_scale": self.init_scale,
                "prior_fit_size": self.prior_fit_size, "reversal_jit_compile": self.reversal_jit_compile}
