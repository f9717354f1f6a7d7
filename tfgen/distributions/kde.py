"""Gaussian kernel density over a set of codes: the learned latent prior of the
KDE-GAN (Kilcher, Lucchi & Hofmann, "Generator Reversal", Algorithm 2; the
paper is ``shared/papers/kde-gan-generator-reversal.txt``, METHODS.md §3).

The codes found by generator reversal define the prior

    p(z) = (1 - w) * (1/m) sum_j N(z; Z_j, h^2 I)  +  w * N(z; 0, s^2 I),

sampled as ``z = Z[j] + h * eps`` with ``j ~ U{1..m}``, ``eps ~ N(0, I)``
(Alg. 2), optionally mixed with a broad background of weight ``w`` and scale
``s`` (§3.2). :func:`heldout_log_likelihood` is the paper's Figure 10: the
held-out latent log-likelihood of such a KDE against its bandwidth.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfgen.distributions.priors import Prior, as_stateless_seed

tfd = tfp.distributions

# log_prob works through (chunk x capacity) blocks of squared distances: about
# this many float32 entries (16 MiB) at a time.
_BLOCK_ENTRIES = 2**22

_LOG_2PI = math.log(2.0 * math.pi)


@keras.saving.register_keras_serializable(package="tfgen")
class KDE(Prior):
    """Gaussian KDE over up to ``capacity`` codes, with an optional broad background.

    Args:
      dim: code dimension.
      capacity: the most codes kept; the codes live in a ``(capacity, dim)``
        non-trainable variable and ``count`` (an int32 scalar variable) says
        how many of its rows are valid, so checkpoints, ``.keras`` files and
        SavedModel exports carry the fitted prior.
      bandwidth: the kernel standard deviation ``h`` (METHODS.md §3: unstated
        in the paper, default 0.1). Held in a non-trainable variable, so it can
        be changed after training (``kde.bandwidth.assign(0.05)``) and is
        exported; ``get_config`` keeps the constructor value.
      background_weight: ``w`` in ``[0, 1)``, the weight of the broad
        background ``N(0, background_scale^2 I)`` (paper §3.2); 0 = pure KDE.
      background_scale: ``s``, the background's standard deviation.
      seed: seeds the random subset kept when ``fit`` gets more than
        ``capacity`` codes.

    **Unfitted.** Until the first :meth:`fit` (``count == 0``), ``sample``,
    ``log_prob`` and ``distribution`` are those of the background
    ``N(0, background_scale^2 I)`` alone, whatever ``background_weight`` is:
    the KDE-GAN's first iteration samples ``N(0, I)``. A KDE built from a
    config is unfitted; loading the weights restores the codes.

    All variables use ``aggregation="only_first_replica"``, so ``fit`` may be
    called in a replica context under ``tf.distribute.MirroredStrategy``
    (every replica should fit the same, all-gathered codes).
    """

    def __init__(self, dim: int, capacity: int = 10_000, bandwidth: float = 0.1,
                 background_weight: float = 0.0, background_scale: float = 1.0, seed: int = 0,
                 **kwargs):
        super().__init__(dim, **kwargs)
        if int(capacity) != capacity or int(capacity) <= 0:
            raise ValueError(f"capacity must be a positive integer, got {capacity}")
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be positive and finite, got {bandwidth}")
        if not 0.0 <= background_weight < 1.0:
            raise ValueError(f"background_weight must lie in [0, 1), got {background_weight}")
        if not (math.isfinite(background_scale) and background_scale > 0):
            raise ValueError(f"background_scale must be positive and finite, got {background_scale}")
        self.capacity = int(capacity)
        self._bandwidth0 = float(bandwidth)
        self.background_weight = float(background_weight)
        self.background_scale = float(background_scale)
        self.seed = int(seed)
        common = dict(trainable=False, aggregation="only_first_replica")
        self.codes = self.add_weight(shape=(self.capacity, self.dim), initializer="zeros",
                                     dtype="float32", name="codes", **common)
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="count", **common)
        self.bandwidth = self.add_weight(shape=(), initializer=keras.initializers.Constant(bandwidth),
                                         dtype="float32", name="bandwidth", **common)
        # Rows of z per log_prob block, so a block holds ~_BLOCK_ENTRIES distances.
        self._chunk_rows = max(1, _BLOCK_ENTRIES // self.capacity)

    # -- fitting ------------------------------------------------------------------------
    def fit(self, codes, seed=None):
        """Make the KDE the one over ``codes (n, dim)``; returns ``self``.

        Works eagerly and inside a ``tf.function`` (``n`` may be unknown at
        trace time). When ``n <= capacity`` the codes are stored in order;
        when ``n > capacity``, a uniformly random subset of ``capacity`` of
        them (drawn with ``seed``, default the constructor's ``seed``; kept in
        their original order) is stored, with a warning when eager.

        Raises ``ValueError`` for a wrong shape, no codes, or NaN/Inf values
        (eagerly; in a graph the shape, and an empty static batch, are checked
        at trace time, NaN/Inf and an empty dynamic batch raise
        ``InvalidArgumentError`` when run). With a static batch size every
        shape is static, so ``fit`` compiles under ``jit_compile=True``.
        """
        codes = tf.convert_to_tensor(codes)
        if not (codes.dtype.is_floating or codes.dtype.is_integer):
            raise ValueError(f"codes must be numeric, got dtype {codes.dtype.name}")
        codes = tf.cast(codes, tf.float32)
        if codes.shape.rank != 2 or codes.shape[-1] not in (None, self.dim):
            raise ValueError(f"codes must have shape (n, {self.dim}), got {codes.shape}")
        n = tf.shape(codes)[0]
        if tf.executing_eagerly():
            n_eager = int(n)
            if n_eager == 0:
                raise ValueError("codes is empty: KDE.fit needs at least one code")
            if not bool(tf.reduce_all(tf.math.is_finite(codes))):
                raise ValueError("codes contains NaN or Inf values")
            if n_eager > self.capacity:
                warnings.warn(f"KDE.fit got {n_eager} codes but capacity is {self.capacity}: "
                              f"keeping a random subset of {self.capacity}", stacklevel=2)
        else:
            if codes.shape[0] == 0:
                raise ValueError("codes is empty: KDE.fit needs at least one code")
            codes = tf.debugging.assert_all_finite(codes, "KDE.fit: codes contains NaN or Inf values")
            if codes.shape[0] is None:
                with tf.control_dependencies([tf.debugging.assert_positive(
                        n, message="KDE.fit: codes is empty, it needs at least one code")]):
                    n = tf.identity(n)
        seed = as_stateless_seed(self.seed if seed is None else seed)

        def subset():
            keys = tf.random.stateless_uniform(tf.reshape(n, [1]), seed=seed)
            idx = tf.sort(tf.math.top_k(keys, k=self.capacity, sorted=False).indices)
            return tf.gather(codes, idx)

        static_n = codes.shape[0]
        if static_n is None:
            kept = tf.cond(n > self.capacity, subset, lambda: codes)
        else:  # a Python branch keeps every shape static (XLA-compilable)
            kept = subset() if static_n > self.capacity else codes
        count = tf.minimum(n, self.capacity)
        padded = tf.pad(kept, tf.stack([tf.stack([0, self.capacity - count]), tf.constant([0, 0])]))
        self.codes.assign(tf.ensure_shape(padded, [self.capacity, self.dim]))
        self.count.assign(count)
        return self

    # -- the distribution ---------------------------------------------------------------
    def _background(self):
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.dim]),
                                          scale_diag=tf.fill([self.dim], self.background_scale))

    def _kde(self, m):
        h = tf.convert_to_tensor(self.bandwidth)
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros(tf.reshape(m, [1]))),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=self.codes[:m], scale_diag=tf.fill(tf.stack([m, self.dim]), h)))

    def distribution(self) -> tfd.Distribution:
        """The TFP form: ``MixtureSameFamily`` of ``N(Z_j, h^2 I)`` over the ``count``
        valid codes, mixed (``tfd.Mixture``, weights ``(1 - w, w)``) with the
        background when ``background_weight > 0``. Unfitted: the background.
        In a graph (``count`` unknown) the unfitted case is a ``tfd.Mixture``
        whose background weight is 1 when ``count == 0``.
        """
        count = tf.convert_to_tensor(self.count)
        if tf.executing_eagerly() and int(count) == 0:
            return self._background()
        m = tf.maximum(count, 1)  # one (unused) row keeps the graph form valid when unfitted
        if tf.executing_eagerly() and self.background_weight == 0.0:
            return self._kde(m)
        w = tf.where(count == 0, 1.0, self.background_weight)
        return tfd.Mixture(cat=tfd.Categorical(probs=tf.stack([1.0 - w, w])),
                           components=[self._kde(m), self._background()])

    def sample(self, n, seed=None) -> tf.Tensor:
        """``(n, dim)`` codes ``Z[j] + h * eps`` (Alg. 2); same ``seed``, same codes.

        A plain stateless draw (no TFP in the training hot path): ``j`` uniform
        over the valid codes, and, with a background, each row replaced by
        ``background_scale * eps`` with probability ``background_weight``.
        Unfitted: every row is ``background_scale * eps``.
        """
        s_index, s_eps, s_background = tf.unstack(tf.random.split(as_stateless_seed(seed), 3))
        count = tf.convert_to_tensor(self.count)
        shape = tf.reshape(tf.cast(n, tf.int32), [1])
        j = tf.random.stateless_uniform(shape, s_index, minval=0, maxval=tf.maximum(count, 1), dtype=tf.int32)
        eps = tf.random.stateless_normal(tf.concat([shape, [self.dim]], 0), s_eps)
        z = tf.gather(self.codes, j) + self.bandwidth * eps
        background = self.background_scale * eps
        use_background = tf.equal(count, 0)
        if self.background_weight > 0.0:
            use_background = tf.logical_or(
                use_background, tf.random.stateless_uniform(shape, s_background) < self.background_weight)
            use_background = use_background[:, None]
        return tf.where(use_background, background, z)

    def log_prob(self, z) -> tf.Tensor:
        """``(n,)`` exact log-density of the mixture at ``z (n, dim)``.

        A log-sum-exp over the valid codes in the matmul form of the squared
        distances, in blocks of rows of ``z`` (never ``n x capacity x dim``),
        after centring on the codes' mean to limit float32 cancellation.
        """
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank != 2 or z.shape[-1] not in (None, self.dim):
            raise ValueError(f"z must have shape (n, {self.dim}), got {z.shape}")
        count = tf.convert_to_tensor(self.count)
        s = self.background_scale
        log_background = (-0.5 * self.dim * (_LOG_2PI + 2.0 * math.log(s))
                          - 0.5 * tf.reduce_sum(tf.square(z), 1) / s**2)
        codes = self.codes[:tf.maximum(count, 1)]
        log_kde = _gaussian_kde_log_prob(z, codes, self.bandwidth, self._chunk_rows)
        w = self.background_weight
        if w > 0.0:
            log_kde = tf.reduce_logsumexp(
                tf.stack([math.log1p(-w) + log_kde, math.log(w) + log_background]), 0)
        return tf.where(tf.equal(count, 0), log_background, log_kde)

    def get_config(self):
        return {**super().get_config(), "capacity": self.capacity, "bandwidth": self._bandwidth0,
                "background_weight": self.background_weight,
                "background_scale": self.background_scale, "seed": self.seed}


def _gaussian_kde_log_prob(z, codes, bandwidth, chunk_rows: int):
    """``log (1/m) sum_j N(z_i; codes_j, h^2 I)`` for each row of ``z``, in blocks of ``chunk_rows``."""
    dtype = z.dtype
    codes = tf.cast(codes, dtype)
    h = tf.cast(bandwidth, dtype)
    m = tf.shape(codes)[0]
    d = tf.cast(tf.shape(codes)[1], dtype)
    center = tf.reduce_mean(codes, 0)
    codes = codes - center
    z = z - center
    c2 = tf.reduce_sum(tf.square(codes), 1)
    n = tf.shape(z)[0]
    n_blocks = (n + chunk_rows - 1) // chunk_rows
    blocks = tf.reshape(tf.pad(z, tf.stack([tf.stack([0, n_blocks * chunk_rows - n]), tf.constant([0, 0])])),
                        tf.stack([n_blocks, chunk_rows, tf.shape(z)[1]]))

    def block_lse(x):
        sq = tf.reduce_sum(tf.square(x), 1, keepdims=True) - 2.0 * tf.matmul(x, codes, transpose_b=True) + c2
        return tf.reduce_logsumexp(-tf.maximum(sq, 0.0) / (2.0 * h * h), 1)

    lse = tf.reshape(tf.map_fn(block_lse, blocks, fn_output_signature=tf.TensorSpec([chunk_rows], dtype)), [-1])[:n]
    return lse - tf.math.log(tf.cast(m, dtype)) - 0.5 * d * (_LOG_2PI + 2.0 * tf.math.log(h))


def _as_points(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric (n, dim) array: {e}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, dim), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr


def heldout_log_likelihood(codes, heldout, bandwidths, *, chunk_size: int | None = None) -> list[dict]:
    """Mean log-likelihood of ``heldout`` codes under a Gaussian KDE on ``codes``,
    for each bandwidth: the KDE-GAN paper's Figure 10 (held-out latent
    likelihood against bandwidth).

    Per held-out point ``x``: ``log (1/m) sum_j N(x; codes_j, h^2 I)``, in
    float64 with a log-sum-exp over blocks of ``chunk_size`` held-out rows
    (default: ~4M distances per block); the squared distances of a block are
    computed once and reused for every bandwidth.

    Returns a list, in the order of ``bandwidths``, of
    ``{"bandwidth", "mean", "sem"}``; ``sem`` is ``std / sqrt(n_heldout)`` with
    the population std (``ddof=0``, as the Parzen protocol's reference code).
    """
    codes = _as_points(codes, "codes")
    heldout = _as_points(heldout, "heldout")
    if heldout.shape[1] != codes.shape[1]:
        raise ValueError(f"heldout must have shape (n, {codes.shape[1]}) like codes, got {heldout.shape}")
    try:
        bws = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise ValueError(f"bandwidths must be a list of positive numbers: {e}") from None
    if bws.ndim != 1 or bws.size == 0 or not np.all(np.isfinite(bws)) or not np.all(bws > 0):
        raise ValueError(f"bandwidths must be a non-empty list of positive finite numbers, got {bandwidths!r}")
    m, d = codes.shape
    n = heldout.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _BLOCK_ENTRIES // m)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    chunk_size = int(chunk_size)
    center = codes.mean(0)
    codes, heldout = codes - center, heldout - center
    c2 = np.einsum("ij,ij->i", codes, codes)
    ll = np.empty((bws.size, n))
    for start in range(0, n, chunk_size):
        x = heldout[start:start + chunk_size]
        sq = np.maximum(np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * x @ codes.T + c2[None, :], 0.0)
        for b, h in enumerate(bws):
            a = sq * (-0.5 / h**2)
            top = a.max(1)
            ll[b, start:start + len(x)] = top + np.log(np.exp(a - top[:, None]).sum(1))
    ll -= (math.log(m) + 0.5 * d * (_LOG_2PI + 2.0 * np.log(bws)))[:, None]
    return [{"bandwidth": float(h), "mean": float(row.mean()), "sem": float(row.std() / math.sqrt(n))}
            for h, row in zip(bws, ll)]
