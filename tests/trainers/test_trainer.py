"""The Trainer: the ring of 8 trained for real, exact resume, bad input before any work."""

import json
import math
import os

import numpy as np
import pytest

import tfgen
from tfgen import jsonio
from tfgen.trainers import StopOnNonFinite, Trainer, recipes
from tfgen.trainers.recipes import NetworkSpec


def small(recipe="mmd-net-ring8", **changes):
    """A tiny variant so runs take a second or two."""
    base = recipes.get(recipe)
    nets = dict(generator=NetworkSpec("mlp", (16,)), latent_dim=4, batch_size=50, steps_per_epoch=20)
    if base.critic is not None:
        nets["critic"] = NetworkSpec("mlp", (16,))
        nets["critic_dim"] = 3
    return base.replace(**{**nets, **changes})


def test_gram_ring8_covers_all_modes(tmp_path):
    """The GRAM paper's ring experiment (App. A.1 settings) at a CPU-sized budget:
    8 of 8 modes, most samples within 3 std of a mode. 2500 steps take ~25 s."""
    trainer = Trainer("gram-ring8", tmp_path / "run", steps=2500, verbose=0, sample_pictures=False)
    trainer.run()
    m = trainer.summary["metrics"]
    assert m["modes_covered"] == 8, m
    assert m["high_quality_rate"] > 0.5, m
    assert not m["diverged"]


def test_run_writes_outputs_and_resumes_exactly(tmp_path):
    """Stopping after 40 steps and re-running the same command to 80 steps gives
    the weights of an uninterrupted 80-step run (same seed, same data order)."""
    straight = Trainer(small(steps=80), tmp_path / "straight", verbose=0, evaluate_at_end=False).run()
    run = tmp_path / "resumed"
    Trainer(small(steps=40), run, verbose=0, evaluate_at_end=False).run()
    resumed = Trainer(small(steps=80), run, verbose=0, evaluate_at_end=False).run()
    assert int(resumed.optimizer.iterations) == 80
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for name in ("model.keras", "metrics.json", "recipe.json", "log.csv", "saved_model/saved_model.pb"):
        assert (run / name).exists(), name
    assert len(list((run / "samples").glob("*.png"))) >= 1
    log_rows = (run / "log.csv").read_text().strip().splitlines()
    assert len(log_rows) == 1 + 80 // 20  # header + one row per epoch, appended across the resume
    exported = tfgen.load(run / "saved_model")
    np.testing.assert_allclose(exported.sample(8, seed=1), resumed.sample(8, seed=1), atol=1e-5)


def test_gram_trainer_evaluates_images(tmp_path):
    """Image data: the run reports an MMD^2 against the test split next to the
    train-vs-test floor, with the protocol written beside it."""
    recipe = recipes.get("gram-digits").replace(steps=40, steps_per_epoch=20)
    trainer = Trainer(recipe, tmp_path / "run", verbose=0)
    trainer.run()
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert m["mmd2_vs_test"] > m["mmd2_train_vs_test"]  # 40 steps are far from the data
    assert 0 < m["p_value"] <= 1 and "permutations" in m["protocol"]


def test_bad_input_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'gram-ring'"):
        Trainer("gram-ring", tmp_path / "a")
    x = np.random.default_rng(0).normal(size=(100, 2)).astype("float32")
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trainer(small(), tmp_path / "b", data=bad)
    with pytest.raises(ValueError, match="shape"):
        Trainer(small(), tmp_path / "c", data=x[:, :1])
    with pytest.raises(ValueError, match="batch"):
        Trainer(small(batch_size=500), tmp_path / "d", data=x)
    with pytest.raises(ValueError, match="steps"):
        Trainer(small(), tmp_path / "e", steps=0)
    with pytest.raises(ValueError, match="strategy"):
        Trainer(small(), tmp_path / "f", strategy="tpu")
    assert not any((tmp_path / d).exists() for d in "abcdef")


def test_trains_on_user_array(tmp_path):
    x = (np.random.default_rng(0).normal(size=(400, 2)) * 0.1 + 3.0).astype("float32")
    recipe = small(steps=300, dataset="two_gaussians", model_options={"bandwidths": "median"},
                   optimizer=recipes.OptimizerSpec("rmsprop", 1e-2))
    trainer = Trainer(recipe, tmp_path / "run", data=x, verbose=0, evaluate_at_end=False,
                      sample_pictures=False)
    trainer.build_model()
    before = np.linalg.norm(np.mean(trainer.model.sample(500, seed=0), 0) - 3.0)
    model = trainer.run()
    after = np.linalg.norm(np.mean(model.sample(500, seed=0), 0) - 3.0)
    # MMD-net moves its samples towards the user's data, far from the origin
    assert after < 0.5 < before, (before, after)


def test_stop_on_non_finite_names_the_step():
    class FakeModel:
        train_steps = 120

    cb = StopOnNonFinite("runs/x/checkpoints")
    cb.set_model(FakeModel())
    cb.on_epoch_end(0, {"mmd": 0.1})
    with pytest.raises(FloatingPointError, match=r"mmd = nan at epoch 6 \(step 120\).*runs/x/checkpoints"):
        cb.on_epoch_end(5, {"mmd": math.nan})


def _refuse_non_json(token):
    raise ValueError(f"not JSON: {token}")


def test_recipes_round_trip_as_data():
    for name in recipes.names():
        r = recipes.get(name)
        # through strict JSON, as recipe.json is written (kde-gan-mnist holds threshold = inf)
        text = jsonio.dumps(r.to_dict())
        assert recipes.Recipe.from_dict(json.loads(text, parse_constant=_refuse_non_json)) == r
    with pytest.raises(ValueError, match="did you mean 'gram-mnist'"):
        recipes.get("gram-mnst")


@pytest.mark.parametrize("threshold", [1e-4, float("inf")], ids=["with-test", "test-off"])
def test_kde_gan_run_fits_its_prior_before_saving_and_exporting(tmp_path, threshold):
    """The Trainer reverses training images into the KDE prior before it writes
    model.keras and the export, so both sample from codes of training images
    (not from the last batch's), and the export equals the Keras model. With
    the test off (as kde-gan-mnist) every reversal takes the cap and there is
    no stopping statistic in the log (a NaN there would stop the run as diverged)."""
    r = recipes.Recipe("kde-gan-digits-test", "kde_gan", "digits", batch_size=50, steps=4, latent_dim=4,
                       prior="kde", prior_options={"capacity": 120, "bandwidth": 0.1},
                       generator=NetworkSpec("mlp", (16,), output_activation="sigmoid"),
                       critic=NetworkSpec("mlp", (16,), activation="leaky_relu"),
                       model_options={"reversal_steps": 3, "threshold": threshold}, steps_per_epoch=2)
    trainer = Trainer(r, tmp_path / "run", verbose=0, sample_pictures=False, evaluate_at_end=False)
    trainer.run()
    summary = json.load(open(tmp_path / "run" / "metrics.json"), parse_constant=_refuse_non_json)
    assert summary["prior_fit"]["n"] == 120 and summary["prior_fit"]["mean_steps"] <= 3
    # recipe.json is strict JSON (threshold = inf is the string "inf") and reads back as the recipe
    written = json.loads((tmp_path / "run" / "recipe.json").read_text(), parse_constant=_refuse_non_json)
    assert recipes.Recipe.from_dict(written) == r
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert ("reversal_mmd2" in header) == (threshold != float("inf"))
    if threshold == float("inf"):
        assert summary["prior_fit"]["mean_steps"] == 3
    model = tfgen.load(tmp_path / "run", format="keras")
    assert int(model.prior.count) == 120 and model.prior_fit_size == 120
    exported = tfgen.load(tmp_path / "run" / "saved_model")
    np.testing.assert_allclose(exported.sample(8, seed=3), model.sample(8, seed=3), atol=1e-5)
