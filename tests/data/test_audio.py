"""Tests of tfgen.data.audio (FSDD, IML §4.2 chunking and overlap-add), the "fsdd" entry of
tfgen.data.load / load_numpy / info, and plotting.spectrograms."""

import csv
import math
import os
import shutil
import wave as wavelib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfgen.data as data
from tfgen import plotting

SHARED = "/work/shared/data"
FSDD_DIR = os.path.join(SHARED, "fsdd")
needs_fsdd = pytest.mark.skipif(not os.path.isfile(os.path.join(FSDD_DIR, "manifest.csv")),
                                reason=f"the FSDD files are not in {FSDD_DIR}")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No test may see a prepared TFDS copy or a TFGEN_DATA_DIR it did not set itself."""
    empty = tmp_path / "tfds_default"
    empty.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
    monkeypatch.delenv("TFGEN_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def manifest():
    with open(os.path.join(FSDD_DIR, "manifest.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fsdd():
    """Both splits, decoded once for the module (about 0.4 s)."""
    if not os.path.isfile(os.path.join(FSDD_DIR, "manifest.csv")):
        pytest.skip(f"the FSDD files are not in {FSDD_DIR}")
    return {s: data.load_fsdd(s, data_dir=SHARED, source="files") for s in ("train", "test")}


def _wav_by_hand(path):
    """int16 samples of a canonical PCM WAV, found by walking the RIFF chunks with numpy only."""
    blob = np.fromfile(path, np.uint8).tobytes()
    assert blob[:4] == b"RIFF" and blob[8:12] == b"WAVE"
    pos = 12
    while pos < len(blob):
        cid, size = blob[pos:pos + 4], int(np.frombuffer(blob[pos + 4:pos + 8], "<u4")[0])
        if cid == b"data":
            return np.frombuffer(blob[pos + 8:pos + 8 + size], "<i2")
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no data chunk in {path}")


# ---------------------------------------------------------------------------------------------
# window, framing, overlap-add


def test_hann_window_is_periodic_and_sums_to_one():
    w = data.hann_window(800)
    np.testing.assert_allclose(w, tf.signal.hann_window(800, periodic=True, dtype=tf.float64).numpy(), atol=1e-12)
    assert w[0] == 0.0 and w[400] == 1.0 and w.argmax() == 400
    np.testing.assert_allclose(w[:400] + w[400:], 1.0, atol=1e-12)  # 50% overlap: exactly 1
    np.testing.assert_allclose(w.reshape(4, 200).sum(0), 2.0, atol=1e-12)  # 75% overlap: 2
    sym = np.hanning(800)  # the symmetric window would not sum to a constant
    assert np.abs(sym[:400] + sym[400:] - 1.0).max() > 1e-3


@pytest.mark.parametrize("length", [1, 7, 399, 400, 401, 799, 801, 3359, 12345])
def test_overlap_add_inverts_frame(length):
    rng = np.random.default_rng(length)
    x = rng.uniform(-1, 1, length).astype(np.float32)
    chunks = data.frame(x)
    assert chunks.dtype == np.float32 and chunks.shape == (math.ceil(length / 400) + 1, 800)
    y = data.overlap_add(chunks)
    assert y.dtype == np.float32 and y.shape == (len(chunks) * 400,)
    np.testing.assert_allclose(y[:length], x, rtol=0, atol=2e-7)
    np.testing.assert_allclose(y[length:], 0.0, atol=1e-12)  # the end padding comes back as zeros
    # eager tensors work the same
    np.testing.assert_array_equal(data.frame(tf.constant(x)), chunks)
    np.testing.assert_array_equal(data.overlap_add(tf.constant(chunks)), y)


@pytest.mark.parametrize("frame_length, hop", [(800, 200), (1024, None), (6, 2), (7, 1)])
def test_overlap_add_inverts_other_framings(frame_length, hop):
    x = np.random.default_rng(1).normal(size=1001).astype(np.float32)
    chunks = data.frame(x, frame_length, hop)
    h = hop or frame_length // 2
    assert chunks.shape == (data.n_frames(1001, frame_length, hop), frame_length)
    assert len(chunks) == math.ceil(1001 / h) + frame_length // h - 1
    np.testing.assert_allclose(data.overlap_add(chunks, hop)[:1001], x, atol=1e-6)


def test_frame_layout_and_count():
    x = np.arange(1, 1001, dtype=np.float32) / 1000
    w = data.hann_window(800)
    c = data.frame(x)
    assert [data.n_frames(n) for n in (1, 400, 401, 800, 801, 1000)] == [2, 2, 3, 3, 4, 4]
    assert len(c) == data.n_frames(1000) == 4
    # chunk j starts at sample j*400 - 400: the first half of chunk 0 is padding
    np.testing.assert_array_equal(c[0, :400], 0.0)
    np.testing.assert_allclose(c[0, 400:], x[:400] * w[400:], rtol=1e-6)
    np.testing.assert_allclose(c[1], x[:800] * w, rtol=1e-6)
    np.testing.assert_allclose(c[3, :200], x[800:] * w[:200], rtol=1e-6)
    np.testing.assert_array_equal(c[3, 200:], 0.0)  # the end is padded with zeros
    # a constant signal: every full interior chunk is the window itself
    np.testing.assert_allclose(data.frame(np.ones(2000, np.float32))[2], w, atol=1e-7)


@pytest.mark.parametrize("call, match", [
    (lambda: data.frame(np.zeros((2, 800), np.float32)), r"wave: .*shape \(num_samples,\).*\(2, 800\)"),
    (lambda: data.frame(np.zeros(0, np.float32)), "non-empty"),
    (lambda: data.frame(np.zeros(10, np.int16)), "divide by 32768"),
    (lambda: data.frame(np.array([0.0, np.nan, 1.0])), "1 NaN/Inf; the first at index 1"),
    (lambda: data.frame(np.zeros(10, np.float32), 801), "frame_length=801.*even"),
    (lambda: data.frame(np.zeros(10, np.float32), 800, 300), "hop=300.*divisor of frame_length=800"),
    (lambda: data.frame(np.zeros(10, np.float32), 800, 800), "hop=800"),
    (lambda: data.frame(np.zeros(10, np.float32), 800, 0), "hop: expected a positive integer"),
    (lambda: data.frame(np.zeros(10, np.float32), 1), "frame_length: expected an integer >= 2"),
    (lambda: data.overlap_add(np.zeros(800, np.float32)), r"frames: .*\(n_frames, frame_length\)"),
    (lambda: data.overlap_add(np.zeros((0, 800), np.float32)), "non-empty"),
    (lambda: data.overlap_add(np.zeros((3, 801), np.float32)), "frame_length=801"),
    (lambda: data.n_frames(0), "length: expected a positive integer"),
])
def test_framing_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# WAV files


def test_write_read_wav_round_trip(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, 4001).astype(np.float32)
    x[:3] = [1.5, -1.5, 1.0]  # clipped, and the int16 edges
    path = data.write_wav(tmp_path / "sub" / "a.wav", x, 16000)
    y, rate = data.read_wav(path)
    assert rate == 16000 and y.dtype == np.float32 and y.shape == x.shape
    assert y[0] == 32767 / 32768 and y[1] == -1.0 and y[2] == 32767 / 32768
    np.testing.assert_allclose(y[3:], x[3:], atol=0.5 / 32768 + 1e-9)
    # an independent reader agrees
    decoded, sr = tf.audio.decode_wav(tf.io.read_file(str(path)))
    assert int(sr) == 16000
    np.testing.assert_array_equal(decoded.numpy()[:, 0], y)
    with wavelib.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)


def test_write_wav_failure_leaves_file_and_read_errors(tmp_path, monkeypatch):
    out = tmp_path / "out"
    path = out / "keep.wav"
    data.write_wav(path, np.zeros(10, np.float32))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN"):
        data.write_wav(path, np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="sample_rate"):
        data.write_wav(path, np.zeros(10, np.float32), sample_rate=0)
    with monkeypatch.context() as m:  # a failure half-way through writing
        m.setattr(wavelib.Wave_write, "writeframes", lambda self, b: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            data.write_wav(path, np.ones(10, np.float32) / 2)
    assert path.read_bytes() == before and sorted(os.listdir(out)) == ["keep.wav"]
    with pytest.raises(FileNotFoundError, match="no WAV file"):
        data.read_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"hello world, not a wav")
    with pytest.raises(ValueError, match="not a readable PCM WAV"):
        data.read_wav(tmp_path / "junk.wav")
    long = data.write_wav(tmp_path / "long.wav", np.zeros(1000, np.float32))
    (tmp_path / "cut.wav").write_bytes(open(long, "rb").read()[:-500])
    with pytest.raises(ValueError, match="truncated"):
        data.read_wav(tmp_path / "cut.wav")


# ---------------------------------------------------------------------------------------------
# FSDD from the original files


@needs_fsdd
def test_fsdd_files(fsdd, manifest):
    train, test = fsdd["train"], fsdd["test"]
    assert len(train) == 2700 and len(test) == 300
    assert all(u.index >= 5 for u in train) and all(u.index < 5 for u in test)
    assert np.bincount([u.digit for u in train]).tolist() == [270] * 10
    assert np.bincount([u.digit for u in test]).tolist() == [30] * 10
    assert sorted({u.speaker for u in test}) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    # the manifest's order (speaker, digit, take), and its first rows
    first = test[0]
    assert (first.file, first.digit, first.speaker, first.index) == ("0_george_0.wav", 0, "george", 0)
    assert first.split == "test" and train[0].split == "train"
    assert [u.file for u in test[:5]] == [os.path.basename(r["file"]) for r in manifest[:5]]
    assert train[0].file == "0_george_5.wav"
    assert [(u.speaker, u.digit, u.index) for u in train] == sorted((u.speaker, u.digit, u.index) for u in train)
    rows = {os.path.basename(r["file"]): r for r in manifest}
    for u in (test[0], test[1], test[-1], train[0], train[1234], train[-1]):
        r = rows[u.file]
        assert (u.digit, u.speaker, u.index) == (int(r["digit"]), r["speaker"], int(r["index"]))
        assert u.wave.dtype == np.float32 and u.wave.shape == (int(r["num_samples"]),)
        by_hand = _wav_by_hand(os.path.join(FSDD_DIR, r["file"]))
        np.testing.assert_array_equal(u.wave, by_hand.astype(np.float32) / 32768)
    assert max(float(np.abs(u.wave).max()) for u in test) <= 1.0
    assert sum(len(u.wave) for u in train) + sum(len(u.wave) for u in test) == 10_498_424  # README's total


@needs_fsdd
def test_fsdd_slices_and_chunk_sequences(fsdd):
    head = data.load_fsdd("train[:10]", data_dir=SHARED, source="files")
    assert [u.file for u in head] == [u.file for u in fsdd["train"][:10]]
    assert [u.file for u in data.load_fsdd("test[-3:]", data_dir=SHARED)] == [u.file for u in fsdd["test"][-3:]]
    seqs, digits = data.utterance_chunks("test[:4]", data_dir=SHARED)
    assert len(seqs) == 4 and digits.dtype == np.int64
    for s, u, d in zip(seqs, fsdd["test"][:4], digits):
        assert d == u.digit
        np.testing.assert_array_equal(s, data.frame(u.wave))
        np.testing.assert_allclose(data.overlap_add(s)[:len(u.wave)], u.wave, atol=2e-7)


@needs_fsdd
def test_load_fsdd_chunks(fsdd, monkeypatch):
    monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)
    info = data.info("fsdd")
    assert info["kind"] == "audio" and info["shape"] == (800,) and info["dtype"] == "float32"
    assert info["utterances"] == {"train": 2700, "test": 300} and info["sample_rate"] == 8000
    x, y = data.load_numpy("fsdd", "test", with_labels=True)
    counts = [data.n_frames(len(u.wave)) for u in fsdd["test"]]
    assert x.shape == (sum(counts), 800) == (info["splits"]["test"], 800) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.repeat([u.digit for u in fsdd["test"]], counts))
    first = data.frame(fsdd["test"][0].wave)
    np.testing.assert_array_equal(x[:len(first)], first)
    assert sum(data.n_frames(len(u.wave)) for u in fsdd["train"]) == info["splits"]["train"]
    # batches, unshuffled, are the chunks in order
    ds = data.load("fsdd", "test", batch_size=2, shuffle=False, with_labels=True)
    assert ds.element_spec[0].shape.as_list() == [2, 800]
    xb, yb = next(iter(ds))
    assert xb.dtype == tf.float32 and yb.dtype == tf.int64
    np.testing.assert_array_equal(xb.numpy(), first[:2])
    # shuffled batches of (part of) the train split: a permutation of its chunks
    part = data.load_numpy("fsdd", "train[:20]")
    batches = np.concatenate([b.numpy() for b in data.load("fsdd", "train[:20]", batch_size=64, seed=3)])
    assert batches.shape == (len(part) // 64 * 64, 800)
    assert not np.array_equal(batches, part[:len(batches)])
    rows = {r.tobytes() for r in part}
    assert all(r.tobytes() in rows for r in batches)
    # n, slices and framing options
    assert data.load_numpy("fsdd", "test", n=5).shape == (5, 800)
    np.testing.assert_array_equal(data.load_numpy("fsdd", "test[:1]"), first)
    other = data.load_numpy("fsdd", "test[:2]", frame_length=1000, hop=250)
    assert other.shape == (sum(data.n_frames(len(u.wave), 1000, 250) for u in fsdd["test"][:2]), 1000)
    assert data.info("fsdd", frame_length=1000, hop=250)["splits"]["test"] == sum(
        data.n_frames(len(u.wave), 1000, 250) for u in fsdd["test"])


@needs_fsdd
def test_upstream_layout_without_manifest(tmp_path):
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for name in ("1_jackson_3.wav", "0_george_0.wav", "0_george_5.wav", "README.txt"):
        src = os.path.join(FSDD_DIR, "recordings", name)
        if os.path.exists(src):
            shutil.copy(src, rec / name)
    (rec / "README.txt").write_text("not audio")
    test = data.load_fsdd("test", data_dir=tmp_path, source="files")
    assert [(u.speaker, u.digit, u.index) for u in test] == [("george", 0, 0), ("jackson", 1, 3)]
    assert [u.file for u in data.load_fsdd("train", data_dir=tmp_path)] == ["0_george_5.wav"]
    # a foreign recording in the folder is reported, not served
    data.write_wav(rec / "2_george_1.wav", np.zeros(100, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match=r"2_george_1.wav.*8000 Hz.*16000 Hz"):
        data.load_fsdd("test", data_dir=tmp_path, source="files")


def test_missing_fsdd_names_both_ways(offline_empty_data_dir):
    empty = offline_empty_data_dir
    with pytest.raises(FileNotFoundError) as e:
        data.load("fsdd", batch_size=10)
    msg = str(e.value)
    assert "spoken_digit" in msg and "TFGEN_DATA_DIR" in msg and "no network" in msg and str(empty) in msg
    assert "recordings/*.wav" in msg
    with pytest.raises(FileNotFoundError, match="TFGEN_DATA_DIR"):
        data.load_numpy("fsdd", source="files")


# ---------------------------------------------------------------------------------------------
# the TFDS path, with TFDS's mock data


_MOCK = [("3_theo_7.wav", 3, 1000), ("3_theo_2.wav", 3, 850), ("1_alice_0.wav", 1, 30), ("9_bob_30.wav", 9, 401)]


def _mock_as_dataset(self, *args, **kwargs):
    def gen():
        for i, (name, label, n) in enumerate(_MOCK):
            yield {"audio": (np.arange(n, dtype=np.int64) * 7 + i) % 65536 - 32768,
                   "label": np.int64(label), "audio/filename": name}
    return tf.data.Dataset.from_generator(gen, output_signature=self.info.features.get_tensor_spec())


def test_tfds_path_with_mock_data(tmp_path, monkeypatch):
    if os.path.isfile(os.path.join(FSDD_DIR, "manifest.csv")):
        monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)  # files exist too: the sizes prove TFDS served
    with tfds.testing.mock_data(as_dataset_fn=_mock_as_dataset):
        test = data.load_fsdd("test", source="tfds", data_dir=tmp_path)
        assert [u.file for u in test] == ["1_alice_0.wav", "3_theo_2.wav"]  # take < 5, speaker order
        assert [(u.digit, u.index) for u in test] == [(1, 0), (3, 2)]
        expected = ((np.arange(850) * 7 + 1) % 65536 - 32768).astype(np.float32) / 32768
        np.testing.assert_array_equal(test[1].wave, expected)
        train = data.load_fsdd("train", source="tfds", data_dir=tmp_path)
        assert [u.file for u in train] == ["9_bob_30.wav", "3_theo_7.wav"]
        x, y = data.load_numpy("fsdd", "train", with_labels=True, source="tfds", data_dir=tmp_path)
        assert x.shape == (data.n_frames(401) + data.n_frames(1000), 800)
        assert y.tolist() == [9] * data.n_frames(401) + [3] * data.n_frames(1000)
        b = next(iter(data.load("fsdd", "train", batch_size=4, source="tfds", data_dir=tmp_path)))
        assert b.shape == (4, 800) and b.dtype == tf.float32
        with pytest.raises(ValueError, match="batch_size=8 is larger than fsdd 'train'.*7"):
            data.load("fsdd", "train", batch_size=8, source="tfds", data_dir=tmp_path)


def test_tfds_random_mock_file_names_are_rejected(tmp_path):
    # TFDS's generic mock invents file names, so the take (and the split) is unknown: an error.
    with tfds.testing.mock_data(num_examples=3):
        with pytest.raises(ValueError, match="audio/filename .* is not of the form"):
            data.load_fsdd("train", source="tfds", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# names, info and bad arguments


def test_names_and_info_are_cheap():
    assert "fsdd" in data.names()
    info = data.info("fsdd")
    assert info["splits"] == {"train": 27701, "test": 3028} and info["num_classes"] == 10
    assert info["frame_length"] == 800 and info["hop"] == 400
    assert data.info("fsdd", frame_length=1024)["shape"] == (1024,)


@pytest.mark.parametrize("call, match", [
    (lambda: data.load("fsdd", "validation"), r"unknown split 'validation'.*\['train', 'test'\]"),
    (lambda: data.load("fsdd", "train[::2]"), "integer bounds"),
    (lambda: data.load("fsdd", sigma=1), r"option\(s\) \['sigma'\].*frame_length"),
    (lambda: data.load("fsdd", source="web"), "option source"),
    (lambda: data.load("fsdd", frame_length=801), "frame_length=801.*even"),
    (lambda: data.load("fsdd", hop=300), "hop=300"),
    (lambda: data.load("fsdd", batch_size=0), "batch_size: expected a positive integer"),
    (lambda: data.info("fsdd", hop=-1), "hop: expected a positive integer"),
    (lambda: data.load_fsdd("dev"), "unknown split 'dev'"),
    (lambda: data.load_fsdd(source="disk"), "option source"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@needs_fsdd
def test_bad_arguments_against_the_files(monkeypatch):
    monkeypatch.setenv("TFGEN_DATA_DIR", SHARED)
    with pytest.raises(ValueError, match="batch_size=4000 is larger than fsdd 'test'.*3028"):
        data.load("fsdd", "test", batch_size=4000)
    with pytest.raises(ValueError, match="n=4000.*3028"):
        data.load_numpy("fsdd", "test", n=4000)
    with pytest.raises(ValueError, match="selects no recordings"):
        data.load_fsdd("test[400:]")


# ---------------------------------------------------------------------------------------------
# plotting


def test_spectrograms(tmp_path):
    t = np.arange(4000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # 1 kHz
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)
    path = plotting.spectrograms([tone, chirp[:3000]], ["tone", "chirp"], path=str(tmp_path / "s" / "spec.png"))
    assert path == str(tmp_path / "s" / "spec.png")
    blob = open(path, "rb").read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 2000
    fig = plotting.spectrograms(tone, sample_rate=8000, window=256, hop=64)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (129, data.n_frames(4000, 256, 64))  # rfft bins x frames
    peak_bin = int(np.argmax(img[:, img.shape[1] // 2]))
    assert abs(peak_bin * 8000 / 256 - 1000) <= 8000 / 256  # the tone's frequency
    import matplotlib.pyplot as plt

    plt.close(fig)
    # a suptitle over a tall grid stays clear of the first row's panel titles
    fig = plotting.spectrograms([tone[:1000]] * 18, [f"panel {i}" for i in range(18)], ncols=2, suptitle="a title")
    renderer = fig.canvas.get_renderer()
    sup = fig._suptitle.get_window_extent(renderer)
    assert all(ax.title.get_window_extent(renderer).y1 <= sup.y0 for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="titles"):
        plotting.spectrograms([tone, tone], ["one"])
    with pytest.raises(ValueError, match=r"waves\[1\]"):
        plotting.spectrograms([tone, np.zeros(0, np.float32)])
