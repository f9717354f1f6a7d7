"""Tests for ``tfgen.ops.knn``: the exact backend against a NumPy float64 brute force,
ScaNN's recall against the exact backend, ``recall`` on hand-computed cases, errors."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import knn
from tfgen.ops.knn import ExactKNN, NotFittedError, make_index, recall, search


def brute_force_knn(queries, database, k, exclude_self=False):
    """Sorted k-NN by a float64 difference-form distance matrix and argsort."""
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    x = np.asarray(database, np.float64).reshape(len(database), -1)
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


def _rand(shape, seed):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def mixture(n, d, seed, n_components=20, spread=3.0):
    """Points from an equal-weight mixture of unit Gaussians whose means are N(0, spread^2 I)."""
    rng = np.random.RandomState(seed)
    means = spread * np.random.RandomState(1234).randn(n_components, d)
    return (means[rng.randint(n_components, size=n)] + rng.randn(n, d)).astype(np.float32)


# --- exact backend -----------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("seed,n_q,n_db,dim", [(0, 37, 50, 3), (1, 100, 64, 8), (2, 9, 200, 16)])
def test_exact_matches_brute_force(k, seed, n_q, n_db, dim):
    q, x = _rand((n_q, dim), seed), _rand((n_db, dim), seed + 100)
    # chunk_size 8 < Q: several blocks, the last one partial.
    idx, dist = ExactKNN(chunk_size=8).fit(x).search(q, k)
    ref_idx, ref_dist = brute_force_knn(q, x, k)
    assert idx.dtype == tf.int32 and dist.dtype == tf.float32
    assert idx.shape == (n_q, k) and dist.shape == (n_q, k)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(dist.numpy(), axis=1) >= 0)


@pytest.mark.parametrize("k", [1, 5])
def test_exact_exclude_self_matches_brute_force(k):
    x = _rand((45, 4), 3)
    idx, dist = ExactKNN(chunk_size=7).fit(x).search(x, k, exclude_self=True)
    ref_idx, ref_dist = brute_force_knn(x, x, k, exclude_self=True)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-4, atol=1e-4)
    assert not np.any(idx.numpy() == np.arange(45)[:, None])


def test_exclude_self_with_duplicates_returns_the_twin_not_itself():
    # Points 0 and 1 coincide: each one's nearest neighbour is the other at distance 0.
    x = np.array([[1.0, 2.0], [1.0, 2.0], [5.0, 5.0], [9.0, 0.0]], np.float32)
    idx, dist = ExactKNN().fit(x).search(x, 1, exclude_self=True)
    np.testing.assert_array_equal(idx.numpy()[:2, 0], [1, 0])
    np.testing.assert_array_equal(dist.numpy()[:2, 0], [0.0, 0.0])


def test_hand_values():
    # Database on a line: 0, 1, 3, 7. Query 2.5 -> 3 (0.25), 1 (2.25), 0 (6.25).
    x = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
    idx, dist = ExactKNN().fit(x).search([[2.5]], 3)
    np.testing.assert_array_equal(idx.numpy(), [[2, 1, 0]])
    np.testing.assert_allclose(dist.numpy(), [[0.25, 2.25, 6.25]], atol=1e-6)


def test_images_are_flattened():
    q, x = _rand((6, 4, 4, 1), 4), _rand((30, 4, 4, 1), 5)
    idx, dist = ExactKNN(chunk_size=4).fit(x).search(q, 3)
    ref_idx, ref_dist = brute_force_knn(q, x, 3)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-4, atol=1e-4)
    # Images against a row database of 16 features are the same search.
    idx2, _ = ExactKNN().fit(x.reshape(30, 16)).search(q, 3)
    np.testing.assert_array_equal(idx2.numpy(), ref_idx)


def test_search_inside_tf_function_with_unknown_batch():
    x, q = _rand((40, 5), 6), _rand((23, 5), 7)
    index = ExactKNN(chunk_size=6).fit(x)
    fn = tf.function(lambda qq: index.search(qq, 4),
                     input_signature=[tf.TensorSpec([None, 5], tf.float32)])
    idx, dist = fn(q)
    ref_idx, ref_dist = brute_force_knn(q, x, 4)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-4, atol=1e-4)


def test_search_function_and_factory():
    q, x = _rand((10, 3), 8), _rand((25, 3), 9)
    idx, _ = search(q, x, 2, chunk_size=3)
    np.testing.assert_array_equal(idx.numpy(), brute_force_knn(q, x, 2)[0])
    assert isinstance(make_index("exact", chunk_size=5), ExactKNN)


# --- recall ---------------------------------------------------------------------

def test_recall_hand_computed():
    exact = np.array([[0, 1, 2], [3, 4, 5]])
    # Row 0: {2, 1, 9} & {0, 1, 2} = {1, 2} -> 2/3 (order ignored); row 1: {5, 4, 3} -> 3/3.
    approx = np.array([[2, 1, 9], [5, 4, 3]])
    assert recall(approx, exact) == pytest.approx((2 / 3 + 1) / 2)
    assert recall(exact, exact) == 1.0
    assert recall(np.array([[7, 8, 9], [0, 1, 2]]), exact) == 0.0


def test_recall_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        recall(np.zeros((2, 3), int), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="same shape"):
        recall(np.zeros(3, int), np.zeros(3, int))


# --- errors -------------------------------------------------------------------------

def test_errors():
    x = _rand((10, 3), 10)
    index = ExactKNN()
    with pytest.raises(NotFittedError, match="before fit"):
        index.search(x, 1)
    with pytest.raises(ValueError, match="empty"):
        index.fit(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="rank >= 2"):
        index.fit(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.fit(np.full((4, 2), np.nan, np.float32))
    index.fit(x)
    with pytest.raises(ValueError, match="features"):
        index.search(_rand((4, 2), 11), 1)
    with pytest.raises(ValueError, match="rank >= 2"):
        index.search(x[0], 1)
    with pytest.raises(ValueError, match=r"1 <= k <= the database size \(10\)"):
        index.search(x, 11)
    with pytest.raises(ValueError, match="k must satisfy"):
        index.search(x, 0)
    with pytest.raises(ValueError, match="minus one"):
        index.search(x, 10, exclude_self=True)
    with pytest.raises(ValueError, match="queries are the database"):
        index.search(x[:5], 1, exclude_self=True)
    with pytest.raises(ValueError, match="positive integer"):
        ExactKNN(chunk_size=0)
    with pytest.raises(ValueError, match="'exact', 'scann'"):
        make_index("faiss")
    # Still usable after the rejected calls: k = N - 1 with exclude_self is allowed.
    assert index.search(x, 9, exclude_self=True)[0].shape == (10, 9)


def test_scann_missing_falls_back_to_exact_with_a_warning(monkeypatch):
    def missing():
        raise ImportError("No module named 'scann'")

    monkeypatch.setattr(knn, "_import_scann", missing)
    with pytest.warns(RuntimeWarning, match="ScaNN is missing.*exact backend"):
        index = make_index("scann", mode="tree_ah", chunk_size=4)
    assert isinstance(index, ExactKNN) and index.chunk_size == 4


# --- ScaNN backend ------------------------------------------------------------------

def test_scann_brute_force_is_exact():
    pytest.importorskip("scann")
    q, x = _rand((60, 8), 12), _rand((500, 8), 13)
    idx, dist = make_index("scann", mode="brute_force").fit(x).search(q, 5)
    ref_idx, ref_dist = brute_force_knn(q, x, 5)
    assert idx.dtype == tf.int32 and dist.dtype == tf.float32 and idx.shape == (60, 5)
    assert recall(idx.numpy(), ref_idx) == 1.0
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-5, atol=1e-5)


def test_scann_exclude_self():
    pytest.importorskip("scann")
    x = _rand((300, 6), 14)
    for mode in ("brute_force", "tree_ah"):
        idx, dist = knn.ScannKNN(mode=mode).fit(x).search(x, 3, exclude_self=True)
        ref_idx, _ = brute_force_knn(x, x, 3, exclude_self=True)
        assert idx.shape == (300, 3)
        assert not np.any(idx.numpy() == np.arange(300)[:, None]), mode
        assert np.all(np.diff(dist.numpy(), axis=1) >= 0), mode
        # Default tree_ah on 300 points scans every leaf, so it is exact here too.
        assert recall(idx.numpy(), ref_idx) == 1.0, mode


def test_scann_tree_ah_recall_on_a_mixture():
    """tree_ah k-recall@10 >= 0.95 on N=20000 points of a 20-component mixture
    in d=32, Q=500 queries: 141 leaves, 14 searched, 2 dims per block, 500 rescored."""
    pytest.importorskip("scann")
    x, q = mixture(20000, 32, seed=0), mixture(500, 32, seed=1)
    index = make_index("scann", mode="tree_ah", num_leaves=141, num_leaves_to_search=14,
                       dimensions_per_block=2, reorder_k=500, seed=0).fit(x)
    idx, dist = index.search(q, 10)
    exact_idx, exact_dist = ExactKNN().fit(x).search(q, 10)
    r = recall(idx.numpy(), exact_idx.numpy())
    assert r >= 0.95, r
    # Without reordering enough candidates the quantised scores alone lose recall;
    # this shows the test is not trivially satisfied.
    low_idx, _ = make_index("scann", mode="tree_ah", num_leaves=141, num_leaves_to_search=14,
                            reorder_k=10, seed=0).fit(x).search(q, 10)
    assert recall(low_idx.numpy(), exact_idx.numpy()) < r
    # Distances are exact squared L2 for the returned ids.
    ref = ((q[:, None, :] - x[idx.numpy()]) ** 2).sum(-1)
    np.testing.assert_allclose(dist.numpy(), ref, rtol=1e-5, atol=1e-4)


def test_scann_seed_is_reproducible_and_errors():
    pytest.importorskip("scann")
    x = mixture(3000, 8, seed=2)
    a = knn.ScannKNN(num_leaves=50, num_leaves_to_search=3, reorder_k=20, seed=3).fit(x)
    b = knn.ScannKNN(num_leaves=50, num_leaves_to_search=3, reorder_k=20, seed=3).fit(x)
    np.testing.assert_array_equal(a.search(x[:200], 5)[0].numpy(), b.search(x[:200], 5)[0].numpy())
    with pytest.raises(ValueError, match="mode must be one of"):
        knn.ScannKNN(mode="ivf")
    with pytest.raises(ValueError, match="at least 16"):
        knn.ScannKNN(mode="tree_ah").fit(_rand((10, 2), 15))
    with pytest.raises(NotFittedError):
        knn.ScannKNN().search(x, 1)
    with pytest.raises(ValueError, match="features"):
        a.search(_rand((3, 4), 16), 1)
    # One leaf of ~60 points cannot hold 200 neighbours: ScaNN pads with id 0
    # and a NaN score, which must be an error, not a silent wrong neighbour.
    sparse = knn.ScannKNN(num_leaves=50, num_leaves_to_search=1, reorder_k=300).fit(x)
    with pytest.raises(RuntimeError, match="raise num_leaves_to_search"):
        sparse.search(x[:20], 200)


@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (640, 10), (1001, 10), (5000, 1), (5000, 7), (3000, 64)])
def test_smallest_k_matches_a_full_sort(n, k):
    """The blocked selection (used from n >= 64 k) returns exactly the k smallest
    entries, tail columns past the last whole block included."""
    from tfgen.ops.knn import smallest_k
    rng = np.random.default_rng(n + k)
    d = rng.normal(size=(33, n)).astype(np.float32)
    d[0, -1] = -100.0   # the smallest entry of row 0 sits in the tail
    values, idx = smallest_k(d, k)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(np.sort(idx.numpy(), 1), np.sort(order, 1))
    np.testing.assert_allclose(values.numpy(), np.take_along_axis(d, order, 1))
    assert np.all(np.diff(values.numpy(), axis=1) >= 0)
