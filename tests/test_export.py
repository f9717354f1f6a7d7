"""The SavedModel export: signatures, refused requests, atomic replacement."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgen
from tfgen.distributions import Uniform
from tfgen.models import MMDNet, networks


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = MMDNet(networks.mlp(3, [8], (4, 4, 1), output_activation="sigmoid"), Uniform(3))
    m.compile(keras.optimizers.Adam())
    return m


def test_signatures_and_refused_requests(model, tmp_path):
    path = tmp_path / "export"
    model.export(path, max_samples=50)
    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures["serving_default"]
    assert set(sig.structured_input_signature[1]) == {"n", "seed"}
    assert sig.structured_input_signature[1]["n"].dtype == tf.int32
    assert sig.structured_input_signature[1]["seed"].dtype == tf.int64
    assert sig.structured_outputs["samples"].shape.as_list() == [None, 4, 4, 1]
    gen = loaded.signatures["generate"]
    assert gen.structured_input_signature[1]["z"].shape.as_list() == [None, 3]
    out = sig(n=tf.constant(50), seed=tf.constant(2**40, tf.int64))["samples"].numpy()
    assert out.shape == (50, 4, 4, 1) and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out, model.sample(50, seed=2**40), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="n must be <= 50"):
        sig(n=tf.constant(51), seed=tf.constant(0, tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="n must be >= 0"):
        sig(n=tf.constant(-1), seed=tf.constant(0, tf.int64))


def test_overwrite_is_atomic(model, tmp_path, monkeypatch):
    path = tmp_path / "export"
    model.export(path)
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.export(path)

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_write)
    with pytest.raises(OSError, match="disk full"):
        model.export(path, overwrite=True)
    monkeypatch.undo()
    # the old export is intact and still loads, and no temporary folder is left behind
    assert sorted(p.name for p in path.iterdir()) == before
    np.testing.assert_allclose(tfgen.load(path).sample(4, seed=1), model.sample(4, seed=1), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    model.export(path, overwrite=True)
    assert tfgen.load(path).info["class"] == "MMDNet"


def test_bad_max_samples(model, tmp_path):
    with pytest.raises(ValueError, match="max_samples"):
        model.export(tmp_path / "e", max_samples=0)
