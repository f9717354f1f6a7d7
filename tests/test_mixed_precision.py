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


# -- the numerically sensitive parts stay float32 (issue 7, item 2) ----------------------
# Op types that must never compute in a 16-bit type: factorisations and solves, the
# pieces of log-sum-exp and of kernels (Exp, Log, Max), distances and norms (Square,
# Sqrt), k-NN (TopKV2), and reductions that make a loss (Mean).
SENSITIVE = {"Cholesky", "MatrixTriangularSolve", "MatrixSolve", "MatrixInverse",
             "MatrixDeterminant", "LogMatrixDeterminant", "SelfAdjointEigV2", "Svd",
             "Exp", "Log", "Log1p", "Softplus", "Max", "Min", "Sqrt", "Rsqrt", "Square",
             "SquaredDifference", "Pow", "Xlogy", "TopKV2", "Mean", "Prod"}
# Half-typed ops allowed outside a network's name scope: no arithmetic, or the sum of
# gradient contributions of a network called more than once (AddN).
SHAPE_ONLY = {"Reshape", "Shape", "Fill", "Identity", "AddN", "ZerosLike", "OnesLike"}
NETWORK_SCOPE = ("generator", "critic", "discriminator", "encoder", "decoder")
# Float32 ops each method must contain: proves the walk reached the sensitive parts
# (GRAM's Cholesky solve, SGN's k-NN, KDE-GAN's stopping test inside the reversal's
# while-loop body, WGAN-GP's gradient norm, ...).
MUST_SEE_FLOAT32 = {"gram-ring8": {"Cholesky", "MatrixTriangularSolve", "Exp"},
                    "mmd-net-ring8": {"Exp"}, "sgn-ring8": {"TopKV2", "Log"},
                    "gan-ring8": {"Softplus"}, "kde-gan-ring8": {"Softplus", "Exp"},
                    "wgan-gp-ring8": {"Sqrt"}, "level-set-ring8": {"Square"},
                    "mmd-gan-ring8": {"Exp"}, "iml-digits": {"Cholesky", "MatrixTriangularSolve"},
                    "vae-mnist": {"Exp", "Log"}}


def _graph_ops(graph):
    """Every op of a graph and, recursively, of the functions it calls (while-loop
    bodies, cond branches, nested tf.functions)."""
    import tensorflow as tf  # noqa: F401

    yield from graph.get_operations()
    for fn in list(getattr(graph, "_functions", {}).values()):
        if getattr(fn, "graph", None) is not None:
            yield from _graph_ops(fn.graph)


def _op_dtype(op):
    try:
        dtype = op.get_attr("T")
    except (ValueError, TypeError):
        return None
    return None if isinstance(dtype, list) else dtype   # While, IdentityN: a list of types


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize("name,changes", CASES, ids=[c[0] for c in CASES])
def test_sensitive_ops_stay_float32(policy, name, changes):
    """Trace each method's ``train_step`` under the policy and read the dtype of every
    op: the networks compute in 16 bits, the Cholesky solves, kernels, distances, k-NN
    and losses in float32 (or float64)."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    r = recipes.get(name).replace(**changes)
    x = tfgen.data.load_numpy(r.dataset, "train")[:r.batch_size].astype(np.float32)
    model = recipes.build_model(r, tfgen.data.info(r.dataset)["shape"])
    model.fit(x, batch_size=r.batch_size, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    graph = tf.function(model.train_step).get_concrete_function(
        tf.TensorSpec(x.shape, tf.float32)).graph
    half = {tf.float16, tf.bfloat16}
    wrong, seen32, n_half = [], set(), 0
    for op in _graph_ops(graph):
        dtype = _op_dtype(op)
        if dtype in half:
            n_half += 1
            in_network = any(s in op.name for s in NETWORK_SCOPE)
            if op.type in SENSITIVE or not (in_network or op.type in SHAPE_ONLY):
                wrong.append(f"{op.type} {op.name} ({dtype.name})")
        elif dtype in (tf.float32, tf.float64):
            seen32.add(op.type)
    assert not wrong, f"{name} under {policy}: 16-bit ops outside the networks: {wrong[:10]}"
    assert MUST_SEE_FLOAT32[name] <= seen32, (name, MUST_SEE_FLOAT32[name] - seen32)
    if name != "iml-digits":   # IML's invertible layers are float32 by design
        assert n_half > 0, f"{name}: no op computed in 16 bits: the policy did not reach the networks"
