"""MMD-net / generative moment matching network (GMMN).

Li, Swersky & Zemel (2015) and Dziugaite, Roy & Ghahramani (2015): a
generator trained to minimise the MMD between its samples and the data under
a fixed kernel. GRAM paper eq. (10) is the same loss taken in a critic's space;
here the kernel acts on the data space directly. The baseline of GRAM's
ring experiments (App. A.1: RMSprop 1e-3, bandwidth 1).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen.models.base import GenerativeModel
from tfgen import ops
from tfgen.ops.mmd import ESTIMATORS


def _flat(x):
    return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])


def kernel_bandwidths(bandwidths, sq_pp, sq_pq, sq_qq):
    """The bandwidth list, or, when ``bandwidths`` is None, the median heuristic
    over all pairs of the pooled sample (within *and* across the two sets:
    without the cross pairs, a tight data set far from the samples gives a
    bandwidth far below their distance, and MMD then only pushes the samples
    apart)."""
    if bandwidths is None:
        # the pooled matrix [[pp, pq], [qp, qq]]: the cross block counts twice
        cross = tf.reshape(sq_pq, [-1])
        pooled = tf.concat([tf.reshape(sq_pp, [-1]), cross, cross, tf.reshape(sq_qq, [-1])], 0)
        return tf.reshape(ops.median_heuristic(pooled), [1])
    return tf.constant(bandwidths, sq_pp.dtype)


def _check_bandwidths(bandwidths):
    if bandwidths is None or bandwidths == "median":
        return None
    if isinstance(bandwidths, (int, float)):
        bandwidths = [bandwidths]
    bandwidths = [float(b) for b in bandwidths]
    if not bandwidths or any(not b > 0 for b in bandwidths):
        raise ValueError(f"bandwidths must be positive numbers or 'median', got {bandwidths}")
    return bandwidths


@keras.saving.register_keras_serializable(package="tfgen")
class MMDNet(GenerativeModel):
    """Generator trained on ``sqrt(MMD^2)`` (or MMD^2) to the data, on the global batch.

    Args:
      generator: codes -> data.
      prior: latent distribution.
      bandwidths: list of kernel bandwidths, summed (GMMN's kernel mixture),
        or ``"median"`` for the median heuristic per batch.
      parameterization: what a bandwidth means: ``"std"`` (``exp(-d^2/2s^2)``),
        ``"variance"`` or ``"gamma"`` (see ``tfgen.ops.kernels``).
      estimator: ``"biased"`` V-statistic (GRAM's code) or ``"unbiased"``.
      loss: ``"mmd"`` (square root, as GRAM's and GMMN's code) or ``"mmd2"``.
    """

    def __init__(self, generator, prior, *, bandwidths=(1.0,), parameterization: str = "std",
                 estimator: str = "biased", loss: str = "mmd", seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        self.bandwidths = _check_bandwidths(bandwidths)
        ops.gamma_from_bandwidth(1.0, parameterization)  # validates the name
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if loss not in ("mmd", "mmd2"):
            raise ValueError(f"loss must be 'mmd' or 'mmd2', got {loss!r}")
        self.parameterization, self.estimator, self.loss_name = parameterization, estimator, loss
        self._declare_trackers("loss", "mmd2")

    def train_step(self, data):
        x = self._unpack(data)
        z = self._sample_local_codes(tf.shape(x)[0])
        with tf.GradientTape() as tape:
            x_gen = self.generator(z, training=True)
            p, q = self._gather(_flat(x)), self._gather(_flat(x_gen))
            sq_pp, sq_qq = ops.pairwise_sq_distances(p), ops.pairwise_sq_distances(q)
            sq_pq = ops.pairwise_sq_distances(p, q)
            bw = kernel_bandwidths(self.bandwidths, sq_pp, sq_pq, sq_qq)
            k = [tf.reduce_sum(ops.gaussian_kernels(s, bw, self.parameterization), 0)
                 for s in (sq_pp, sq_pq, sq_qq)]
            mmd2 = ops.mmd2_from_kernels(*k, estimator=self.estimator)
            loss = tf.sqrt(tf.maximum(mmd2, 1e-12)) if self.loss_name == "mmd" else mmd2
            # inside the tape, so it is differentiated; scale_loss: mixed_float16's loss scaling
            scaled_loss = self.optimizer.scale_loss(self._replica_scale(loss))
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._track(loss=loss, mmd2=mmd2)

    def get_config(self):
        return {**super().get_config(), "bandwidths": self.bandwidths,
                "parameterization": self.parameterization, "estimator": self.estimator,
                "loss": self.loss_name}
