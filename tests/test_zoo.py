"""Zoo loading: names, folders, exports, and files that are not tfgen models."""

import json

import keras
import numpy as np
import pytest

import tfgen
from tfgen import zoo


def test_shipped_entries_load_and_sample():
    """Every committed zoo entry loads by name, both formats, with the same samples,
    and its card states the command that measured its metrics."""
    entries = zoo.entries()
    for e in entries:
        exported = tfgen.load(e["name"])
        model = tfgen.load(e["name"], format="keras")
        np.testing.assert_allclose(exported.sample(16, seed=2), model.sample(16, seed=2), atol=1e-5)
        assert e["command"].startswith("tfgen ") and e["metrics"]
    if not entries:
        pytest.skip("no zoo entries committed yet")


def test_shipped_cards_are_strict_json_and_their_recipes_read_back():
    """A card is for any program to read: no bare Infinity or NaN tokens (Python's json
    would write them: kde-gan-mnist's threshold is inf), and the recipe in it is a recipe."""
    from tfgen.trainers import recipes

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    cards = sorted(zoo.zoo_dir().glob(f"*/{zoo.CARD}"))
    for path in cards:
        card = json.loads(path.read_text(), parse_constant=refuse)
        if "recipe" in card:
            assert recipes.Recipe.from_dict(card["recipe"]).name == card["name"], path
    if not cards:
        pytest.skip("no zoo entries committed yet")


def test_unknown_name_suggests(monkeypatch, tmp_path):
    (tmp_path / "gram-ring8").mkdir()
    (tmp_path / "gram-ring8" / "card.json").write_text(json.dumps({"metrics": {}}))
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="did you mean 'gram-ring8'"):
        tfgen.load("gram-rign8")
    with pytest.raises(ValueError, match="format"):
        tfgen.load("gram-ring8", format="onnx")


def test_foreign_files_are_refused(tmp_path):
    not_zip = tmp_path / "x.keras"
    not_zip.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a .keras file"):
        zoo.load_keras(not_zip)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not a tfgen GenerativeModel"):
        zoo.load_keras(tmp_path / "plain.keras")
    truncated = tmp_path / "trunc.keras"
    truncated.write_bytes((tmp_path / "plain.keras").read_bytes()[:200])
    with pytest.raises(ValueError):
        zoo.load_keras(truncated)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        tfgen.load(tmp_path / "empty")
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[])
        def f(self):
            return tf.constant(1.0)

    tf.saved_model.save(M(), str(tmp_path / "foreign"))
    with pytest.raises(ValueError, match="not a tfgen export"):
        tfgen.load(tmp_path / "foreign")


def test_feature_networks_are_listed_apart(monkeypatch, tmp_path):
    (tmp_path / "lenet-x").mkdir()
    (tmp_path / "lenet-x" / "card.json").write_text(json.dumps({"kind": "feature_network"}))
    (tmp_path / "gan-x").mkdir()
    (tmp_path / "gan-x" / "card.json").write_text(json.dumps({"metrics": {}}))
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path))
    assert [e["name"] for e in zoo.entries()] == ["gan-x"]
    assert [e["name"] for e in zoo.entries("feature_network")] == ["lenet-x"]
    with pytest.raises(ValueError, match="FeatureNetwork.load"):
        tfgen.load("lenet-x")
