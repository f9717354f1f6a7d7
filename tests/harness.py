"""The shared method test harness: every method's tests call ``check_all``.

Each check states what a user relies on:
* ``fit`` runs, losses are finite, and the weights change;
* a ``.keras`` round trip gives the same class and the same samples;
* the SavedModel export round-trips with the same samples for the same seed;
* N steps + checkpoint + restore + M steps equals N + M uninterrupted steps;
* one step under ``MirroredStrategy`` on 2 logical CPUs equals one step on
  one device at the same global batch (global-batch losses are gathered).

``make_model()`` must build *and compile* a fresh model with fixed weights
(call ``keras.utils.set_random_seed`` first); it is called inside a strategy
scope for the distributed check.
"""

from __future__ import annotations

import numpy as np
import keras
import tensorflow as tf

import tfgen
from tfgen.trainers.checkpoint import checkpoint_for

# Two replicas sum in another order, and GRAM's ridge-regularised solve
# (condition number up to ~1e3 / eps) amplifies float32 rounding, so losses
# agree to 1e-3 relative and each weight update to 1e-3 of its norm. A wrong
# gather or replica scaling is off by a factor (2x), far outside these.
LOSS_RTOL, UPDATE_RTOL = 1e-3, 1e-3


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _max_diff(a, b):
    return max(float(np.max(np.abs(u - v))) if u.size else 0.0 for u, v in zip(a, b))


def _dataset(x, batch_size):
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size, drop_remainder=True).repeat()


def check_fit_changes_weights(make_model, x, batch_size, steps=3):
    model = make_model()
    before = _weights(model)
    history = model.fit(_dataset(x, batch_size), steps_per_epoch=steps, epochs=1, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), f"{name} is not finite: {values}"
    after = _weights(model)
    changed = [not np.array_equal(u, v) for u, v in zip(before, after)]
    trainable = len(model.trainable_variables)
    assert sum(changed) >= trainable, (
        f"only {sum(changed)} weight tensors changed, the model has {trainable} trainable ones")
    return model


def check_keras_roundtrip(model, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.sample(16, seed=5), model.sample(16, seed=5), rtol=1e-6, atol=1e-6)
    # and different seeds give different samples (sampling is not degenerate)
    assert not np.allclose(model.sample(16, seed=5), model.sample(16, seed=6))
    return loaded


def check_export_roundtrip(model, tmp_path):
    path = str(tmp_path / "export")
    model.export(path)
    exported = tfgen.load(path)
    np.testing.assert_allclose(exported.sample(16, seed=7), model.sample(16, seed=7), rtol=1e-5, atol=1e-5)
    z = model.prior.sample(4, seed=1)
    np.testing.assert_allclose(exported.generate(z), model.generate(z), rtol=1e-5, atol=1e-5)
    # an existing export is never overwritten silently
    try:
        model.export(path)
    except FileExistsError:
        pass
    else:
        raise AssertionError("export over an existing path did not raise FileExistsError")


def check_resume(make_model, x, batch_size, tmp_path, n=3, m=2, atol=1e-6):
    ds = _dataset(x, batch_size)
    straight = make_model()
    straight.fit(ds, steps_per_epoch=n + m, epochs=1, verbose=0)

    first = make_model()
    first.fit(ds, steps_per_epoch=n, epochs=1, verbose=0)
    path = checkpoint_for(first).save(str(tmp_path / "ckpt" / "ckpt"))
    resumed = make_model()
    checkpoint_for(resumed).restore(path).assert_existing_objects_matched()
    resumed.fit(ds.skip(n), steps_per_epoch=m, epochs=1, verbose=0)
    diff = _max_diff(_weights(straight), _weights(resumed))
    assert diff <= atol, f"resumed run differs from the uninterrupted one by {diff}"


_STRATEGY = []


def two_replica_strategy():
    """One ``MirroredStrategy`` over 2 logical CPUs for the whole session: a
    second instance in one process can reuse collective instance keys and
    abort with a shape mismatch between unrelated all-gathers."""
    if not _STRATEGY:
        devices = tf.config.list_logical_devices("CPU")[:2]
        _STRATEGY.append(tf.distribute.MirroredStrategy([d.name for d in devices]))
    return _STRATEGY[0]


def check_distributed_step(make_model, x, global_batch):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        import pytest
        pytest.skip("needs 2 logical CPU devices (set in tests/conftest.py)")
    ds = tf.data.Dataset.from_tensor_slices(x[:global_batch]).batch(global_batch).repeat()
    single = make_model()
    start = _weights(single)
    h1 = single.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
    strategy = two_replica_strategy()
    with strategy.scope():
        mirrored = make_model()
    h2 = mirrored.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
    for name in h1:
        np.testing.assert_allclose(h2[name], h1[name], rtol=LOSS_RTOL, atol=1e-6,
                                   err_msg=f"loss {name} differs between 1 and 2 replicas")
    # Compared over all weights at once: some gradients are zero in exact
    # arithmetic (a critic's output bias under a translation-invariant
    # kernel) and hold only rounding noise, which no relative test can pass.
    update_1 = np.concatenate([(a - w0).ravel() for w0, a in zip(start, _weights(single))])
    update_2 = np.concatenate([(b - w0).ravel() for w0, b in zip(start, _weights(mirrored))])
    err = np.linalg.norm(update_2 - update_1)
    assert err <= UPDATE_RTOL * np.linalg.norm(update_1) + 1e-7, (
        f"the weight update differs between 1 and 2 replicas: |diff| = {err:.3g}, "
        f"|update| = {np.linalg.norm(update_1):.3g}")


def check_all(make_model, x, batch_size, tmp_path, make_sgd_model=None):
    """Run every harness check; ``x`` is a float32 array of training data.

    ``make_sgd_model`` builds the same model compiled with plain SGD for the
    2-replica check: Adam's first step is ``lr * sign(g)``, which turns the
    float32 rounding of a near-zero gradient into a full ``2 lr`` weight
    difference, so it cannot show agreement of the gradients themselves.
    """
    x = np.asarray(x, np.float32)
    model = check_fit_changes_weights(make_model, x, batch_size)
    check_keras_roundtrip(model, tmp_path)
    check_export_roundtrip(model, tmp_path)
    check_resume(make_model, x, batch_size, tmp_path)
    check_distributed_step(make_sgd_model or make_model, x, batch_size)
