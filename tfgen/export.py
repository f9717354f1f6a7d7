"""SavedModel export: what TF Serving and ``tfgen.load`` read.

Signatures (``saved_model_cli show --all`` lists them):

* ``serving_default(n: int32 scalar, seed: int64 scalar) -> {"samples": (n, *data_shape)}``:
  draws ``z`` from the model's prior (a learned prior is baked in as
  variables) and generates. ``n`` must lie in ``[0, max_samples]``; a request
  outside is refused by the signature with ``InvalidArgumentError``.
* ``generate(z: float32 (None, latent_dim)) -> {"x": (None, *data_shape)}``.
* models that define ``export_endpoints()`` add theirs, e.g. IML's
  ``log_prob(x: float32 (None, *data_shape)) -> {"log_prob": (None,)}``.

The export is written beside its destination and renamed into place, so an
interrupted export never leaves a half-written model where a good one was.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfgen import jsonio

EXPORT_INFO = "tfgen_export.json"
# The signatures every tfgen export has: name -> (inputs, outputs, meaning).
_SIGNATURES = {"serving_default": ({"n", "seed"}, {"samples"}, "sample(n, seed)"),
               "generate": ({"z"}, {"x"}, "generate(z)")}


class ModelFileError(ValueError):
    """A file or folder that cannot be loaded as a tfgen model: foreign (not a
    tfgen model), truncated or corrupt, or holding code (a ``Lambda`` layer).
    The message names the path and says what is wrong."""


def export_model(model, path, *, overwrite: bool = False, max_samples: int = 100_000) -> str:
    """Export ``model`` (a ``GenerativeModel``) to the SavedModel directory ``path``."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"export path {path!r} exists; pass overwrite=True (CLI: --overwrite) "
                              "to replace it")
    if max_samples <= 0:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    latent_dim = int(model.latent_dim)

    def serve_sample(n, seed):
        checks = [tf.debugging.assert_non_negative(n, message="n must be >= 0"),
                  tf.debugging.assert_less_equal(n, tf.constant(max_samples, tf.int32),
                                                 message=f"n must be <= {max_samples}")]
        with tf.control_dependencies(checks):  # refuse before any work
            n = tf.identity(n)
        z = model.prior.sample(n, seed=seed)
        return {"samples": model.generate(z, training=False)}

    def serve_generate(z):
        return {"x": model.generate(z, training=False)}

    archive = keras.export.ExportArchive()
    # Only what sampling reads: the generator and the prior (critics,
    # discriminators and encoders stay out of the served artifact).
    for layer in model.export_layers():
        archive.track(layer)
    archive.add_endpoint("serving_default", serve_sample, input_signature=[
        tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int64, name="seed")])
    archive.add_endpoint("generate", serve_generate, input_signature=[
        tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
    extra = model.export_endpoints() if hasattr(model, "export_endpoints") else {}
    for name, (fn, signature) in extra.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    # Keras (3.10-3.12) saves every weight twice: once through these lists of
    # Keras variables and once as the endpoints' captured tf.Variables
    # (`_all_variables`). The endpoints need only the latter; dropping the
    # lists halves the export (gan-mnist-mlp: 12 MB -> 6 MB).
    trackable = archive._tf_trackable
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(trackable, name, [])

    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(tmp, "model")
        archive.write_out(target, verbose=False)
        info = {"class": type(model).__name__, "latent_dim": latent_dim,
                "data_shape": list(model.data_shape), "max_samples": max_samples,
                "signatures": ["serving_default", "generate", *extra], "tfgen_format": 1}
        with open(os.path.join(target, EXPORT_INFO), "w") as f:
            jsonio.dump(info, f, indent=1)
        _atomic_replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _atomic_replace(src: str, dst: str):
    """Move directory ``src`` to ``dst``; an existing ``dst`` is swapped out only
    after ``src`` is complete, and removed only after the swap."""
    if os.path.exists(dst):
        old = dst + ".old-" + next(tempfile._get_candidate_names())
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def check_export(path) -> dict:
    """Check that ``path`` is a complete tfgen SavedModel export without running
    any of it: ``saved_model.pb`` parses and has the ``serving_default`` (``n``,
    ``seed`` -> ``samples``) and ``generate`` (``z`` -> ``x``) signatures,
    ``tfgen_export.json`` is valid, the variables are there. Returns the export
    info. Raises ``FileNotFoundError`` when there is no ``saved_model.pb`` and
    ``ModelFileError`` for anything else."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(os.fspath(path))
    where = str(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {where!r}")
    pb = path / "saved_model.pb"
    if not pb.is_file():
        hint = ("; it holds a model.keras: pass format='keras'" if (path / "model.keras").is_file() else "")
        raise FileNotFoundError(f"{where!r} is not a SavedModel directory (no saved_model.pb){hint}")
    info_path = path / EXPORT_INFO
    if not info_path.is_file():
        raise ModelFileError(f"{where!r} is not a tfgen model: it is a SavedModel but not a tfgen export "
                             f"(no {EXPORT_INFO})")
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{str(info_path)!r} is corrupt: not valid JSON ({e})") from e
    needed = {"class": str, "latent_dim": int, "data_shape": list}
    if not isinstance(info, dict) or any(not isinstance(info.get(k), t) for k, t in needed.items()):
        raise ModelFileError(f"{str(info_path)!r} is corrupt: it must be a JSON object with "
                             "'class' (a string), 'latent_dim' (an integer) and 'data_shape' (a list)")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(pb.read_bytes())
    except DecodeError as e:
        raise ModelFileError(f"{str(pb)!r} is truncated or corrupt: it does not parse as a SavedModel "
                             f"({e})") from e
    if not saved.meta_graphs:
        raise ModelFileError(f"{str(pb)!r} is truncated or corrupt: it holds no MetaGraph")
    signatures = saved.meta_graphs[0].signature_def
    for name, (inputs, outputs, meaning) in _SIGNATURES.items():
        if name not in signatures:
            raise ModelFileError(f"{where!r} is not a tfgen model: it has no {name!r} signature ({meaning}); "
                                 f"it has {sorted(signatures) or 'none'}")
        got_in, got_out = set(signatures[name].inputs), set(signatures[name].outputs)
        if got_in != inputs or not outputs <= got_out:
            raise ModelFileError(f"{where!r} is not a tfgen model: its {name!r} signature maps "
                                 f"{sorted(got_in)} to {sorted(got_out)}, not {sorted(inputs)} to "
                                 f"{sorted(outputs)} ({meaning})")
    if not (path / "variables" / "variables.index").is_file():
        raise ModelFileError(f"{where!r} is incomplete: variables/variables.index is missing")
    return info


class ExportedModel:
    """A loaded export: ``sample(n, seed)``, ``generate(z)`` (and ``log_prob(x)``
    where the model has it) as NumPy, no model code needed."""

    def __init__(self, path: str):
        path = os.fspath(path)
        self.info = check_export(path)
        self.path = path
        try:
            self._obj = tf.saved_model.load(path)
        except Exception as e:  # what check_export cannot see: variables that do not restore, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFileError(f"{path!r} could not be loaded as a tfgen export "
                                 f"({type(e).__name__}: {first})") from e
        self.latent_dim = int(self.info["latent_dim"])
        self.data_shape = tuple(self.info["data_shape"])

    def sample(self, n: int, seed: int = 0):
        limit = int(self.info.get("max_samples", 2**31 - 1))
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= limit:
            raise ValueError(f"n must be an integer in [0, {limit}] (this export's max_samples), got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        out = self._obj.signatures["serving_default"](n=tf.constant(n, tf.int32),
                                                      seed=tf.constant(seed, tf.int64))
        return out["samples"].numpy()

    def generate(self, z):
        z = np.asarray(z)
        if z.dtype.kind not in "iuf":
            raise ValueError(f"z must be a numeric array, got dtype {z.dtype}")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("z contains NaN or infinite values")
        return self._obj.signatures["generate"](z=tf.convert_to_tensor(z, tf.float32))["x"].numpy()

    def log_prob(self, x):
        """The model's log-likelihood of ``x``, for exports that have it (IML)."""
        if "log_prob" not in self.info.get("signatures", ()):
            raise ValueError(f"the {self.info['class']} export at {self.path!r} has no log_prob signature")
        return self._obj.signatures["log_prob"](x=tf.convert_to_tensor(x, tf.float32))["log_prob"].numpy()

    def __repr__(self):
        return f"ExportedModel({self.info['class']}, path={self.path!r})"
