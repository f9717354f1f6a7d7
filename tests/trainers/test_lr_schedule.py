"""The learning-rate schedule of a recipe (``OptimizerSpec.plateau``): the same
rates as Keras' ``ReduceLROnPlateau``, and the same rates after a resume."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgen.trainers import Trainer, recipes
from tfgen.trainers.callbacks import ReduceLROnPlateau
from tfgen.trainers.recipes import NetworkSpec, OptimizerSpec

# A loss that falls, stalls (within min_delta), falls, then stalls for long:
# the stalls trigger reductions at patience 3.
LOSSES = [1.0, 0.9, 0.8, 0.79995, 0.8, 0.81, 0.7, 0.70001, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.6, 0.6]


def _compiled(lr):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def _rates(callback, model, losses, start=0):
    callback.set_model(model)
    rates = []
    for epoch, loss in enumerate(losses, start):
        callback.on_epoch_end(epoch, {"loss": loss})
        rates.append(float(np.asarray(model.optimizer.learning_rate)))
    return rates


def test_rates_match_keras_reduce_lr_on_plateau():
    ours = _rates(ReduceLROnPlateau(0.8, 3), _compiled(1e-2), LOSSES)
    theirs = _rates(keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.8, patience=3, verbose=0),
                    _compiled(1e-2), LOSSES)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # by hand: 0.79995 and 0.70001 are no improvement (min_delta 1e-4), so the rate
    # drops at the ends of epochs 5, 9 and 12
    np.testing.assert_allclose(ours, [1e-2] * 5 + [8e-3] * 4 + [6.4e-3] * 3 + [5.12e-3] * 4, rtol=1e-6)


def test_state_restored_from_a_checkpoint_continues_the_schedule(tmp_path):
    """Stopped after 7 epochs and restored into a new callback and optimizer, the
    schedule reduces at the epochs an uninterrupted one does (Keras' callback
    would start counting afresh and reduce later)."""
    straight = _rates(ReduceLROnPlateau(0.8, 3), _compiled(1e-2), LOSSES)

    first, model = ReduceLROnPlateau(0.8, 3), _compiled(1e-2)
    model.optimizer.build(model.trainable_variables)
    _rates(first, model, LOSSES[:8])
    path = tf.train.Checkpoint(opt=model.optimizer, plateau=first.state).save(str(tmp_path / "ck"))

    second, fresh = ReduceLROnPlateau(0.8, 3), _compiled(1e-2)
    fresh.optimizer.build(fresh.trainable_variables)
    tf.train.Checkpoint(opt=fresh.optimizer, plateau=second.state).restore(path).assert_consumed()
    resumed = _rates(second, fresh, LOSSES[8:], start=8)
    np.testing.assert_allclose(resumed, straight[8:], rtol=1e-6)
    restarted = _rates(ReduceLROnPlateau(0.8, 3), _compiled(straight[7]), LOSSES[8:], start=8)
    assert not np.allclose(restarted, straight[8:])  # the counters matter here


def test_bad_arguments_and_a_missing_monitor_are_named():
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(1.5, 3)
    with pytest.raises(ValueError, match="patience"):
        ReduceLROnPlateau(0.8, 0)
    with pytest.raises(ValueError, match="factor"):
        OptimizerSpec("adam", 1e-3, plateau=(1.0, 10))  # refused when the recipe is written, not trained
    with pytest.raises(ValueError, match="learning_rate"):
        OptimizerSpec("adam", "1e-3")
    with pytest.raises(ValueError, match="critic_optimizer.plateau"):
        recipes.get("gan-ring8").replace(critic_optimizer=OptimizerSpec("adam", 1e-3, plateau=(0.5, 2)))
    cb = ReduceLROnPlateau(0.8, 3, monitor="val_loss")
    cb.set_model(_compiled(1e-2))
    with pytest.raises(ValueError, match="val_loss.*logged: loss"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_a_schedule_learning_rate_is_refused_before_training():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)),
                  loss="mse")
    cb = ReduceLROnPlateau(0.8, 3)
    with pytest.raises(ValueError, match="constant learning rate"):
        model.fit(np.zeros((8, 1)), np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[cb])


KW = dict(verbose=0, evaluate_at_end=False, sample_pictures=False)


def _small(steps, plateau=(0.5, 2)):
    """MMD-net on 2-D data, 10 steps an epoch; patience 2, so the noisy loss reduces the rate
    several times in 12 epochs."""
    return recipes.get("mmd-net-ring8").replace(
        name="mmd-net-plateau", generator=NetworkSpec("mlp", (16,)), latent_dim=4, batch_size=50,
        steps_per_epoch=10, steps=steps, optimizer=OptimizerSpec("adam", 1e-2, plateau=plateau))


def _rate_column(run_dir):
    rows = (run_dir / "log.csv").read_text().strip().splitlines()
    col = rows[0].split(",").index("learning_rate")
    return [float(r.split(",")[col]) for r in rows[1:]]


def test_trainer_resumed_run_has_the_rates_of_an_uninterrupted_one(tmp_path):
    model = Trainer(_small(120), tmp_path / "straight", **KW).run()
    summary = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    rates = _rate_column(tmp_path / "straight")
    assert len(rates) == 12 and rates[0] == pytest.approx(1e-2)
    # reductions before and after the resume point (epoch 6), else the test checks little
    assert rates[5] < 1e-2 and rates[-1] < rates[5], rates
    assert summary["lr_reductions"] == round(np.log(rates[-1] / 1e-2) / np.log(0.5))
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(rates[-1])

    Trainer(_small(60), tmp_path / "resumed", **KW).run()
    resumed = Trainer(_small(120), tmp_path / "resumed", **KW).run()
    assert _rate_column(tmp_path / "resumed") == rates  # the same rate at every epoch, in one log
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["lr_reductions"] == \
        summary["lr_reductions"]
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the recipe's schedule survives the JSON round trip of recipe.json
    again = recipes.Recipe.from_dict(json.loads((tmp_path / "resumed" / "recipe.json").read_text()))
    assert again.optimizer.plateau == (0.5, 2)


def test_checkpoints_with_and_without_the_schedule_resume_both_ways(tmp_path):
    """A run checkpointed before its recipe had a schedule resumes with one (counters
    start afresh, the weights and rate continue), and the other way round."""
    Trainer(_small(30, plateau=None), tmp_path / "added", **KW).run()
    model = Trainer(_small(60), tmp_path / "added", **KW).run()
    assert int(model.train_steps) == 60
    Trainer(_small(30), tmp_path / "removed", **KW).run()
    model = Trainer(_small(60, plateau=None), tmp_path / "removed", **KW).run()
    assert int(model.train_steps) == 60
    # a finished run re-run (the path that builds the optimizers from the checkpoint)
    for plateau in (None, (0.5, 2)):
        again = Trainer(_small(60, plateau=plateau), tmp_path / "removed", **KW).run()
        np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])


def test_a_model_that_does_not_log_the_monitor_fails_before_training(tmp_path):
    recipe = recipes.get("gan-ring8").replace(steps=20, steps_per_epoch=10,
                                              optimizer=OptimizerSpec("adam", 1e-3, plateau=(0.5, 2)))
    trainer = Trainer(recipe, tmp_path / "gan", **KW)
    with pytest.raises(ValueError, match="monitors 'loss'.*d_loss"):
        trainer.run()
    assert trainer.model is not None and int(trainer.model.train_steps) == 0


def test_an_epoch_cut_short_by_steps_is_counted_once(tmp_path):
    """``--steps 5`` with 10 steps an epoch stops inside epoch 1; the run that extends it
    finishes that epoch. The schedule counts the epoch once, when it is complete."""
    cut = Trainer(_small(5), tmp_path / "run", **KW)
    cut.run()
    assert np.isinf(cut.plateau.state.best.numpy()) and int(cut.plateau.state.wait.numpy()) == 0
    extended = Trainer(_small(20), tmp_path / "run", **KW)
    extended.run()
    # epochs 1 and 2, each counted once: the first sets the best value, the second
    # either improves on it (wait 0) or waits one epoch; never two waits from two epochs
    assert np.isfinite(extended.plateau.state.best.numpy())
    assert int(extended.plateau.state.wait.numpy()) <= 1
    straight = Trainer(_small(20), tmp_path / "straight", **KW)
    straight.run()
    assert int(extended.plateau.state.reductions.numpy()) == int(straight.plateau.state.reductions.numpy())
