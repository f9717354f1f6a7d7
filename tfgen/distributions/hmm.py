"""Hidden Markov model with Gaussian emissions over sequences of codes: IML's
base distribution for audio (Subakan, Koyejo & Smaragdis, "Learning the Base
Distribution in Implicit Generative Models", §3.3 and §4.2; the paper is
``shared/papers/iml-learned-base-distribution.txt``, METHODS.md §5).

IML encodes each 100 ms chunk of audio into a ``dim = 80`` code, fits an HMM
to the code sequences by maximum likelihood (300 states in the paper), samples
a code sequence from the HMM, decodes every code and overlap-adds the chunks.
The fit here is Baum-Welch (EM) after Rabiner, "A Tutorial on Hidden Markov
Models and Selected Applications in Speech Recognition", Proc. IEEE 77(2),
1989, written in the log domain in TensorFlow; sampling and ``log_prob`` run in
the graph, so an exported model samples from the fitted HMM.
"""

from __future__ import annotations

import math

import numpy as np
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfgen.distributions.priors import Prior, as_stateless_seed

tfd = tfp.distributions

# Initial and transition probabilities are floored here (then renormalised)
# before they are stored: their logs stay finite in the variables, and in the
# E-step the scale factor of the expected transition counts (see
# _e_step) stays below 1 / _MIN_PROB, far from float64 overflow.
_MIN_PROB = 1e-30

# States whose expected occupancy is below this keep their emission
# parameters: a mean and variance estimated from no data are noise.
_MIN_OCCUPANCY = 1e-10

# The E-step runs on batches of sequences of at most about this many
# (sequence x step x state) entries: 16 MiB per float64 array.
_EM_BLOCK_ENTRIES = 2**21

# k-means initialisation runs on at most this many points (a random subset).
_KMEANS_MAX_POINTS = 10_000
_KMEANS_ITERS = 25

_LOG_2PI = math.log(2.0 * math.pi)


@keras.saving.register_keras_serializable(package="tfgen")
class HiddenMarkovModel(Prior):
    """A ``n_states``-state HMM whose state ``k`` emits ``N(means[k], diag(scales[k]^2))`` codes.

    Usage::

        hmm = HiddenMarkovModel(dim=80, n_states=300)
        report = hmm.fit([codes_of_utterance for ...])   # list of (T_i, 80) arrays
        seq = hmm.sample_sequence(200, n=4, seed=0)      # (4, 200, 80)
        hmm.log_prob(seq)                                # (4,) log p(x_{1:T})

    Args:
      dim: code dimension (the emission dimension of one time step).
      n_states: number of hidden states ``K`` (IML audio: 300 in the paper,
        370 in the reference script; METHODS.md §5).

    Parameters live in non-trainable variables (so checkpoints, ``.keras``
    files and SavedModel exports carry the fitted model):
    ``initial_logits (K,)``, ``transition_logits (K, K)`` (row ``i`` is the
    distribution of the next state from ``i``), ``means (K, dim)``,
    ``scales (K, dim)`` (emission standard deviations) and ``fitted`` (int32,
    1 once :meth:`fit` or :meth:`set_parameters` has run). The logits are
    normalised log-probabilities. Before fitting the HMM is uniform over
    states with ``N(0, I)`` emissions, i.e. i.i.d. ``N(0, I)`` codes.

    **Diagonal covariances.** Emissions have diagonal covariances, as in the
    reference code (hmmlearn ``GaussianHMM(covariance_type='diag')``): with
    300 states and 80-dimensional codes a full covariance per state is ~970k
    parameters, fitted from a few hundred to a few thousand codes, which is
    ill-posed; the diagonal model has ``2 * K * dim`` and a variance floor is
    enough to keep it well-defined. State mixtures capture correlations.

    **Sequences versus codes.** The :class:`Prior` contract (``sample(n)`` ->
    ``(n, dim)``) is kept with a sequence meaning: :meth:`sample` returns
    *one chain* of ``n`` consecutive codes, which is what IML generates
    (``HMM.sample(N)`` in the reference code, then decode and overlap-add), so
    a generative model's ``sample(n)`` yields ``n`` consecutive chunks. Its
    rows are not i.i.d. For several sequences use :meth:`sample_sequence`.
    Correspondingly :meth:`log_prob` takes whole sequences, ``(T, dim)`` ->
    scalar or ``(n, T, dim)`` -> ``(n,)``: the joint log-density of each
    sequence (so ``log_prob(sample(n))`` is the density of what was drawn).
    """

    def __init__(self, dim: int, n_states: int = 10, **kwargs):
        super().__init__(dim, **kwargs)
        if isinstance(n_states, bool) or int(n_states) != n_states or int(n_states) <= 0:
            raise ValueError(f"n_states must be a positive integer, got {n_states!r}")
        self.n_states = k = int(n_states)
        common = dict(trainable=False, aggregation="only_first_replica")
        uniform = keras.initializers.Constant(-math.log(k))
        self.initial_logits = self.add_weight(shape=(k,), initializer=uniform, dtype="float32",
                                              name="initial_logits", **common)
        self.transition_logits = self.add_weight(shape=(k, k), initializer=uniform, dtype="float32",
                                                 name="transition_logits", **common)
        self.means = self.add_weight(shape=(k, self.dim), initializer="zeros", dtype="float32",
                                     name="means", **common)
        self.scales = self.add_weight(shape=(k, self.dim), initializer="ones", dtype="float32",
                                      name="scales", **common)
        self.fitted = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="fitted", **common)

    # -- parameters ---------------------------------------------------------------------
    @property
    def initial_probs(self) -> tf.Tensor:
        """``(K,)`` initial state distribution ``pi``."""
        return tf.nn.softmax(self.initial_logits)

    @property
    def transition_probs(self) -> tf.Tensor:
        """``(K, K)`` transition matrix ``A``, ``A[i, j] = P(z_{t+1} = j | z_t = i)``."""
        return tf.nn.softmax(self.transition_logits, axis=-1)

    def set_parameters(self, initial_probs=None, transition_probs=None, means=None, scales=None):
        """Set some or all parameters by value (probabilities, not logits); returns ``self``.

        Each argument left ``None`` keeps its current value. Probabilities
        must be non-negative and sum to 1 (rows of ``transition_probs``);
        ``scales`` must be positive. Marks the model fitted.
        """
        k, d = self.n_states, self.dim
        new = {}
        if initial_probs is not None:
            new["initial_logits"] = _as_log_probs(initial_probs, (k,), "initial_probs")
        if transition_probs is not None:
            new["transition_logits"] = _as_log_probs(transition_probs, (k, k), "transition_probs")
        if means is not None:
            new["means"] = _as_finite(means, (k, d), "means")
        if scales is not None:
            s = _as_finite(scales, (k, d), "scales")
            if not np.all(s > 0):
                raise ValueError("scales must be positive")
            new["scales"] = s
        for name, value in new.items():
            getattr(self, name).assign(value.astype("float32"))
        self.fitted.assign(1)
        return self

    # -- the distribution ---------------------------------------------------------------
    def distribution(self, length=None) -> tfd.HiddenMarkovModel:
        """The TFP ``HiddenMarkovModel`` over sequences of ``length`` steps (event shape ``(length, dim)``)."""
        if length is None:
            raise ValueError("HiddenMarkovModel.distribution needs the sequence length: distribution(length)")
        if isinstance(length, (int, np.integer)) and length <= 0:
            raise ValueError(f"length must be a positive integer, got {length}")
        return tfd.HiddenMarkovModel(
            initial_distribution=tfd.Categorical(logits=self.initial_logits),
            transition_distribution=tfd.Categorical(logits=self.transition_logits),
            observation_distribution=tfd.MultivariateNormalDiag(loc=self.means, scale_diag=self.scales),
            num_steps=length)

    def log_prob(self, sequences) -> tf.Tensor:
        """Exact log-density ``log p(x_{1:T})`` (the forward algorithm, TFP's
        ``HiddenMarkovModel.log_prob``): a scalar for one sequence ``(T, dim)``,
        ``(n,)`` for ``(n, T, dim)``. For sequences of different lengths call
        it once per sequence.
        """
        x = tf.convert_to_tensor(sequences)
        if not (x.dtype.is_floating or x.dtype.is_integer):
            raise ValueError(f"sequences must be numeric, got dtype {x.dtype.name}")
        x = tf.cast(x, tf.float32)
        if x.shape.rank not in (2, 3) or x.shape[-1] not in (None, self.dim):
            raise ValueError(f"sequences must have shape (length, {self.dim}) or (n, length, {self.dim}), "
                             f"got {x.shape}")
        if x.shape[-2] == 0:
            raise ValueError(f"sequences have length 0 (shape {x.shape}): need at least one step")
        return self.distribution(tf.shape(x)[-2]).log_prob(x)

    # -- sampling -----------------------------------------------------------------------
    def sample_sequence(self, length, n=1, seed=None, return_states=False):
        """``(n, length, dim)`` float32 code sequences; same ``seed``, same sequences.

        Stateless (works eagerly, in ``tf.function`` and in an export, with
        ``length`` and ``n`` Python ints or int32 scalar tensors): the states
        follow the chain by inverse-CDF draws from pre-drawn uniforms, then
        each step emits ``means[z] + scales[z] * eps``. With
        ``return_states=True`` also returns the ``(n, length)`` int32 states.
        """
        for name, value in (("length", length), ("n", n)):
            if isinstance(value, (int, np.integer)) and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        length = tf.cast(length, tf.int32)
        n = tf.cast(n, tf.int32)
        s_states, s_emit = tf.unstack(tf.random.split(as_stateless_seed(seed), 2))
        # At least two steps are drawn, so the chain's scan is never empty (an
        # empty scan cannot stack its outputs when `n` is unknown at tracing);
        # the slices return exactly `length` steps (also 0).
        steps = tf.maximum(length, 2)
        # float64 uniforms and CDFs: state probabilities are honoured to ~1e-16.
        u = tf.random.stateless_uniform(tf.stack([steps, n]), s_states, dtype=tf.float64)
        cdf0 = tf.cumsum(tf.nn.softmax(tf.cast(self.initial_logits, tf.float64)))
        cdf = tf.cumsum(tf.nn.softmax(tf.cast(self.transition_logits, tf.float64), axis=-1), axis=-1)
        states = _markov_chain(cdf0, cdf, u)[:length]                           # (length, n)
        eps = tf.random.stateless_normal(tf.stack([steps, n, self.dim]), s_emit)[:length]
        codes = tf.gather(self.means, states) + tf.gather(self.scales, states) * eps
        codes = tf.transpose(codes, [1, 0, 2])
        if return_states:
            return codes, tf.transpose(states)
        return codes

    def sample(self, n, seed=None) -> tf.Tensor:
        """``(n, dim)``: one chain of ``n`` consecutive codes (see the class docstring), not i.i.d. rows."""
        return self.sample_sequence(n, 1, seed=seed)[0]

    # -- fitting ------------------------------------------------------------------------
    def fit(self, sequences, *, max_iter: int = 100, tol: float = 1e-4, n_init: int = 1,
            init: str = "kmeans", reg: float = 1e-6, seed: int = 0, verbose: bool = False) -> dict:
        """Maximum-likelihood fit by Baum-Welch (EM) on ``sequences``; eager only.

        Args:
          sequences: one sequence ``(T, dim)``, a batch ``(n, T, dim)``, or a
            list of ``(T_i, dim)`` arrays of different lengths. Sequences are
            independent draws from the HMM (Rabiner §V-B, multiple
            observation sequences: expected counts are summed over them).
          max_iter: the most EM iterations (M-steps) per initialisation.
          tol: stop when the mean log-likelihood per time step improves by
            less than ``tol`` in one iteration (per step, so the criterion does
            not depend on how much data there is).
          n_init: initialisations (seeds ``(seed, 0)``, ``(seed, 1)``, ...);
            the one with the highest final log-likelihood is kept.
          init: ``"kmeans"`` (k-means++ then Lloyd on the pooled time steps,
            at most 10,000 of them) or ``"random"`` (``n_states`` distinct
            random time steps) for the means. Either way the initial and
            transition distributions start uniform and every state's variance
            is the pooled per-dimension variance (as hmmlearn).
          reg: variance floor: each emission variance is ``max(var, reg)``
            (a floor, not an added constant, so every M-step is the exact
            constrained maximiser and EM stays monotone).
          seed: seeds the initialisation.
          verbose: print the log-likelihood at every iteration.

        Returns a dict: ``history`` (list of the mean log-likelihood per time
        step, ``sum_i log p(x^i) / sum_i T_i``: first the initialisation's,
        then after every M-step; the last entry is that of the stored
        parameters; non-decreasing up to rounding), ``log_likelihood``
        (``history[-1]``), ``iterations`` (M-steps taken), ``converged``
        (``tol`` reached before ``max_iter``), ``best_init`` and
        ``init_log_likelihoods`` (final value of each initialisation).

        The E-step is the forward-backward algorithm (Rabiner eqs. 19-20 and
        24-25) in the log domain, the posteriors ``gamma`` (eq. 27) and
        summed ``xi`` (eq. 37); the M-step re-estimates ``pi``, ``A`` (eqs.
        40a-b) and the Gaussian means and variances (eqs. 52-54 with one
        mixture component per state: the ``gamma``-weighted mean and
        variance, in place of eq. 40c for discrete symbols). Work is in
        float64 on the data centred on its mean; the parameters are stored
        as float32. The sequences are sorted by length and the E-step runs
        on batches of them (about 2M sequence x step x state entries each),
        so memory stays bounded for many sequences.
        """
        if not tf.executing_eagerly():
            raise RuntimeError("HiddenMarkovModel.fit runs eagerly (a Python EM loop): "
                               "call it outside tf.function")
        seqs = self._as_sequences(sequences)
        k = self.n_states
        for name, value in (("max_iter", max_iter), ("n_init", n_init)):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a non-negative number, got {tol}")
        if not (math.isfinite(reg) and reg > 0):
            raise ValueError(f"reg must be a positive number, got {reg}")
        if init not in ("kmeans", "random"):
            raise ValueError(f"init must be 'kmeans' or 'random', got {init!r}")
        points = np.concatenate(seqs)
        if len(points) < k:
            raise ValueError(f"sequences hold {len(points)} time steps in all, fewer than n_states={k}")

        center = points.mean(0)
        points = points - center
        batches = _padded_batches([sq - center for sq in seqs], k)
        n_steps = float(sum(len(sq) for sq in seqs))
        reg_t = tf.constant(reg, tf.float64)
        n_seqs = tf.constant(len(seqs), tf.float64)
        var0 = np.maximum(points.var(0), reg)

        best = None
        init_lls = []
        for r in range(int(n_init)):
            rng = np.random.default_rng([int(seed), r])
            mu = _kmeans(points, k, rng) if init == "kmeans" else points[_distinct_rows(points, k, rng)]
            params = (np.full(k, 1.0 / k), np.full((k, k), 1.0 / k), mu, np.tile(var0, (k, 1)))
            params = tuple(tf.constant(p, tf.float64) for p in params)
            history, converged = [], False
            for it in range(int(max_iter) + 1):
                # E-step: sufficient statistics summed over the batches of sequences.
                parts = [_e_step(*params, x, mask) for x, mask in batches]
                ll = tf.add_n([part[0] for part in parts])
                stats = [tf.add_n(list(group)) for group in zip(*(part[1] for part in parts))]
                history.append(float(ll) / n_steps)
                if verbose:
                    print(f"HiddenMarkovModel.fit init {r} iter {it}: log-likelihood per step {history[-1]:.6f}")
                if not math.isfinite(history[-1]):
                    raise ValueError("the log-likelihood became non-finite: scale the data or raise reg")
                if len(history) > 1 and history[-1] - history[-2] < tol:
                    converged = True
                    break
                if it == int(max_iter):
                    break  # history[-1] is the log-likelihood of `params`, the last M-step's
                params = _m_step(params, stats, n_seqs, reg_t)
            init_lls.append(history[-1])
            if best is None or history[-1] > best[0][-1]:
                best = (history, converged, params, r)

        history, converged, (pi, a, mu, var), r = best
        self.set_parameters(initial_probs=pi.numpy(), transition_probs=a.numpy(),
                            means=mu.numpy() + center, scales=np.sqrt(var.numpy()))
        return {"history": history, "log_likelihood": history[-1], "iterations": len(history) - 1,
                "converged": converged, "best_init": r, "init_log_likelihoods": init_lls}

    def _as_sequences(self, sequences) -> list:
        """The sequences as a list of float64 ``(T_i, dim)`` arrays, or ``ValueError``."""
        if isinstance(sequences, (list, tuple)):
            items = list(sequences)
            if not items:
                raise ValueError("sequences is empty: fit needs at least one sequence")
            if all(np.ndim(s) == 1 for s in items):   # one sequence given as a list of rows
                items = [items]
        else:
            arr = _as_numeric(sequences, "sequences")
            if arr.ndim == 2:
                items = [arr]
            elif arr.ndim == 3:
                items = list(arr)
            else:
                raise ValueError(f"sequences must have shape (length, {self.dim}) or (n, length, {self.dim}) "
                                 f"or be a list of (length_i, {self.dim}) arrays, got shape {arr.shape}")
        seqs = []
        for i, s in enumerate(items):
            arr = _as_numeric(s, f"sequences[{i}]")
            if arr.ndim != 2 or arr.shape[1] != self.dim:
                raise ValueError(f"sequences[{i}] must have shape (length, {self.dim}), got {arr.shape}")
            if arr.shape[0] == 0:
                raise ValueError(f"sequences[{i}] is empty: every sequence needs at least one step")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"sequences[{i}] contains NaN or Inf values")
            seqs.append(arr)
        if not seqs:
            raise ValueError("sequences is empty: fit needs at least one sequence")
        return seqs

    def get_config(self):
        return {**super().get_config(), "n_states": self.n_states}


# -- sampling ------------------------------------------------------------------------------

@tf.function(reduce_retracing=True)
def _markov_chain(cdf0, cdf, u):
    """``(T, n)`` int32 states: ``z_0`` from the CDF ``cdf0 (K,)``, then
    ``z_t`` from row ``z_{t-1}`` of ``cdf (K, K)``, by inverse CDF of the
    uniforms ``u (T, n)`` (``T >= 2``). A ``tf.function`` so the scan runs as
    one graph loop, not one Python step per time step, when called eagerly."""
    k = tf.shape(cdf)[0]

    def draw(rows_cdf, u_t):
        # State j is drawn when cdf[j-1] <= u < cdf[j]; the clip guards a u
        # above a last CDF entry rounded below 1.
        z = tf.searchsorted(rows_cdf, u_t[:, None], side="right", out_type=tf.int32)[:, 0]
        return tf.minimum(z, k - 1)

    z0 = draw(tf.broadcast_to(cdf0, tf.stack([tf.shape(u)[1], k])), u[0])
    rest = tf.scan(lambda z, u_t: draw(tf.gather(cdf, z), u_t), u[1:], initializer=z0)
    return tf.concat([z0[None], rest], 0)


# -- EM in TensorFlow ----------------------------------------------------------------------

def _emission_log_probs(x, means, variances):
    """``(n, T, K)`` ``log N(x_t; means_k, diag(variances_k))`` in the matmul form
    (never ``n x T x K x dim``), on centred float64 data."""
    inv = 1.0 / variances
    sq = (tf.einsum("ntd,kd->ntk", tf.square(x), inv)
          - 2.0 * tf.einsum("ntd,kd->ntk", x, means * inv)
          + tf.reduce_sum(tf.square(means) * inv, 1))
    d = tf.cast(tf.shape(x)[-1], x.dtype)
    return -0.5 * (tf.maximum(sq, 0.0) + tf.reduce_sum(tf.math.log(variances), 1) + d * _LOG_2PI)


@tf.function(reduce_retracing=True)
def _forward_backward(log_pi, trans, log_b, mask):
    """Log-domain forward-backward over padded sequences.

    ``log_b (n, T, K)`` emission log-probabilities, ``mask (n, T)`` true on
    real steps (each sequence's steps first). Returns ``alpha``, ``beta``
    (``(n, T, K)``, Rabiner eqs. 19-20 and 24-25 as logs) and ``log_lik (n,)``.

    Each step is a matmul with ``A`` after shifting by the row maximum (the
    log form of Rabiner's scaling, §V-A). Past a sequence's end, ``alpha``
    is carried unchanged and ``beta`` is 0 (= log 1), which is exact: the
    padded steps contribute nothing to the likelihood or the posteriors.
    """
    log_b_tm = tf.transpose(log_b, [1, 0, 2])
    mask_tm = tf.transpose(mask)

    def forward(alpha, inputs):
        lb, m = inputs
        top = tf.reduce_max(alpha, -1, keepdims=True)
        new = top + tf.math.log(tf.matmul(tf.exp(alpha - top), trans)) + lb
        return tf.where(m[:, None], new, alpha)

    alpha0 = log_pi + log_b_tm[0]
    alpha_rest = tf.scan(forward, (log_b_tm[1:], mask_tm[1:]), initializer=alpha0)
    alpha = tf.concat([alpha0[None], alpha_rest], 0)

    def backward(beta, inputs):
        lb, m = inputs  # of step t + 1
        nxt = lb + beta
        top = tf.reduce_max(nxt, -1, keepdims=True)
        new = top + tf.math.log(tf.matmul(tf.exp(nxt - top), trans, transpose_b=True))
        return tf.where(m[:, None], new, tf.zeros_like(new))

    beta_last = tf.zeros_like(alpha0)
    beta_rest = tf.scan(backward, (log_b_tm[1:], mask_tm[1:]), initializer=beta_last, reverse=True)
    beta = tf.concat([beta_rest, beta_last[None]], 0)
    log_lik = tf.reduce_logsumexp(alpha[-1], -1)
    return tf.transpose(alpha, [1, 0, 2]), tf.transpose(beta, [1, 0, 2]), log_lik


@tf.function(reduce_retracing=True)
def _e_step(pi, trans, means, variances, x, mask):
    """E-step on a batch of padded sequences: the summed log-likelihood and the
    expected sufficient statistics ``(gamma_1 sum, xi sum, occupancy, sum gamma x,
    sum gamma x^2)``, to be summed over batches and given to :func:`_m_step`."""
    log_b = _emission_log_probs(x, means, variances)
    alpha, beta, log_lik = _forward_backward(tf.math.log(pi), trans, log_b, mask)
    maskf = tf.cast(mask, x.dtype)
    ll = log_lik[:, None, None]

    # gamma_t(i) = P(z_t = i | x) (eq. 27), zero on padding.
    gamma = tf.exp(alpha + beta - ll) * maskf[..., None]

    # sum_t xi_t(i, j) (eq. 37) as one matmul: xi_t(i, j) = u_t(i) A_ij v_t(j) s_t
    # with u, v = exp(. - row max) <= 1 and s_t = exp(maxes - log_lik); s_t <=
    # 1 / min A_ij <= 1 / _MIN_PROB, so nothing overflows. Pairs (t, t + 1)
    # with t + 1 on padding are masked out.
    a_t = alpha[:, :-1]
    b_next = log_b[:, 1:] + beta[:, 1:]
    top_a = tf.reduce_max(a_t, -1, keepdims=True)
    top_b = tf.reduce_max(b_next, -1, keepdims=True)
    s = tf.exp(top_a + top_b - ll) * maskf[:, 1:, None]
    k = tf.shape(trans)[0]
    u = tf.reshape(tf.exp(a_t - top_a) * s, [-1, k])
    v = tf.reshape(tf.exp(b_next - top_b), [-1, k])
    xi_sum = trans * tf.matmul(u, v, transpose_a=True)

    g = tf.reshape(gamma, [-1, k])
    xs = tf.reshape(x, [tf.shape(g)[0], -1])
    stats = (tf.reduce_sum(gamma[:, 0], 0), xi_sum, tf.reduce_sum(g, 0),
             tf.matmul(g, xs, transpose_a=True), tf.matmul(g, tf.square(xs), transpose_a=True))
    return tf.reduce_sum(log_lik), stats


@tf.function(reduce_retracing=True)
def _m_step(params, stats, n_sequences, reg):
    """M-step: the re-estimated ``(pi, A, means, variances)`` from summed statistics."""
    _, trans, means, variances = params
    gamma1, xi_sum, occ, sx, sxx = stats
    # pi: eq. 40a, averaged over the sequences (Rabiner §V-B).
    new_pi = _floor_probs(gamma1 / n_sequences)
    # A: eq. 40b; a state never left keeps its row.
    out = tf.reduce_sum(xi_sum, 1, keepdims=True)
    new_trans = _floor_probs(tf.where(out > 0, xi_sum / tf.maximum(out, 1e-300), trans))
    # Means and variances: eqs. 53-54 with one component per state; a state
    # with (almost) no occupancy keeps its emission.
    occ = occ[:, None]
    safe = tf.maximum(occ, _MIN_OCCUPANCY)
    mu = sx / safe
    var = tf.maximum(sxx / safe - tf.square(mu), reg)
    alive = occ > _MIN_OCCUPANCY
    return new_pi, new_trans, tf.where(alive, mu, means), tf.where(alive, var, variances)


def _floor_probs(p):
    p = tf.maximum(p, _MIN_PROB)
    return p / tf.reduce_sum(p, -1, keepdims=True)


# -- initialisation and input checks ------------------------------------------------------

def _padded_batches(seqs, k: int):
    """The sequences, sorted by length, as batches ``(x (n_b, T_b, dim) float64,
    mask (n_b, T_b) bool)`` zero-padded to the batch's longest sequence, each
    with at most about ``_EM_BLOCK_ENTRIES`` (sequence x step x state) entries,
    so the E-step's ``(n_b, T_b, K)`` arrays stay bounded however many
    sequences there are. ``T_b >= 2`` so the forward and backward scans are
    never empty; the padding is exact (see :func:`_forward_backward`)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    groups, group = [], []
    for i in order:
        t_b = max(len(seqs[i]), 2)  # the longest so far: sorted ascending
        if group and (len(group) + 1) * t_b * k > _EM_BLOCK_ENTRIES:
            groups.append(group)
            group = []
        group.append(i)
    groups.append(group)
    batches = []
    for group in groups:
        lengths = np.array([len(seqs[i]) for i in group])
        t_b = max(int(lengths.max()), 2)
        x = np.zeros((len(group), t_b, seqs[group[0]].shape[1]))
        for row, i in enumerate(group):
            x[row, :lengths[row]] = seqs[i]
        batches.append((tf.constant(x, tf.float64), tf.constant(np.arange(t_b)[None, :] < lengths[:, None])))
    return batches


def _distinct_rows(points: np.ndarray, k: int, rng) -> np.ndarray:
    """Indices of ``k`` random points, distinct values first (repeats only if too few)."""
    order = rng.permutation(len(points))
    _, first = np.unique(points[order], axis=0, return_index=True)
    distinct = order[np.sort(first)]
    if len(distinct) >= k:
        return distinct[:k]
    extra = np.setdiff1d(order, distinct, assume_unique=True)[:k - len(distinct)]
    return np.concatenate([distinct, extra])


def _kmeans(points: np.ndarray, k: int, rng) -> np.ndarray:
    """``(k, dim)`` k-means centroids: k-means++ seeding then Lloyd iterations,
    on a random subset of at most ``_KMEANS_MAX_POINTS`` points."""
    if len(points) > _KMEANS_MAX_POINTS:
        points = points[rng.choice(len(points), _KMEANS_MAX_POINTS, replace=False)]
    n = len(points)
    p2 = np.einsum("ij,ij->i", points, points)

    def sq_dist(c):
        return np.maximum(p2[:, None] - 2.0 * points @ c.T + np.einsum("ij,ij->i", c, c)[None], 0.0)

    centers = [points[rng.integers(n)]]
    closest = sq_dist(np.array(centers))[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        # All points coincide with a centre: any point will do (fewer distinct points than k).
        j = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centers.append(points[j])
        closest = np.minimum(closest, sq_dist(points[j][None])[:, 0])
    centers = np.array(centers)
    for _ in range(_KMEANS_ITERS):
        labels = sq_dist(centers).argmin(1)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, points)
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        if np.allclose(new, centers):
            break
        centers = new
    return centers


def _as_numeric(value, name: str) -> np.ndarray:
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric array (sequences of different lengths go in a list "
                         f"of arrays), got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _as_finite(value, shape, name: str) -> np.ndarray:
    arr = _as_numeric(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr


def _as_log_probs(value, shape, name: str) -> np.ndarray:
    p = _as_finite(value, shape, name)
    if np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        raise ValueError(f"{name} must be non-negative and sum to 1 (along the last axis), "
                         f"got sums {np.round(p.sum(-1), 6)}")
    p = np.maximum(p, _MIN_PROB)
    return np.log(p / p.sum(-1, keepdims=True))
