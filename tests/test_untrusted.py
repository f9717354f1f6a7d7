"""Untrusted files: a ``.keras`` file or a SavedModel that is not a tfgen model,
is truncated or corrupt, or holds a ``Lambda`` layer is refused with a
``ModelFileError`` (a ``ValueError``) that names the file and says what is
wrong, before Keras or TensorFlow deserializes it; Keras' safe mode stays on.

Every bad file is built here, from one tiny tfgen model (nothing is trained).
"""

import shutil
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgen
from tfgen import cli, zoo
from tfgen.distributions import Uniform
from tfgen.models import MMDNet, networks
from tfgen.zoo import ModelFileError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good tfgen ``.keras`` file and export, from an untrained 3 -> 8 -> 2 MMD net."""
    root = tmp_path_factory.mktemp("untrusted")
    keras.utils.set_random_seed(0)
    model = MMDNet(networks.mlp(3, [8], 2), Uniform(3))
    model.save(root / "good.keras")
    model.export(root / "export")
    return {"root": root, "keras": root / "good.keras", "export": root / "export",
            "samples": model.sample(4, seed=1).numpy()}


def _copy_export(files, tmp_path, name="export"):
    dst = tmp_path / name
    shutil.copytree(files["export"], dst)
    return dst


def _cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


# --- the good files still load, in safe mode ---------------------------------------------------

def test_good_files_load_in_safe_mode(files, monkeypatch):
    calls = []
    real = keras.models.load_model

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", spy)
    model = zoo.load_keras(files["keras"])
    assert calls and all(c.get("safe_mode") is True for c in calls)
    np.testing.assert_allclose(model.sample(4, seed=1), files["samples"], atol=1e-6)
    exported = tfgen.load(files["export"])
    np.testing.assert_allclose(exported.sample(4, seed=1), files["samples"], atol=1e-6)
    assert zoo.check_export(files["export"])["class"] == "MMDNet"


# --- .keras files ---------------------------------------------------------------------------------

def test_plain_keras_model_is_not_a_tfgen_model(tmp_path):
    path = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    for load in (zoo.load_keras, lambda p: tfgen.load(p, format="keras")):
        with pytest.raises(ModelFileError, match="is not a tfgen model: it holds a Sequential") as e:
            load(path)
        assert str(path) in str(e.value) and "not a tfgen GenerativeModel" in str(e.value)


@pytest.mark.parametrize("keep", [100, 0.5, -22], ids=["first-100-bytes", "half", "no-zip-directory"])
def test_truncated_keras_file(files, tmp_path, keep):
    data = files["keras"].read_bytes()
    cut = tmp_path / "model.keras"
    cut.write_bytes(data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="is truncated or not a zip archive") as e:
        zoo.load_keras(cut)
    assert str(cut) in str(e.value) and "its end is missing" in str(e.value)
    # a folder holding the truncated model.keras, through tfgen.load
    with pytest.raises(ModelFileError, match="is truncated or not a zip archive"):
        tfgen.load(tmp_path, format="keras")


def test_not_a_zip_and_foreign_zip(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"hello, not a model")
    with pytest.raises(ModelFileError, match="is truncated or not a zip archive, so not a .keras file"):
        zoo.load_keras(junk)
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ModelFileError, match="no config.json"):
        zoo.load_keras(foreign)


def test_corrupt_member_fails_its_crc(files, tmp_path):
    data = bytearray(files["keras"].read_bytes())
    with zipfile.ZipFile(files["keras"]) as z:
        info = z.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's bytes
    middle = start + info.compress_size // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    bad = tmp_path / "bitrot.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="is corrupt: model.weights.h5 in it fails its CRC check"):
        zoo.load_keras(bad)


def test_keras_archive_without_weights(files, tmp_path):
    bad = tmp_path / "noweights.keras"
    with zipfile.ZipFile(files["keras"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if name != "model.weights.h5":
                dst.writestr(name, src.read(name))
    with pytest.raises(ModelFileError, match="is incomplete: .*no model.weights.h5"):
        zoo.load_keras(bad)


@pytest.mark.parametrize("function", [lambda x: x * 2.0, keras.activations.relu], ids=["python-lambda", "named"])
def test_lambda_layer_is_refused_before_deserialization(tmp_path, monkeypatch, function):
    """A tfgen model whose generator holds a Lambda layer: refused by name, and
    Keras never sees the file (a named function would pass Keras' safe mode)."""
    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Lambda(function, name="sneaky")])
    path = tmp_path / "lambda.keras"
    MMDNet(generator, Uniform(3)).save(path)

    def never(*args, **kwargs):
        raise AssertionError("keras.models.load_model was called on a file holding a Lambda layer")

    monkeypatch.setattr(keras.models, "load_model", never)
    with pytest.raises(ModelFileError, match=r"contains a Lambda layer \(layer 'sneaky'") as e:
        zoo.load_keras(path)
    assert str(path) in str(e.value)
    assert "which tfgen refuses to deserialize (arbitrary code)" in str(e.value)
    with pytest.raises(ModelFileError, match="contains a Lambda layer"):
        tfgen.load(path, format="keras")


def test_missing_keras_file_and_directory_given_as_keras(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such .keras file: .*missing.keras"):
        zoo.load_keras(tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError, match="no such file or directory: 'missing.keras'"):
        tfgen.load("missing.keras", format="keras")
    with pytest.raises(ModelFileError, match="is a directory, not a .keras file .a SavedModel: load it with tfgen.load"):
        zoo.load_keras(files["export"])


# --- SavedModels ----------------------------------------------------------------------------------

class _Plain(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def predict(self, x):
        return {"y": tf.reduce_sum(x, axis=1)}


def test_foreign_saved_model(files, tmp_path):
    path = tmp_path / "foreign"
    tf.saved_model.save(_Plain(), str(path))
    with pytest.raises(ModelFileError, match="is not a tfgen model: it is a SavedModel but not a tfgen export") as e:
        tfgen.load(path)
    assert str(path) in str(e.value)
    # the marker file alone does not make it one: the signatures are checked
    shutil.copy(files["export"] / "tfgen_export.json", path)
    with pytest.raises(ModelFileError, match=r"is not a tfgen model: its 'serving_default' signature maps \['x'\]"):
        tfgen.load(path)


def test_saved_model_without_the_generate_signature(files, tmp_path):
    class HalfTfgen(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int64, name="seed")])
        def sample(self, n, seed):
            return {"samples": tf.zeros([n, 2])}

    module = HalfTfgen()
    path = tmp_path / "half"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.sample})
    shutil.copy(files["export"] / "tfgen_export.json", path)
    with pytest.raises(ModelFileError, match=r"is not a tfgen model: it has no 'generate' signature \(generate\(z\)\)"):
        tfgen.load(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_saved_model_pb(files, tmp_path, damage):
    path = _copy_export(files, tmp_path)
    pb = path / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"\x0f\xff" * 64, "empty": b""}[damage])
    match = "holds no MetaGraph" if damage == "empty" else "does not parse as a SavedModel"
    with pytest.raises(ModelFileError, match=f"saved_model.pb' is truncated or corrupt: .*{match}") as e:
        tfgen.load(path)
    assert str(pb) in str(e.value)


def test_missing_or_truncated_variables(files, tmp_path):
    path = _copy_export(files, tmp_path, "novars")
    shutil.rmtree(path / "variables")
    with pytest.raises(ModelFileError, match="is incomplete: variables/variables.index is missing"):
        tfgen.load(path)
    path = _copy_export(files, tmp_path, "cutvars")
    data_file = next((path / "variables").glob("variables.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:16])
    with pytest.raises(ModelFileError, match="could not be loaded as a tfgen export") as e:
        tfgen.load(path)
    assert str(path) in str(e.value)


def test_exported_model_runs_the_checks_itself(files, tmp_path):
    """``tfgen.export.ExportedModel(path)`` used directly (not through ``tfgen.load``)
    refuses the same files with the same messages."""
    from tfgen.export import ExportedModel

    foreign = tmp_path / "foreign"
    tf.saved_model.save(_Plain(), str(foreign))
    shutil.copy(files["export"] / "tfgen_export.json", foreign)
    with pytest.raises(ModelFileError, match=r"is not a tfgen model: its 'serving_default' signature maps \['x'\]"):
        ExportedModel(foreign)
    cut = _copy_export(files, tmp_path, "cutvars")
    data_file = next((cut / "variables").glob("variables.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:16])
    with pytest.raises(ModelFileError, match=r"could not be loaded as a tfgen export \(\w+Error: ") as e:
        ExportedModel(cut)
    assert str(e.value).startswith(repr(str(cut))) and str(e.value).count("could not be loaded") == 1
    bad_info = _copy_export(files, tmp_path, "badinfo")
    (bad_info / "tfgen_export.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"tfgen_export.json' is corrupt: not valid JSON \(Expecting"):
        ExportedModel(bad_info)
    with pytest.raises(FileNotFoundError, match="no such file or directory: .*nowhere"):
        ExportedModel(tmp_path / "nowhere")
    assert ExportedModel(files["export"]).sample(4, seed=1).shape == (4, 2)


def test_truncated_variables_message_is_wrapped_once(files, tmp_path):
    cut = _copy_export(files, tmp_path, "cutvars")
    data_file = next((cut / "variables").glob("variables.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:16])
    with pytest.raises(ModelFileError) as e:
        tfgen.load(cut)
    assert str(e.value).count("could not be loaded as a tfgen export") == 1, str(e.value)


@pytest.mark.parametrize("text, match", [
    ("{not json", "is corrupt: not valid JSON"),
    ('{"class": "MMDNet"}', "'latent_dim' .an integer."),
    ("[1, 2]", "must be a JSON object"),
])
def test_corrupt_export_info(files, tmp_path, text, match):
    path = _copy_export(files, tmp_path)
    (path / "tfgen_export.json").write_text(text)
    with pytest.raises(ModelFileError, match=match) as e:
        tfgen.load(path)
    assert "tfgen_export.json" in str(e.value)


def test_missing_directories_and_wrong_kinds_of_path(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory: .*nowhere"):
        tfgen.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a SavedModel directory .no saved_model.pb."):
        tfgen.load(tmp_path / "empty")
    with pytest.raises(ModelFileError, match="is a file, not a SavedModel directory: it is a .keras file, "
                                             "so pass format='keras'"):
        tfgen.load(files["keras"])
    (tmp_path / "run").mkdir()
    shutil.copy(files["keras"], tmp_path / "run" / "model.keras")
    with pytest.raises(FileNotFoundError, match="holds a model.keras: pass format='keras'"):
        tfgen.load(tmp_path / "run")
    assert tfgen.load(tmp_path / "run", format="keras").latent_dim == 3


def test_corrupt_zoo_card(monkeypatch, tmp_path):
    (tmp_path / "gan-x").mkdir()
    (tmp_path / "gan-x" / "card.json").write_text("{oops")
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path))
    with pytest.raises(ModelFileError, match=r"gan-x/card.json' is corrupt: not valid JSON"):
        tfgen.load("gan-x")
    with pytest.raises(ModelFileError, match="card.json' is corrupt"):
        zoo.entries()


# --- the command line: one line, exit code 2 --------------------------------------------------

def test_cli_refuses_bad_model_files_in_one_line(files, tmp_path, capsys):
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(plain)
    cut = tmp_path / "cut.keras"
    cut.write_bytes(files["keras"].read_bytes()[:300])
    lam = tmp_path / "lambda.keras"
    MMDNet(keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x[:, :2])]), Uniform(3)).save(lam)
    foreign = tmp_path / "foreign"
    tf.saved_model.save(_Plain(), str(foreign))
    broken = _copy_export(files, tmp_path, "broken")
    (broken / "saved_model.pb").write_bytes(b"\x0f\xff" * 8)
    out = tmp_path / "s.npy"
    cases = [
        (("sample", plain, "-n", 4, "--out", out), "is not a tfgen model: it holds a Sequential"),
        (("sample", cut, "-n", 4, "--out", out), "is truncated or not a zip archive"),
        (("sample", lam, "-n", 4, "--out", out), "contains a Lambda layer"),
        (("sample", foreign, "-n", 4, "--out", out), "not a tfgen export"),
        (("sample", broken, "-n", 4, "--out", out), "saved_model.pb' is truncated or corrupt"),
        (("sample", tmp_path / "nowhere", "-n", 4, "--out", out), "no such file or directory"),
        (("sample", plain, "--interpolate", 2, "--out", tmp_path / "i.png"), "is not a tfgen model"),
        (("export", lam, tmp_path / "e"), "contains a Lambda layer"),
        (("evaluate", cut, "--dataset", "ring8"), "is truncated or not a zip archive"),
        (("evaluate", broken, "--dataset", "ring8", "--metric", "knn_kl"), "is truncated or corrupt"),
    ]
    for argv, message in cases:
        code, err = _cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert message in err and "Traceback" not in err, (argv, err)
        assert err.startswith(f"tfgen {argv[0]}: error: ") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "e").exists()


def test_cli_corrupt_recipe_json_is_named(files, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(files["export"], run / "saved_model")
    shutil.copy(files["keras"], run / "model.keras")
    (run / "recipe.json").write_text('{"method": "mmd_net"}')
    code, err = _cli(capsys, "evaluate", run)
    assert code == 2 and "recipe.json' is not a tfgen recipe: it has no 'dataset'" in err, err
    (run / "recipe.json").write_text("{")
    code, err = _cli(capsys, "sample", run, "--grid", 3, "--out", tmp_path / "g.png")
    assert code == 2 and "recipe.json' is corrupt: not valid JSON" in err, err


def test_publish_refuses_names_that_leave_the_zoo(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    for name in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="name must be a plain folder name"):
            zoo.publish(files["root"], name)
    code, err = _cli(capsys, "zoo", "publish", files["root"], "../evil", "--command", "tfgen train x")
    assert code == 2 and err.startswith("tfgen zoo: error: name must be a plain folder name"), err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "zoo").exists()
    with pytest.raises(FileNotFoundError, match="is not a finished run: saved_model is missing"):
        zoo.publish(tmp_path, "fine-name")  # a good name passes the check
