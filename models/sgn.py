"""SGN: a Simple Generative Network (SGN paper).

One generator ``F(z; w)`` trained on the Wang-Kulkarni-Verdú k-NN estimate of
``KL(p_x || p_y)``. For each data point ``x_i`` of a batch of ``B``, ``y_m`` is
its k-th nearest neighbour among a pool of ``N`` generated points
``y_l = F(z_l)``, and the per-point goal is (SGN eq. 6)

    D^i = log ||y_m - x_i||^2 - log ||x_n - x_i||^2

where ``x_n`` is the k-th nearest neighbour of ``x_i`` in the batch without
itself. Only the first term depends on ``w``; the loss is its batch mean and
the update is SGD on the gradient divided by its norm (the paper's
"normalized goal function derivative", SGN §3).

The step done efficiently: the pool is generated without a tape (only the
argmin needs it), the neighbour index is a constant, and the generator is run
again *with* a tape on the ``B`` selected codes only, so the backward pass
costs O(B), not O(N).

``search="candidates"`` is the scalable path (issue 3, "scale beyond O(N)"):
exact search costs one generator pass over all N codes plus a ``B x N x d``
distance product every step. Instead, every ``refresh_every`` steps the pool
(codes drawn from a seed, so nothing N-sized is stored but the index) is
generated once and projected on the top ``projection_dim`` principal
directions of the data batch and the pool. Each step searches that stale, low-dimensional
index for ``candidates`` neighbours per data point, regenerates only the
distinct candidates with the *current* weights, and re-ranks them exactly.
Every ``recall_every`` steps the exact nearest neighbour under the current
weights is computed too and the recall is logged as ``knn_recall``. It is
measured on the last step before an index rebuild, where the index is
stalest, so it is a lower bound on the recall over a refresh period (right
after a rebuild the index matches the weights and the recall is ~1).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfgen import ops
from tfgen.models.base import GenerativeModel

SEARCHES = ("exact", "candidates")
LATENT_POOLS = ("fresh", "fixed")
NORMALIZATIONS = ("global", "layer", None)


def _flat(x):
    return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])


def _sq_dist_rows(a, b):
    """``||a_i - b_i||^2`` in difference form: exact for the loss (the matmul
    form's cancellation is fine for ranking, not for ``log`` of a small value)."""
    return tf.reduce_sum(tf.square(a - b), axis=-1)


class _PoolIndex:
    """The candidate path's state: the pool's projected outputs at the last
    refresh. A plain object, so Keras does not save it with the weights (it is
    ``N x projection_dim`` floats); checkpoints carry it through
    ``SGN.checkpoint_state``. Under ``tf.distribute`` each replica computes the
    same values, so the variables are per-replica (ON_READ) and written
    without cross-replica synchronisation."""

    def __init__(self, padded_size, data_dim, projection_dim, seed):
        kw = {}
        if tf.distribute.has_strategy():
            kw = dict(synchronization=tf.VariableSynchronization.ON_READ,
                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.period = tf.Variable(tf.constant(-1, tf.int64), trainable=False, name="period", **kw)
        self.mean = tf.Variable(tf.zeros([data_dim]), trainable=False, name="mean", **kw)
        # a random orthonormal start for the subspace iteration (seeded)
        start = tf.linalg.qr(tf.random.stateless_normal([data_dim, projection_dim], seed=[seed, 1]))[0]
        self.basis = tf.Variable(start, trainable=False, name="basis", **kw)
        # one row per pool point (padded to whole blocks): [-2 Py, ||Py||^2 + ||P'y||^2]
        self.rows = tf.Variable(tf.zeros([padded_size, projection_dim + 1]), trainable=False,
                                name="rows", **kw)


@keras.saving.register_keras_serializable(package="tfgen")
class SGN(GenerativeModel):
    """SGN (SGN paper, eq. 3-6 and §3).

    Args:
      generator: codes -> data (the paper: ``100 -> 300 (5 tanh) -> 784``).
      prior: the source (``Uniform(100, 0, 1)`` or ``BinaryMeanMixture(100, 32, 0.1)``).
      pool_size: N, generated points searched per step (paper: 1000, 5000).
      k: which neighbour (paper: k = 1; k = 2 was worse).
      latent_pool: ``"fresh"`` codes every step (the paper: "a full y sample"
        after each update) or ``"fixed"``, one pool of codes for the whole run.
      normalize_gradient: ``"global"`` (divide by the global L2 norm of the
        whole gradient: the paper's normalized derivative), ``"layer"`` (each
        variable's gradient by its own norm) or None (plain gradient).
      search: ``"exact"`` (the paper) or ``"candidates"`` (see module docstring;
        it searches exactly when ``pool_size`` is no larger than the batch).
      candidates, projection_dim, refresh_every, power_iterations, recall_every:
        the candidate path: candidates per data point, dimension of the
        index, steps between index rebuilds, subspace-iteration steps per
        rebuild (the projection tracks the principal subspace of data and
        pool), steps between exact recall measurements (rounded to whole
        refresh periods; each on a period's last, stalest step).
      monitor_every: steps between evaluations of the data-to-data term of
        ``D^i`` for the ``divergence`` metric (a ``B x B`` search; 1 = every step).
      chunk_size: query rows per block of the exact search (bounds memory to
        ``chunk_size x N`` distances); pool_chunk: codes per generator call
        when the pool is generated.
      eps: added to squared distances inside ``log`` (duplicates).
    """

    def __init__(self, generator, prior, *, pool_size: int = 1000, k: int = 1,
                 latent_pool: str = "fresh", normalize_gradient: str | None = "global",
                 search: str = "exact", candidates: int = 10, projection_dim: int = 64,
                 refresh_every: int = 5, power_iterations: int = 2, recall_every: int = 50,
                 monitor_every: int = 10,
                 chunk_size: int = 1000, pool_chunk: int = 10_000, eps: float = 1e-12,
                 seed: int = 0, **kwargs):
        super().__init__(generator, prior, seed=seed, **kwargs)
        positive = dict(pool_size=pool_size, k=k, candidates=candidates,
                        projection_dim=projection_dim, refresh_every=refresh_every,
                        power_iterations=power_iterations,
                        recall_every=recall_every, monitor_every=monitor_every,
                        chunk_size=chunk_size, pool_chunk=pool_chunk)
        for name, value in positive.items():
            if int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if k > pool_size:
            raise ValueError(f"k={k} needs a pool of at least k points, got pool_size={pool_size}")
        if latent_pool not in LATENT_POOLS:
            raise ValueError(f"latent_pool must be one of {LATENT_POOLS}, got {latent_pool!r}")
        if normalize_gradient not in NORMALIZATIONS:
            raise ValueError(f"normalize_gradient must be one of {NORMALIZATIONS}, got {normalize_gradient!r}")
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
        if search == "candidates" and not k <= candidates <= pool_size:
            raise ValueError(f"candidates={candidates} must be at least k={k} and at most "
                             f"pool_size={pool_size}")
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        self.pool_size, self.k = int(pool_size), int(k)
        self.latent_pool, self.normalize_gradient, self.search = latent_pool, normalize_gradient, search
        self.candidates, self.refresh_every = int(candidates), int(refresh_every)
        self.power_iterations = int(power_iterations)
        self.recall_every, self.monitor_every = int(recall_every), int(monitor_every)
        self.chunk_size, self.pool_chunk, self.eps = int(chunk_size), int(pool_chunk), float(eps)
        self.data_dim = 1
        for s in self.data_shape:
            self.data_dim *= int(s)
        self.requested_projection_dim = int(projection_dim)
        self.projection_dim = min(int(projection_dim), self.data_dim)
        trackers = ["loss", "divergence"]
        if search == "candidates":
            trackers.append("knn_recall")
            # object.__setattr__: keep the index out of Keras' weight tracking
            # candidates are found block by block: the k smallest scores lie in
            # the k blocks with the smallest minima, so a row of N scores costs
            # one pass (the block minima) and two small top_k's
            self._block = max(1, int(round((self.pool_size / self.candidates) ** 0.5)))
            self._padded = -(-self.pool_size // self._block) * self._block
            object.__setattr__(self, "_index", _PoolIndex(self._padded, self.data_dim,
                                                          self.projection_dim, self.seed))
        self._declare_trackers(*trackers)

    # ---- pieces -----------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        """Extra state a training checkpoint must hold for an exact resume."""
        if self.search != "candidates":
            return {}
        i = self._index
        return {"sgn_index_period": i.period, "sgn_index_mean": i.mean,
                "sgn_index_basis": i.basis, "sgn_index_rows": i.rows}

    def _pool_codes(self, period):
        """The N codes of the pool. ``fresh``: a function of the seed and
        ``period`` (the step, or the index's refresh period); ``fixed``: of the
        seed only. Every replica draws the same codes."""
        if self.latent_pool == "fixed":
            period = tf.zeros_like(period)
        seed = tf.stack([tf.constant(self.seed * 7919 + 17, tf.int32), tf.cast(period, tf.int32)])
        return self.prior.sample(self.pool_size, seed=seed)

    def _generate(self, codes):
        """Generator outputs as ``(n, d)`` rows, in blocks of ``pool_chunk`` codes."""
        fn = lambda c: _flat(self.generator(c, training=False))  # noqa: E731
        return ops.chunked_row_reduce(fn, codes, self.pool_chunk)

    def _generate_pool(self, codes):
        """The whole pool's outputs, each replica generating its share (then gathered)."""
        ctx, n = self._replicas()
        if n == 1 or self.pool_size % n:
            return self._generate(codes)
        share = self.pool_size // n
        start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * share
        pool = self._gather(self._generate(codes[start:start + share]))
        return tf.ensure_shape(pool, [self.pool_size, self.data_dim])

    def _kth_nearest(self, queries, database):
        """Index of the k-th nearest row of ``database`` for each query: exact
        search through ``tfgen.ops.knn`` (matmul form, query blocks of
        ``chunk_size``, so memory is ``chunk_size x N``)."""
        indices, _ = ops.ExactKNN(self.chunk_size).fit(database).search(queries, self.k)
        return indices[:, self.k - 1]

    def _rho(self, x_global):
        """``||x_n - x_i||^2`` with ``x_n`` the k-th neighbour of ``x_i`` in the
        global batch without ``x_i`` (SGN eq. 4a; monitoring only)."""
        d = ops.pairwise_sq_distances(x_global)
        d = tf.linalg.set_diag(d, tf.fill(tf.shape(d)[:1], tf.constant(float("inf"), d.dtype)))
        if self.k == 1:
            return tf.reduce_min(d, axis=1)
        return -tf.math.top_k(-d, k=self.k).values[:, self.k - 1]

    # ---- the candidate path -----------------------------------------------------
    def _refresh_index(self, x_global, period):
        codes = self._pool_codes(period)
        # every replica generates the whole pool: this runs inside tf.cond,
        # where collectives (the all-gather of _generate_pool) are not allowed
        pool = self._generate(codes)
        # principal directions of the data and of (a batch-sized part of) the
        # pool together: early in training the generated points vary in
        # directions the data do not, and those must be seen to be ranked
        sample = tf.concat([x_global, pool[:tf.shape(x_global)[0]]], axis=0)
        mean = tf.reduce_mean(sample, axis=0)
        centered = sample - mean
        # Subspace (power) iteration warm-started from the last basis: the
        # subspace moves slowly, so two products with the sample and a QR
        # track it for ~5% of a full eigendecomposition (157 ms at d = 784).
        i = self._index
        basis = i.basis
        for _ in range(self.power_iterations):
            basis, _ = tf.linalg.qr(tf.matmul(centered, tf.matmul(centered, basis), transpose_a=True))
        projected = tf.matmul(pool - mean, basis)
        # ||x - y||^2 = ||P(x - y)||^2 + ||P'x||^2 + ||P'y||^2 - 2 <P'x, P'y> with P' the
        # orthogonal complement. Ranking the pool for one query, ||Px||^2 + ||P'x||^2
        # is a constant and only the cross term of the complement is dropped, so
        #   score(x, y) = -2 <Px, Py> + ||Py||^2 + ||P'y||^2 = [Px, 1] . [-2 Py, ||y - mean||^2]
        # is one matmul with nothing else to add (the B x N product is memory bound).
        norm2 = tf.reduce_sum(tf.square(pool - mean), 1, keepdims=True)
        rows = tf.concat([-2.0 * projected, norm2], axis=1)
        # padding rows score 1e30: they never beat a real pool point
        pad = self._padded - self.pool_size
        rows = tf.concat([rows, tf.concat([tf.zeros([pad, self.projection_dim]),
                                           tf.fill([pad, 1], 1e30)], 1)], 0)
        return tf.group(i.mean.assign(mean), i.basis.assign(basis), i.rows.assign(rows),
                        i.period.assign(tf.cast(period, tf.int64)))

    def _candidate_search(self, x, x_global, step):
        period = step // self.refresh_every
        i = self._index
        refresh = tf.cond(tf.not_equal(period, i.period),
                          lambda: self._refresh_index(x_global, period), tf.no_op)
        with tf.control_dependencies([refresh]):
            codes = self._pool_codes(period)
            mean, basis, rows = tf.identity(i.mean), tf.identity(i.basis), tf.identity(i.rows)
        q = tf.matmul(x - mean, basis)
        q = tf.concat([q, tf.ones_like(q[:, :1])], axis=1)
        c, g = self.candidates, self._block

        def block(qb):
            scores = tf.matmul(qb, rows, transpose_b=True)             # (b, N padded)
            if g == 1:
                return tf.math.top_k(-scores, c).indices
            b = tf.shape(qb)[0]
            blocks = tf.reshape(scores, [b, self._padded // g, g])
            best = tf.math.top_k(-tf.reduce_min(blocks, axis=2), c).indices          # (b, c)
            inside = tf.reshape(tf.gather(blocks, best, batch_dims=1), [b, c * g])
            pos = tf.math.top_k(-inside, c).indices
            return tf.gather(best, pos // g, batch_dims=1) * g + pos % g

        cand = tf.reshape(ops.chunked_row_reduce(block, q, self.chunk_size), [-1, c])  # (B, C)
        # Regenerate each distinct candidate once, with the current weights.
        unique, where = tf.unique(tf.reshape(cand, [-1]))
        y_unique = self._generate(tf.gather(codes, unique))
        y_cand = tf.reshape(tf.gather(y_unique, where), [tf.shape(x)[0], self.candidates, -1])
        # exact re-ranking; ||x||^2 is the same for all of a row's candidates
        d_cand = tf.reduce_sum(tf.square(y_cand), -1) - 2.0 * tf.einsum("bd,bcd->bc", x, y_cand)
        if self.k == 1:
            pick = tf.argmin(d_cand, axis=1, output_type=tf.int32)
        else:
            pick = tf.math.top_k(-d_cand, self.k).indices[:, self.k - 1]
        chosen = tf.gather(cand, pick, batch_dims=1)
        return codes, chosen

    def _exact_this_step(self, x_global) -> bool:
        """Exact search for ``search="exact"``, and for the candidate path when the
        pool is no larger than the (global) batch, the paper's N = B setting:
        there the candidates of B data points cover the whole pool, every pool
        point is regenerated anyway, and the re-ranking costs what the exact
        distance product costs (bench/sgn_scaling.py: 0.93x at N = B = 1000)."""
        if self.search == "exact":
            return True
        batch = x_global.shape[0]
        return batch is not None and self.pool_size <= batch

    def _recall_step(self, step):
        """True on the last step of every m-th refresh period (m =
        recall_every // refresh_every, at least 1): the stalest index."""
        r = self.refresh_every
        every = max(1, self.recall_every // r)
        last_of_period = tf.equal(step % r, r - 1)
        return tf.logical_and(last_of_period, tf.equal((step // r) % every, 0))

    def _recall(self, x, codes, chosen):
        """Fraction of queries whose chosen neighbour is an exact k-th nearest
        neighbour under the current weights (ties count as found)."""
        pool = self._generate(codes)  # inside tf.cond: no collectives
        exact = self._kth_nearest(x, pool)
        d_exact = _sq_dist_rows(x, tf.gather(pool, exact))
        d_chosen = _sq_dist_rows(x, tf.gather(pool, chosen))
        found = d_chosen <= d_exact * (1.0 + 1e-5) + 1e-6
        return tf.reduce_mean(tf.cast(found, tf.float32))

    # ---- the step -----------------------------------------------------------------
    def _normalized(self, grads):
        if self.normalize_gradient is None:
            return grads
        ctx, n = self._replicas()
        if n > 1:
            # the norm is the norm of the *summed* gradient of all replicas
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.normalize_gradient == "global":
            norm = tf.maximum(tf.linalg.global_norm(grads), 1e-12)
            grads = [g / norm for g in grads]
        else:
            grads = [g / tf.maximum(tf.norm(g), 1e-12) for g in grads]
        # the optimizer sums the replicas' (now identical) gradients again
        grads = grads if n == 1 else [g / n for g in grads]
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # mixed_float16: the gradients came from the scaled loss and the optimizer will
            # divide by the scale; normalising removed it, so put it back (an overflow is
            # still non-finite here, and the optimizer skips that step and lowers the scale).
            grads = [g * tf.cast(self.optimizer.scale_loss(1.0), g.dtype) for g in grads]
        return grads

    def train_step(self, data):
        x = _flat(self._unpack(data))
        x_global = self._gather(x)
        step = tf.cast(self.optimizer.iterations, tf.int64)
        logs = {}
        if self._exact_this_step(x_global):
            codes = self._pool_codes(step)
            chosen = self._kth_nearest(x, self._generate_pool(codes))
            if self.search == "candidates":
                logs["knn_recall"] = (1.0, 1.0)  # exact search: recall 1 by definition
        else:
            codes, chosen = self._candidate_search(x, x_global, step)
            measure = self._recall_step(step)
            recall = tf.cond(measure, lambda: self._recall(x, codes, chosen), lambda: 1.0)
            recall = tf.reduce_mean(self._gather(tf.reshape(recall, [1])))
            logs["knn_recall"] = (recall, tf.cast(measure, tf.float32))
        z = tf.gather(codes, chosen)
        with tf.GradientTape() as tape:
            y = _flat(self.generator(z, training=True))
            log_nu = tf.math.log(_sq_dist_rows(y, x) + self.eps)       # log ||y_m - x_i||^2
            loss = tf.reduce_mean(self._gather(log_nu))
            scaled_loss = self.optimizer.scale_loss(self._replica_scale(loss))
        variables = self.generator.trainable_variables
        grads = self._normalized(tape.gradient(scaled_loss, variables))
        self.optimizer.apply_gradients(zip(grads, variables))
        # SGN eq. 6 averaged: the data-to-data term only moves the curve
        monitor = tf.equal(step % self.monitor_every, 0)
        log_rho = tf.cond(monitor, lambda: tf.reduce_mean(tf.math.log(self._rho(x_global) + self.eps)),
                          lambda: 0.0)
        logs["divergence"] = (loss - log_rho, tf.cast(monitor, tf.float32))
        self._trackers["loss"].update_state(loss)
        for name, (value, weight) in logs.items():
            self._trackers[name].update_state(value, sample_weight=weight)
        return {name: t.result() for name, t in self._trackers.items()}

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "k": self.k,
                "latent_pool": self.latent_pool, "normalize_gradient": self.normalize_gradient,
                "search": self.search, "candidates": self.candidates,
                "projection_dim": self.requested_projection_dim,
                "refresh_every": self.refresh_every,
                "power_iterations": self.power_iterations, "recall_every": self.recall_every,
                "monitor_every": self.monitor_every, "chunk_size": self.chunk_size,
                "pool_chunk": self.pool_chunk, "eps": self.eps}
