"""Bad input that the other test files did not try (docs/robustness.md lists them all):
wrong code widths and dtypes given to a model or to a loaded export, counts
out of range, empty and one-example datasets given to the Trainer, empty or
non-path arguments to ``tfgen.load``, and strange command-line arguments. Each must fail with a message that names what
is wrong, before any work starts."""

import keras
import numpy as np
import tensorflow as tf
import pytest

import tfgen
from tfgen import cli
from tfgen.distributions import Uniform
from tfgen.models import MMDNet, networks
from tfgen.trainers import Trainer, recipes
from tfgen.trainers.recipes import NetworkSpec


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return MMDNet(networks.mlp(3, [8], 2), Uniform(3))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """``model`` exported with the default max_samples (100000) and loaded back."""
    path = tmp_path_factory.mktemp("robustness") / "export"
    model.export(path)
    return tfgen.load(path)


def _small_recipe(**changes):
    """mmd-net-ring8 with a 16-unit generator and batch 50 (as tests/trainers/test_trainer.py)."""
    base = recipes.get("mmd-net-ring8")
    return base.replace(**{"generator": NetworkSpec("mlp", (16,)), "latent_dim": 4, "batch_size": 50,
                           "steps_per_epoch": 20, **changes})


def _cli(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse refuses before main's own handling
        code = e.code
    return code, capsys.readouterr().err


# --- the model API ------------------------------------------------------------------------------

def test_generate_wrong_code_width(model):
    with pytest.raises(ValueError, match=r"z must have shape \(n, 3\), got \(2, 5\)"):
        model.generate(np.zeros((2, 5), "float32"))


def test_model_sample_bad_n_and_seed(model):
    with pytest.raises(ValueError, match="n must be a non-negative integer, got -1"):
        model.sample(-1)
    # a float or bool n used to be truncated silently (sample(2.5) drew 2 samples)
    with pytest.raises(ValueError, match=r"n must be a non-negative integer, got 2\.5"):
        model.sample(2.5)
    with pytest.raises(ValueError, match="n must be a non-negative integer, got True"):
        model.sample(True)
    with pytest.raises(ValueError, match="n must be a non-negative integer, got '4'"):
        model.sample("4")
    with pytest.raises(ValueError, match="seed must be an integer, got dtype float32"):
        model.sample(4, seed=1.5)
    assert model.sample(0).shape == (0, 2)  # zero samples is a request, not an error


# --- a loaded export (tfgen.export.ExportedModel): checked in Python, not inside the graph ---------

def test_exported_model_checks_n_and_seed(exported):
    limit = r"n must be an integer in \[0, 100000\] \(this export's max_samples\), got "
    for n, shown in [(-1, "-1"), (10**6, "1000000"), (2.5, r"2\.5"), (True, "True")]:
        with pytest.raises(ValueError, match=limit + shown + "$"):
            exported.sample(n)
    with pytest.raises(ValueError, match=r"seed must be an integer, got 1\.5$"):
        exported.sample(4, seed=1.5)
    assert exported.sample(np.int64(4), seed=np.int32(1)).shape == (4, 2)


def test_exported_model_checks_z(exported):
    with pytest.raises(ValueError, match=r"z must have shape \(n, 3\), got \(2, 5\)$"):
        exported.generate(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 3\), got \(3,\)$"):
        exported.generate(np.zeros(3))
    with pytest.raises(ValueError, match="z must be a numeric array, got dtype <U1$"):
        exported.generate(np.array([["a", "b", "c"]]))
    for bad in (np.nan, np.inf):
        z = np.zeros((2, 3), "float32")
        z[1, 2] = bad
        with pytest.raises(ValueError, match="z contains NaN or infinite values$"):
            exported.generate(z)
    assert exported.generate(np.zeros((2, 3), "float64")).shape == (2, 2)


def test_load_empty_or_non_path_argument():
    with pytest.raises(ValueError, match="name_or_path is empty"):
        tfgen.load("")
    with pytest.raises(TypeError, match="name_or_path must be a zoo name or a path, got NoneType"):
        tfgen.load(None)


# --- datasets given to the Trainer ----------------------------------------------------------------

def test_trainer_rejects_string_data(tmp_path):
    with pytest.raises(ValueError, match=r"data: expected a real numeric dtype \(integer or float\), got <U1"):
        Trainer(_small_recipe(), tmp_path / "run", data=np.full((100, 2), "a"))
    assert not (tmp_path / "run").exists()


def test_trainer_rejects_empty_and_tiny_data(tmp_path):
    with pytest.raises(ValueError, match=r"data: expected a non-empty array, got shape \(0, 2\)"):
        Trainer(_small_recipe(), tmp_path / "empty", data=np.zeros((0, 2), "float32"))
    one = np.zeros((1, 2), "float32")
    with pytest.raises(ValueError, match="batch_size=50 is larger than the dataset, which has 1 examples"):
        Trainer(_small_recipe(), tmp_path / "one", data=one)
    assert not (tmp_path / "empty").exists() and not (tmp_path / "one").exists()


def _empty_datasets():
    rows = np.zeros((10, 2), "float32")
    return {"empty": tf.data.Dataset.from_tensor_slices(rows[:0]).batch(5),
            "filtered to nothing": tf.data.Dataset.from_tensor_slices(rows).filter(lambda r: False).batch(5)}


@pytest.mark.parametrize("kind", ["empty", "filtered to nothing", "empty array"])
def test_fit_refuses_data_that_yields_no_batch(kind):
    """Keras only warns "Your input ran out of data" and returns an empty history;
    tfgen's ``fit`` raises, and the weights are untouched."""
    keras.utils.set_random_seed(0)
    model = MMDNet(networks.mlp(2, [8], 2), Uniform(2))
    model.compile(optimizer="adam")
    before = [w.copy() for w in model.generator.get_weights()]
    data = np.zeros((0, 2), "float32") if kind == "empty array" else _empty_datasets()[kind]
    message = {"empty": "tf.data.Dataset is empty", "filtered to nothing": "fit took no step",
               "empty array": r"expected a non-empty array, got shape \(0, 2\)"}[kind]
    with pytest.raises(ValueError, match=message):
        model.fit(data, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.generator.get_weights()))
    # one batch is enough: the check does not refuse a short dataset
    history = model.fit(np.zeros((5, 2), "float32"), batch_size=5, epochs=1, verbose=0)
    assert history.history and all(len(v) == 1 for v in history.history.values())


# --- the command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (("train", "gram-ring8", "--epochs", "0"), "tfgen train: error: --epochs must be positive, got 0"),
    (("train", "gram-ring8", "--steps", "5", "--epochs", "1"), "argument --epochs: not allowed with argument --steps"),
    (("train", "gram-ring8", "--strategy", "tpu"), "argument --strategy: invalid choice: 'tpu'"),
    (("fit", "gram-ring8"), "argument command: invalid choice: 'fit'"),
    (("sample", "gram-ring8", "-n", "abc", "--out", "s.npy"), "argument -n: invalid int value: 'abc'"),
    (("sample", "gram-ring8", "-n", "0", "--out", "s.npy"), "tfgen sample: error: -n must be positive, got 0"),
    (("sample", "gram-ring8", "--grid", "3", "--out", "g.npy"), "--grid draws a picture: --out must end in .png"),
    (("sample", "gram-ring8", "--traverse", "0", "--out", "t.png"), "--traverse needs at least 1 row, got 0"),
    (("sample", "gram-ring8", "--traverse", "2", "--grid", "3", "--out", "t.png"),
     "pass at most one of --interpolate, --traverse and --grid"),
    # checked before the --interpolate branch, which would otherwise ignore --grid
    (("sample", "gram-ring8", "--interpolate", "2", "--grid", "3", "--out", "g.png"),
     "tfgen sample: error: pass at most one of --interpolate, --traverse and --grid"),
    (("evaluate",), "pass a model (zoo name, run dir, export dir or .keras file), or --real"),
    (("evaluate", "gram-ring8", "--real"), "pass a model or --real, not both"),
    (("evaluate", "--real", "--dataset", "digits", "--metric", "latent_likelihood"),
     "--metric latent_likelihood scores a model's codes; it has no --real form"),
    (("evaluate", "--real", "--dataset", "ring8"), "--real is only for --metric parzen, knn_kl, image or nn_distance"),
    (("evaluate", "gram-ring8", "--metric", "fid"), "argument --metric: invalid choice: 'fid'"),
    (("evaluate", "{tmp}"), "cannot tell the dataset of this model; pass --dataset"),
    (("export", "{tmp}", "{tmp}/out"), "no model.keras in"),
    (("zoo", "publish", "{tmp}", "x-y"), "tfgen zoo: error: '{tmp}' is not a finished run: saved_model is missing"),
])
def test_cli_strange_arguments(argv, message, capsys, tmp_path, monkeypatch):
    # an empty zoo: a command that got as far as loading 'gram-ring8' would fail differently
    monkeypatch.setenv("TFGEN_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = _cli(capsys, *argv)
    assert code == 2, err
    assert message.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_cli_output_into_a_missing_directory(model, tmp_path, capsys, monkeypatch):
    """The folder of --out is checked before the model is loaded and sampled."""
    from tfgen import cli

    model.export(tmp_path / "export")

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(cli, "_load_any", must_not_load)
    missing = tmp_path / "no" / "such" / "s.npy"
    code, err = _cli(capsys, "sample", tmp_path / "export", "-n", "4", "--out", missing)
    assert code == 2, err
    assert err == (f"tfgen sample: error: --out {str(missing)!r}: its folder "
                   f"{str(tmp_path / 'no' / 'such')!r} does not exist (create it first)\n"), err
    assert not (tmp_path / "no").exists()


def test_cli_sample_over_max_samples(model, tmp_path, capsys):
    model.export(tmp_path / "export", max_samples=50)
    out = tmp_path / "s.npy"
    code, err = _cli(capsys, "sample", tmp_path / "export", "-n", "51", "--out", out)
    assert code == 2, err
    assert err == "tfgen sample: error: n must be an integer in [0, 50] (this export's max_samples), got 51\n", err
    assert not out.exists()


def test_cli_export_into_an_existing_directory(model, tmp_path, capsys):
    model.save(tmp_path / "model.keras")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "keep.txt").write_text("mine")
    code, err = _cli(capsys, "export", tmp_path / "model.keras", tmp_path / "export")
    assert code == 2, err
    assert err == (f"tfgen export: error: export path {str(tmp_path / 'export')!r} exists; "
                   "pass overwrite=True (CLI: --overwrite) to replace it\n"), err
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["keep.txt"]  # untouched


def test_model_generate_checks_z():
    """An in-process model refuses codes that are not numbers or have the wrong width
    (a NumPy array or list; tensors go straight to the network, as in train_step)."""
    import tfgen
    from tfgen.models import MMDNet, networks

    model = MMDNet(networks.mlp(3, [4], 2), tfgen.distributions.Gaussian(3))
    with pytest.raises(ValueError, match="numeric array of codes, got dtype <U1"):
        model.generate(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 3\), got \(2, 5\)"):
        model.generate(np.zeros((2, 5)))
    np.testing.assert_allclose(model.generate([[0.0, 1.0, 2.0]]), model.generate(tf.constant([[0.0, 1.0, 2.0]])))
