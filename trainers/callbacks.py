"""Callbacks a run uses: sample pictures, checkpoints, a NaN guard.

Every callback writes under the run directory it is given, never into the
current directory.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfgen import plotting


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


class CheckpointEveryEpoch(keras.callbacks.Callback):
    """Save a ``tf.train.CheckpointManager`` checkpoint at the end of every
    ``every`` epochs (model, all optimizers, step counters)."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int = 1):
        super().__init__()
        self.manager, self.every = manager, max(1, int(every))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.manager.save(checkpoint_number=int(self.model.train_steps))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the end of an epoch whose logged losses are NaN or Inf, *before*
    the checkpoint callback saves the broken weights (put it first), with a
    message that names the step and the loss."""

    def __init__(self, checkpoint_dir: str | None = None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                step = int(self.model.train_steps)
                where = (f"; the last good checkpoint is kept in {self.checkpoint_dir}"
                         if self.checkpoint_dir else "")
                raise FloatingPointError(
                    f"training diverged: {name} = {value} at epoch {epoch + 1} (step {step}){where}")
