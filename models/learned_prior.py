"""IML's idea for every model in the zoo: keep a trained generator, replace its
fixed prior by a base distribution fitted on the codes of training data
(``shared/papers/iml-learned-base-distribution.txt``, Algorithm 1's second
stage; the paper argues that mapping multi-modal data onto a unimodal prior is
what a generator does badly).

    gram = tfgen.load("gram-mnist-clip", format="keras")
    learned, report = with_learned_prior(gram, x_train[:3000])     # codes by generator reversal
    learned.sample(16, seed=0); learned.export("exports/gram-gmm")

The codes of the data come from, in order of preference, an ``encoder`` you
pass (a Keras model or callable), the model's own ``encode`` (IML, VAE), or
generator reversal (:func:`tfgen.ops.reverse`, the KDE-GAN paper's Alg. 1:
gradient descent on ``z`` so that ``G(z) ~ x``, started at prior draws). A
:class:`~tfgen.distributions.GaussianMixture` is fitted on them (or the
``prior`` you pass: a ``KDE``, a mixture with other settings). The result is
a :class:`LearnedPrior` model: the same generator object with the fitted
prior, which samples, saves and exports like any zoo model (it is not trained
further).
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from tfgen import distributions, ops
from tfgen.models.base import GenerativeModel


@keras.saving.register_keras_serializable(package="tfgen")
class LearnedPrior(GenerativeModel):
    """A trained generator with a base distribution fitted on data codes.

    Built by :func:`with_learned_prior`. ``source`` names the model it came
    from. ``fit`` is refused: train the original model, then refit the prior.
    """

    def __init__(self, generator, prior, *, source: str = "", **kwargs):
        super().__init__(generator, prior, **kwargs)
        self.source = str(source)

    def fit(self, *args, **kwargs):
        raise NotImplementedError(f"a LearnedPrior model (from {self.source or 'a trained model'}) is not "
                                  "trained; train the original model and call with_learned_prior again")

    train_step = fit

    def get_config(self):
        return {**super().get_config(), "source": self.source}


def _codes_by_reversal(model, x, *, steps, lr, batch_size, seed, verbose):
    codes, errors = [], []
    for i, start in enumerate(range(0, len(x), batch_size)):
        batch = tf.constant(x[start:start + batch_size])
        # Start at prior draws (not at ~0 as during KDE-GAN training): the
        # codes of a trained generator live where its prior put mass.
        z0 = model.prior.sample(len(batch), seed=tf.constant([seed, i], tf.int32))
        rev = ops.reverse(model.generator, batch, z0=z0, steps=steps, lr=lr, threshold=float("inf"))
        codes.append(rev.codes.numpy())
        errors.append(rev.error.numpy())
        if verbose:
            print(f"reversal: {min(start + batch_size, len(x))}/{len(x)} examples, "
                  f"mean error {float(np.mean(errors[-1])):.4f}", flush=True)
    return np.concatenate(codes), float(np.mean(np.concatenate(errors)))


def with_learned_prior(model: GenerativeModel, x, *, encoder=None, prior: distributions.Prior | None = None,
                       n_components: int = 30, reversal_steps: int = 200, reversal_lr: float = 1.0,
                       batch_size: int = 500, seed: int = 0, verbose: bool = False):
    """``(LearnedPrior, report)``: ``model``'s generator with a prior fitted on the codes of ``x``.

    Args:
      model: a trained ``GenerativeModel``.
      x: ``(n, *data_shape)`` training examples (IML fits on 3000).
      encoder: a Keras model or callable ``x -> codes``; default: the model's
        ``encode`` if it has one, else generator reversal.
      prior: an unfitted ``Prior`` with ``fit(codes, ...)`` and
        ``dim == model.latent_dim``; default ``GaussianMixture(latent_dim,
        n_components, init="kmeans", n_init=5, max_iter=200)``.
      reversal_steps, reversal_lr: gradient descent on the codes (reversal only).
      batch_size: examples encoded / reversed at a time.
      seed: seeds the reversal's starting codes and the prior's fit.

    Returns the new model and a dict: ``n``, ``encoder`` ("given", "encode" or
    "reversal"), ``seconds``, ``reconstruction_mse`` (mean over examples of the
    per-pixel squared error of ``G(codes)``), and the prior's fit summary.
    """
    if not isinstance(model, GenerativeModel):
        raise ValueError(f"model must be a tfgen GenerativeModel, got {type(model).__name__}")
    x = np.asarray(x, np.float32)
    if x.ndim < 2 or tuple(x.shape[1:]) != tuple(model.data_shape):
        raise ValueError(f"x must have shape (n, {', '.join(map(str, model.data_shape))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or Inf")
    if prior is None:
        if len(x) < n_components:
            raise ValueError(f"x has {len(x)} examples, fewer than n_components={n_components}")
        prior = distributions.GaussianMixture(model.latent_dim, n_components, init="kmeans", n_init=5,
                                              max_iter=200, seed=seed)
    if not isinstance(prior, distributions.Prior) or not hasattr(prior, "fit"):
        raise ValueError(f"prior must be a fittable tfgen Prior (GaussianMixture, KDE), got {type(prior).__name__}")
    if prior.dim != model.latent_dim:
        raise ValueError(f"the prior has dim {prior.dim} but the model's codes have {model.latent_dim}")
    t0 = time.time()
    if encoder is None and hasattr(model, "encode"):
        how, encoder = "encode", model.encode
    else:
        how = "given" if encoder is not None else "reversal"
    if encoder is not None:
        codes = np.concatenate([np.asarray(encoder(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    else:
        codes, _ = _codes_by_reversal(model, x, steps=reversal_steps, lr=reversal_lr, batch_size=batch_size,
                                      seed=seed, verbose=verbose)
    if codes.shape != (len(x), model.latent_dim):
        raise ValueError(f"the encoder gave codes of shape {codes.shape}, expected {(len(x), model.latent_dim)}")
    recon = np.concatenate([model.generate(codes[i:i + batch_size]).numpy()
                            for i in range(0, len(x), batch_size)])
    mse = float(np.mean((recon.reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2))
    if isinstance(prior, distributions.GaussianMixture):
        fit = prior.fit(codes, seed=seed, verbose=verbose)
    else:
        fit = prior.fit(codes, seed=seed)
    learned = LearnedPrior(model.generator, prior, source=f"{type(model).__name__} {model.name}", seed=model.seed)
    report = {"n": len(x), "encoder": how, "seconds": round(time.time() - t0, 1), "reconstruction_mse": mse}
    if isinstance(fit, dict) and "log_likelihood" in fit:
        report["log_likelihood"] = fit["log_likelihood"]
    return learned, report
