"""The ``Trainer``: from a recipe to a trained, checkpointed, exported model.

    trainer = Trainer("gram-ring8", out_dir="runs/gram-ring8")
    model = trainer.run()

Under ``strategy="auto"`` it uses ``MirroredStrategy`` over all visible GPUs
when there are several, else the default strategy. Re-running the same
command in the same ``out_dir`` resumes from the last checkpoint: the step
counter, the optimizer state and the data order continue where they were,
so the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import tfgen
import tfgen.data
from tfgen.trainers import callbacks as cb
from tfgen.trainers import recipes
from tfgen.trainers.checkpoint import checkpoint_for
from tfgen.trainers.evaluate import evaluate

log = logging.getLogger("tfgen.trainers")


def make_strategy(strategy="auto") -> tf.distribute.Strategy:
    """``"auto"``: MirroredStrategy over all GPUs when there are several, else the default."""
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy in ("auto", None):
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"strategy must be 'auto', 'default', 'mirrored' or a tf.distribute.Strategy, "
                     f"got {strategy!r}")


class Trainer:
    """Build data, model, optimizers and strategy from a recipe; run ``model.fit``.

    Args:
      recipe: a recipe name or ``Recipe``.
      out_dir: the run directory (checkpoints, logs, pictures, export).
      steps: total optimizer steps (default: the recipe's). Rounded up to a
        whole number of the recipe's epochs.
      strategy: see ``make_strategy``.
      data: optional float32 array to train on instead of the recipe's dataset.
      data_dir: where offline dataset files are (else ``$TFGEN_DATA_DIR``).
      verbose: 0 silent, 1 progress bar, 2 one line per epoch (default:
        1 on a terminal, 2 otherwise).
    """

    def __init__(self, recipe, out_dir, *, steps: int | None = None, strategy="auto", data=None,
                 data_dir=None, verbose: int | None = None, seed: int | None = None,
                 sample_pictures: bool = True, evaluate_at_end: bool = True):
        self.recipe = recipes.get(recipe)
        if seed is not None:
            self.recipe = self.recipe.replace(seed=int(seed))
        if steps is not None:
            if int(steps) <= 0:
                raise ValueError(f"steps must be positive, got {steps}")
            self.recipe = self.recipe.replace(steps=int(steps))
        self.out_dir = os.fspath(out_dir)
        self.strategy = make_strategy(strategy)
        self.data_dir = data_dir
        self.verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
        self.sample_pictures, self.evaluate_at_end = sample_pictures, evaluate_at_end
        # Everything that can be wrong with the input is checked here, before any work.
        self.info = tfgen.data.info(self.recipe.dataset, **self.recipe.dataset_options)
        if data is not None:
            self._array = tfgen.data.pipeline.validate_array(data, "data")
            if tuple(self._array.shape[1:]) != tuple(self.info["shape"]):
                raise ValueError(f"data must have examples of shape {tuple(self.info['shape'])} for recipe "
                                 f"{self.recipe.name!r}, got {tuple(self._array.shape[1:])}")
            tfgen.data.pipeline.check_batch_size(self.recipe.batch_size, len(self._array))
        else:
            self._array = None
        self.spe = min(self.recipe.steps_per_epoch, self.recipe.steps)
        self.epochs = math.ceil(self.recipe.steps / self.spe)
        self.model = None
        self.history = None

    # -- pieces ---------------------------------------------------------------
    def dataset(self, skip_batches: int = 0) -> tf.data.Dataset:
        r = self.recipe
        if self._array is not None:
            ds = tfgen.data.from_array(self._array, r.batch_size, seed=r.seed, repeat=True)
        else:
            ds = tfgen.data.load(r.dataset, r.train_split, r.batch_size, seed=r.seed, repeat=True,
                                 data_dir=self.data_dir, **r.dataset_options)
        # Batches already consumed by a resumed run are skipped, so the data
        # order continues as in an uninterrupted run.
        return ds.skip(skip_batches) if skip_batches else ds

    def build_model(self):
        keras.utils.set_random_seed(self.recipe.seed)
        with self.strategy.scope():
            self.model = recipes.build_model(self.recipe, self.info["shape"])
        return self.model

    def _callbacks(self, manager):
        out = self.out_dir
        callbacks = [cb.StopOnNonFinite(os.path.join(out, "checkpoints")),
                     cb.CheckpointEveryEpoch(manager),
                     keras.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=True),
                     keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False)]
        if self.sample_pictures:
            centers = self.info.get("centers")
            data = tfgen.data.load_numpy(self.recipe.dataset, "test", n=2000, **self.recipe.dataset_options) \
                if self.info["kind"] == "toy" else None
            self.sample_grid = cb.SampleGrid(out, every=self.recipe.sample_every, seed=self.recipe.seed,
                                             data=data, centers=centers)
            callbacks.append(self.sample_grid)
        return callbacks

    # -- the run ------------------------------------------------------------------
    def run(self):
        os.makedirs(self.out_dir, exist_ok=True)
        model = self.build_model()
        ckpt_dir = os.path.join(self.out_dir, "checkpoints")
        manager = tf.train.CheckpointManager(checkpoint_for(model), ckpt_dir, max_to_keep=2)
        initial_step = 0
        if manager.latest_checkpoint:
            checkpoint_for(model).restore(manager.latest_checkpoint).assert_existing_objects_matched()
            initial_step = int(model.train_steps)
            log.info("resuming %s from %s (step %d)", self.recipe.name, manager.latest_checkpoint, initial_step)
            if self.verbose:
                print(f"resuming from step {initial_step} ({manager.latest_checkpoint})")
        with open(os.path.join(self.out_dir, "recipe.json"), "w") as f:
            json.dump(self.recipe.to_dict(), f, indent=1)
        initial_epoch = initial_step // self.spe
        t0 = time.time()
        if initial_epoch < self.epochs:
            self.history = model.fit(self.dataset(initial_step), epochs=self.epochs,
                                     steps_per_epoch=self.spe, initial_epoch=initial_epoch,
                                     callbacks=self._callbacks(manager), verbose=self.verbose,
                                     shuffle=False).history  # the dataset shuffles itself
        self.train_seconds = time.time() - t0
        self.finish()
        return model

    def fit_learned_prior(self):
        """Models with a learned prior (``fit_prior``: the KDE-GAN, IML) fit it
        on the training examples before they are saved, so the export samples
        from it. The examples are a seeded shuffle of the training split, cut
        to the model's ``prior_fit_size`` (IML) or the prior's ``capacity`` (KDE)."""
        model = self.model
        if not hasattr(model, "fit_prior"):
            return None
        r = self.recipe
        if hasattr(model.prior, "sample_sequence"):
            # A sequence model (IML's HMM over audio chunks) is fitted on whole recordings.
            if r.dataset != "fsdd" or self._array is not None:
                raise ValueError(f"recipe {r.name!r}: a sequence prior is fitted on the fsdd recordings; "
                                 f"dataset {r.dataset!r} (or an in-memory array) has no sequences")
            options = {k: v for k, v in r.dataset_options.items() if k in ("frame_length", "hop", "source")}
            x, _ = tfgen.data.audio.utterance_chunks(r.train_split, data_dir=self.data_dir, **options)
        elif self._array is not None:
            x = self._array
        else:
            x = tfgen.data.load_numpy(r.dataset, r.train_split, data_dir=self.data_dir, **r.dataset_options)
        if isinstance(x, list):
            return self._fit_prior_on(model, x)
        size = getattr(model, "prior_fit_size", 0) or getattr(model.prior, "capacity", 0) or len(x)
        x = x[np.random.default_rng(r.seed).permutation(len(x))[:size]]
        return self._fit_prior_on(model, x)

    def _fit_prior_on(self, model, x):
        t0 = time.time()
        stats = model.fit_prior(x, seed=self.recipe.seed, verbose=self.verbose == 1)
        stats["seconds"] = round(time.time() - t0, 1)
        if self.verbose:
            detail = (f", {stats['mean_steps']:.1f} reversal steps per batch" if "mean_steps" in stats else
                      f", mean log-likelihood {stats['log_likelihood']:.3f}" if "log_likelihood" in stats else "")
            print(f"prior fitted on {stats['n']} training codes ({stats['seconds']} s{detail})")
        return stats

    def finish(self):
        """Save ``model.keras``, export the SavedModel, evaluate, write ``metrics.json``."""
        model, out = self.model, self.out_dir
        prior_fit = self.fit_learned_prior()
        keras_path = os.path.join(out, "model.keras")
        tmp = keras_path + ".tmp.keras"
        model.save(tmp)
        os.replace(tmp, keras_path)
        model.export(os.path.join(out, "saved_model"), overwrite=True)
        if self.sample_pictures:
            grid = cb.SampleGrid(out, seed=self.recipe.seed,
                                 data=getattr(getattr(self, "sample_grid", None), "data", None),
                                 centers=self.info.get("centers"))
            grid.set_model(model)
            grid.draw(int(model.train_steps) // self.spe)
            self.final_picture = grid.last_path
        summary = {"recipe": self.recipe.name, "seed": self.recipe.seed,
                   "steps": int(model.train_steps), "dataset": self.recipe.dataset,
                   "train_seconds": round(getattr(self, "train_seconds", 0.0), 1),
                   "tfgen_version": tfgen.__version__}
        if prior_fit:
            summary["prior_fit"] = prior_fit
        if self.history:
            summary["final_logs"] = {k: float(v[-1]) for k, v in self.history.items()}
        if self.evaluate_at_end:
            summary["metrics"] = evaluate(model, self.recipe.dataset, dataset_options=self.recipe.dataset_options,
                                          seed=self.recipe.seed, data_dir=self.data_dir)
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(summary, f, indent=1)
        self.summary = summary
        return summary
