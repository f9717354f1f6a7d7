"""The ``tf.data`` input pipeline shared by every data set, and input validation."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# A shuffle buffer holds raw (uint8) examples; capping its bytes keeps CelebA-sized sets from
# filling memory while MNIST/CIFAR still get an exact full-dataset shuffle.
SHUFFLE_BUFFER_BYTES = 256 * 2**20
# Cache decoded TFDS splits in memory only when they are this small.
CACHE_MAX_BYTES = 2 * 2**30


def check_batch_size(batch_size, size=None, *, drop_remainder=True, what="the dataset"):
    """``None`` or a positive int that is not larger than ``size`` (when known)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    if size is not None and batch_size > size:
        # With drop_remainder the pipeline would yield nothing at all; without it, one short
        # batch that is not the size the caller asked for. Both are mistakes worth stopping.
        raise ValueError(f"batch_size={batch_size} is larger than {what}, which has {size} examples"
                         + (" (drop_remainder=True would yield no batch)" if drop_remainder else ""))
    return int(batch_size)


def check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    return int(seed)


def check_n(n):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    return int(n)


def validate_array(x, name="x") -> np.ndarray:
    """Check that ``x`` is a finite, non-empty, real array of shape ``(n, features...)``."""
    if isinstance(x, tf.Tensor):
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged nested lists and the like
        raise ValueError(f"{name}: expected an array of shape (n, features...), could not convert it: {e}") from e
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name}: expected a real numeric dtype (integer or float), got {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected at least 2 dimensions (n, features...), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        n_bad = int(bad.sum())
        if n_bad:
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}: expected finite values, found {n_bad} NaN/Inf value(s); "
                             f"the first at index {first} is {arr[first]}")
    return arr


def _batched(ds, batch_size, drop_remainder):
    return ds if batch_size is None else ds.batch(batch_size, drop_remainder=drop_remainder)


def pass_order(n: int, seed: int, epoch) -> tf.Tensor:
    """The order of the examples ``0..n-1`` in pass ``epoch`` over a repeated dataset:
    a stateless permutation keyed by ``(seed, epoch)`` only.

    A ``shuffle(seed=..., reshuffle_each_iteration=True)`` draws each iterator's
    orders from state shared by all iterators of the dataset, so the second
    iterator opened sees other orders than the first. Keras opens one to peek at
    a batch before training under a ``tf.distribute`` strategy, so a distributed
    run trained on other batches than the same run on one device. With the order
    a function of (seed, pass), every iterator (and every worker, and a resumed
    run) yields the same batches.
    """
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.index_shuffle(tf.range(n, dtype=tf.int64), key, tf.constant(n - 1, tf.int64))


def array_dataset(x, y=None, batch_size=None, *, shuffle=True, seed=0, drop_remainder=True, repeat=False,
                  scale=None) -> tf.data.Dataset:
    """A pipeline over in-memory arrays.

    The data stay in one tensor and the pipeline shuffles and batches *indices*, then gathers
    a whole batch at once: far cheaper than slicing and re-batching one example at a time,
    and the shuffle buffer holds int64s rather than images. uint8 data are kept as uint8 in
    memory and become float32 (times ``scale``) only per batch.
    """
    n = len(x)
    xt = tf.constant(x)
    yt = None if y is None else tf.constant(np.asarray(y, dtype=np.int64))
    if shuffle and repeat:
        ds = tf.data.Dataset.counter().flat_map(
            lambda e: _batched(tf.data.Dataset.from_tensor_slices(pass_order(n, seed, e)),
                               batch_size, drop_remainder))
    else:
        ds = tf.data.Dataset.range(n)
        if shuffle:
            # A seeded shuffle that still reshuffles each epoch: reproducible runs, fresh orders.
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = _batched(ds, batch_size, drop_remainder)

    def gather(i):
        xb = tf.gather(xt, i)
        if scale is not None:
            xb = tf.cast(xb, tf.float32) / scale
        elif xb.dtype != tf.float32:
            xb = tf.cast(xb, tf.float32)
        return xb if yt is None else (xb, tf.gather(yt, i))

    ds = ds.map(gather, num_parallel_calls=AUTOTUNE)
    if repeat and not shuffle:
        ds = ds.repeat()
    return ds.prefetch(AUTOTUNE)


def stream_dataset(ds, example_bytes, size, batch_size=None, *, shuffle=True, seed=0, drop_remainder=True,
                   repeat=False, scale=255.0) -> tf.data.Dataset:
    """A pipeline over a streamed (TFDS) dataset of uint8 images, or ``(image, label)`` pairs."""
    if size is not None and size * example_bytes <= CACHE_MAX_BYTES:
        ds = ds.cache()  # decode once; later epochs read from memory
    if shuffle:
        buffer = max(1000, SHUFFLE_BUFFER_BYTES // max(1, example_bytes))
        if size is not None:
            buffer = min(buffer, size)
        if repeat:
            # One shuffle over the endless stream, the same for every iterator (see
            # pass_order); examples mix across pass boundaries within one buffer.
            ds = ds.repeat().shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        else:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def convert(*el):
        x = tf.cast(el[0], tf.float32) / scale
        return x if len(el) == 1 else (x, tf.cast(el[1], tf.int64))

    ds = ds.map(convert, num_parallel_calls=AUTOTUNE)
    if repeat and not shuffle:
        ds = ds.repeat()
    return ds.prefetch(AUTOTUNE)


def from_array(x, batch_size, *, y=None, shuffle=True, seed=0, drop_remainder=True, repeat=False,
               name="x") -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of float32 batches of ``x`` (or ``(x, y)`` batches), after validation.

    Values are cast to float32 but not rescaled: pass images already in [0, 1].

    Args:
        x: array-like of shape ``(n, features...)``, real dtype, finite.
        batch_size: positive int not larger than ``n``, or ``None`` for single examples.
        y: optional integer labels of length ``n``; elements become ``(x, y)`` with int64 ``y``.
        shuffle, seed: a seeded shuffle that reshuffles each epoch.
        drop_remainder: drop the last short batch (keeps batch shapes static for XLA).
        repeat: repeat forever.
        name: what to call ``x`` in error messages.

    Raises:
        ValueError: non-numeric dtype, fewer than 2 dims, empty, NaN/Inf (with count and the
            first index), or a bad ``batch_size``.
    """
    arr = validate_array(x, name)
    seed = check_seed(seed)
    batch_size = check_batch_size(batch_size, len(arr), drop_remainder=drop_remainder, what=name)
    if y is not None:
        y = np.asarray(y)
        if y.shape != (len(arr),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y: expected integer labels of shape ({len(arr)},), got {y.dtype} {y.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return array_dataset(arr, y, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                         repeat=repeat)
