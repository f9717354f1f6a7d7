"""Feature networks for FID, KID and the Inception Score (METHODS.md 6(c)).

FID, KID and IS compare images through a trained classifier: its penultimate
activations are the features, its softmax the class probabilities. The
protocols of the papers use InceptionV3 (TTUR ``fid.py``, openai
``improved-gan``), whose weights are a run-time download that these offline
machines cannot fetch, so tfgen ships an MNIST classifier instead, as
Bińkowski et al. 2018 ("Demystifying MMD GANs", ``compute_scores.py --model
lenet``) do for MNIST:

* :func:`lenet` builds that LeNet: conv 5x5/32, maxpool 2, conv 5x5/64,
  maxpool 2, a 512-d ReLU layer named ``"features"`` (Bińkowski's ``Relu_5``)
  and 10 logits named ``"logits"``. It rescales [0, 1] pixels to [-0.5, 0.5]
  inside itself, as Bińkowski's code does.
* :func:`train_classifier` trains it (Adam 1e-3, cross-entropy from logits).
* :class:`FeatureNetwork` wraps any Keras classifier so that metrics can ask
  for ``features(images)`` and ``probabilities(images)`` of tfgen images
  (float NHWC or flat, in [0, 1]); it maps them to the range, size and
  channel count the network wants. :meth:`FeatureNetwork.load` reads a
  ``.keras`` file or a zoo entry.
* :func:`inception_v3` wraps Keras' InceptionV3 from a local weights file
  (``avg_pool`` features, 2048-d; ``predictions`` softmax), for machines
  that have the file.
* ``python -m tfgen.metrics.classifier --dataset mnist --epochs 3 --out DIR``
  trains the zoo's classifier and writes ``DIR/model.keras`` and
  ``DIR/card.json``.

Note that Keras' InceptionV3 is not the TF-slim "Inception-2015-12-05" graph
that TTUR's and openai's numbers were measured with, so FIDs and IS from it are
close to, not equal to, published ones.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import pathlib
import shlex
import shutil
import sys
import tempfile
import time

import numpy as np

from tfgen import jsonio

__all__ = ["FeatureNetwork", "inception_v3", "lenet", "main", "train_classifier"]

# pixels may overshoot [0, 1] by this much (float rounding in a generator's output layer)
_RANGE_TOLERANCE = 1e-3


def _keras():
    import keras  # noqa: PLC0415 (keras is heavy; the NumPy metrics do not need it)
    return keras


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the LeNet


def lenet(input_shape=(28, 28, 1), n_classes: int = 10, feature_dim: int = 512, name: str = "lenet"):
    """Bińkowski et al.'s MNIST LeNet (METHODS.md 6(c), "Offline MNIST").

    ``Rescaling`` [0, 1] -> [-0.5, 0.5]; conv 5x5 32 (valid) + ReLU; maxpool 2;
    conv 5x5 64 (valid) + ReLU; maxpool 2 (28x28 -> 4x4x64); flatten; Dense
    ``feature_dim`` + ReLU (layer ``"features"``); Dense ``n_classes`` logits
    (layer ``"logits"``). About 0.58 M parameters (2.3 MB) at the defaults.

    Args:
      input_shape: ``(H, W, C)``, or ``(H * W,)`` for flat grayscale images of
        a square side, which are reshaped to ``(H, W, 1)`` inside the model.
      n_classes: number of logits.
      feature_dim: width of the feature layer.
      name: the model's name.
    """
    keras = _keras()
    shape = tuple(int(s) for s in input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or len(shape) not in (1, 3) or any(s < 1 for s in shape):
        raise ValueError(f"input_shape: expected (H, W, C) or flat (H*W,), got {input_shape!r}")
    n_classes = _positive_int(n_classes, "n_classes")
    feature_dim = _positive_int(feature_dim, "feature_dim")
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side != shape[0]:
            raise ValueError(f"input_shape: a flat input must be a square grayscale image (H*W with "
                             f"H == W), got {shape[0]} features")
        image_shape = (side, side, 1)
    else:
        image_shape = shape
    # two valid 5x5 convs and two 2x2 pools: the smallest usable side is 16
    for s in image_shape[:2]:
        if (s - 4) // 2 - 4 < 2:
            raise ValueError(f"input_shape: images must be at least 16x16 for LeNet's two valid "
                             f"5x5 convolutions and pools, got {image_shape}")
    layers = [keras.Input(shape=shape)]
    if len(shape) == 1:
        layers.append(keras.layers.Reshape(image_shape, name="to_image"))
    layers += [
        # Bińkowski's code feeds the LeNet pixels in [-0.5, 0.5]
        keras.layers.Rescaling(1.0, offset=-0.5, name="centre"),
        keras.layers.Conv2D(32, 5, padding="valid", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(64, 5, padding="valid", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(feature_dim, activation="relu", name="features"),
        keras.layers.Dense(n_classes, name="logits"),
    ]
    return keras.Sequential(layers, name=name)


def _labelled(x, y, name: str):
    """Float32 images in [0, 1] and int labels, checked."""
    try:
        xa = np.asarray(x, dtype=np.float32)
        ya = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numeric images and integer labels") from exc
    if xa.ndim not in (2, 4):
        raise ValueError(f"{name}: expected images (n, H, W, C) or flat (n, d), got shape {xa.shape}")
    if ya.ndim != 1 or len(ya) != len(xa) or len(xa) == 0:
        raise ValueError(f"{name}: expected one integer label per image, got {len(xa)} images and "
                         f"labels of shape {ya.shape}")
    if not np.issubdtype(ya.dtype, np.integer):
        if not np.all(np.isfinite(ya)) or np.any(ya != np.round(ya)):
            raise ValueError(f"{name}: labels must be integers")
    ya = ya.astype(np.int64)
    if ya.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0, got {ya.min()}")
    _check_pixels(xa, name)
    return xa, ya


def _check_pixels(x: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(f"{name}: expected pixels in [0, 1] (tfgen's image convention), got values "
                         f"in [{lo:g}, {hi:g}]; rescale first (x / 255 for [0, 255], (x + 1) / 2 "
                         f"for [-1, 1])")


def train_classifier(x, y, *, epochs: int = 3, batch_size: int = 128, validation=None, seed: int = 0,
                     n_classes: int | None = None, feature_dim: int = 512, verbose=0, model=None):
    """Train the :func:`lenet` feature network (Adam 1e-3, cross-entropy from logits).

    Args:
      x: training images in [0, 1], ``(n, H, W, C)`` or flat ``(n, H*W)``.
      y: integer labels ``(n,)``.
      epochs, batch_size: as in ``keras.Model.fit``.
      validation: ``(x_val, y_val)`` (the official test split for the zoo's
        classifier), evaluated after every epoch and at the end; or None.
      seed: seeds the weights and the shuffling (``keras.utils.set_random_seed``,
        which also reseeds Python's, NumPy's and TensorFlow's global generators).
      n_classes: logits; default ``max(label) + 1`` over training and validation labels.
      feature_dim: width of the ``"features"`` layer.
      verbose: passed to ``fit``.
      model: a compiled-or-not Keras model to train instead of a fresh LeNet;
        it must output logits.

    Returns:
      ``(model, history)``: history is ``History.history`` (lists per epoch,
      ``loss``, ``accuracy`` and ``val_*``) plus ``epochs``, ``train_seconds``
      and, with ``validation``, ``test_accuracy`` and ``test_loss`` (floats).
    """
    keras = _keras()
    x, y = _labelled(x, y, "x, y")
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    val = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation: expected (x_val, y_val) or None")
        val = _labelled(*validation, "validation")
        if val[0].shape[1:] != x.shape[1:]:
            raise ValueError(f"validation: images of shape {val[0].shape[1:]} do not match the "
                             f"training images' {x.shape[1:]}")
    top = int(max(y.max(), val[1].max() if val is not None else 0)) + 1
    n_classes = max(top, 2) if n_classes is None else _positive_int(n_classes, "n_classes")
    if top > n_classes:
        raise ValueError(f"n_classes={n_classes} but the labels go up to {top - 1}")
    keras.utils.set_random_seed(int(seed))
    if model is None:
        model = lenet(x.shape[1:], n_classes=n_classes, feature_dim=feature_dim)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=False)  # XLA's compile time outweighs its gain for a few epochs on CPU
    start = time.perf_counter()
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, validation_data=val,
                     verbose=verbose)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    history["epochs"] = epochs
    history["train_seconds"] = time.perf_counter() - start
    if val is not None:
        loss, acc = model.evaluate(val[0], val[1], batch_size=max(batch_size, 500), verbose=0)
        history["test_loss"], history["test_accuracy"] = float(loss), float(acc)
    return model, history


# --------------------------------------------------------------------------- the wrapper


class FeatureNetwork:
    """Features and class probabilities of tfgen images from a Keras classifier.

    Images come in tfgen's convention, float in [0, 1], NHWC ``(n, H, W, C)``
    or flat ``(n, d)``; they are mapped linearly to ``input_range``, resized to
    ``resize`` (bilinear) and tiled from 1 to ``channels`` channels when asked,
    and reshaped to the model's input shape, in ``batch_size`` chunks.

    Args:
      model: a Keras model with known ``inputs`` (functional or Sequential
        built with an ``Input``).
      feature_layer: name of the layer whose output are the features (flattened
        per image), or None for the model's output.
      logits_layer: name of the layer with the class logits; None, or a name
        the model lacks, means there are no class probabilities.
      input_range: ``(lo, hi)`` the model expects its pixels in; [0, 1] pixels
        are mapped to it (the LeNet rescales internally, so ``(0, 1)``;
        Keras' InceptionV3 wants ``(-1, 1)``).
      resize: None, or ``(H, W)`` to resize images to (InceptionV3: 299x299).
      channels: None, or the channel count to tile grayscale images to (3 for
        networks trained on colour images).
      logits_are_probabilities: the ``logits_layer`` already outputs a softmax
        (Keras' InceptionV3 ``"predictions"``), so it is not softmaxed again.
    """

    def __init__(self, model, feature_layer: str | None = "features", logits_layer: str | None = "logits",
                 input_range=(0.0, 1.0), resize=None, channels: int | None = None,
                 logits_are_probabilities: bool = False):
        keras = _keras()
        if not isinstance(model, keras.Model):
            raise ValueError(f"model: expected a keras.Model, got {type(model).__name__}")
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs or len(inputs) != 1:
            raise ValueError("model: expected a built model with one input (a functional model, or "
                             "a Sequential that starts with keras.Input)")
        try:
            lo, hi = (float(v) for v in input_range)
        except (TypeError, ValueError):
            raise ValueError(f"input_range: expected (lo, hi), got {input_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"input_range: expected finite lo < hi, got {input_range!r}")
        if resize is not None:
            if not isinstance(resize, (tuple, list)) or len(resize) != 2:
                raise ValueError(f"resize: expected None or (H, W), got {resize!r}")
            resize = tuple(_positive_int(s, "resize") for s in resize)
        if channels is not None:
            channels = _positive_int(channels, "channels")
        names = [layer.name for layer in model.layers]
        if feature_layer is None:
            feature_out = model.outputs[0]
        elif feature_layer in names:
            feature_out = model.get_layer(feature_layer).output
        else:
            raise ValueError(f"feature_layer: model {model.name!r} has no layer {feature_layer!r} "
                             f"(its layers: {names})")
        has_logits = logits_layer is not None and logits_layer in names
        outputs = [feature_out] + ([model.get_layer(logits_layer).output] if has_logits else [])
        self.model = model
        self.feature_layer = feature_layer
        self.logits_layer = logits_layer if has_logits else None
        self.input_range = (lo, hi)
        self.resize = resize
        self.channels = channels
        self.logits_are_probabilities = bool(logits_are_probabilities)
        self.input_shape = tuple(int(s) if s is not None else None for s in inputs[0].shape[1:])
        self._sub = keras.Model(inputs, outputs, name=f"{model.name}_features")
        self._fn = None

    # ---- input handling

    @property
    def has_probabilities(self) -> bool:
        return self.logits_layer is not None

    def _as_images(self, x) -> np.ndarray:
        """Float32 ``(n, ...)`` images, checked (range, NaN), with flat rows made into images
        when the model or the options need images."""
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"images: expected a numeric array, got {type(x).__name__}") from exc
        if arr.ndim not in (2, 3, 4) or arr.shape[0] == 0:
            raise ValueError(f"images: expected (n, H, W, C), (n, H, W) or flat (n, d) with n >= 1, "
                             f"got shape {arr.shape}")
        if arr.ndim == 3:
            arr = arr[..., None]
        wants_image = len(self.input_shape) > 1 or self.resize is not None or self.channels is not None
        if arr.ndim == 2 and wants_image:
            d = arr.shape[1]
            if self.resize is None and self.channels is None and None not in self.input_shape \
                    and int(np.prod(self.input_shape)) == d:
                return arr.reshape((-1, *self.input_shape))
            for c in (1, 3):
                side = math.isqrt(d // c)
                if d % c == 0 and side * side * c == d:
                    return arr.reshape(-1, side, side, c)
            raise ValueError(f"images: flat rows of {d} features are neither the model's input "
                             f"shape {self.input_shape} nor square grayscale/RGB images")
        return arr

    def _graph(self):
        if self._fn is None:
            import tensorflow as tf  # noqa: PLC0415

            lo, hi = self.input_range
            flat_model = len(self.input_shape) == 1

            def run(x):
                x = x * (hi - lo) + lo
                if self.resize is not None:
                    x = tf.image.resize(x, self.resize, method="bilinear")
                if self.channels is not None and x.shape[-1] != self.channels:
                    if x.shape[-1] != 1:
                        raise ValueError(f"channels={self.channels}: only grayscale images are tiled, "
                                         f"got {x.shape[-1]} channels")
                    x = tf.tile(x, [1, 1, 1, self.channels])
                if flat_model and x.shape.rank > 2:
                    x = tf.reshape(x, [tf.shape(x)[0], -1])
                out = self._sub(x, training=False)
                return out if isinstance(out, (list, tuple)) else [out]

            self._fn = tf.function(run, reduce_retracing=True)
        return self._fn

    def outputs(self, x, batch_size: int = 500):
        """``(features float64 (n, d), probabilities float64 (n, classes) or None)`` in one pass."""
        batch_size = _positive_int(batch_size, "batch_size")
        arr = self._as_images(x)
        fn = self._graph()
        feats, probs = [], []
        for s in range(0, len(arr), batch_size):
            block = arr[s:s + batch_size]
            _check_pixels(block, "images")
            try:
                out = fn(block)
            except (ValueError, TypeError) as exc:  # keras' own shape errors are long; name the cause
                raise ValueError(f"images of shape {block.shape[1:]} do not fit the model's input "
                                 f"{self.input_shape} (after resize={self.resize}, "
                                 f"channels={self.channels}): {exc}") from exc
            feats.append(np.asarray(out[0], np.float64).reshape(len(block), -1))
            if self.has_probabilities:
                probs.append(np.asarray(out[1], np.float64).reshape(len(block), -1))
        features = np.concatenate(feats)
        if not self.has_probabilities:
            return features, None
        p = np.concatenate(probs)
        if self.logits_are_probabilities:
            p = np.clip(p, 0.0, None)
            p /= p.sum(axis=1, keepdims=True)
        else:  # softmax in float64
            p = np.exp(p - p.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        return features, p

    def features(self, x, batch_size: int = 500) -> np.ndarray:
        """Float64 ``(n, d)`` activations of ``feature_layer`` for images in [0, 1]."""
        return self.outputs(x, batch_size)[0]

    def probabilities(self, x, batch_size: int = 500):
        """Float64 softmax ``(n, classes)`` for images in [0, 1], or None without a logits layer."""
        if not self.has_probabilities:
            return None
        return self.outputs(x, batch_size)[1]

    # ---- loading

    @classmethod
    def load(cls, name_or_path, **options) -> "FeatureNetwork":
        """A feature network from a ``.keras`` file, a folder holding ``model.keras``, or a
        zoo entry name (``tfgen.zoo.zoo_dir() / name / "model.keras"``).

        A ``card.json`` beside the model supplies ``feature_layer`` and
        ``logits_layer`` (and ``input_range``, ``resize``, ``channels``,
        ``logits_are_probabilities`` if present); ``options`` override them.
        """
        raw = os.fspath(name_or_path)
        keras_file = checked_keras_file(name_or_path)
        from tfgen.export import ModelFileError  # noqa: PLC0415

        settings = {}
        card_file = keras_file.parent / "card.json"
        if card_file.is_file():
            try:
                card = json.loads(card_file.read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise ModelFileError(f"{str(card_file)!r} is corrupt: not valid JSON ({exc})") from exc
            if not isinstance(card, dict):
                raise ModelFileError(f"{str(card_file)!r} is corrupt: expected a JSON object")
            if card.get("load_with") and not str(card["load_with"]).endswith("FeatureNetwork.load"):
                # another kind of feature network (the spoken-digit classifier takes waveforms)
                raise ValueError(f"{raw!r} is not an image feature network: its card says to load it with "
                                 f"{card['load_with']}")
            for key in ("feature_layer", "logits_layer", "input_range", "resize", "channels",
                        "logits_are_probabilities"):
                if key in card:
                    settings[key] = card[key]
        settings.update(options)
        return cls(load_checked(keras_file), **settings)

    def __repr__(self):
        return (f"FeatureNetwork({self.model.name!r}, feature_layer={self.feature_layer!r}, "
                f"logits_layer={self.logits_layer!r}, input_range={self.input_range}, "
                f"resize={self.resize}, channels={self.channels})")


def checked_keras_file(name_or_path) -> pathlib.Path:
    """The ``.keras`` file of a feature network given as a file, a folder holding
    ``model.keras`` or a zoo entry name, after the zoo's checks (a whole zip, no
    ``Lambda`` layer: a feature network never needs code). Shared by the image and
    audio loaders."""
    from tfgen import zoo  # noqa: PLC0415 (zoo sits above metrics; only its path and checks are used)

    raw = os.fspath(name_or_path)
    path = pathlib.Path(raw)
    if not path.exists():
        if os.sep in raw or raw.startswith(".") or raw.endswith(".keras"):
            raise FileNotFoundError(f"name_or_path: no such file or directory: {raw!r}")
        path = zoo.zoo_dir() / raw
        if not (path / "model.keras").is_file():
            raise FileNotFoundError(f"name_or_path: {raw!r} is neither a file nor a zoo entry with "
                                    f"a model.keras (looked in {str(zoo.zoo_dir())!r})")
    keras_file = path / "model.keras" if path.is_dir() else path
    if not keras_file.is_file():
        raise FileNotFoundError(f"name_or_path: no model.keras in {str(path)!r}")
    zoo.check_keras_file(keras_file, tfgen_model=False)
    return keras_file


def load_checked(keras_file):
    """``keras.models.load_model`` in safe mode, any failure as a ``ModelFileError``."""
    from tfgen.export import ModelFileError  # noqa: PLC0415

    try:
        return _keras().models.load_model(keras_file, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types for foreign or broken files
        raise ModelFileError(f"{str(keras_file)!r} could not be loaded as a Keras model: {exc}") from exc


def as_feature_network(network) -> FeatureNetwork:
    """``network`` itself if a :class:`FeatureNetwork`; a Keras model is wrapped on its
    ``"features"`` layer if it has one, else on its output; a string or path is loaded."""
    if isinstance(network, FeatureNetwork):
        return network
    if isinstance(network, (str, os.PathLike)):
        return FeatureNetwork.load(network)
    keras = _keras()
    if isinstance(network, keras.Model):
        names = {layer.name for layer in network.layers}
        return FeatureNetwork(network, feature_layer="features" if "features" in names else None)
    raise ValueError(f"feature_network: expected a FeatureNetwork, a keras.Model, a path or a zoo "
                     f"name, got {type(network).__name__}")


def inception_v3(weights_path, *, resize=(299, 299)) -> FeatureNetwork:
    """Keras' InceptionV3 from a local weights file, as a :class:`FeatureNetwork`.

    Features: ``avg_pool`` (2048-d, the counterpart of TTUR's ``pool_3``);
    probabilities: ``predictions`` (already a softmax over 1000 classes).
    Pixels in [0, 1] are mapped to [-1, 1] (Keras' ``preprocess_input`` for
    this network), resized to 299x299 and grayscale tiled to RGB.

    Args:
      weights_path: a local ``.h5`` / ``.weights.h5`` file with the ImageNet
        weights including the top (these machines cannot download them).
    """
    if weights_path is None:
        raise ValueError("weights_path: InceptionV3 needs a local weights file (ImageNet, "
                         "include_top=True); downloads are not possible here. Use the zoo's MNIST "
                         "classifier (FeatureNetwork.load) for offline FID/KID/IS")
    path = pathlib.Path(os.fspath(weights_path))
    if not path.is_file():
        raise FileNotFoundError(f"weights_path: no such file: {str(path)!r}")
    keras = _keras()
    model = keras.applications.InceptionV3(include_top=True, weights=str(path))
    return FeatureNetwork(model, feature_layer="avg_pool", logits_layer="predictions",
                          input_range=(-1.0, 1.0), resize=resize, channels=3,
                          logits_are_probabilities=True)


# --------------------------------------------------------------------------- the CLI


def _write_atomically(dest: pathlib.Path, model, card: dict, overwrite: bool) -> None:
    """Write ``model.keras`` and ``card.json`` into a temporary folder beside ``dest``, then
    rename it into place; an existing ``dest`` survives until the new one is complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    old = None
    try:
        # an uncompiled copy: the .keras file then holds no Adam moments (2.3 MB, not 7)
        bare = model.__class__.from_config(model.get_config())  # (clone_model keeps the compile)
        bare.set_weights(model.get_weights())
        bare.save(tmp / "model.keras")
        with open(tmp / "card.json", "w") as f:
            jsonio.dump(card, f, indent=2)
            f.write("\n")
        if dest.exists():
            if not overwrite:
                raise FileExistsError(f"--out {str(dest)!r} exists; pass --overwrite to replace it")
            old = dest.parent / f".{dest.name}-old-{os.getpid()}"
            dest.rename(old)
        tmp.rename(dest)
    except BaseException:
        if old is not None and not dest.exists():
            old.rename(dest)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv=None) -> int:
    """``python -m tfgen.metrics.classifier --dataset mnist --epochs 3 --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m tfgen.metrics.classifier",
        description="Train the LeNet feature network for offline FID/KID/IS (METHODS.md 6(c)) "
                    "and write DIR/model.keras and DIR/card.json.")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N train and N test images (smoke runs)")
    parser.add_argument("--data-dir", default=None, help="folder with the IDX files (else $TFGEN_DATA_DIR)")
    parser.add_argument("--name", default=None, help="card name (default: the --out folder's name)")
    parser.add_argument("--out", required=True, help="output folder (a zoo entry: saved_models/NAME)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    dest = pathlib.Path(args.out)
    if dest.exists() and not args.overwrite:
        parser.error(f"--out {args.out!r} exists; pass --overwrite to replace it")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive integer")

    from tfgen import data  # noqa: PLC0415

    x, y = data.load_numpy(args.dataset, "train", with_labels=True, data_dir=args.data_dir, n=args.limit)
    x_test, y_test = data.load_numpy(args.dataset, "test", with_labels=True, data_dir=args.data_dir,
                                     n=None if args.limit is None else min(args.limit, 10_000))
    model, history = train_classifier(x, y, epochs=args.epochs, batch_size=args.batch_size,
                                      validation=(x_test, y_test), seed=args.seed, verbose=args.verbose)
    print(f"test accuracy: {history['test_accuracy']:.4f} ({len(x_test)} {args.dataset} test images)")
    card = {
        "name": args.name or dest.name,
        "kind": "feature_network",
        "dataset": args.dataset,
        "test_accuracy": history["test_accuracy"],
        "test_loss": history["test_loss"],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_images": int(len(x)),
        "test_images": int(len(x_test)),
        "train_seconds": round(history["train_seconds"], 1),
        "command": "python -m tfgen.metrics.classifier " + shlex.join(argv),
        "feature_layer": "features",
        "logits_layer": "logits",
        "input_range": [0.0, 1.0],
        "architecture": "LeNet (Binkowski et al. 2018 compute_scores.py --model lenet): conv5x5/32, "
                        "pool2, conv5x5/64, pool2, dense 512 ReLU ('features'), dense 10 ('logits'); "
                        "inputs rescaled to [-0.5, 0.5] inside",
        "history": {k: v for k, v in history.items() if isinstance(v, list)},
    }
    _write_atomically(dest, model, card, args.overwrite)
    print(f"wrote {dest / 'model.keras'} and {dest / 'card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
