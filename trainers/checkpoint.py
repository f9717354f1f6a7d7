"""Checkpoints that resume a run exactly: model, every optimizer, step counters."""

from __future__ import annotations

import tensorflow as tf


def optimizers_of(model) -> dict:
    """The model's optimizers by attribute name (``optimizer``, ``critic_optimizer``, ...)."""
    found = {}
    for name in ("optimizer", "critic_optimizer", "discriminator_optimizer", "encoder_optimizer"):
        opt = getattr(model, name, None)
        if opt is not None:
            found[name] = opt
    return found


def checkpoint_for(model) -> tf.train.Checkpoint:
    """A ``tf.train.Checkpoint`` of the model, all its optimizers and its extra state.

    The step counters live in the optimizers, and the models draw their
    per-step randomness from them, so a restored run continues with the very
    codes an uninterrupted run would have drawn.
    """
    # state a model keeps outside its Keras weights (SGN's candidate index)
    extra = model.checkpoint_state() if hasattr(model, "checkpoint_state") else {}
    return tf.train.Checkpoint(model=model, **optimizers_of(model), **extra)
