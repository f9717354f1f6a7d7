"""``load``, ``load_numpy``, ``names`` and ``info``: one entry point for every data set."""

from __future__ import annotations

import numpy as np

from tfgen.data import audio, images, toy
from tfgen.data.pipeline import array_dataset, check_batch_size, check_n, check_seed, stream_dataset

_KIND = {**{k: "toy" for k in toy.TOY_SETS}, "digits": "image", **{k: "image" for k in images.TFDS_SETS},
         "fsdd": "audio"}


def names() -> list[str]:
    """Sorted names that :func:`load` accepts (aliases such as ``svhn`` included)."""
    return sorted([*_KIND, *images.ALIASES])


def _canonical(name) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name: expected a dataset name (one of {names()}), got {name!r}")
    key = images.ALIASES.get(name, name)
    if key not in _KIND:
        raise ValueError(f"name: unknown dataset {name!r}; known datasets are {names()}")
    return key


def _image_options(name, options) -> str:
    """The one option image sets take is ``source``; returns it."""
    unknown = sorted(set(options) - {"source"})
    if unknown:
        raise ValueError(f"{name!r} does not take option(s) {unknown}; its only option is 'source' "
                         f"(one of {list(images.SOURCES)})")
    source = options.get("source", "auto")
    if source not in images.SOURCES:
        raise ValueError(f"option source: expected one of {list(images.SOURCES)}, got {source!r}")
    return source


def _audio_options(name, options):
    """``fsdd`` takes ``source``, ``frame_length`` and ``hop``; returns them validated."""
    allowed = {"source", "frame_length", "hop"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{name!r} does not take option(s) {unknown}; its options are {sorted(allowed)}")
    source = options.get("source", "auto")
    if source not in images.SOURCES:
        raise ValueError(f"option source: expected one of {list(images.SOURCES)}, got {source!r}")
    frame_length, hop = audio.check_framing(options.get("frame_length", audio.FRAME_LENGTH), options.get("hop"))
    return source, frame_length, hop


def _audio_arrays(key, split, n, data_dir, options):
    """The chunks of an FSDD split, ``(x (N, frame_length), y (N,))``, the first ``n`` kept."""
    source, frame_length, hop = _audio_options(key, options)
    x, y = audio.chunk_arrays(split, frame_length=frame_length, hop=hop, data_dir=data_dir, source=source)
    size = _check_n_against(n, len(x), split)
    return x[:size], y[:size]


def info(name: str, **options) -> dict:
    """What a data set is, without loading it.

    Returns a dict with ``name`` (canonical), ``kind`` ("toy" | "image" | "audio"), ``shape``
    (per example), ``dtype``, ``splits`` ({split: size}), ``num_classes`` and
    ``description``; toy sets add the mixture's ``centers`` (np.ndarray (K, 2)) and ``std``
    with ``options`` applied, which mode-coverage metrics need.

    ``fsdd`` examples are chunks, so its ``splits`` count chunks (of the full 3,000-recording
    release, with ``frame_length`` / ``hop`` applied; ``None`` for a non-default framing when
    no offline ``manifest.csv`` is found to count from), and it adds ``utterances``
    ({split: recordings}), ``sample_rate``, ``frame_length`` and ``hop``. The counts are
    nominal: TFDS's older ``spoken_digit`` holds fewer recordings.
    """
    key = _canonical(name)
    if _KIND[key] == "audio":
        _, frame_length, hop = _audio_options(key, options)
        return dict(name=key, kind="audio", shape=(frame_length,), dtype="float32",
                    splits=audio.nominal_chunks(frame_length, hop), num_classes=audio.FSDD["num_classes"],
                    description=audio.describe(frame_length, hop), utterances=dict(audio.FSDD["utterances"]),
                    sample_rate=audio.FSDD["sample_rate"], frame_length=frame_length, hop=hop,
                    offline_files=True)
    if _KIND[key] == "toy":
        centers, std = toy.toy_spec(key, **options)
        return dict(name=key, kind="toy", shape=(2,), dtype="float32", splits=dict(toy.DEFAULT_SIZES),
                    num_classes=len(centers), centers=centers, std=std, description=toy.TOY_SETS[key][2])
    if key == "digits":
        _no_options(key, options)
        spec = images.DIGITS
    else:
        _image_options(key, options)
        spec = images.TFDS_SETS[key]
    return dict(name=key, kind="image", shape=spec["shape"], dtype="float32", splits=dict(spec["splits"]),
                num_classes=spec["num_classes"], description=spec["description"],
                offline_files=key in images.IDX_SETS)


def _no_options(name, options):
    if options:
        raise ValueError(f"{name!r} takes no options, got {sorted(options)}")


def _sliced_toy(key, split, n, options):
    centers, std = toy.toy_spec(key, **options)
    base, sl = images.parse_split(split, tuple(toy.DEFAULT_SIZES))
    total = n if n is not None else toy.DEFAULT_SIZES[base]
    if len(range(total)[sl]) == 0:
        raise ValueError(f"split {split!r} selects no examples (split {base!r} has {total})")
    return centers, std, base, sl, total


def _check_n_against(n, size, split):
    if n is not None and size is not None and n > size:
        raise ValueError(f"n={n} is larger than split {split!r}, which has {size} examples")
    return n if n is not None else size


def load(name: str, split: str = "train", batch_size: int | None = None, *, shuffle: bool = True, seed: int = 0,
         with_labels: bool = False, drop_remainder: bool = True, repeat: bool = False, data_dir=None,
         n: int | None = None, **options):
    """A ``tf.data.Dataset`` of a named data set.

    Elements are float32: images NHWC in [0, 1] (MNIST: (28, 28, 1)), toy points (2,), FSDD
    audio chunks (800,) in [-1, 1]. With ``with_labels`` they are ``(x, y)`` with int64 ``y``
    (class, mixture component for toys, the spoken digit for FSDD chunks).

    Args:
        name: one of :func:`names`.
        split: "train" / "test" (digits also "all"; svhn "extra"; celeb_a "validation"), or
            a slice "train[a:b]" / "train[:b]" / "train[a:]" with integers. Data read through
            TFDS also accept TFDS's own split syntax ("train[:10%]", "train+test").
        batch_size: examples per batch, or ``None`` for unbatched examples.
        shuffle, seed: a seeded shuffle that reshuffles every epoch. For toy sets ``seed`` also
            generates the points (train and test use different streams of it).
        drop_remainder: drop the last short batch, so every batch has the static shape XLA wants.
        repeat: repeat forever (for ``steps_per_epoch``-style training).
        data_dir: where to look for data: a TFDS data dir, and/or a directory with the
            original IDX files (see below).
        n: toy sets: how many points to generate (default 20000 train / 5000 test); other
            sets: keep the first ``n`` examples of the split.
        **options: toy sets: ``ring8`` / ``ring8-paper`` take ``n_modes``, ``radius``, ``std``;
            ``grid25`` takes ``std``, ``spacing``, ``n_per_side``; ``two_gaussians`` takes
            ``std``, ``centers``. Image sets take ``source``: "auto" (default: prepared TFDS
            data, else the IDX files in ``data_dir`` / ``$TFGEN_DATA_DIR``, else a TFDS
            download), "tfds" (TFDS only) or "files" (IDX files only; mnist, fashion_mnist).
            ``fsdd`` takes ``source`` (the same, with its WAV files; see
            :mod:`tfgen.data.audio`), ``frame_length`` (default 800) and ``hop`` (default half
            the frame): every recording of the split is cut by :func:`tfgen.data.audio.frame`
            and the chunks are the examples, recording after recording. Its split slices
            ("train[:100]") select recordings, not chunks; ``n`` keeps the first ``n`` chunks.

    Raises:
        ValueError: unknown name, split or option; bad ``batch_size`` (<= 0, or larger than
            the split); bad ``n`` or ``seed``.
        FileNotFoundError: an image set that is neither available through TFDS nor as files.
    """
    key = _canonical(name)
    seed, n = check_seed(seed), check_n(n)
    if _KIND[key] == "toy":
        centers, std, base, sl, total = _sliced_toy(key, split, n, options)
        check_batch_size(batch_size, len(range(total)[sl]), drop_remainder=drop_remainder, what=f"{key} {split!r}")
        x, y = toy.sample_mixture(centers, std, total, seed, base)
        return array_dataset(x[sl], y[sl] if with_labels else None, batch_size, shuffle=shuffle, seed=seed,
                             drop_remainder=drop_remainder, repeat=repeat)
    if key == "digits":
        _no_options(key, options)
        size = _check_n_against(n, images.split_size(split, images.DIGITS["splits"]), split)
        check_batch_size(batch_size, size, drop_remainder=drop_remainder, what=f"digits {split!r}")
        x, y = images.digits_arrays(split)
        return array_dataset(x[:size], y[:size] if with_labels else None, batch_size, shuffle=shuffle, seed=seed,
                             drop_remainder=drop_remainder, repeat=repeat)
    if key == "fsdd":
        _audio_options(key, options)  # bad options fail before any file is read
        check_batch_size(batch_size, None)
        x, y = _audio_arrays(key, split, n, data_dir, options)
        check_batch_size(batch_size, len(x), drop_remainder=drop_remainder, what=f"{key} {split!r}")
        return array_dataset(x, y if with_labels else None, batch_size, shuffle=shuffle, seed=seed,
                             drop_remainder=drop_remainder, repeat=repeat)

    spec = images.TFDS_SETS[key]
    source = _image_options(key, options)
    _check_labels(key, with_labels)
    size = _check_n_against(n, images.split_size(split, spec["splits"], allow_tfds_syntax=True), split)
    check_batch_size(batch_size, size, drop_remainder=drop_remainder, what=f"{key} {split!r}")
    where, arg, download = images.resolve_source(key, split, data_dir, source)
    if where == "files":
        x, y = images.idx_arrays(key, split, arg)
        size = _check_n_against(n, len(x), split)
        return array_dataset(x[:size], y[:size] if with_labels else None, batch_size, shuffle=shuffle,
                             seed=seed, drop_remainder=drop_remainder, repeat=repeat, scale=255.0)
    ds = images.load_tfds(key, split, arg, download, shuffle_files=shuffle, seed=seed)
    ds = ds.map(_selector(with_labels))
    if n is not None:
        ds = ds.take(n)
    card = int(ds.cardinality())
    if card >= 0:  # TFDS knows the real size (may differ from the nominal one, e.g. under mocks)
        size = card
        check_batch_size(batch_size, card, drop_remainder=drop_remainder, what=f"{key} {split!r}")
    return stream_dataset(ds, int(np.prod(spec["shape"])), size if size is not None and size >= 0 else None,
                          batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder, repeat=repeat)


def _check_labels(key, with_labels):
    if with_labels and images.TFDS_SETS[key]["num_classes"] is None:
        raise ValueError(f"with_labels=True: {key!r} has no class labels")


def _selector(with_labels):
    def select(ex):
        return (ex["image"], ex["label"]) if with_labels else ex["image"]
    return select


def load_numpy(name: str, split: str = "train", *, with_labels: bool = False, data_dir=None, n: int | None = None,
               seed: int = 0, **options):
    """The whole split in memory, in its stored order: float32 ``x``, or ``(x, y)`` with int64 ``y``.

    Same names, splits, ``n``, ``seed`` (toy sets) and options as :func:`load`. Metrics and
    the Trainer use this where they need all of a split at once.
    """
    key = _canonical(name)
    seed, n = check_seed(seed), check_n(n)
    if _KIND[key] == "toy":
        centers, std, base, sl, total = _sliced_toy(key, split, n, options)
        x, y = toy.sample_mixture(centers, std, total, seed, base)
        x, y = x[sl], y[sl]
    elif key == "digits":
        _no_options(key, options)
        size = _check_n_against(n, images.split_size(split, images.DIGITS["splits"]), split)
        x, y = images.digits_arrays(split)
        x, y = x[:size], y[:size]
    elif key == "fsdd":
        x, y = _audio_arrays(key, split, n, data_dir, options)
    else:
        spec = images.TFDS_SETS[key]
        source = _image_options(key, options)
        _check_labels(key, with_labels)
        _check_n_against(n, images.split_size(split, spec["splits"], allow_tfds_syntax=True), split)
        where, arg, download = images.resolve_source(key, split, data_dir, source)
        if where == "files":
            x, y = images.idx_arrays(key, split, arg)
            size = _check_n_against(n, len(x), split)
            x, y = x[:size].astype(np.float32) / 255.0, y[:size]
        else:
            ds = images.load_tfds(key, split, arg, download, shuffle_files=False, seed=seed)
            labelled = spec["num_classes"] is not None
            ds = ds.map(_selector(labelled))
            if n is not None:
                ds = ds.take(n)
            xs, ys = [], []
            for el in ds.batch(1024).prefetch(2).as_numpy_iterator():
                xs.append(el[0] if labelled else el)
                if labelled:
                    ys.append(el[1])
            if not xs:
                raise ValueError(f"split {split!r} of {key!r} is empty")
            x = np.concatenate(xs).astype(np.float32) / 255.0
            y = np.concatenate(ys).astype(np.int64) if labelled else None
    return (x, y) if with_labels else x
