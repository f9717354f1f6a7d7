"""Tests of tfgen.data: toy mixtures, digits, MNIST/Fashion-MNIST (IDX and TFDS paths), pipeline, errors."""

import gzip
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfgen.data as data
from tfgen.data import images

SHARED = "/work/shared/data"
needs_shared = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz")),
    reason=f"the original MNIST/Fashion-MNIST IDX files are not in {SHARED}")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No test may see a prepared TFDS copy or a TFGEN_DATA_DIR it did not set itself."""
    empty = tmp_path / "tfds_default"
    empty.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
    monkeypatch.delenv("TFGEN_DATA_DIR", raising=False)


def _stack(ds):
    return np.concatenate([b.numpy() for b in ds])


# ---------------------------------------------------------------------------------------------
# names, info, centres


def test_names_and_info():
    known = data.names()
    assert known == sorted(known)
    for name in ["ring8", "ring8-paper", "grid25", "two_gaussians", "digits", "mnist", "fashion_mnist",
                 "cifar10", "svhn", "svhn_cropped", "celeb_a"]:
        assert name in known
    assert "fsdd" in known
    ring = data.info("ring8")
    assert ring["kind"] == "toy" and ring["shape"] == (2,) and ring["std"] == 0.2
    np.testing.assert_allclose(ring["centers"], data.ring_centers(8, 2.0))
    assert data.info("ring8-paper")["std"] == 0.01
    assert data.info("ring8", std=0.1, n_modes=4)["centers"].shape == (4, 2)
    assert data.info("grid25")["centers"].shape == (25, 2) and data.info("grid25")["std"] == 0.05
    assert data.info("mnist")["shape"] == (28, 28, 1) and data.info("mnist")["kind"] == "image"
    assert data.info("svhn")["name"] == "svhn_cropped"
    assert data.info("digits")["splits"] == {"train": 1500, "test": 297, "all": 1797}


def test_centre_helpers():
    ring = data.ring_centers()
    assert ring.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
    np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-12)
    # equally spaced: every neighbour pair is the same chord 2 r sin(pi/8)
    np.testing.assert_allclose(np.linalg.norm(ring - np.roll(ring, 1, axis=0), axis=1), 4 * np.sin(np.pi / 8))
    grid = data.grid_centers()
    assert grid.shape == (25, 2)
    assert {tuple(p) for p in grid} == {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert data.grid_centers(3, 1.0).max() == 1.0


# ---------------------------------------------------------------------------------------------
# toy sets


def _check_mixture(x, y, centers, std, *, centre_tol, min_match):
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 2
    assert y.dtype == np.int64 and len(y) == len(x)
    counts = np.bincount(y, minlength=len(centers))
    assert len(counts) == len(centers) and counts.min() > 0
    np.testing.assert_allclose(counts / len(y), 1 / len(centers), atol=0.25 / len(centers))  # equal weights
    for k, c in enumerate(centers):
        pts = x[y == k].astype(np.float64)
        np.testing.assert_allclose(pts.mean(axis=0), c, atol=centre_tol)
        np.testing.assert_allclose(pts.std(axis=0), std, rtol=0.10)
    nearest = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == y) >= min_match


def test_ring8_matches_gram_reference():
    x, y = data.load_numpy("ring8", with_labels=True)
    assert x.shape == (20000, 2)
    _check_mixture(x, y, data.ring_centers(8, 2.0), 0.2, centre_tol=0.02, min_match=0.999)


def test_ring8_paper_and_options():
    x, y = data.load_numpy("ring8-paper", "test", with_labels=True)
    assert x.shape == (5000, 2)
    _check_mixture(x, y, data.ring_centers(8, 2.0), 0.01, centre_tol=0.002, min_match=1.0)
    x, y = data.load_numpy("ring8", with_labels=True, n=4000, std=0.05, radius=3.0, n_modes=4)
    assert x.shape == (4000, 2)
    _check_mixture(x, y, data.ring_centers(4, 3.0), 0.05, centre_tol=0.01, min_match=1.0)


def test_grid25_has_25_modes():
    x, y = data.load_numpy("grid25", with_labels=True)
    assert len(np.unique(y)) == 25
    _check_mixture(x, y, data.grid_centers(5, 2.0), 0.05, centre_tol=0.01, min_match=1.0)


def test_two_gaussians():
    x, y = data.load_numpy("two_gaussians", with_labels=True)
    _check_mixture(x, y, np.array([[-2.0, 0.0], [2.0, 0.0]]), 0.5, centre_tol=0.03, min_match=0.99)


def test_toy_seeds_and_splits():
    a = data.load_numpy("ring8", seed=3)
    np.testing.assert_array_equal(a, data.load_numpy("ring8", seed=3))
    assert not np.allclose(a, data.load_numpy("ring8", seed=4))
    test = data.load_numpy("ring8", "test", seed=3)
    assert test.shape == (5000, 2)
    # different streams: the test split is not a prefix (or any part) of the train split
    shared_rows = set(map(tuple, test.tolist())) & set(map(tuple, a.tolist()))
    assert not shared_rows
    np.testing.assert_array_equal(data.load_numpy("ring8", "train[:100]", seed=3), a[:100])


def test_toy_pipeline_batches_and_shuffles():
    ds = data.load("ring8", batch_size=1000, n=5000, with_labels=True, seed=1)
    batches = list(ds)
    assert len(batches) == 5
    for xb, yb in batches:
        assert xb.shape == (1000, 2) and xb.dtype == tf.float32 and yb.dtype == tf.int64
    epoch1 = np.concatenate([b[0].numpy() for b in batches])
    epoch2 = np.concatenate([b[0].numpy() for b in ds])
    full = data.load_numpy("ring8", n=5000, seed=1)
    # every epoch is a permutation of the data, and a different one (reshuffled each iteration)
    np.testing.assert_array_equal(np.sort(epoch1, axis=0), np.sort(full, axis=0))
    assert not np.array_equal(epoch1, epoch2)
    assert not np.array_equal(epoch1, full)
    # the same seed gives the same order in a fresh pipeline
    again = np.concatenate([b[0].numpy() for b in data.load("ring8", batch_size=1000, n=5000, with_labels=True, seed=1)])
    np.testing.assert_array_equal(epoch1, again)
    # labels stay paired with their points through the shuffle
    nearest = np.argmin(((epoch1[:, None] - data.ring_centers()[None]) ** 2).sum(-1), axis=1)
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert np.mean(nearest == labels) > 0.999


def test_pipeline_drop_remainder_repeat_unbatched():
    ds = data.load("grid25", batch_size=300, n=1000, shuffle=False)
    assert [b.shape[0] for b in ds] == [300, 300, 300]
    assert ds.element_spec.shape.as_list() == [300, 2]  # static batch dim for XLA
    ds = data.load("grid25", batch_size=300, n=1000, drop_remainder=False, shuffle=False)
    assert [b.shape[0] for b in ds] == [300, 300, 300, 100]
    rep = data.load("grid25", batch_size=300, n=1000, repeat=True)
    assert len(list(rep.take(7))) == 7
    single = data.load("grid25", n=10, shuffle=False)
    np.testing.assert_array_equal(_stack(single.batch(10)), data.load_numpy("grid25", n=10))


# ---------------------------------------------------------------------------------------------
# digits


def test_digits():
    x, y = data.load_numpy("digits", with_labels=True)
    xt, yt = data.load_numpy("digits", "test", with_labels=True)
    xa = data.load_numpy("digits", "all")
    assert x.shape == (1500, 8, 8, 1) and xt.shape == (297, 8, 8, 1) and xa.shape == (1797, 8, 8, 1)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10)) and y.dtype == np.int64
    # the split is a fixed permutation: independent of seed, and train + test = all
    np.testing.assert_array_equal(x, data.load_numpy("digits", seed=7))
    both = np.concatenate([x, xt]).reshape(1797, -1)
    np.testing.assert_array_equal(np.unique(both, axis=0), np.unique(xa.reshape(1797, -1), axis=0))
    b = next(iter(data.load("digits", batch_size=64, with_labels=True)))
    assert b[0].shape == (64, 8, 8, 1) and b[1].shape == (64,)


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST from the original files


@needs_shared
def test_mnist_from_idx_files(monkeypatch, caplog):
    monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)
    monkeypatch.setattr(images, "_logged_file_reads", set())
    with caplog.at_level(logging.INFO, logger="tfgen.data"):
        x, y = data.load_numpy("mnist", with_labels=True)
    assert any(os.path.join(SHARED, "mnist") in r.getMessage() and "IDX" in r.getMessage() for r in caplog.records)
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert abs(float(x.mean()) - 0.1307) < 1e-3
    assert y.tolist()[:5] == [5, 0, 4, 1, 9]
    xt, yt = data.load_numpy("mnist", "test", with_labels=True)
    assert xt.shape == (10000, 28, 28, 1)
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    head = data.load_numpy("mnist", "train[:100]")
    assert head.shape == (100, 28, 28, 1)
    np.testing.assert_array_equal(head, x[:100])
    _, tail = data.load_numpy("mnist", "train[59990:]", with_labels=True)
    np.testing.assert_array_equal(tail, y[59990:])
    ds = data.load("mnist", "train[:100]", batch_size=32, with_labels=True, shuffle=False)
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(32, 28, 28, 1)] * 3
    assert batches[0][0].dtype == tf.float32
    np.testing.assert_array_equal(batches[0][0].numpy(), x[:32])
    np.testing.assert_array_equal(batches[0][1].numpy(), y[:32])


@needs_shared
def test_fashion_mnist_via_data_dir():
    x, y = data.load_numpy("fashion_mnist", "test", with_labels=True, data_dir=SHARED, source="files")
    assert x.shape == (10000, 28, 28, 1) and x.max() <= 1.0
    assert np.bincount(y).tolist() == [1000] * 10
    # data_dir may also point at the folder that holds the files
    _, y2 = data.load_numpy("fashion_mnist", "test[:10]", with_labels=True,
                            data_dir=os.path.join(SHARED, "fashion_mnist"))
    np.testing.assert_array_equal(y2, y[:10])


def test_missing_data_names_both_ways(offline_empty_data_dir):
    empty = offline_empty_data_dir
    with pytest.raises(FileNotFoundError) as e:
        data.load("mnist", batch_size=10)
    msg = str(e.value)
    assert "TFGEN_DATA_DIR" in msg and "TFDS" in msg and "tensorflow_datasets" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "no network" in msg and str(empty) in msg
    with pytest.raises(FileNotFoundError, match="TFGEN_DATA_DIR"):
        data.load_numpy("fashion_mnist", source="files")


@needs_shared
def test_corrupt_idx_files(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    src = os.path.join(SHARED, "mnist", "t10k-images-idx3-ubyte.gz")
    blob = open(src, "rb").read()
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])  # truncated download
    shutil.copy(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz"), d)
    with pytest.raises(ValueError, match="truncated"):
        data.load_numpy("mnist", "test", data_dir=tmp_path, source="files")
    # a complete gzip whose content is cut short: caught by the header's sizes
    raw = gzip.decompress(blob)
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100], compresslevel=1))
    with pytest.raises(ValueError, match="truncated"):
        data.load_numpy("mnist", "test", data_dir=tmp_path, source="files")
    # images and labels swapped: the magic number says so
    bad = tmp_path / "swapped"
    bad.mkdir()
    shutil.copy(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz"), bad / "t10k-images-idx3-ubyte.gz")
    shutil.copy(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz"), bad / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        data.load_numpy("mnist", "test", data_dir=bad, source="files")
    # not an IDX file at all
    (bad / "junk.gz").write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(bad / "junk.gz")


@needs_shared
def test_idx_dir_is_not_mistaken_for_prepared_tfds(tmp_path):
    assert images.tfds_prepared_dir("mnist", SHARED) is None
    assert images.tfds_prepared_dir("mnist", tmp_path) is None


@needs_shared
def test_idx_path_rejects_percent_slices(monkeypatch):
    monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)
    with pytest.raises(ValueError, match="integer slices"):
        data.load_numpy("mnist", "train[:10%]")


# ---------------------------------------------------------------------------------------------
# the TFDS path, with TFDS's mock data


@needs_shared
def test_tfds_path_with_mock_data(monkeypatch, tmp_path):
    # The IDX files are available too: the 10-example size proves the data came from TFDS.
    monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)
    with tfds.testing.mock_data(num_examples=10):
        ds = data.load("mnist", batch_size=4, with_labels=True, source="tfds", data_dir=tmp_path)
        batches = list(ds)
        assert len(batches) == 2  # 10 examples, drop_remainder
        for x, y in batches:
            assert x.shape == (4, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int64
            assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        # uint8 0..255 was divided by 255 exactly once
        assert float(tf.reduce_max(batches[0][0])) > 0.5
        x = data.load_numpy("mnist", source="tfds", data_dir=tmp_path)
        assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32 and x.max() <= 1.0
        with pytest.raises(ValueError, match="batch_size=16.*10 examples"):
            data.load("mnist", batch_size=16, source="tfds", data_dir=tmp_path)
        cifar = next(iter(data.load("cifar10", batch_size=5, data_dir=tmp_path)))
        assert cifar.shape == (5, 32, 32, 3) and cifar.dtype == tf.float32

        # auto: a prepared TFDS copy is preferred over the files ...
        monkeypatch.setattr(images, "tfds_prepared_dir", lambda name, data_dir=None: str(tmp_path))
        assert data.load_numpy("mnist").shape == (10, 28, 28, 1)
        monkeypatch.setattr(images, "tfds_prepared_dir", lambda name, data_dir=None: None)
        # ... the files are preferred over a download ...
        assert data.load_numpy("mnist", "test").shape == (10000, 28, 28, 1)
        # ... and with neither, auto falls through to a TFDS download (mocked here)
        monkeypatch.delenv("TFGEN_DATA_DIR")
        assert data.load_numpy("mnist", data_dir=tmp_path).shape == (10, 28, 28, 1)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("call, match", [
    (lambda: data.load("mnistt"), r"name: unknown dataset 'mnistt'.*ring8"),
    (lambda: data.load("ring8", "valid"), "unknown split 'valid'"),
    (lambda: data.load("digits", "train[::2]"), "integer bounds"),
    (lambda: data.load("ring8", "train[:0]"), "selects no examples"),
    (lambda: data.load("mnist", "validation"), "unknown split"),
    (lambda: data.load("ring8", batch_size=0), "batch_size: expected a positive integer, got 0"),
    (lambda: data.load("ring8", batch_size=-3), "batch_size"),
    (lambda: data.load("ring8", batch_size=2.5), "batch_size"),
    (lambda: data.load("ring8", batch_size=30000), "batch_size=30000.*20000"),
    (lambda: data.load("digits", "test", 300, drop_remainder=False), "batch_size=300.*297"),
    (lambda: data.load("mnist", "train[:100]", 128), "batch_size=128.*100"),
    (lambda: data.load("ring8", sigma=0.1), r"option\(s\) \['sigma'\]"),
    (lambda: data.load("ring8", std=-1.0), "option std"),
    (lambda: data.load("mnist", source="web"), "option source"),
    (lambda: data.load("cifar10", source="files"), "no offline file reader"),
    (lambda: data.load("celeb_a", with_labels=True), "no class labels"),
    (lambda: data.load("ring8", n=0), "n: expected a positive integer"),
    (lambda: data.load_numpy("digits", n=2000), "n=2000.*1500"),
    (lambda: data.load("ring8", seed="a"), "seed"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_from_array():
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    ds = data.from_array(x, 8)
    out = _stack(ds)
    assert out.dtype == np.float32 and out.shape == (16, 2)
    assert ds.element_spec.shape.as_list() == [8, 2]
    assert set(out[:, 0].tolist()) <= set(x[:, 0].tolist())
    whole = _stack(data.from_array(x, 20, shuffle=False))
    np.testing.assert_array_equal(whole, x.astype(np.float32))
    xb, yb = next(iter(data.from_array(x, 4, y=np.arange(20), shuffle=True, seed=2)))
    np.testing.assert_array_equal(xb.numpy()[:, 0], 2 * yb.numpy())  # pairs stay together


@pytest.mark.parametrize("x, match", [
    (np.array([["a", "b"]]), "real numeric dtype"),
    (np.ones((3, 2), dtype=bool), "real numeric dtype"),
    (np.ones(5), r"at least 2 dimensions.*\(5,\)"),
    (np.ones((0, 3)), "non-empty"),
])
def test_from_array_rejects(x, match):
    with pytest.raises(ValueError, match=match):
        data.from_array(x, 1, name="codes")
    with pytest.raises(ValueError, match="codes"):
        data.from_array(x, 1, name="codes")


def test_from_array_rejects_nonfinite_and_bad_batch():
    x = np.zeros((10, 3), dtype=np.float32)
    x[4, 1] = np.nan
    x[7, 2] = np.inf
    with pytest.raises(ValueError, match=r"x: .*2 NaN/Inf.*index \(4, 1\)"):
        data.from_array(x, 2)
    good = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="batch_size=11.*10"):
        data.from_array(good, 11)
    with pytest.raises(ValueError, match="batch_size"):
        data.from_array(good, 0)


def test_repeated_pipeline_gives_every_iterator_the_same_batches():
    """A repeated shuffled pipeline orders pass e by (seed, e) only: a second iterator
    (Keras opens one to peek at a batch under a tf.distribute strategy) yields the same
    batches as the first; each pass is a permutation (remainder dropped per pass) and
    passes differ."""
    from tfgen.data import pipeline

    x = np.arange(10, dtype=np.float32)[:, None]
    ds = pipeline.array_dataset(x, batch_size=3, seed=1, repeat=True)
    first, second = iter(ds), iter(ds)
    a = [next(first).numpy().ravel() for _ in range(9)]
    b = [next(second).numpy().ravel() for _ in range(9)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    passes = [np.concatenate(a[3 * p:3 * p + 3]) for p in range(3)]
    for p, got in enumerate(passes):   # 3 batches of 3 per pass: the first 9 of that pass's order
        np.testing.assert_array_equal(got, pipeline.pass_order(10, 1, p).numpy()[:9])
    full = [pipeline.pass_order(10, 1, p).numpy() for p in range(3)]
    assert all(sorted(f) == list(range(10)) for f in full)
    assert not np.array_equal(full[0], full[1]) and not np.array_equal(full[1], full[2])
    assert not np.array_equal(pipeline.pass_order(10, 2, 0).numpy(), full[0])
    # the streamed (TFDS) path: one seeded shuffle of the endless stream, same for every iterator
    images = tf.data.Dataset.from_tensor_slices(np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1))
    st = pipeline.stream_dataset(images, 1, 40, batch_size=8, seed=3, repeat=True)
    one, two = iter(st), iter(st)
    c = np.concatenate([next(one).numpy().ravel() for _ in range(10)])
    d = np.concatenate([next(two).numpy().ravel() for _ in range(10)])
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(c[:40], np.arange(40) / 255.0)
    values = np.round(c * 255).astype(int)
    assert set(values) == set(range(40))   # 80 draws from a 40-example buffer cover every example
