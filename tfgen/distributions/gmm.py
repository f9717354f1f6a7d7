"""Full-covariance Gaussian mixture fitted by expectation-maximisation: IML's
learned base distribution (Subakan et al., "Learning the Base Distribution in
Implicit Generative Models", Alg. 1 stage 2; METHODS.md §5).

IML trains an autoencoder, then fits ``p^0`` by maximum likelihood on the codes
``h_n = f_enc(x_n)``: a Gaussian mixture for images. The reference code uses
scikit-learn's ``GaussianMixture(n_components=30, n_init=20, max_iter=200)``
(full covariance, ``reg_covar=1e-6``, ``tol=1e-3``) on the first 3000 codes.
:class:`GaussianMixture` is that estimator in TensorFlow, with the fitted
parameters in variables, so a saved or exported model samples the learned base.

The density is

    p(z) = sum_k pi_k N(z; mu_k, Sigma_k),   Sigma_k = L_k L_k^T,

and EM (Bishop, PRML §9.2.2) alternates

    E-step (eq. 9.23):  gamma_nk = pi_k N(z_n; mu_k, Sigma_k) / sum_j pi_j N(z_n; mu_j, Sigma_j)
    M-step (eqs. 9.24-9.27, N_k = sum_n gamma_nk):
        mu_k    = (1/N_k) sum_n gamma_nk z_n
        Sigma_k = (1/N_k) sum_n gamma_nk (z_n - mu_k)(z_n - mu_k)^T  + reg_covar * I
        pi_k    = N_k / N
    log-likelihood (eq. 9.28): (1/N) sum_n log sum_k pi_k N(z_n; mu_k, Sigma_k)

with the E-step in log space (log-sum-exp), so far-away points do not
underflow every component at once.
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

_LOG_2PI = math.log(2.0 * math.pi)

# The E-step and M-step work through blocks of rows whose (components x rows x
# dim) temporaries hold about this many float64 entries (32 MiB), so fitting or
# scoring 60k codes in 140 dimensions with 30 components never needs GBs.
_BLOCK_ENTRIES = 2**22

# A component with less total responsibility than this (in points) keeps its
# previous mean and covariance: its M-step statistics would be 0/0. Keeping them
# is a partial M-step, which still never lowers the likelihood (generalised EM).
_EMPTY_COMPONENT = 1e-10

# Added to every N_k before taking log weights (as scikit-learn does), so an
# empty component gets a tiny finite logit, not -inf.
_WEIGHT_FLOOR = 10.0 * np.finfo(np.float64).eps

_KMEANS_MAX_ITER = 100
_INITS = ("kmeans++", "kmeans")


@keras.saving.register_keras_serializable(package="tfgen")
class GaussianMixture(Prior):
    """A mixture of ``n_components`` full-covariance Gaussians, fitted by EM.

    Args:
      dim: code dimension.
      n_components: the number of mixture components ``K`` (IML: 30).
      reg_covar: added to the diagonal of every covariance in the M-step, so a
        component that collapses onto few points stays positive definite
        (scikit-learn's default, which IML's reference fit used).
      tol: EM stops when the mean per-point log-likelihood changes by less.
      max_iter: the most EM iterations per restart (IML: 200).
      n_init: restarts from different seeded initialisations; the one with the
        highest final log-likelihood is kept (IML: 20).
      init: ``"kmeans++"``: (greedy) k-means++ seeding, each point assigned to its
        nearest centre, then an M-step on those hard responsibilities
        (scikit-learn's ``init_params="k-means++"``); ``"kmeans"``: the same
        followed by Lloyd iterations to convergence (scikit-learn's default
        ``init_params="kmeans"``, i.e. what IML's reference fit ran).
      seed: seeds the initialisations (restart ``r`` uses the ``r``-th split of
        this seed), so a fit is reproducible.

    Parameters live in non-trainable float32 variables: ``logits`` ``(K,)``
    (normalised log-weights), ``means`` ``(K, dim)``, ``scale_tril`` ``(K, dim,
    dim)`` (lower Cholesky factors of the covariances) and ``fitted`` (int32,
    1 after a fit). An unfitted mixture has equal weights, zero means and
    identity covariances, i.e. it is ``N(0, I)``; a mixture built from a config
    is unfitted until its weights are loaded.

    Example::

        gmm = GaussianMixture(20, n_components=30, n_init=20, max_iter=200)
        report = gmm.fit(codes[:3000])        # METHODS.md §5
        z = gmm.sample(64, seed=0)
    """

    def __init__(self, dim: int, n_components: int, *, reg_covar: float = 1e-6, tol: float = 1e-3,
                 max_iter: int = 100, n_init: int = 3, init: str = "kmeans++", seed: int = 0, **kwargs):
        super().__init__(dim, **kwargs)
        if int(n_components) != n_components or int(n_components) <= 0:
            raise ValueError(f"n_components must be a positive integer, got {n_components}")
        if not (math.isfinite(reg_covar) and reg_covar >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar}")
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {tol}")
        if int(max_iter) != max_iter or int(max_iter) < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
        if int(n_init) != n_init or int(n_init) < 1:
            raise ValueError(f"n_init must be a positive integer, got {n_init}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        self.n_components = int(n_components)
        self.reg_covar, self.tol = float(reg_covar), float(tol)
        self.max_iter, self.n_init = int(max_iter), int(n_init)
        self.init, self.seed = init, int(seed)
        k, d = self.n_components, self.dim
        # only_first_replica, as KDE: the variables may be read in a replica context.
        common = dict(trainable=False, aggregation="only_first_replica")
        self.logits = self.add_weight(shape=(k,), initializer=keras.initializers.Constant(-math.log(k)),
                                      dtype="float32", name="logits", **common)
        self.means = self.add_weight(shape=(k, d), initializer="zeros", dtype="float32", name="means", **common)
        self.scale_tril = self.add_weight(
            shape=(k, d, d), initializer=keras.initializers.Constant(np.broadcast_to(np.eye(d), (k, d, d))),
            dtype="float32", name="scale_tril", **common)
        self.fitted = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="fitted", **common)
        # Rows per block, so (K x rows x dim) temporaries hold ~_BLOCK_ENTRIES entries.
        self._block_rows = max(1, _BLOCK_ENTRIES // (k * d))

    # -- the distribution ---------------------------------------------------------------
    def mixture_weights(self) -> tf.Tensor:
        """``(K,)`` float32 component weights ``pi_k``."""
        return tf.nn.softmax(tf.convert_to_tensor(self.logits))

    def covariances(self) -> tf.Tensor:
        """``(K, dim, dim)`` float32 covariances ``L_k L_k^T``."""
        scale_tril = tf.convert_to_tensor(self.scale_tril)
        return tf.matmul(scale_tril, scale_tril, transpose_b=True)

    def distribution(self) -> tfd.Distribution:
        """The TFP form: ``MixtureSameFamily(Categorical(logits), MultivariateNormalTriL(means, scale_tril))``."""
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalTriL(
                loc=tf.convert_to_tensor(self.means), scale_tril=tf.convert_to_tensor(self.scale_tril)))

    def sample(self, n, seed=None) -> tf.Tensor:
        """``(n, dim)`` float32 codes ``mu_j + L_j eps`` with ``j ~ Categorical(pi)``,
        ``eps ~ N(0, I)``; same ``seed``, same codes (eagerly, in ``tf.function``,
        in an export).

        A plain stateless draw rather than ``distribution().sample``, which
        draws from every component for every row.
        """
        seed_j, seed_eps = tf.unstack(tf.random.split(as_stateless_seed(seed), 2))
        n = tf.cast(n, tf.int32)
        logits = tf.convert_to_tensor(self.logits)
        means = tf.convert_to_tensor(self.means)
        scale_tril = tf.convert_to_tensor(self.scale_tril)
        j = tf.random.stateless_categorical(logits[None], n, seed_j, dtype=tf.int32)[0]
        eps = tf.random.stateless_normal(tf.stack([n, self.dim]), seed_eps)
        # Pick the cheaper temporary: every component's transform of every row
        # (n x K x dim) or each row's own factor gathered (n x dim x dim).
        if self.n_components <= self.dim:
            per_component = tf.einsum("kij,nj->nki", scale_tril, eps)
            noise = tf.gather(per_component, j, axis=1, batch_dims=1)
        else:
            noise = tf.linalg.matvec(tf.gather(scale_tril, j), eps)
        return tf.gather(means, j) + noise

    def log_prob(self, z) -> tf.Tensor:
        """``(n,)`` float32 exact log-density at ``z (n, dim)``.

        Computed in float64 (triangular solves against the Cholesky factors, a
        log-sum-exp over components) in blocks of rows, so an ill-conditioned
        covariance (``reg_covar`` is tiny) does not cost float32 precision.
        """
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank != 2 or z.shape[-1] not in (None, self.dim):
            raise ValueError(f"z must have shape (n, {self.dim}), got {z.shape}")
        log_weights = tf.nn.log_softmax(tf.cast(tf.convert_to_tensor(self.logits), tf.float64))
        comp = _component_log_prob(tf.cast(z, tf.float64), tf.cast(tf.convert_to_tensor(self.means), tf.float64),
                                   tf.cast(tf.convert_to_tensor(self.scale_tril), tf.float64), self._block_rows)
        return tf.cast(tf.reduce_logsumexp(comp + log_weights, axis=1), tf.float32)

    # -- fitting ------------------------------------------------------------------------
    def fit(self, codes, *, seed=None, verbose=False) -> dict:
        """Fit the mixture to ``codes (n, dim)`` by EM; the best of ``n_init``
        restarts goes into the variables.

        Each restart: a seeded initialisation (``init``), then EM iterations
        until the mean per-point log-likelihood changes by less than ``tol`` or
        ``max_iter`` iterations have run. Runs eagerly (the EM iteration itself
        is a ``tf.function``), in float64 on the codes centred on their mean.

        Args:
          codes: ``(n, dim)`` array or tensor, ``n >= n_components``, finite.
          seed: overrides the constructor's ``seed`` for this fit.
          verbose: ``True``/1 prints one line per restart; 2 also one per iteration.

        Returns a dict about the kept restart: ``log_likelihood_history`` (the
        mean per-point log-likelihood after each iteration, one float per
        iteration), ``initial_log_likelihood`` (after the initialisation),
        ``n_iter``, ``converged``, ``best_init`` (its restart index),
        ``log_likelihood`` (the final mean log-likelihood of the stored
        parameters, computed in float64 before they are rounded to the float32
        variables), and ``restart_log_likelihoods`` (every restart's final).

        Raises ``ValueError``, leaving the variables as they were: before any
        work for a wrong shape, non-numeric values, NaN/Inf, or fewer codes
        than components; during EM when a covariance is not positive definite
        even after ``reg_covar`` (raise ``reg_covar``). Warns when the kept
        restart did not converge within ``max_iter``.
        """
        if not tf.executing_eagerly():
            raise RuntimeError("GaussianMixture.fit runs eagerly; call it outside tf.function")
        x = self._check_codes(codes)
        # Centring keeps the float64 distance and moment computations away from
        # cancellation when the codes sit far from the origin.
        center = x.mean(0)
        x = tf.constant(x - center)
        base_seed = as_stateless_seed(self.seed if seed is None else seed)
        restart_seeds = tf.random.split(base_seed, self.n_init)
        reg = tf.constant(self.reg_covar, tf.float64)
        block = self._block_rows
        best, finals = None, []
        for r in range(self.n_init):
            try:
                params, log_resp, ll = _initialise(x, self.n_components, restart_seeds[r],
                                                   self.init == "kmeans", reg, block)
                history, converged = [], False
                prev = float(ll)
                initial = prev
                for it in range(self.max_iter):
                    params, log_resp, ll = _em_iteration(x, log_resp, params, reg, block)
                    cur = float(ll)
                    if not math.isfinite(cur):
                        raise ValueError(f"GaussianMixture.fit: the log-likelihood became {cur} at EM "
                                         f"iteration {it + 1} of restart {r}")
                    history.append(cur)
                    if verbose and int(verbose) >= 2:
                        print(f"GaussianMixture restart {r} iteration {it + 1}: mean log-likelihood {cur:.6f}")
                    if abs(cur - prev) < self.tol:
                        converged = True
                        break
                    prev = cur
            except tf.errors.InvalidArgumentError as e:  # a failed Cholesky
                raise ValueError(
                    f"GaussianMixture.fit: a component covariance is not positive definite "
                    f"(reg_covar={self.reg_covar}); try a larger reg_covar or fewer components ({e.message})"
                ) from None
            final = history[-1]
            finals.append(final)
            if verbose:
                print(f"GaussianMixture restart {r}: {len(history)} iterations, converged={converged}, "
                      f"mean log-likelihood {final:.6f}")
            if best is None or final > best[0]:
                best = (final, r, params, history, converged, initial)
        final, r, (log_weights, means, scale_tril), history, converged, initial = best
        if not converged:
            warnings.warn(f"GaussianMixture.fit: the best restart ({r}) did not converge within "
                          f"max_iter={self.max_iter} iterations (tol={self.tol}); raise max_iter or tol",
                          stacklevel=2)
        self.logits.assign(tf.cast(log_weights, tf.float32))
        self.means.assign(tf.cast(means + center, tf.float32))
        self.scale_tril.assign(tf.cast(scale_tril, tf.float32))
        self.fitted.assign(1)
        return {"log_likelihood_history": history, "initial_log_likelihood": initial, "n_iter": len(history),
                "converged": converged, "best_init": r, "log_likelihood": final,
                "restart_log_likelihoods": finals}

    def _check_codes(self, codes) -> np.ndarray:
        if isinstance(codes, (tf.Tensor, tf.Variable)):
            codes = codes.numpy()
        try:
            x = np.asarray(codes)
            if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
                raise TypeError(f"dtype {x.dtype}")
            x = x.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"codes must be a numeric (n, {self.dim}) array: {e}") from None
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"codes must have shape (n, {self.dim}), got {x.shape}")
        if x.shape[0] < self.n_components:
            raise ValueError(f"codes has {x.shape[0]} rows but a mixture of n_components={self.n_components} "
                             f"needs at least as many codes as components")
        if not np.all(np.isfinite(x)):
            raise ValueError("codes contains NaN or Inf values")
        return x

    def get_config(self):
        return {**super().get_config(), "n_components": self.n_components, "reg_covar": self.reg_covar,
                "tol": self.tol, "max_iter": self.max_iter, "n_init": self.n_init, "init": self.init,
                "seed": self.seed}


# -- EM in TensorFlow (float64) ---------------------------------------------------------------

def _blocks(x, block_rows):
    """``x (n, ...)`` zero-padded to whole blocks: ``(n_blocks, b, ...)`` with
    ``b = min(block_rows, n)``, so a small input is not padded to a large block."""
    n = tf.shape(x)[0]
    b = tf.maximum(tf.minimum(block_rows, n), 1)
    n_blocks = tf.maximum((n + b - 1) // b, 1)  # one (padding) block when n = 0: map_fn needs one
    pad = tf.concat([tf.reshape(tf.stack([0, n_blocks * b - n]), [1, 2]),
                     tf.zeros([x.shape.rank - 1, 2], tf.int32)], 0)
    return tf.reshape(tf.pad(x, pad), tf.concat([tf.stack([n_blocks, b]), tf.shape(x)[1:]], 0))


def _component_log_prob(x, means, scale_tril, block_rows: int):
    """``(n, K)`` ``log N(x_n; mu_k, L_k L_k^T)`` in blocks of rows."""
    n, d = tf.shape(x)[0], x.shape[-1]
    half_log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(scale_tril))), -1)
    const = -half_log_det - 0.5 * d * _LOG_2PI

    # Whitening by the inverse factors (one small triangular solve per component)
    # turns the per-block work into batched matmuls (as scikit-learn does): on CPU
    # about twice as fast as a triangular solve against every block at dim 20.
    k = means.shape[0]
    inv_tril = tf.linalg.triangular_solve(scale_tril, tf.eye(d, batch_shape=[k], dtype=x.dtype), lower=True)
    white_means = tf.linalg.matvec(inv_tril, means)                             # L_k^{-1} mu_k

    def block_log_prob(xb):
        y = tf.matmul(tf.broadcast_to(xb, tf.concat([[k], tf.shape(xb)], 0)), inv_tril, transpose_b=True)
        y -= white_means[:, None]                                               # (K, b, d): L_k^{-1} (x - mu_k)
        return tf.transpose(const[:, None] - 0.5 * tf.reduce_sum(tf.square(y), -1))  # (b, K)

    out = tf.map_fn(block_log_prob, _blocks(x, block_rows),
                    fn_output_signature=tf.TensorSpec([None, k], x.dtype))
    return tf.reshape(out, [-1, k])[:n]


def _e_step(x, params, block_rows: int):
    """Responsibilities (PRML eq. 9.23) in log space and the mean log-likelihood (eq. 9.28)."""
    log_weights, means, scale_tril = params
    weighted = _component_log_prob(x, means, scale_tril, block_rows) + log_weights
    log_norm = tf.reduce_logsumexp(weighted, axis=1, keepdims=True)
    return weighted - log_norm, tf.reduce_mean(log_norm)


def _m_step(x, resp, prev_params, reg, block_rows: int):
    """PRML eqs. 9.24-9.27 with ``reg * I`` on every covariance; empty components keep
    their previous mean and covariance."""
    _, prev_means, prev_scale_tril = prev_params
    n = tf.cast(tf.shape(x)[0], x.dtype)
    k, d = resp.shape[1], x.shape[1]
    nk = tf.reduce_sum(resp, 0)
    empty = nk < _EMPTY_COMPONENT
    safe_nk = tf.where(empty, tf.ones_like(nk), nk)
    means = tf.where(empty[:, None], prev_means, tf.matmul(resp, x, transpose_a=True) / safe_nk[:, None])

    # The covariances as two passes (means first, then centred outer products)
    # rather than E[xx^T] - mu mu^T, which cancels badly for tight components.
    def block_scatter(args):
        xb, rb = args
        diff = xb[None] - means[:, None]                                       # (K, b, d)
        return tf.matmul(diff * tf.transpose(rb)[:, :, None], diff, transpose_a=True)  # (K, d, d)

    # Padded rows have zero responsibility, so they add nothing.
    scatter = tf.foldl(lambda acc, args: acc + block_scatter(args),
                       (_blocks(x, block_rows), _blocks(resp, block_rows)),
                       initializer=tf.zeros([k, d, d], x.dtype))
    cov = scatter / safe_nk[:, None, None] + reg * tf.eye(d, dtype=x.dtype)
    cov = 0.5 * (cov + tf.linalg.matrix_transpose(cov))
    # An empty component's cov would be reg * I alone; factor I instead and keep the old factor.
    cov = tf.where(empty[:, None, None], tf.eye(d, batch_shape=[k], dtype=x.dtype), cov)
    scale_tril = tf.where(empty[:, None, None], prev_scale_tril, tf.linalg.cholesky(cov))
    log_weights = tf.math.log(nk + _WEIGHT_FLOOR) - tf.math.log(n + k * _WEIGHT_FLOOR)
    return log_weights, means, scale_tril


def _check_factors(scale_tril):
    # TF's CPU Cholesky raises on a non-PD input, but other kernels (XLA, GPU)
    # return NaN: make both an InvalidArgumentError that fit turns into a ValueError.
    return tf.debugging.assert_all_finite(scale_tril, "Cholesky factor is not finite")


@tf.function
def _em_iteration(x, log_resp, params, reg, block_rows):
    """One EM iteration: M-step on the current responsibilities, then the E-step of the new
    parameters (so the log-likelihood returned is that of the parameters returned)."""
    log_weights, means, scale_tril = _m_step(x, tf.exp(log_resp), params, reg, block_rows)
    params = (log_weights, means, _check_factors(scale_tril))
    log_resp, ll = _e_step(x, params, block_rows)
    return params, log_resp, ll


def _kmeans_plus_plus(x, k: int, seed):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's
    2 + log k local trials): the first centre uniform; each next one the best, by the
    k-means potential it leaves, of a few candidates drawn with probability
    proportional to the squared distance to the nearest centre so far. The plain
    one-candidate rule often puts two centres in one cluster in high dimension,
    where the pooled within-cluster distances outweigh a missed cluster."""
    n_trials = 2 + int(math.log(k))
    seeds = tf.random.split(seed, k)
    n = tf.shape(x)[0]
    sq_norms = tf.reduce_sum(tf.square(x), 1)
    first = tf.random.stateless_uniform([], seeds[0], minval=0, maxval=n, dtype=tf.int32)
    centers = tf.tensor_scatter_nd_update(tf.zeros([k, x.shape[1]], x.dtype), [[0]], x[first][None])
    d2 = tf.reduce_sum(tf.square(x - x[first]), 1)

    def add_center(j, centers, d2):
        # All points coincide with centres (duplicated codes): draw uniformly.
        logits = tf.where(tf.reduce_sum(d2) > 0, tf.math.log(d2), tf.zeros_like(d2))
        cand = tf.random.stateless_categorical(logits[None], n_trials, seeds[j], dtype=tf.int32)[0]
        c = tf.gather(x, cand)                                                   # (trials, d)
        cand_d2 = tf.maximum(sq_norms - 2.0 * tf.matmul(c, x, transpose_b=True)
                             + tf.reduce_sum(tf.square(c), 1, keepdims=True), 0.0)  # (trials, n)
        new_d2 = tf.minimum(d2, cand_d2)
        best = tf.argmin(tf.reduce_sum(new_d2, 1), output_type=tf.int32)
        return j + 1, tf.tensor_scatter_nd_update(centers, [[j]], c[best][None]), new_d2[best]

    # A graph loop, not a Python one: unrolling K steps made tracing take seconds.
    _, centers, _ = tf.while_loop(lambda j, c, d: j < k, add_center, (tf.constant(1), centers, d2))
    return centers


def _nearest(x, centers):
    sq = (tf.reduce_sum(tf.square(x), 1, keepdims=True) - 2.0 * tf.matmul(x, centers, transpose_b=True)
          + tf.reduce_sum(tf.square(centers), 1))
    return tf.argmin(sq, axis=1, output_type=tf.int32)


def _lloyd(x, centers):
    """Lloyd's k-means iterations until the assignment stops changing (or _KMEANS_MAX_ITER);
    an empty cluster keeps its centre."""
    k = centers.shape[0]

    def step(i, centers, labels, changed):
        one_hot = tf.one_hot(labels, k, dtype=x.dtype)
        counts = tf.reduce_sum(one_hot, 0)
        sums = tf.matmul(one_hot, x, transpose_a=True)
        centers = tf.where(counts[:, None] > 0, sums / tf.maximum(counts, 1.0)[:, None], centers)
        new = _nearest(x, centers)
        return i + 1, centers, new, tf.reduce_any(new != labels)

    _, centers, labels, _ = tf.while_loop(
        lambda i, c, l, changed: tf.logical_and(changed, i < _KMEANS_MAX_ITER),
        step, (tf.constant(0), centers, _nearest(x, centers), tf.constant(True)))
    return centers, labels


@tf.function
def _initialise(x, k: int, seed, run_lloyd: bool, reg, block_rows):
    """Hard responsibilities from the nearest (k-means++ or k-means) centres, then an M-step."""
    centers = _kmeans_plus_plus(x, k, seed)
    if run_lloyd:
        centers, labels = _lloyd(x, centers)
    else:
        labels = _nearest(x, centers)
    d = x.shape[1]
    # What an initially empty cluster (duplicated codes) keeps: its centre and the
    # covariance of all the codes.
    n = tf.cast(tf.shape(x)[0], x.dtype)
    global_cov = tf.matmul(x, x, transpose_a=True) / n + (reg + 1e-12) * tf.eye(d, dtype=x.dtype)
    fallback = (tf.zeros([k], x.dtype), centers,
                tf.broadcast_to(tf.linalg.cholesky(global_cov), [k, d, d]))
    log_weights, means, scale_tril = _m_step(x, tf.one_hot(labels, k, dtype=x.dtype), fallback, reg, block_rows)
    params = (log_weights, means, _check_factors(scale_tril))
    log_resp, ll = _e_step(x, params, block_rows)
    return params, log_resp, ll
