"""Golden tests for ``tfgen.ops.distances``: every value is checked against a
plain NumPy double loop in float64, never against the matmul formula under test."""

import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import chunked_row_reduce, pairwise_sq_distances


def loop_sq_distances(x, y):
    """D[i, j] = sum_k (x_ik - y_jk)^2, one pair at a time, in float64."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    d = np.empty((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            d[i, j] = np.sum((x[i] - y[j]) ** 2)
    return d


def _rand(shape, seed, scale=1.0):
    return (scale * np.random.RandomState(seed).randn(*shape)).astype(np.float32)


# --- values -----------------------------------------------------------------

def test_matches_double_loop_for_two_sets():
    x, y = _rand((7, 5), 0), _rand((4, 5), 1)
    got = pairwise_sq_distances(x, y).numpy()
    assert got.shape == (7, 4)
    np.testing.assert_allclose(got, loop_sq_distances(x, y), rtol=1e-5, atol=1e-5)


def test_matches_double_loop_when_y_is_none():
    x = _rand((9, 3), 2)
    np.testing.assert_allclose(pairwise_sq_distances(x).numpy(), loop_sq_distances(x, x),
                               rtol=1e-5, atol=1e-5)


def test_hand_values():
    # (0,0)-(3,4): 9 + 16 = 25;  (1,1)-(3,4): 4 + 9 = 13;  (0,0)-(0,0): 0.
    x = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    y = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(pairwise_sq_distances(x, y).numpy(), [[25.0, 0.0], [13.0, 2.0]])


def test_image_shaped_inputs_are_flattened():
    # (N, 4, 4, 1) images are compared as 16-vectors.
    x, y = _rand((6, 4, 4, 1), 3), _rand((5, 4, 4, 1), 4)
    got = pairwise_sq_distances(x, y).numpy()
    assert got.shape == (6, 5)
    np.testing.assert_allclose(got, loop_sq_distances(x, y), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pairwise_sq_distances(x).numpy(), loop_sq_distances(x, x),
                               rtol=1e-5, atol=1e-5)


def test_float64_inputs_keep_float64():
    x, y = _rand((5, 3), 5).astype(np.float64), _rand((4, 3), 6).astype(np.float64)
    got = pairwise_sq_distances(x, y)
    assert got.dtype == tf.float64
    np.testing.assert_allclose(got.numpy(), loop_sq_distances(x, y), rtol=1e-12, atol=1e-12)


# --- rounding of the matmul form ---------------------------------------------

def test_never_negative_for_large_magnitude_near_duplicates():
    # Rows of norm ~1e4 duplicated up to 1e-3: ||x||^2 + ||y||^2 - 2 x.y cancels
    # catastrophically in float32. The unclamped formula goes negative here
    # (asserted, so the case really exercises the clamp); the result must not.
    base = _rand((16, 32), 7, scale=2000.0)
    x = np.concatenate([base, base])
    y = np.concatenate([base, base + np.float32(1e-3)])
    xt, yt = tf.constant(x), tf.constant(y)
    raw = (tf.reduce_sum(xt ** 2, 1)[:, None] + tf.reduce_sum(yt ** 2, 1)[None]
           - 2.0 * tf.matmul(xt, yt, transpose_b=True)).numpy()
    assert raw.min() < 0.0
    assert pairwise_sq_distances(x, y).numpy().min() >= 0.0
    assert pairwise_sq_distances(x).numpy().min() >= 0.0


def test_diagonal_is_exactly_zero_when_y_is_none():
    # Large magnitudes leave rounding residue on the matmul-form diagonal;
    # the self-distance matrix must still have an exact 0 there.
    x = _rand((33, 50), 8, scale=1000.0)
    xt = tf.constant(x)
    sq = tf.reduce_sum(xt ** 2, 1)
    raw = (sq[:, None] + sq[None] - 2.0 * tf.matmul(xt, xt, transpose_b=True)).numpy()
    assert np.any(np.diag(raw) != 0.0)  # the unpatched formula leaves residue: the case has teeth
    d = pairwise_sq_distances(x).numpy()
    np.testing.assert_array_equal(np.diag(d), np.zeros(33, np.float32))


# --- chunking -----------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 3, 4, 10, 64])  # 3 and 4 do not divide 10
def test_chunked_equals_unchunked(chunk_size):
    x, y = _rand((10, 4, 4, 1), 9), _rand((6, 4, 4, 1), 10)
    full = pairwise_sq_distances(x, y).numpy()
    got = pairwise_sq_distances(x, y, chunk_size=chunk_size).numpy()
    assert got.shape == (10, 6)
    np.testing.assert_allclose(got, full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, loop_sq_distances(x, y), rtol=1e-5, atol=1e-5)


def test_chunked_self_distances_match_loop_off_the_diagonal():
    x = _rand((10, 5), 11)
    got = pairwise_sq_distances(x, chunk_size=3).numpy()
    np.testing.assert_allclose(got, loop_sq_distances(x, x), rtol=1e-5, atol=1e-5)


def test_chunked_diagonal_is_exactly_zero_when_y_is_none():
    x = _rand((33, 50), 8, scale=1000.0)
    d = pairwise_sq_distances(x, chunk_size=5).numpy()
    np.testing.assert_array_equal(np.diag(d), np.zeros(33, np.float32))


@pytest.mark.parametrize("n", [10, 12, 1])
def test_chunked_inside_tf_function_with_unknown_batch(n):
    # input_signature with None: the row count is only known at run time,
    # so the tf.while_loop branch is taken. 10 % 4 != 0, 12 % 4 == 0, 1 < 4.
    y = tf.constant(_rand((6, 3), 12))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def chunked(x):
        return pairwise_sq_distances(x, y, chunk_size=4)

    x = _rand((n, 3), 13)
    got = chunked(x).numpy()
    assert got.shape == (n, 6)
    np.testing.assert_allclose(got, loop_sq_distances(x, y.numpy()), rtol=1e-5, atol=1e-5)


def test_chunked_row_reduce_row_sums_with_unknown_batch():
    # Row sums of exp(-D) computed block by block equal the NumPy row sums.
    y = _rand((8, 2), 14)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def row_sums(x):
        return chunked_row_reduce(
            lambda xb: tf.reduce_sum(tf.exp(-pairwise_sq_distances(xb, y)), axis=1), x, 3)

    x = _rand((11, 2), 15)
    np.testing.assert_allclose(row_sums(x).numpy(), np.exp(-loop_sq_distances(x, y)).sum(1),
                               rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [0, -2])
def test_nonpositive_chunk_size_raises(chunk_size):
    x = _rand((4, 2), 16)
    with pytest.raises(ValueError, match="chunk_size"):
        pairwise_sq_distances(x, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_row_reduce(lambda b: b, x, chunk_size)
