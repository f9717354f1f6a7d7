"""A small reader for the IDX files that MNIST and Fashion-MNIST are published in.

The format (LeCun & Cortes): a big-endian header ``0, 0, dtype code, ndim``, then ``ndim``
big-endian uint32 dimension sizes, then the values in row-major order. Image files have
magic 2051 (uint8, 3 dims) and label files 2049 (uint8, 1 dim). We read them with gzip and
numpy only, so the offline path needs neither TFDS nor a network.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib

import numpy as np

__all__ = ["read_idx", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# The third byte of the magic number is the element type; all are big-endian on disk.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read a (gzipped or plain) IDX file into a numpy array with the header's shape.

    Args:
        path: a ``.gz`` file (decompressed on the fly) or an uncompressed IDX file.
        expected_magic: if given, the magic number the file must have
            (``IMAGES_MAGIC`` = 2051 or ``LABELS_MAGIC`` = 2049), so that swapped or foreign
            files are caught here rather than as a wrong shape later.

    Returns:
        a read-only array in native byte order (uint8 for MNIST files). Results are cached
        by (path, size, mtime), so reading the same file twice costs nothing.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is truncated, not gzip, or not a valid IDX file.
    """
    path = os.fspath(path)
    st = os.stat(path)  # raises FileNotFoundError with the path in it
    magic, arr = _read_idx_cached(os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if expected_magic is not None:
        if magic != expected_magic:
            raise ValueError(f"{path}: IDX magic number {magic}, expected {expected_magic} "
                             f"({'image' if expected_magic == IMAGES_MAGIC else 'label'} file)")
    return arr


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> tuple[int, np.ndarray]:
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        # A truncated download ends the deflate stream early (EOFError); name the file.
        raise ValueError(f"{path}: cannot decompress IDX file, it is truncated or corrupt ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; "
                         f"expected 0x0000 then a type code and a dimension count)")
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header is truncated ({len(raw)} bytes, expected at least {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX file of shape {shape} should hold {expected} bytes, "
                         f"found {len(raw)} ({'truncated' if len(raw) < expected else 'trailing data'})")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    arr = arr.astype(dtype.newbyteorder("="), copy=False)
    arr.flags.writeable = False  # shared through the cache
    return raw[2] * 256 + ndim, arr
