"""Checkpoints that resume a run exactly: model, every optimizer, step counters.

A run killed at any moment (SIGKILL, power cut of the process, OOM killer)
resumes from a complete checkpoint, because ``tf.train.CheckpointManager``
(TF 2.20, ``checkpoint_management.py`` and ``functional_saver.py``) writes
in this order:

1. the variables go to ``ckpt-N_temp/part-*`` and are merged into
   ``ckpt-N.data-*`` and ``ckpt-N.index`` (a kill here leaves orphan files
   that nothing points to; a later save of step N overwrites them);
2. only then is the ``checkpoint`` state file, which names the latest
   checkpoint, rewritten, with ``file_io.atomic_write_string_to_file``
   (a temporary file renamed over it);
3. then checkpoints beyond ``max_to_keep`` are deleted, and the state file
   is rewritten (atomically) once more without them.

So ``manager.latest_checkpoint`` always names a checkpoint whose files are
complete: the new one after step 2, the previous one before it. A kill
between two checkpoints loses at most one epoch of steps, which the resumed
run redoes from the same step counter and data position (``Trainer.run``),
giving the weights of an uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def optimizers_of(model) -> dict:
    """The model's optimizers by attribute name (``optimizer``, ``critic_optimizer``, ...)."""
    found = {}
    for name in ("optimizer", "critic_optimizer", "discriminator_optimizer", "encoder_optimizer"):
        opt = getattr(model, name, None)
        if opt is not None:
            found[name] = opt
    return found


def checkpoint_for(model, **run_state) -> tf.train.Checkpoint:
    """A ``tf.train.Checkpoint`` of the model, all its optimizers and its extra
    state, plus ``run_state``: trackables of the run rather than the model
    (the learning-rate schedule's counters).

    The step counters live in the optimizers, and the models draw their
    per-step randomness from them, so a restored run continues with the very
    codes an uninterrupted run would have drawn.
    """
    # state a model keeps outside its Keras weights (SGN's candidate index)
    extra = model.checkpoint_state() if hasattr(model, "checkpoint_state") else {}
    return tf.train.Checkpoint(model=model, **optimizers_of(model), **extra, **run_state)


def non_finite_state(model) -> list[str]:
    """The paths of the model's floating-point state that holds a NaN or Inf:
    its weights and its optimizers' variables (NaN or Inf), its prior's
    variables (NaN only: a learned prior may hold a log-probability of
    -inf for an empty component). Empty when everything is finite; the
    ``Trainer`` writes a checkpoint, ``model.keras`` or an export only then."""
    prior = getattr(model, "prior", None)  # first: its variables are among the model's weights too
    checks = [(v, lambda a: ~np.isnan(a)) for v in getattr(prior, "variables", None) or []]
    checks += [(v, np.isfinite) for v in model.weights]
    for opt in optimizers_of(model).values():
        checks += [(v, np.isfinite) for v in opt.variables]
    bad, seen = [], set()
    for v, ok in checks:
        if id(v) in seen:
            continue
        seen.add(id(v))
        value = np.asarray(v)
        if np.issubdtype(value.dtype, np.floating) and not np.all(ok(value)):
            bad.append(getattr(v, "path", None) or getattr(v, "name", "?"))
    return bad
