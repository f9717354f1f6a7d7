"""k-nearest-neighbour search behind one interface: an exact TensorFlow backend and ScaNN.

SGN's objective (METHODS.md 1), the WKV k-NN KL divergence (METHODS.md 6(b)) and
k-NN precision/recall all need, for each query, the indices of and the squared
Euclidean distances to its k nearest database points. Both backends here answer
``search(queries, k) -> (indices int32 (Q, k), sq_distances float32 (Q, k))``,
sorted by increasing distance, so a caller switches backend with one argument
and can measure what the approximate one loses with :func:`recall`.

* :class:`ExactKNN` is the default, because every protocol in METHODS.md was
  defined with exact search. It uses the matmul form of the distance (one
  ``(Q, d) x (d, N)`` product per block instead of a ``(Q, N, d)`` broadcast)
  and processes the queries in blocks so memory is ``chunk_size x N``.
* :class:`ScannKNN` wraps ScaNN (Guo et al. 2020) through its NumPy API, for
  databases where the exact ``Q x N`` work is too slow (SGN paper §2 suggests
  approximate search for N ~ 1e5; METHODS.md 1, ambiguity 5). ScaNN is
  imported lazily, so tfgen works without it.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import tensorflow as tf

from tfgen.ops.distances import pairwise_sq_distances

BACKENDS = ("exact", "scann")
SCANN_MODES = ("brute_force", "tree_ah")


class NotFittedError(ValueError, RuntimeError):
    """``search`` was called before ``fit`` (a ValueError, like every other bad call here)."""


# --- input checks ---------------------------------------------------------------

def _as_rows(x, name: str) -> tf.Tensor:
    """``(N, d)`` or images ``(N, H, W, C)`` -> float32 rows ``(N, d)``, checked."""
    try:
        x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array of shape (N, d) or (N, H, W, C); {e}") from None
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype.name}")
    rank = x.shape.rank
    if rank is None or rank < 2:
        raise ValueError(f"{name} must have shape (N, d) or (N, H, W, C) (rank >= 2), "
                         f"got shape {x.shape}")
    x = tf.cast(x, tf.float32)
    if rank > 2:
        features = x.shape[1:].num_elements()  # None when a trailing dim is unknown
        if features == 0:
            raise ValueError(f"{name} has zero features per point (shape {x.shape})")
        x = tf.reshape(x, [-1, features] if features is not None else [tf.shape(x)[0], -1])
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero features per point (shape {x.shape})")
    if tf.executing_eagerly() and not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_k(k, n_database: int, exclude_self: bool) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if n_database is None:  # inside a trace with an unknown database size: checked at run time
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        return k
    limit = n_database - 1 if exclude_self else n_database
    if not 1 <= k <= limit:
        what = (f"the database size minus one ({n_database} - 1 = {limit}), since exclude_self "
                "leaves each point out of its own search" if exclude_self
                else f"the database size ({n_database})")
        raise ValueError(f"k must satisfy 1 <= k <= {what}; got k={k}")
    return k


def _check_queries(queries, n_database: int, d: int, exclude_self: bool) -> tf.Tensor:
    q = _as_rows(queries, "queries")
    if None not in (q.shape[1], d) and q.shape[1] != d:
        raise ValueError(f"queries have {q.shape[1]} features per point but the database has {d}")
    if exclude_self and None not in (q.shape[0], n_database) and q.shape[0] != n_database:
        raise ValueError("exclude_self=True means the queries are the database itself (same "
                         f"points, same order), but got {q.shape[0]} queries for a database of "
                         f"{n_database} points")
    return q


def _check_database(database, allow_unknown_rows: bool = False) -> tf.Tensor:
    db = _as_rows(database, "database")
    if db.shape[0] is None and not allow_unknown_rows:
        raise ValueError("database must have a known number of rows")
    if db.shape[0] == 0:
        raise ValueError("database is empty: fit needs at least one point")
    return db


# --- exact backend --------------------------------------------------------------

def smallest_k(d, k):
    """The ``k`` smallest entries of each row of ``d (Q, N)``: ``(values, indices)``,
    sorted increasing; exact (up to the order of ties).

    ``tf.math.top_k`` on CPU costs ~7 ns per entry whatever k is (400 ms for
    1000 x 60,000 at k = 10, more than the distance matmul), so rows are cut
    into blocks of ``g ~ sqrt(N / k)`` columns: the k smallest entries lie in
    the k blocks with the smallest minima (a block outside them has k block
    minima at or below its own minimum, so none of its entries can be among
    the k smallest), so ``top_k`` only ever sees ``N / g`` block minima and
    ``k * g`` candidates. k = 1 is a plain ``argmin``. Works with tensor ``k``.
    """
    d = tf.convert_to_tensor(d)
    k = tf.convert_to_tensor(k, tf.int32)
    n = tf.shape(d)[1]

    def one():
        idx = tf.argmin(d, axis=1, output_type=tf.int32)
        return tf.gather(d, idx, batch_dims=1)[:, None], idx[:, None]

    def plain():
        neg, idx = tf.math.top_k(-d, k=k, sorted=True)
        return -neg, idx

    def blocked():
        q = tf.shape(d)[0]
        g = tf.maximum(tf.cast(tf.sqrt(tf.cast(n, tf.float32) / tf.cast(k, tf.float32)), tf.int32), 1)
        n_blocks = n // g
        head = tf.reshape(d[:, :n_blocks * g], [q, n_blocks, g])
        _, blocks = tf.math.top_k(-tf.reduce_min(head, axis=2), k=k)            # (Q, k)
        cand_idx = tf.reshape(blocks[:, :, None] * g + tf.range(g)[None, None, :], [q, -1])
        # the columns past the last whole block are always candidates
        tail_idx = tf.tile(tf.range(n_blocks * g, n)[None, :], [q, 1])
        cand_idx = tf.concat([cand_idx, tail_idx], axis=1)
        cand = tf.gather(d, cand_idx, batch_dims=1)
        neg, pos = tf.math.top_k(-cand, k=k, sorted=True)
        return -neg, tf.gather(cand_idx, pos, batch_dims=1)

    # blocking pays when the row is long compared with k
    return tf.cond(tf.equal(k, 1), one,
                   lambda: tf.cond(n >= 64 * k, blocked, plain))


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),   # query block
    tf.TensorSpec([None, None], tf.float32),   # database
    tf.TensorSpec([], tf.int32),               # k
    tf.TensorSpec([], tf.int32),               # row offset of the block among all queries
    tf.TensorSpec([], tf.bool),                # exclude_self
])
def _exact_block(q, database, k, offset, exclude_self):
    """k smallest squared distances of one query block (:func:`smallest_k`).

    One traced graph serves every block size, k and flag (all are tensors in
    the signature), so a search costs one trace per process, not one per call.
    """
    d = pairwise_sq_distances(q, database)  # matmul form, clamped at 0

    def without_self():
        rows = tf.range(tf.shape(q)[0]) + offset
        own = tf.equal(rows[:, None], tf.range(tf.shape(database)[0])[None, :])
        # +inf, not a large number: a point can never be its own neighbour,
        # even when every other distance is huge.
        return tf.where(own, tf.constant(np.inf, tf.float32), d)

    # a cond, so the plain search (SGN's hot path) skips two passes over Q x N
    d = tf.cond(exclude_self, without_self, lambda: d)
    dist, idx = smallest_k(d, k)
    return idx, dist


class ExactKNN:
    """Exact k-NN in TensorFlow, in matmul form, over query blocks of ``chunk_size``.

    ``||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x`` turns the distance matrix into one
    matmul (fast on CPU and accelerators); rounding can make it slightly
    negative for near-identical points, so it is clamped at 0
    (:func:`tfgen.ops.pairwise_sq_distances`). The price of the matmul form is
    float32 cancellation: a distance is accurate to about ``1e-7 * ||q||^2``
    in absolute terms, which can reorder neighbours that are that close to a
    tie. Queries are processed ``chunk_size`` at a time, so the largest
    temporary is ``chunk_size x N`` floats rather than ``Q x N``.
    """

    def __init__(self, chunk_size: int = 1024):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
                or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.chunk_size = int(chunk_size)
        self.database = None

    def fit(self, database) -> "ExactKNN":
        """Store the database ``(N, d)`` (images ``(N, H, W, C)`` are flattened) as float32."""
        # an unknown row count is fine inside a trace (an all-gathered pool)
        self.database = _check_database(database, allow_unknown_rows=not tf.executing_eagerly())
        return self

    @property
    def size(self) -> int | None:
        """Rows in the database (None inside a trace where the count is unknown)."""
        if self.database is None:
            return 0
        n = self.database.shape[0]
        return None if n is None else int(n)

    def search(self, queries, k: int, exclude_self: bool = False):
        """The ``k`` nearest database points of each query.

        Args:
          queries: ``(Q, d)`` or ``(Q, H, W, C)``.
          k: neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
          exclude_self: the queries ARE the database (``Q == N``, same order)
            and query ``i`` may not return index ``i`` (leave-one-out search,
            as for WKV's rho_k and SGN's monitor).

        Returns:
          ``(indices int32 (Q, k), sq_distances float32 (Q, k))``, increasing distance.
        """
        if self.database is None:
            raise NotFittedError("ExactKNN.search called before fit(database)")
        k = _check_k(k, self.size, exclude_self)
        q = _check_queries(queries, self.size, self.database.shape[1], exclude_self)
        n_q = q.shape[0]
        if n_q is None:
            return self._search_dynamic(q, k, exclude_self)
        if n_q == 0:
            return tf.zeros([0, k], tf.int32), tf.zeros([0, k], tf.float32)
        flag = tf.constant(bool(exclude_self))
        kk = tf.constant(k, tf.int32)
        parts = [_exact_block(q[s:s + self.chunk_size], self.database, kk,
                              tf.constant(s, tf.int32), flag)
                 for s in range(0, n_q, self.chunk_size)]
        return (tf.concat([p[0] for p in parts], 0), tf.concat([p[1] for p in parts], 0))

    def _search_dynamic(self, q, k, exclude_self):
        """Same blocks under a ``tf.function`` trace with an unknown query count."""
        n_q = tf.shape(q)[0]
        if exclude_self:
            tf.debugging.assert_equal(n_q, self.size, message="exclude_self=True needs Q == N")
        starts = tf.range(0, n_q, self.chunk_size)
        ta_i = tf.TensorArray(tf.int32, size=tf.size(starts), infer_shape=False)
        ta_d = tf.TensorArray(tf.float32, size=tf.size(starts), infer_shape=False)

        def body(j, ta_i, ta_d):
            s = starts[j]
            idx, dist = _exact_block(q[s:s + self.chunk_size], self.database,
                                     tf.constant(k, tf.int32), s, tf.constant(bool(exclude_self)))
            return j + 1, ta_i.write(j, idx), ta_d.write(j, dist)

        _, ta_i, ta_d = tf.while_loop(lambda j, *_: j < tf.size(starts), body, (0, ta_i, ta_d))
        idx, dist = ta_i.concat(), ta_d.concat()
        return tf.reshape(idx, [-1, k]), tf.reshape(dist, [-1, k])


# --- ScaNN backend --------------------------------------------------------------

def _import_scann():
    """ScaNN's NumPy (pybind) API; an ImportError when ScaNN is not installed."""
    from scann.scann_ops.py import scann_ops_pybind  # noqa: PLC0415 (lazy on purpose)
    return scann_ops_pybind


class ScannKNN:
    """k-NN with ScaNN's NumPy API (``scann.scann_ops.py.scann_ops_pybind``).

    Modes:
      * ``"brute_force"``: ScaNN's exact float32 scan; recall 1 up to ties.
      * ``"tree_ah"``: a k-means tree of ``num_leaves`` partitions, of which
        ``num_leaves_to_search`` nearest ones are scanned per query with
        anisotropic (product) quantisation in blocks of ``dimensions_per_block``
        dimensions; the best ``reorder_k`` candidates are then rescored exactly.
        Recall grows with ``num_leaves_to_search`` and ``reorder_k``; measure it
        with :func:`recall` against :class:`ExactKNN`.

    Distances: ScaNN is built with its ``squared_l2`` measure, so its scores are
    squared L2 distances, but approximate ones (quantised in ``tree_ah``; from
    an unclamped matmul form in ``brute_force``, which can be slightly
    negative). The returned ``sq_distances`` are therefore recomputed exactly
    (float32, difference form) for the returned ids, and each row is re-sorted
    by them, so both backends give the same kind of number.

    Args:
      mode: ``"brute_force"`` or ``"tree_ah"``.
      num_leaves: partitions of the tree; default ``round(sqrt(N))``.
      num_leaves_to_search: partitions scanned per query; default
        ``ceil(num_leaves * max(0.1, 2000 / N))``: a tenth of them, or all
        of them for a database of up to 2000 points.
      training_sample_size: points used to train the tree and the quantiser;
        default all ``N``.
      dimensions_per_block: dimensions per product-quantisation block (ScaNN
        recommends 2); capped at ``d``.
      anisotropic_quantization_threshold: ScaNN's score-aware quantisation
        threshold. It helps maximum inner product search; for the squared L2
        measure used here ScaNN's guidance is to leave it off, hence NaN.
      reorder_k: candidates rescored exactly; default ``max(50 * k, 250)``
        (capped at ``N``), chosen at search time because it must exceed k.
      seed: seeds ScaNN's k-means (tree and quantiser) and sampling, which the
        ScaNN builder does not expose: it is written into the config's
        ``clustering_seed``/``sampling_seed`` fields, and the tree uses k-means++
        initialisation, the one that honours the seed; same seed, same index.
      chunk_size: queries per block when the exact distances of the returned
        ids are recomputed (memory ``chunk_size x k x d``).
    """

    def __init__(self, mode: str = "tree_ah", num_leaves: int | None = None,
                 num_leaves_to_search: int | None = None,
                 training_sample_size: int | None = None, dimensions_per_block: int = 2,
                 anisotropic_quantization_threshold: float = float("nan"),
                 reorder_k: int | None = None, seed: int = 0, chunk_size: int = 1024):
        if mode not in SCANN_MODES:
            raise ValueError(f"mode must be one of {SCANN_MODES}, got {mode!r}")
        for name, value in [("num_leaves", num_leaves), ("num_leaves_to_search", num_leaves_to_search),
                            ("training_sample_size", training_sample_size), ("reorder_k", reorder_k),
                            ("dimensions_per_block", dimensions_per_block),
                            ("chunk_size", chunk_size)]:
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self._scann = _import_scann()
        self.mode = mode
        self.num_leaves = num_leaves
        self.num_leaves_to_search = num_leaves_to_search
        self.training_sample_size = training_sample_size
        self.dimensions_per_block = dimensions_per_block
        self.anisotropic_quantization_threshold = anisotropic_quantization_threshold
        self.reorder_k = reorder_k
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        self.database = None
        self._searcher = None
        self._leaves_to_search = None

    @property
    def size(self) -> int:
        return 0 if self.database is None else int(self.database.shape[0])

    def fit(self, database) -> "ScannKNN":
        """Build the ScaNN searcher over ``(N, d)`` (images flattened)."""
        db = _check_database(database).numpy()
        n, d = db.shape
        builder = self._scann.builder(db, 10, "squared_l2")  # k is set per search
        if self.mode == "brute_force":
            builder = builder.score_brute_force()
        else:
            if n < 16:
                raise ValueError(f"mode='tree_ah' needs at least 16 database points (the quantiser "
                                 f"trains 16 centres per block), got {n}; use mode='brute_force'")
            leaves = self.num_leaves or max(1, int(round(math.sqrt(n))))
            if leaves > n:
                raise ValueError(f"num_leaves={leaves} exceeds the database size {n}")
            # Default: a tenth of the partitions, but at least ~2000 points' worth,
            # so a small database is scanned (nearly) whole instead of losing recall.
            to_search = min(leaves, self.num_leaves_to_search
                            or max(1, math.ceil(leaves * max(0.1, 2000 / n))))
            sample = min(n, self.training_sample_size or n)
            # k-means++ initialisation: ScaNN's builder default (random_init=True)
            # draws its initial centres without the config's seed, so two
            # builds with one seed gave different trees.
            builder = builder.tree(num_leaves=leaves, num_leaves_to_search=to_search,
                                   training_sample_size=sample, random_init=False)
            builder = builder.score_ah(min(self.dimensions_per_block, d),
                                       anisotropic_quantization_threshold=
                                       self.anisotropic_quantization_threshold,
                                       training_sample_size=sample)
            builder = builder.reorder(min(n, 250))
            self._leaves_to_search = to_search
        config = builder.create_config()
        config = (config
                  .replace("partitioning {", f"partitioning {{\n clustering_seed: {self.seed}", 1)
                  .replace("asymmetric_hash {", "asymmetric_hash {\n clustering_seed: "
                           f"{self.seed + 1}\n sampling_seed: {self.seed + 1}", 1))
        self._searcher = self._scann.create_searcher(db, config)
        self.database = db
        return self

    def search(self, queries, k: int, exclude_self: bool = False):
        """Same contract as :meth:`ExactKNN.search`; runs eagerly (ScaNN is NumPy code)."""
        if self._searcher is None:
            raise NotFittedError("ScannKNN.search called before fit(database)")
        k = _check_k(k, self.size, exclude_self)
        q = _check_queries(queries, self.size, self.database.shape[1], exclude_self).numpy()
        n, n_q = self.size, q.shape[0]
        if n_q == 0:
            return tf.zeros([0, k], tf.int32), tf.zeros([0, k], tf.float32)
        want = min(n, k + 1) if exclude_self else k
        kwargs = {"final_num_neighbors": want}
        if self.mode == "tree_ah":
            kwargs["pre_reorder_num_neighbors"] = min(n, max(want, self.reorder_k or max(50 * k, 250)))
            kwargs["leaves_to_search"] = self._leaves_to_search
        idx, scores = self._searcher.search_batched_parallel(q, **kwargs)
        idx = np.asarray(idx, np.int64)
        # ScaNN pads the slots it could not fill from the leaves it searched with
        # id 0 and a NaN score: a silent wrong neighbour unless caught here.
        if idx.shape[1] < want or np.isnan(np.asarray(scores)).any() or np.any(idx >= n):
            raise RuntimeError(
                f"ScaNN found fewer than {want} neighbours for some queries: the searched leaves "
                f"hold too few points; raise num_leaves_to_search (now {self._leaves_to_search}) "
                "or lower num_leaves")
        # Exact distances for the returned ids: ScaNN's scores are quantised
        # (tree_ah) or come from an unclamped matmul form (brute_force).
        dist = self._exact_sq_distances(q, idx, self.chunk_size)
        if exclude_self:
            own = idx == np.arange(n_q)[:, None]
            # Drop the own index; where the approximate search missed it, drop the last column.
            drop = np.where(own.any(1), own.argmax(1), want - 1)
            keep = np.ones_like(own)
            keep[np.arange(n_q), drop] = False
            idx = idx[keep].reshape(n_q, want - 1)[:, :k]
            dist = dist[keep].reshape(n_q, want - 1)[:, :k]
        order = np.argsort(dist, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, 1)
        dist = np.take_along_axis(dist, order, 1)
        return tf.constant(idx, tf.int32), tf.constant(dist, tf.float32)

    def _exact_sq_distances(self, q: np.ndarray, idx: np.ndarray, block: int = 1024) -> np.ndarray:
        out = np.empty(idx.shape, np.float32)
        for s in range(0, len(q), block):
            diff = self.database[idx[s:s + block]] - q[s:s + block, None, :]
            out[s:s + block] = np.einsum("qkd,qkd->qk", diff, diff)
        return out


# --- factory, one-shot search and recall -----------------------------------------

def make_index(backend: str = "exact", **options):
    """An unfitted k-NN index: ``ExactKNN(**options)`` or ``ScannKNN(**options)``.

    Both accept ``chunk_size``. With ``backend="scann"`` and ScaNN not
    importable, warns and returns an :class:`ExactKNN` (given ``chunk_size`` if
    that option was passed; the ScaNN-only options are dropped), so code
    written for ScaNN still runs, exactly, where ScaNN is not installed.
    """
    if backend == "exact":
        return ExactKNN(**options)
    if backend == "scann":
        try:
            return ScannKNN(**options)
        except ImportError as e:
            warnings.warn(f"ScaNN is missing ({e}); the exact backend is used instead",
                          RuntimeWarning, stacklevel=2)
            return ExactKNN(**({"chunk_size": options["chunk_size"]} if "chunk_size" in options else {}))
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def search(queries, database, k: int, backend: str = "exact", exclude_self: bool = False,
           **options):
    """One-shot ``make_index(backend, **options).fit(database).search(queries, k, exclude_self)``."""
    return make_index(backend, **options).fit(database).search(queries, k, exclude_self=exclude_self)


def recall(approx_indices, exact_indices, block: int = 1024) -> float:
    """k-recall@k: the fraction of the exact k neighbours found by the approximate search.

    Per query row, ``|set(approx) & set(exact)| / k``, averaged over rows. Order
    within a row is ignored (an approximate method that finds the right
    neighbours in a slightly different order loses nothing for k-NN
    statistics), and so is which of several tied points was returned, so
    ties can cost a little recall even for an exact method.
    """
    a = np.asarray(approx_indices)
    e = np.asarray(exact_indices)
    if a.ndim != 2 or a.shape != e.shape:
        raise ValueError(f"approx_indices and exact_indices must both be (Q, k) with the same "
                         f"shape, got {a.shape} and {e.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"recall needs at least one query and one neighbour, got shape {a.shape}")
    found = 0
    for s in range(0, len(e), block):
        eb, ab = e[s:s + block], a[s:s + block]
        found += int((eb[:, :, None] == ab[:, None, :]).any(-1).sum())
    return found / e.size
