"""Tests for the spoken-digit classifier that scores generated audio (issue 6).

fit_length's crop and pad positions checked sample by sample; the in-model
log spectrogram against a NumPy STFT; spoken_digit_scores against hand
computations on a stub network whose logits are its input; a short training
run on synthetic "digits" (ten tones in noise) against a held-out set; the
save/load round trip and the training CLI on synthetic recordings.
"""

import json
import types
import zipfile

import keras
import numpy as np
import pytest

from tfgen import zoo
from tfgen.metrics import (fit_length, inception_score, load_spoken_digit_classifier, spoken_digit_classifier,
                           spoken_digit_scores, train_spoken_digit_classifier)
from tfgen.metrics import audio

TONES = 300.0 * np.arange(1, 11)  # class k is a (k + 1) * 300 Hz tone
TINY = dict(filters=(8, 16, 16), feature_dim=32, dropout=0.0)  # ~21 k parameters
LENGTH = 2048


def tone_set(n_per_class, seed):
    """Tones of random duration (0.12-0.25 s), phase and level, in white noise at a
    third of the tone's amplitude: ``(waves list, labels)``."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for k in np.repeat(np.arange(10), n_per_class):
        n = int(rng.integers(1000, LENGTH + 200))
        amp = rng.uniform(0.05, 0.8)
        t = np.arange(n) / 8000.0
        w = amp * np.sin(2 * np.pi * TONES[k] * t + rng.uniform(0, 2 * np.pi))
        waves.append((w + rng.normal(0, amp / 3, n)).astype(np.float32))
        labels.append(k)
    return waves, np.array(labels)


def stub_network(length=16, n_classes=10):
    """logits = the first ``n_classes`` samples of the (length-fitted) wave."""
    inp = keras.Input((length,))
    kernel = np.zeros((length, n_classes), np.float32)
    kernel[np.arange(n_classes), np.arange(n_classes)] = 1.0
    out = keras.layers.Dense(n_classes, use_bias=False, name="logits",
                             kernel_initializer=keras.initializers.Constant(kernel))(inp)
    return keras.Model(inp, out)


def waves_with_logits(logits, length=16):
    w = np.zeros((len(logits), length), np.float32)
    w[:, :logits.shape[1]] = logits
    return w


@pytest.fixture(scope="module")
def trained():
    train = tone_set(24, seed=0)
    held_out = tone_set(10, seed=1)
    model, history = train_spoken_digit_classifier(train, epochs=4, seed=0, batch_size=16, learning_rate=3e-3,
                                                   shift=100, validation=held_out, length=LENGTH, **TINY)
    return model, history, held_out


# --------------------------------------------------------------------------- fit_length


def test_fit_length_pads_and_crops_centred():
    w = np.arange(1, 6, dtype=np.float32)  # 5 samples
    np.testing.assert_array_equal(fit_length(w, 8), [0, 1, 2, 3, 4, 5, 0, 0])  # 1 in front, 2 behind
    np.testing.assert_array_equal(fit_length(w, 9), [0, 0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(w, 5), w)
    long = np.arange(1, 8, dtype=np.float32)  # 7 samples
    np.testing.assert_array_equal(fit_length(long, 4), [2, 3, 4, 5])  # drops 1 in front, 2 behind
    np.testing.assert_array_equal(fit_length(long, 5), [2, 3, 4, 5, 6])
    out = fit_length(np.ones(3, np.float64), 4)
    assert out.dtype == np.float32 and out.shape == (4,)


def test_fit_length_energy_anchor_finds_the_loudest_window():
    w = np.zeros(20, np.float32)
    w[14:17] = [1.0, -2.0, 1.0]
    # windows starting at 12, 13, 14 hold the whole burst: the middle one is kept
    np.testing.assert_array_equal(fit_length(w, 5, anchor="energy"), w[13:18])
    np.testing.assert_array_equal(fit_length(w, 5), w[7:12])  # centred: misses it
    w[2] = 3.0  # now a louder single sample near the start wins (windows 0, 1, 2 tie)
    np.testing.assert_array_equal(fit_length(w, 5, anchor="energy"), w[1:6])
    # a silent wave, and a short one, are centred either way
    np.testing.assert_array_equal(fit_length(np.zeros(9), 5, anchor="energy"), np.zeros(5))
    np.testing.assert_array_equal(fit_length([1.0, 2.0], 4, anchor="energy"), [0, 1, 2, 0])


def test_fit_length_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        fit_length(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        fit_length([])
    with pytest.raises(ValueError, match="NaN"):
        fit_length([0.0, np.nan])
    with pytest.raises(ValueError, match="length"):
        fit_length([0.0], 0)
    with pytest.raises(ValueError, match="anchor"):
        fit_length([0.0], 4, anchor="start")


# --------------------------------------------------------------------------- the model


def test_log_spectrogram_matches_numpy():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 1000)) * [[0.01], [0.5], [2.0]]).astype(np.float32)
    out = np.asarray(audio.LogSpectrogram(256, 128, floor=1e-3)(x))
    frames = 1 + (1000 - 256) // 128
    assert out.shape == (3, frames, 129, 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)  # periodic Hann
    for i in range(3):
        xi = x[i].astype(np.float64) / np.abs(x[i]).max()  # peak-normalised
        chunks = np.stack([xi[j * 128:j * 128 + 256] for j in range(frames)]) * window
        expected = np.log(np.abs(np.fft.rfft(chunks, axis=1)) + 1e-3)
        np.testing.assert_allclose(out[i, :, :, 0], expected, atol=2e-4)
    # the level of a wave does not matter; silence is log(floor) (default 0.1)
    np.testing.assert_allclose(np.asarray(audio.LogSpectrogram(floor=1e-3)(x[:1] * 7)), out[:1], atol=2e-4)
    np.testing.assert_allclose(np.asarray(audio.LogSpectrogram()(np.zeros((1, 1000), np.float32))), np.log(0.1),
                               rtol=1e-6)


def test_classifier_shapes_and_size():
    model = spoken_digit_classifier()
    assert model.input_shape == (None, 8000) and model.output_shape == (None, 10)
    assert model.get_layer("log_spectrogram").output.shape[1:] == (61, 129, 1)
    assert model.get_layer("features").output.shape[-1] == 128
    assert model.count_params() * 4 < 2e6  # float32 weights under 2 MB
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    small = spoken_digit_classifier(LENGTH, 4, **TINY)
    assert small(np.zeros((2, LENGTH), np.float32)).shape == (2, 4)
    with pytest.raises(ValueError, match="length"):
        spoken_digit_classifier(100)


# --------------------------------------------------------------------------- scores


def test_scores_confident_and_evenly_spread_is_ten():
    labels = np.arange(30) % 10
    logits = 40.0 * np.eye(10)[labels]
    s = spoken_digit_scores(waves_with_logits(logits), stub_network(), labels=labels)
    assert s["n"] == 30 and s["histogram"] == [3] * 10
    assert s["inception_score"] == pytest.approx(10.0, rel=1e-9)
    assert s["mean_max_probability"] == pytest.approx(1.0, abs=1e-12)
    assert s["accuracy"] == 1.0 and s["per_class_accuracy"] == [1.0] * 10
    # shifted labels: every prediction wrong, the rest unchanged
    wrong = spoken_digit_scores(waves_with_logits(logits), stub_network(), labels=(labels + 1) % 10)
    assert wrong["accuracy"] == 0.0 and wrong["inception_score"] == pytest.approx(10.0, rel=1e-9)


def test_scores_same_prediction_everywhere_is_one():
    p = np.array([0.05, 0.05, 0.4, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    waves = waves_with_logits(np.tile(np.log(p), (8, 1)))
    s = spoken_digit_scores(list(waves), stub_network())
    assert s["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert s["histogram"] == [0, 0, 8, 0, 0, 0, 0, 0, 0, 0]
    assert s["mean_max_probability"] == pytest.approx(0.4, rel=1e-6)
    assert "accuracy" not in s


def test_scores_against_a_hand_computation():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(50, 10))
    labels = rng.integers(0, 10, 50)
    s = spoken_digit_scores(waves_with_logits(logits), stub_network(), labels=labels)
    z = logits.astype(np.float32).astype(np.float64)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    marginal = p.mean(0)
    kl = sum(p[i, j] * np.log(p[i, j] / marginal[j]) for i in range(50) for j in range(10)) / 50
    assert s["inception_score"] == pytest.approx(np.exp(kl), rel=1e-5)
    assert s["inception_score"] == pytest.approx(inception_score(p, splits=1)[0], rel=1e-5)
    pred = z.argmax(1)
    assert s["histogram"] == [int(np.sum(pred == k)) for k in range(10)]
    assert s["mean_max_probability"] == pytest.approx(p.max(1).mean(), rel=1e-5)
    assert s["accuracy"] == pytest.approx(np.mean(pred == labels))
    for k in range(10):
        assert s["per_class_accuracy"][k] == pytest.approx(np.mean(pred[labels == k] == k))
    # waves of other lengths are fitted (centred) first: a 12-sample wave gets 2 zeros in front
    short = np.zeros(12, np.float32)
    short[5] = 30.0
    assert spoken_digit_scores([short], stub_network())["histogram"][7] == 1
    with pytest.raises(ValueError, match="labels"):
        spoken_digit_scores(waves_with_logits(logits), stub_network(), labels=labels[:3])
    with pytest.raises(ValueError, match="waves"):
        spoken_digit_scores([], stub_network())
    with pytest.raises(ValueError, match=r"waves\[1\].*NaN"):
        spoken_digit_scores([np.zeros(16), np.full(16, np.nan)], stub_network())


# --------------------------------------------------------------------------- training, saving


def test_training_recognises_synthetic_digits(trained):
    model, history, (waves, labels) = trained
    assert history["epochs"] == 4 and len(history["accuracy"]) == 4 and len(history["val_accuracy"]) == 4
    assert history["test_accuracy"] >= 0.95  # chance is 0.1; seeds 0-2 reached 1.0 in 4 epochs
    s = spoken_digit_scores(waves, model, labels=labels)
    assert s["accuracy"] == pytest.approx(history["test_accuracy"], abs=1e-9)
    assert min(s["histogram"]) >= 8 and s["inception_score"] > 7
    with pytest.raises(ValueError, match="label"):
        train_spoken_digit_classifier((waves[:4], labels[:3]), epochs=1, length=LENGTH, **TINY)
    with pytest.raises(ValueError, match="n_classes"):
        train_spoken_digit_classifier((waves[:4], labels[:4] + 10), epochs=1, length=LENGTH, **TINY)


def test_save_load_round_trip(trained, tmp_path, monkeypatch):
    model, _, (waves, _) = trained
    x = np.stack([fit_length(w, LENGTH) for w in waves[:20]])
    before = np.asarray(model(x, training=False))
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as z:
        config = z.read("config.json").decode()
    assert "Lambda" not in config and '"tfgen>LogSpectrogram"' in config
    zoo.check_keras_file(tmp_path / "model.keras", tfgen_model=False)
    entry = tmp_path / "zoo" / "tones"
    entry.mkdir(parents=True)
    (entry / "model.keras").write_bytes((tmp_path / "model.keras").read_bytes())
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    for where in (tmp_path / "model.keras", tmp_path, "tones"):
        loaded = load_spoken_digit_classifier(where)
        np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), before)
    via_keras = keras.models.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_array_equal(np.asarray(via_keras(x, training=False)), before)
    with pytest.raises(FileNotFoundError, match="zoo"):
        load_spoken_digit_classifier("no-such-entry")


def test_cli_writes_a_feature_network_entry(tmp_path, monkeypatch):
    """The CLI end to end on 30 synthetic recordings (load_fsdd replaced), one epoch."""
    import tfgen.data

    def fake_load_fsdd(split, data_dir=None):
        waves, labels = tone_set(3, seed=0 if split == "train" else 1)
        return [types.SimpleNamespace(wave=w, digit=int(d)) for w, d in zip(waves, labels)]

    monkeypatch.setattr(tfgen.data, "load_fsdd", fake_load_fsdd)
    out = tmp_path / "zoo" / "fsdd-x"
    assert audio.main(["--epochs", "1", "--limit", "20", "--out", str(out), "--verbose", "0"]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "feature_network" and card["name"] == "fsdd-x"
    assert card["train_recordings"] == 20 and card["test_recordings"] == 20
    assert 0.0 <= card["test_accuracy"] <= 1.0 and card["command"].startswith("python -m tfgen.metrics.audio ")
    assert (out / "model.keras").stat().st_size < 5e6
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    assert [e["name"] for e in zoo.entries("feature_network")] == ["fsdd-x"]
    assert zoo.entries() == []
    with pytest.raises(SystemExit):  # an existing entry is not overwritten without --overwrite
        audio.main(["--epochs", "1", "--out", str(out)])


def test_image_feature_network_loader_names_the_audio_loader():
    """``FeatureNetwork.load`` (images) refuses the spoken-digit entry with a message
    naming the loader its card gives, before Keras meets the audio layer."""
    from tfgen.metrics import FeatureNetwork

    with pytest.raises(ValueError, match="not an image feature network.*load_spoken_digit_classifier"):
        FeatureNetwork.load("fsdd-digits")
