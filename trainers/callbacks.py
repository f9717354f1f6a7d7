"""Callbacks a run uses: sample pictures, checkpoints, a NaN guard, a
learning-rate schedule.

Every callback writes under the run directory it is given, never into the
current directory.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfgen import plotting
from tfgen.trainers.checkpoint import non_finite_state


class SampleGrid(keras.callbacks.Callback):
    """Every ``every`` epochs, draw ``n`` samples with a fixed seed and save a
    picture to ``out_dir/samples/epoch_XXXX.png``: an image grid for image
    data, a scatter over the data (and mode centres) for 2-D data, the
    spectrogram of the overlap-added samples for audio chunks."""

    def __init__(self, out_dir, every: int = 1, n: int = 64, seed: int = 0, data=None, centers=None):
        super().__init__()
        self.dir = os.path.join(os.fspath(out_dir), "samples")
        self.every, self.n, self.seed = max(1, int(every)), int(n), int(seed)
        self.data = None if data is None else np.asarray(data)[:2000]
        self.centers = centers
        self.last_path = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.draw(epoch + 1)

    def draw(self, epoch):
        x = np.asarray(self.model.sample(self.n if self.model.data_shape != (2,) else max(self.n, 1000),
                                         seed=self.seed))
        path = os.path.join(self.dir, f"epoch_{epoch:04d}.png")
        title = f"{self.model.name}, epoch {epoch}"
        if x.ndim == 2 and x.shape[1] == 2:
            plotting.scatter(x, path, data=self.data, centers=self.centers, title=title)
        elif x.ndim == 2:
            # Audio chunks (IML on fsdd): a sampled chain of chunks, overlap-added, as a spectrogram.
            from tfgen.data import audio

            plotting.spectrograms([audio.overlap_add(x)], [title], path=path)
        else:
            plotting.image_grid(x.reshape((-1,) + tuple(self.model.data_shape)), path, title=title)
        self.last_path = path


class TrainingDiverged(FloatingPointError):
    """Training produced a NaN or Inf loss (or weights): the run stopped at
    that step, its last good checkpoint is kept, and nothing was saved,
    checkpointed or exported after it. The message names the step, the
    non-finite values and the checkpoint a re-run would resume from. A
    ``FloatingPointError``, so ``tfgen train`` prints it as one line (exit 2)."""


def _last_checkpoint(checkpoint_dir) -> str:
    latest = tf.train.latest_checkpoint(checkpoint_dir) if checkpoint_dir and os.path.isdir(checkpoint_dir) else None
    if latest:
        return f"; the last good checkpoint, {latest}, is kept (nothing was saved after it)"
    if checkpoint_dir:
        return f"; no checkpoint had been written yet in {checkpoint_dir}, and nothing was saved"
    return ""


def current_step(model) -> int:
    """``model.train_steps`` as an int. Under ``MultiWorkerMirroredStrategy``
    the counter is a ``MirroredVariable``, which ``int()`` does not take."""
    v = model.train_steps
    return int(v.numpy() if hasattr(v, "numpy") else v)


class ReduceLROnPlateau(keras.callbacks.Callback):
    """Multiply the learning rate of every optimizer of the model by
    ``factor`` once the epoch's ``monitor`` value has not fallen below its
    best by more than ``min_delta`` for ``patience`` epochs; then wait
    ``patience`` epochs again. Keras' ``ReduceLROnPlateau`` (mode "min", no
    cooldown) with the differences a resumable run needs:

    * its state (the best value, the epochs waited, the reductions made)
      lives in variables that the run's checkpoints carry (``self.state``),
      so a run resumed from a checkpoint reduces the rate at the epochs an
      uninterrupted run does (Keras' callback forgets its counters);
    * a ``monitor`` the model does not log, or a learning rate that cannot
      be set (a schedule), is an error when training begins, not a warning
      once an epoch or a failure ``patience`` epochs in;
    * each epoch's rate goes into the logs as ``learning_rate`` (so into
      ``log.csv``), as Keras' callback does;
    * given ``steps_per_epoch``, an epoch cut short (a run stopped by a
      ``--steps`` shorter than one epoch) is not counted: the run that
      extends it finishes that epoch, and the epoch is counted once, then.

    The learning rates themselves are optimizer variables, in every
    checkpoint and in ``model.keras`` already. The IML reference code trains
    its autoencoder with ``ReduceLROnPlateau(factor=0.8, patience=100)``.
    """

    def __init__(self, factor: float, patience: int, monitor: str = "loss", min_delta: float = 1e-4,
                 min_lr: float = 0.0, verbose: int = 0, steps_per_epoch: int | None = None):
        super().__init__()
        check_plateau(factor, patience)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else None
        self.factor, self.patience = float(factor), int(patience)
        self.monitor, self.min_delta, self.min_lr, self.verbose = monitor, float(min_delta), float(min_lr), verbose
        self.state = tf.Module()
        self.state.best = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best")
        self.state.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
        self.state.reductions = tf.Variable(0, dtype=tf.int64, trainable=False, name="reductions")
        self.reductions: list[tuple[int, str, float]] = []  # (epoch, optimizer, new rate) in this process

    def _optimizers(self):
        from tfgen.trainers.checkpoint import optimizers_of

        return optimizers_of(self.model)

    def on_train_begin(self, logs=None):
        logged = [m.name for m in self.model.metrics]
        if logged and self.monitor not in logged:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which {type(self.model).__name__} "
                             f"does not log; it logs: {', '.join(logged)}")
        for name, opt in self._optimizers().items():
            inner = getattr(opt, "inner_optimizer", opt)  # a LossScaleOptimizer sets its inner one's rate
            if not isinstance(getattr(inner, "_learning_rate", None), keras.Variable):
                raise ValueError(f"ReduceLROnPlateau needs a constant learning rate it can set; {name}'s is "
                                 f"{type(getattr(inner, '_learning_rate', None)).__name__}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which the training logs lack; "
                             f"logged: {', '.join(sorted(logs)) or 'nothing'}")
        current = float(logs[self.monitor])
        if self.steps_per_epoch and current_step(self.model) % self.steps_per_epoch:
            # a cut epoch: the run extending it finishes it, and counts it then
            pass
        elif current < float(self.state.best.numpy()) - self.min_delta:
            self.state.best.assign(current)
            self.state.wait.assign(0)
        else:
            self.state.wait.assign_add(1)
            if int(self.state.wait.numpy()) >= self.patience:
                self.state.wait.assign(0)
                self._reduce(epoch)
        logs["learning_rate"] = float(np.asarray(next(iter(self._optimizers().values())).learning_rate))

    def _reduce(self, epoch):
        reduced = False
        for name, opt in self._optimizers().items():
            old = float(np.asarray(opt.learning_rate))
            new = max(old * self.factor, self.min_lr)
            if new < old:
                opt.learning_rate = new
                reduced = True
                self.reductions.append((epoch + 1, name, new))
                if self.verbose:
                    print(f"\nepoch {epoch + 1}: {self.monitor} has not improved for {self.patience} epochs; "
                          f"{name} learning rate {old:.3g} -> {new:.3g}")
        if reduced:
            self.state.reductions.assign_add(1)


def check_plateau(factor, patience):
    """Refuse a plateau schedule that would never or always reduce."""
    if not 0.0 < float(factor) < 1.0:
        raise ValueError(f"the plateau factor must be in (0, 1), got {factor}")
    if int(patience) != patience or int(patience) < 1:
        raise ValueError(f"the plateau patience must be a positive whole number of epochs, got {patience}")


class TrainingClock(keras.callbacks.Callback):
    """Training time summed over every process that trained a run.

    ``state.seconds`` (a variable the run's checkpoints carry) is set at each
    epoch's end to the time restored from the checkpoint the run resumed
    from plus the time this process has trained. Run before the checkpoint
    callback, so a checkpoint holds the time spent up to it; a resumed run
    then reports the time of all its parts, not only of its last process.
    Time a killed process spent after its last checkpoint is not counted:
    that work is redone, and counted, by the run that resumes.
    ``state.from_step`` is the step the time counts from: 0, or the step of
    a checkpoint written before runs had a clock that the run resumed from
    (kept through later resumes).
    """

    def __init__(self):
        super().__init__()
        self.state = tf.Module()
        self.state.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="seconds")
        self.state.from_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="from_step")
        self.start()

    def start(self):
        """Start counting from the time in ``state`` (call after a restore)."""
        self._base, self._t0 = float(self.state.seconds.numpy()), time.time()

    def seconds(self) -> float:
        return self._base + time.time() - self._t0

    def on_epoch_end(self, epoch, logs=None):
        self.state.seconds.assign(self.seconds())


class CheckpointEveryEpoch(keras.callbacks.Callback):
    """Save a ``tf.train.CheckpointManager`` checkpoint at the end of every
    ``every`` epochs (model, all optimizers, step counters).

    A checkpoint is never written with non-finite weights: a step whose loss
    was finite can still apply a NaN gradient, so the weights themselves are
    checked (a reduction over each variable, once an epoch) and the run
    stops with ``TrainingDiverged`` instead of saving them.
    """

    def __init__(self, manager: tf.train.CheckpointManager, every: int = 1):
        super().__init__()
        self.manager, self.every = manager, max(1, int(every))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            step = current_step(self.model)
            bad = non_finite_state(self.model)
            if bad:
                raise TrainingDiverged(
                    f"training diverged: the weights are not finite after step {step} "
                    f"(epoch {epoch + 1}; {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})"
                    + _last_checkpoint(self.manager.directory))
            self.manager.save(checkpoint_number=step)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop the run at the first batch whose logged losses are NaN or Inf.

    It raises ``TrainingDiverged`` from ``on_train_batch_end``, so nothing
    after the diverged step runs: no epoch-end checkpoint (the last good one
    is kept), no sample picture, no ``Trainer.finish`` (no ``model.keras``,
    no export). The message names the global step (``model.train_steps``),
    the epoch and every non-finite logged value. The logged values are the
    epoch's running means, so the first non-finite one marks the step that
    diverged. The same check at the end of an epoch catches values that
    only the epoch's logs carry.
    """

    def __init__(self, checkpoint_dir: str | None = None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _check(self, logs, epoch):
        bad = []
        for name, value in (logs or {}).items():
            try:
                finite = bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
            except (TypeError, ValueError):  # not a number: nothing to check
                continue
            if not finite:
                bad.append(f"{name} = {value}")
        if not bad:
            return
        step = current_step(self.model)
        where = f"epoch {epoch + 1} (step {step})" if epoch is not None else f"step {step}"
        self.model.stop_training = True
        raise TrainingDiverged(f"training diverged: {', '.join(bad)} at {where}"
                               + _last_checkpoint(self.checkpoint_dir))

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, self.epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, epoch)
