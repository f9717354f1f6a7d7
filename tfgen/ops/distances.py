"""Pairwise squared Euclidean distances in matmul form.

``||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y`` costs one matmul instead of an
``(N, M, D)`` broadcast, but rounding can make it slightly negative for
near-identical points, so it is clamped at 0 (a negative squared distance
would give ``exp(+eps)`` kernels and NaN square roots).
"""

from __future__ import annotations

import tensorflow as tf


def _flatten(x: tf.Tensor) -> tf.Tensor:
    """Images (N, H, W, C) become rows (N, H*W*C); rows stay rows."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank > 2:
        x = tf.reshape(x, [tf.shape(x)[0], -1])
    return x


def pairwise_sq_distances(x, y=None, chunk_size: int | None = None) -> tf.Tensor:
    """Squared distances ``D[i, j] = ||x_i - y_j||^2`` between the rows of x and y.

    Args:
      x: ``(N, ...)`` points; trailing dimensions are flattened.
      y: ``(M, ...)`` points, or None for ``y = x`` (the diagonal is then exactly 0).
      chunk_size: if set, the rows of ``x`` are processed in blocks of this
        size, so the temporaries of one block are ``chunk_size x M``. The
        result is still ``(N, M)``; use :func:`chunked_row_reduce` when only a
        reduction over the matrix is needed and ``N x M`` itself is too big.

    Returns:
      ``(N, M)`` float tensor, clamped at 0.
    """
    x = _flatten(x)
    same = y is None
    y = x if same else _flatten(y)
    if chunk_size is not None:
        d = chunked_row_reduce(lambda xb: pairwise_sq_distances(xb, y), x, chunk_size)
    else:
        x2 = tf.reduce_sum(tf.square(x), axis=1, keepdims=True)
        y2 = tf.reduce_sum(tf.square(y), axis=1, keepdims=True)
        d = tf.maximum(x2 + tf.transpose(y2) - 2.0 * tf.matmul(x, y, transpose_b=True), 0.0)
    if same:
        # Rounding leaves ~1e-6 on the diagonal; it must be exactly zero so
        # k(x, x) = 1 and the unbiased MMD's excluded diagonal is exact.
        d = tf.linalg.set_diag(d, tf.zeros(tf.shape(d)[:1], d.dtype))
    return d


def chunked_row_reduce(fn, x: tf.Tensor, chunk_size: int) -> tf.Tensor:
    """Apply ``fn`` to row blocks of ``x`` and concatenate the results along axis 0.

    ``fn`` maps a ``(b, ...)`` block to a ``(b, ...)`` result (for example one
    row-sum of a kernel matrix per point), so peak memory is set by
    ``chunk_size`` instead of by the number of rows.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    x = tf.convert_to_tensor(x)
    n = x.shape[0]
    if n is not None:
        # Static row count: a plain Python loop over a handful of blocks
        # traces once per block and keeps shapes static.
        return tf.concat([fn(x[i:i + chunk_size]) for i in range(0, n, chunk_size)], axis=0)
    n_dyn = tf.shape(x)[0]
    starts = tf.range(0, n_dyn, chunk_size)
    first = fn(x[:chunk_size])
    ta = tf.TensorArray(first.dtype, size=tf.size(starts), infer_shape=False)

    def body(i, ta):
        s = starts[i]
        return i + 1, ta.write(i, fn(x[s:s + chunk_size]))

    _, ta = tf.while_loop(lambda i, _: i < tf.size(starts), body, (0, ta))
    return ta.concat()
