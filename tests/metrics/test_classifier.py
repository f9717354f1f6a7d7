"""Tests for the feature networks behind FID/KID/IS (METHODS.md 6(c), "Offline MNIST").

The LeNet's shapes and size; FeatureNetwork's input mapping checked on models
whose output is a known function of the input; a short training run on
scikit-learn's digits (upsampled to 28x28) against chance; save/load round
trips; the training CLI end to end on a slice of MNIST.
"""

import json
import os

import keras
import numpy as np
import pytest

from tfgen.metrics import (FeatureNetwork, classifier_inception_score, fid, frechet_distance,
                           inception_score, inception_v3, lenet, train_classifier)
from tfgen.metrics import classifier
from tfgen.metrics.image import feature_statistics
from tfgen.export import ModelFileError


def identity_model(shape=(4, 4, 1), n_classes=3, seed=0):
    """features = the flattened input; logits = a Dense layer on it."""
    inp = keras.Input(shape)
    feats = keras.layers.Flatten(name="features")(inp)
    logits = keras.layers.Dense(n_classes, name="logits",
                                kernel_initializer=keras.initializers.RandomNormal(seed=seed),
                                bias_initializer=keras.initializers.RandomNormal(seed=seed + 1))(feats)
    return keras.Model(inp, logits)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def digits28():
    """scikit-learn's 8x8 digits, each pixel made 3x3 and padded to 28x28, in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron(d.images / 16.0, np.ones((1, 3, 3)))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32)
    return x, d.target.astype(np.int64)


@pytest.fixture(scope="module")
def trained(digits28):
    x, y = digits28
    return train_classifier(x[:1400], y[:1400], epochs=2, validation=(x[1400:], y[1400:]), seed=0)


# --------------------------------------------------------------------------- LeNet


def test_lenet_shapes_and_size():
    model = lenet()
    assert model.output_shape == (None, 10)
    assert model.get_layer("features").output.shape[-1] == 512
    assert model.get_layer("pool2").output.shape[1:] == (4, 4, 64)
    # [0, 1] pixels are rescaled to [-0.5, 0.5] inside
    centre = model.get_layer("centre")
    np.testing.assert_allclose(np.asarray(centre(np.array([[0.0, 0.5, 1.0]]))), [[-0.5, 0.0, 0.5]])
    assert model.count_params() * 4 < 3e6  # float32 weights under 3 MB
    flat = lenet((784,), n_classes=4, feature_dim=32)
    assert flat.output_shape == (None, 4)
    assert flat(np.zeros((2, 784), np.float32)).shape == (2, 4)
    with pytest.raises(ValueError, match="square"):
        lenet((783,))
    with pytest.raises(ValueError, match="16x16"):
        lenet((8, 8, 1))


# --------------------------------------------------------------------------- FeatureNetwork


def test_feature_network_maps_input_range_and_flat_inputs():
    model = identity_model()
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(7, 4, 4, 1)).astype(np.float32)
    plain = FeatureNetwork(model)
    np.testing.assert_allclose(plain.features(x), x.reshape(7, -1), rtol=1e-6)
    # [0, 1] -> [-1, 1]: the model sees 2x - 1
    net = FeatureNetwork(model, input_range=(-1, 1))
    f = net.features(x, batch_size=3)  # batches of 3, 3, 1
    assert f.dtype == np.float64 and f.shape == (7, 16)
    np.testing.assert_allclose(f, 2 * x.reshape(7, -1) - 1, rtol=1e-6, atol=1e-6)
    # flat rows are reshaped to the model's (4, 4, 1) input
    np.testing.assert_allclose(net.features(x.reshape(7, 16)), f, rtol=1e-6)
    # probabilities: a float64 softmax of the logits layer on the mapped input
    w, b = (np.asarray(v) for v in model.get_layer("logits").weights)
    expected = softmax((2 * x.reshape(7, -1) - 1).astype(np.float64) @ w + b)
    p = net.probabilities(x)
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_feature_network_resize_channels_and_probability_outputs():
    # A stand-in with InceptionV3's layer names: "avg_pool" features and a softmax "predictions".
    inp = keras.Input((4, 4, 3))
    pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")(inp)
    preds = keras.layers.Dense(5, activation="softmax", name="predictions")(pool)
    model = keras.Model(inp, preds)
    net = FeatureNetwork(model, feature_layer="avg_pool", logits_layer="predictions",
                         input_range=(-1, 1), resize=(4, 4), channels=3, logits_are_probabilities=True)
    # constant grayscale 2x2 images: resized and tiled to 4x4x3, mapped to 2v - 1
    values = np.array([0.0, 0.25, 1.0])
    x = np.ones((3, 2, 2, 1)) * values[:, None, None, None]
    f = net.features(x)
    np.testing.assert_allclose(f, np.repeat(2 * values[:, None] - 1, 3, axis=1), atol=1e-6)
    # flat grayscale rows of a square side are images too
    np.testing.assert_allclose(net.features(x.reshape(3, 4)), f, atol=1e-6)
    # the softmax output is returned as it is, not softmaxed again
    direct = np.asarray(model(np.repeat(np.ones((3, 4, 4, 1)) * (2 * values[:, None, None, None] - 1),
                                        3, axis=-1)))
    np.testing.assert_allclose(net.probabilities(x), direct, rtol=1e-5)
    again = FeatureNetwork(model, feature_layer="avg_pool", logits_layer="predictions",
                           input_range=(-1, 1), resize=(4, 4), channels=3)
    assert not np.allclose(again.probabilities(x), direct, rtol=1e-3)


def test_feature_network_without_logits_and_bad_input():
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(2, name="features")(inp))
    net = FeatureNetwork(model)
    assert net.probabilities(np.zeros((2, 6))) is None
    assert not net.has_probabilities
    with pytest.raises(ValueError, match="classifier_inception_score|logits"):
        classifier_inception_score(np.zeros((4, 6)), net, splits=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.features(np.full((2, 6), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        net.features(np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="feature_layer"):
        FeatureNetwork(model, feature_layer="nope")
    with pytest.raises(ValueError, match="keras.Model"):
        FeatureNetwork(object())


def test_fid_and_is_through_a_feature_network():
    model = identity_model(seed=3)
    net = FeatureNetwork(model, input_range=(-1, 1))
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(200, 4, 4, 1))
    b = rng.uniform(size=(200, 4, 4, 1)) ** 2
    fa, fb = 2 * a.reshape(200, -1) - 1, 2 * b.reshape(200, -1) - 1
    expected = frechet_distance(*feature_statistics(fa), *feature_statistics(fb))
    assert fid(a, b, feature_network=net) == pytest.approx(expected, rel=1e-5)
    # a plain keras model is wrapped on its "features" layer (input range [0, 1])
    plain = frechet_distance(*feature_statistics(a.reshape(200, -1)), *feature_statistics(b.reshape(200, -1)))
    assert fid(a, b, feature_network=model) == pytest.approx(plain, rel=1e-5)
    assert classifier_inception_score(a, net, splits=4) == pytest.approx(
        inception_score(net.probabilities(a), splits=4), rel=1e-12)


# --------------------------------------------------------------------------- training, saving, loading


def test_train_classifier_beats_chance_on_digits(trained, digits28):
    model, history = trained
    x, y = digits28
    # chance is 0.1; two epochs on 1400 upsampled digits reached 0.85 (seed 0)
    assert history["test_accuracy"] > 0.7
    assert len(history["accuracy"]) == 2 and history["epochs"] == 2
    assert history["accuracy"][-1] > history["accuracy"][0]
    net = FeatureNetwork(model)
    f, p = net.outputs(x[1400:])
    assert f.shape == (len(x) - 1400, 512) and np.all(f >= 0)  # ReLU features
    assert np.mean(p.argmax(1) == y[1400:]) == pytest.approx(history["test_accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        train_classifier(x[:10], y[:9])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_classifier(x[:10] * 255, y[:10])


def test_save_load_round_trip(trained, digits28, tmp_path, monkeypatch):
    model, _ = trained
    x = digits28[0][:64]
    before = FeatureNetwork(model)
    f0, p0 = before.outputs(x)
    model.save(tmp_path / "model.keras")
    for where in (tmp_path / "model.keras", tmp_path, str(tmp_path)):
        loaded = FeatureNetwork.load(where)
        f1, p1 = loaded.outputs(x)
        np.testing.assert_array_equal(f1, f0)
        np.testing.assert_array_equal(p1, p0)
    # a zoo name resolves to zoo_dir()/NAME/model.keras; the card names the layers
    entry = tmp_path / "zoo" / "lenet-digits"
    entry.mkdir(parents=True)
    model.save(entry / "model.keras")
    (entry / "card.json").write_text(json.dumps({"kind": "feature_network", "feature_layer": "conv2",
                                                 "logits_layer": "logits"}))
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    zoo_net = FeatureNetwork.load("lenet-digits")
    assert zoo_net.feature_layer == "conv2" and zoo_net.features(x).shape == (64, 8 * 8 * 64)
    np.testing.assert_array_equal(FeatureNetwork.load("lenet-digits", feature_layer="features").features(x), f0)
    with pytest.raises(FileNotFoundError, match="zoo"):
        FeatureNetwork.load("no-such-entry")
    with pytest.raises(FileNotFoundError):
        FeatureNetwork.load(str(tmp_path / "missing.keras"))
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(ModelFileError, match="truncated or not a zip archive"):
        FeatureNetwork.load(tmp_path / "junk.keras")


def _double(t):
    return 2.0 * t


@pytest.mark.parametrize("function", [_double, lambda t: 2.0 * t], ids=["named", "python-lambda"])
def test_load_refuses_lambda_layers_and_corrupt_cards(function, tmp_path):
    """A feature network holding a Lambda layer is refused before Keras deserializes it
    (a named function would load under Keras' safe mode), and a corrupt card.json is
    named as such."""
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(function)(inp)))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="contains a Lambda layer"):
        FeatureNetwork.load(tmp_path / "lambda.keras")
    good = tmp_path / "good"
    good.mkdir()
    keras.Model(inp, keras.layers.Dense(2, name="logits")(keras.layers.Dense(3, name="features")(inp))).save(
        good / "model.keras")
    (good / "card.json").write_text("{feature_layer: ")
    with pytest.raises(ModelFileError, match="card.json' is corrupt: not valid JSON"):
        FeatureNetwork.load(good)
    (good / "card.json").write_text('{"feature_layer": "features", "logits_layer": "logits"}')
    assert FeatureNetwork.load(good).feature_layer == "features"


def test_cli_trains_and_writes_entry_atomically(shared_data_dir, tmp_path, capsys):
    out = tmp_path / "lenet-mnist"
    argv = ["--dataset", "mnist", "--epochs", "1", "--limit", "600", "--out", str(out), "--verbose", "0"]
    assert classifier.main(argv) == 0
    printed = capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert {"name", "kind", "dataset", "test_accuracy", "epochs", "command", "feature_layer",
            "logits_layer"} <= set(card)
    assert card["name"] == "lenet-mnist" and card["kind"] == "feature_network"
    assert card["dataset"] == "mnist" and card["epochs"] == 1 and card["test_images"] == 600
    assert card["command"].startswith("python -m tfgen.metrics.classifier --dataset mnist")
    assert f"{card['test_accuracy']:.4f}" in printed
    assert card["test_accuracy"] > 0.3  # 600 images, one epoch; chance is 0.1
    assert (out / "model.keras").stat().st_size < 3e6  # weights only, no optimizer state
    net = FeatureNetwork.load(out)
    assert net.features(np.zeros((2, 784), np.float32)).shape == (2, 512)
    # an existing entry is not overwritten without --overwrite, and is left intact
    stamp = (out / "card.json").stat().st_mtime_ns
    with pytest.raises(SystemExit):
        classifier.main(argv)
    assert (out / "card.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet-mnist"]  # no temp folders left


# --------------------------------------------------------------------------- InceptionV3


def test_inception_v3_needs_a_local_weights_file(tmp_path):
    with pytest.raises(ValueError, match="weights_path"):
        inception_v3(None)
    with pytest.raises(FileNotFoundError, match="weights_path"):
        inception_v3(tmp_path / "inception.h5")


def test_inception_v3_wrapper_configuration(tmp_path, monkeypatch):
    # keras.applications.InceptionV3 replaced by a tiny stand-in with its layer names: checks
    # what inception_v3 asks Keras for and how it wraps the result, without the 24M-parameter net
    calls = {}

    def fake(include_top, weights):
        calls.update(include_top=include_top, weights=weights)
        inp = keras.Input((8, 8, 3))
        pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")(inp)
        return keras.Model(inp, keras.layers.Dense(4, activation="softmax", name="predictions")(pool))

    monkeypatch.setattr(keras.applications, "InceptionV3", fake)
    weights = tmp_path / "inception.weights.h5"
    weights.write_bytes(b"")
    net = inception_v3(weights, resize=(8, 8))
    assert calls == {"include_top": True, "weights": str(weights)}
    assert net.feature_layer == "avg_pool" and net.logits_layer == "predictions"
    assert net.input_range == (-1.0, 1.0) and net.channels == 3 and net.logits_are_probabilities
    f = net.features(np.full((2, 28, 28, 1), 0.75))
    np.testing.assert_allclose(f, 0.5, atol=1e-6)  # 2 * 0.75 - 1 in all 3 channels


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TFGEN_RUN_INCEPTION_TEST"),
                    reason="builds the real InceptionV3 (about 20 s); set TFGEN_RUN_INCEPTION_TEST=1")
def test_inception_v3_real_network(tmp_path):
    model = keras.applications.InceptionV3(include_top=True, weights=None)
    model.save_weights(tmp_path / "w.weights.h5")
    net = inception_v3(tmp_path / "w.weights.h5")
    f, p = net.outputs(np.random.default_rng(0).uniform(size=(2, 28, 28, 1)))
    assert f.shape == (2, 2048) and p.shape == (2, 1000)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-9)
