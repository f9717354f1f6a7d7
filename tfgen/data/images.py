"""Image sets: scikit-learn's bundled digits, and the TFDS image sets with an offline IDX path.

Where MNIST / Fashion-MNIST come from (``source="auto"``, the default):

1. a TFDS dataset that is already prepared in ``data_dir`` or TFDS's default directory
   (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); checked on disk, never downloads;
2. else the original IDX ``.gz`` files in ``data_dir`` or ``$TFGEN_DATA_DIR``, either in
   ``<dir>/<name>/`` or in ``<dir>/`` itself, read by :func:`tfgen.data.idx.read_idx`;
3. else ``tfds.load(..., download=True)``; if that fails, one ``FileNotFoundError`` that
   names both ways to provide the data.

``source="tfds"`` goes to TFDS directly (prepared or download) and ``source="files"`` to the
IDX files only; the other TFDS sets (cifar10, svhn_cropped, celeb_a) have only the TFDS path.
"""

from __future__ import annotations

import glob
import logging
import os
import re

import numpy as np

from tfgen.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

logger = logging.getLogger("tfgen.data")

ENV_VAR = "TFGEN_DATA_DIR"
SOURCES = ("auto", "tfds", "files")

# Per-example shape, nominal split sizes (as TFDS publishes them) and class count. The sizes
# let us validate batch sizes and slices before touching any file.
TFDS_SETS = {
    "mnist": dict(shape=(28, 28, 1), splits={"train": 60000, "test": 10000}, num_classes=10,
                  description="MNIST handwritten digits (LeCun & Cortes)"),
    "fashion_mnist": dict(shape=(28, 28, 1), splits={"train": 60000, "test": 10000}, num_classes=10,
                          description="Fashion-MNIST (Zalando), 10 clothing classes"),
    "cifar10": dict(shape=(32, 32, 3), splits={"train": 50000, "test": 10000}, num_classes=10,
                    description="CIFAR-10 (TFDS only)"),
    "svhn_cropped": dict(shape=(32, 32, 3), splits={"train": 73257, "test": 26032, "extra": 531131},
                         num_classes=10, description="SVHN cropped digits (TFDS only)"),
    "celeb_a": dict(shape=(218, 178, 3), splits={"train": 162770, "validation": 19867, "test": 19962},
                    num_classes=None, description="CelebA faces, no class labels (TFDS only)"),
}
ALIASES = {"svhn": "svhn_cropped"}

# The original distribution's file names (without .gz); Fashion-MNIST reuses MNIST's names.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_SETS = ("mnist", "fashion_mnist")

DIGITS = dict(shape=(8, 8, 1), splits={"train": 1500, "test": 297, "all": 1797}, num_classes=10,
              description="scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set)")

_logged_file_reads: set = set()


# ---------------------------------------------------------------------------------------------
# Splits


_SIMPLE_SPLIT = re.compile(r"^([A-Za-z_]+)(?:\[(-?\d*):(-?\d*)\])?$")


def parse_split(split, valid, *, allow_tfds_syntax: bool = False):
    """``"train"`` / ``"train[a:b]"`` -> ``(base, slice)``.

    With ``allow_tfds_syntax`` a string this parser cannot read (percent slices, ``+``
    unions) is returned as ``None`` for TFDS to interpret, after checking that every split
    name in it is one of ``valid``.
    """
    forms = "'train', 'train[a:b]', 'train[:b]' or 'train[a:]' with integer bounds"
    if not isinstance(split, str):
        raise ValueError(f"split: expected a string such as {forms}, got {split!r}")
    s = split.replace(" ", "")
    m = _SIMPLE_SPLIT.match(s)
    if m is None:
        if allow_tfds_syntax:
            bad = sorted(set(re.findall(r"[A-Za-z_]+", s)) - set(valid))
            if bad:
                raise ValueError(f"split {split!r}: unknown split name(s) {bad}; expected one of {list(valid)}")
            return None
        raise ValueError(f"split {split!r}: expected one of {list(valid)}, or a slice of one in the form {forms}")
    base, a, b = m.groups()
    if base not in valid:
        raise ValueError(f"split {split!r}: unknown split {base!r}; expected one of {list(valid)}")
    to_int = lambda t: int(t) if t not in (None, "") else None  # noqa: E731
    return base, slice(to_int(a), to_int(b))


def split_size(split, sizes, *, allow_tfds_syntax=False):
    """Number of examples a split string selects, or ``None`` when only TFDS can tell."""
    parsed = parse_split(split, tuple(sizes), allow_tfds_syntax=allow_tfds_syntax)
    if parsed is None:
        return None
    base, sl = parsed
    size = len(range(sizes[base])[sl])
    if size == 0:
        raise ValueError(f"split {split!r} selects no examples (split {base!r} has {sizes[base]})")
    return size


# ---------------------------------------------------------------------------------------------
# digits


def digits_arrays(split: str):
    """scikit-learn's 8x8 digits as ``(x float32 (N,8,8,1) in [0,1], y int64)``.

    The pixel counts run 0..16, so we divide by 16. The train/test split is a fixed
    permutation (seed 0, independent of any user seed) so every run evaluates on the same
    297 test digits.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    base, sl = parse_split(split, tuple(DIGITS["splits"]))
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    order = {"train": order[:1500], "test": order[1500:], "all": np.arange(len(d.target))}[base]
    x = (d.images[order] / 16.0).astype(np.float32)[..., None]
    y = d.target[order].astype(np.int64)
    return x[sl], y[sl]


# ---------------------------------------------------------------------------------------------
# Where an image set comes from


def tfds_default_dir() -> str:
    """TFDS's default data directory, computed as TFDS does (without importing it)."""
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def tfds_prepared_dir(name: str, data_dir=None):
    """The data directory where TFDS has ``name`` prepared (``data_dir`` first, then TFDS's
    default), or ``None``. Never downloads.

    A glob for ``dataset_info.json`` comes first so that we neither import TFDS nor make it
    log a warning for every directory that does not hold the set; TFDS's own
    ``is_prepared()`` then confirms.
    """
    candidates = [os.fspath(data_dir)] if data_dir is not None else []
    candidates.append(tfds_default_dir())
    for root in candidates:
        pattern = os.path.join(glob.escape(root), name, "*", "dataset_info.json")
        if not glob.glob(pattern):
            continue
        try:
            import tensorflow_datasets as tfds

            if tfds.builder(name, data_dir=root).is_prepared():
                return root
        except Exception:  # a broken TFDS dir is "not prepared"; the other sources may serve
            logger.debug("TFDS data for %s in %s is not usable", name, root, exc_info=True)
    return None


def idx_search_dirs(name: str, data_dir=None) -> list[str]:
    """Directories that may hold ``name``'s IDX files, in the order they are tried."""
    roots = []
    if data_dir is not None:
        roots.append(os.fspath(data_dir))
    if os.environ.get(ENV_VAR):
        roots.append(os.environ[ENV_VAR])
    dirs = []
    for root in roots:
        for d in (os.path.join(root, name), root):
            if d not in dirs:
                dirs.append(d)
    return dirs


def _find_file(directory: str, stem: str):
    for fname in (stem + ".gz", stem):
        p = os.path.join(directory, fname)
        if os.path.isfile(p):
            return p
    return None


def find_idx_files(name: str, base_split: str, data_dir=None):
    """``(images_path, labels_path)`` of the first directory holding both, or ``None``."""
    img_stem, lbl_stem = IDX_FILES[base_split]
    for d in idx_search_dirs(name, data_dir):
        img, lbl = _find_file(d, img_stem), _find_file(d, lbl_stem)
        if img and lbl:
            return img, lbl
    return None


def resolve_source(name: str, split: str, data_dir=None, source: str = "auto"):
    """Decide where ``name`` is read from, without reading it.

    Returns:
        ``("tfds", dir, download)`` or ``("files", (images_path, labels_path), None)``.
    """
    if source not in SOURCES:
        raise ValueError(f"option source: expected one of {list(SOURCES)}, got {source!r}")
    if source == "files" and name not in IDX_SETS:
        raise ValueError(f"option source='files': {name!r} has no offline file reader; "
                         f"only {list(IDX_SETS)} do. Use source='tfds' or 'auto'")
    if source == "tfds":
        prepared = tfds_prepared_dir(name, data_dir)
        return ("tfds", prepared, False) if prepared is not None else ("tfds", data_dir, True)
    if source == "auto":
        prepared = tfds_prepared_dir(name, data_dir)
        if prepared is not None:
            return "tfds", prepared, False
    if name in IDX_SETS:
        base = parse_split(split, tuple(IDX_FILES), allow_tfds_syntax=True)
        files = find_idx_files(name, base[0] if base else "train", data_dir)
        if files is not None:
            if base is None:
                raise ValueError(f"split {split!r}: the IDX file reader (used for {name} from {os.path.dirname(files[0])}) "
                                 "supports only 'train', 'test' and integer slices such as 'train[:5000]'")
            return "files", files, None
        if source == "files":
            raise FileNotFoundError(missing_data_message(name, data_dir, None, files_only=True))
    return "tfds", data_dir, True


def missing_data_message(name, data_dir, tfds_error, files_only=False) -> str:
    """The one message for "no data": it names both ways to provide it."""
    files = ", ".join(f + ".gz" for pair in IDX_FILES.values() for f in pair)
    searched = idx_search_dirs(name, data_dir)
    where = ", ".join(searched) if searched else f"none (neither data_dir= nor ${ENV_VAR} is set)"
    lines = [f"Cannot load dataset {name!r}."]
    if not files_only:
        lines.append(f"TFDS (tensorflow_datasets) has no prepared copy in "
                     f"{', '.join(str(d) for d in ([data_dir] if data_dir else []) + [tfds_default_dir()])}"
                     f" and downloading it failed: {type(tfds_error).__name__}: {tfds_error}")
    lines.append(f"Searched for the original IDX files in: {where}.")
    lines.append("Provide the data in one of two ways:")
    lines.append(f"  (1) TFDS: run once with network access so that tensorflow_datasets downloads and "
                 f"prepares {name!r}, or pass data_dir= (or set $TFDS_DATA_DIR) to a directory where it is prepared;")
    if name in IDX_SETS:
        lines.append(f"  (2) set ${ENV_VAR} (or pass data_dir=) to a directory holding the original IDX files "
                     f"({files}) either directly or in a '{name}/' subfolder.")
    else:
        lines.append(f"  (2) {name!r} has no offline file reader; ${ENV_VAR} does not apply to it.")
    return "\n".join(lines)


def idx_arrays(name: str, split: str, files):
    """Read a split from IDX files: ``(x uint8 (N,28,28,1), y int64 (N,))``, sliced."""
    base, sl = parse_split(split, tuple(IDX_FILES))
    img_path, lbl_path = files
    x = read_idx(img_path, IMAGES_MAGIC)
    y = read_idx(lbl_path, LABELS_MAGIC)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{name} {base}: images {img_path} have shape {x.shape} and labels {lbl_path} "
                         f"shape {y.shape}; expected (N, H, W) and (N,) with the same N")
    key = (name, os.path.dirname(img_path))
    if key not in _logged_file_reads:  # once per set and directory, not on every epoch/call
        _logged_file_reads.add(key)
        logger.info("TFDS has no prepared %s; reading the original IDX files from %s",
                    name, os.path.dirname(os.path.abspath(img_path)))
    return x[sl][..., None], y[sl].astype(np.int64)


def tfds_dataset(name, split, data_dir, download, *, shuffle_files=False, seed=0):
    """``tfds.load`` of the raw (uint8 image, int64 label) dicts; errors are wrapped by the caller."""
    import tensorflow_datasets as tfds

    return tfds.load(name, split=split, data_dir=data_dir, download=download, shuffle_files=shuffle_files,
                     read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False))


def load_tfds(name, split, data_dir, download, **kw):
    """:func:`tfds_dataset`, turning any failure to obtain the data into the one clear error."""
    if not download:  # prepared data that fails to read is a real error, not "missing data"
        return tfds_dataset(name, split, data_dir, download, **kw)
    try:
        return tfds_dataset(name, split, data_dir, download, **kw)
    except Exception as e:  # offline: DownloadError, ConnectionError, ImportError, ... all mean "no data"
        raise FileNotFoundError(missing_data_message(name, data_dir, e)) from e
