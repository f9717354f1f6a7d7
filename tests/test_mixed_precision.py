"""Every method trains a few steps under both mixed-precision policies with finite
losses and finite float32 weights (issue 7, item 2; the numerically sensitive parts,
e.g. IML's invertible layers, stay float32)."""

import numpy as np
import keras
import pytest

import tfgen
from tfgen.trainers import recipes

CASES = [("gram-ring8", {}), ("mmd-net-ring8", {}), ("sgn-ring8", {}), ("gan-ring8", {}),
         ("kde-gan-ring8", {}), ("wgan-gp-ring8", {}), ("level-set-ring8", {}), ("mmd-gan-ring8", {}),
         ("iml-digits", {}), ("vae-mnist", {"dataset": "digits", "batch_size": 100})]


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize("name,changes", CASES, ids=[c[0] for c in CASES])
def test_a_few_steps_are_finite(policy, name, changes):
    keras.utils.set_random_seed(0)
    r = recipes.get(name).replace(**changes)
    info = tfgen.data.info(r.dataset)
    x = tfgen.data.load_numpy(r.dataset, "train")[:2 * r.batch_size]
    model = recipes.build_model(r, info["shape"])
    assert model.generator.dtype_policy.name == policy or name == "iml-digits"
    before = [np.array(w) for w in model.generator.get_weights()]
    history = model.fit(x, batch_size=r.batch_size, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    for key, values in history.items():
        assert np.all(np.isfinite(values)), f"{name} under {policy}: {key} = {values}"
    after = [np.array(w) for w in model.generator.get_weights()]
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "the generator did not move"
    assert np.all(np.isfinite(np.asarray(model.sample(8, seed=0), np.float32)))


def test_sgn_step_size_survives_loss_scaling():
    """SGN normalises its gradient to unit global norm, so one SGD step moves the
    generator by exactly the learning rate; under mixed_float16 the gradient comes
    from the scaled loss and the LossScaleOptimizer divides by the scale, which the
    model must put back after normalising (else the step is 1/scale too small)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        r = recipes.get("sgn-ring8")
        model = recipes.build_model(r, (2,))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        before = [np.array(w, np.float64) for w in model.generator.get_weights()]
        x = tfgen.data.load_numpy("ring8", "train")[:r.batch_size]
        model.fit(x, batch_size=r.batch_size, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        after = [np.array(w, np.float64) for w in model.generator.get_weights()]
        step = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(before, after)))
        np.testing.assert_allclose(step, r.optimizer.learning_rate, rtol=1e-3)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_trainer_and_cli_precision(tmp_path, capsys):
    """``tfgen train --precision mixed_bfloat16``: the networks compute in bfloat16,
    the run finishes with finite metrics, records its precision, and the global
    policy is float32 again afterwards."""
    import json

    from tfgen import cli

    rc = cli.main(["train", "gram-ring8", "--steps", "20", "--out", str(tmp_path / "run"),
                   "--precision", "mixed_bfloat16"])
    assert rc in (0, None)
    assert keras.mixed_precision.global_policy().name == "float32"
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["precision"] == "mixed_bfloat16" and summary["steps"] == 20
    assert all(np.isfinite(v) for v in summary["final_logs"].values())
    model = keras.models.load_model(str(tmp_path / "run" / "model.keras"))
    dense = [l for l in model.generator.layers if isinstance(l, keras.layers.Dense)]
    assert dense and all(l.dtype_policy.name == "mixed_bfloat16" for l in dense)
    with pytest.raises(ValueError, match="precision must be one of"):
        from tfgen.trainers import Trainer
        Trainer("gram-ring8", tmp_path / "x", precision="float8")
