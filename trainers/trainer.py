"""The ``Trainer``: from a recipe to a trained, checkpointed, exported model.

    trainer = Trainer("gram-ring8", out_dir="runs/gram-ring8")
    model = trainer.run()

Under ``strategy="auto"`` it uses ``MirroredStrategy`` over all visible GPUs
when there are several, else the default strategy; ``"multi-worker"`` uses
``MultiWorkerMirroredStrategy`` (cluster from ``TF_CONFIG``), where only the
chief writes the run directory (docs/distributed.md). Re-running the same
command in the same ``out_dir`` resumes from the last checkpoint: the step
counter, the optimizer state and the data order continue where they were,
so the result equals an uninterrupted run, also after a SIGKILL at any
moment (see ``checkpoint.py`` for why a checkpoint is never half-written).

A NaN or Inf loss stops the run at that step with ``TrainingDiverged``,
naming the step and the loss; the last good checkpoint is kept and nothing
is saved or exported. Every file a run writes (``model.keras``, the export,
``metrics.json``, ``recipe.json``) is written beside its destination and
renamed into place, so an interrupted run never leaves a half-written one.
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
from tfgen import jsonio
from tfgen.trainers import callbacks as cb
from tfgen.trainers import recipes
from tfgen.trainers.callbacks import TrainingDiverged
from tfgen.trainers.checkpoint import checkpoint_for, non_finite_state, optimizers_of
from tfgen.trainers.evaluate import evaluate

log = logging.getLogger("tfgen.trainers")


def _trim_log(path: str, first_epoch: int):
    """Drop the rows of ``log.csv`` for epochs from ``first_epoch`` on: this run
    (re)logs them. They were left by a process killed after writing an epoch's
    row but before its checkpoint, or by a ``--steps`` that cut the epoch short
    (its row is replaced by the row of the epoch's remainder)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    keep = lines[:1] + [r for r in lines[1:] if r and int(r.split(",", 1)[0]) < first_epoch]
    if len(keep) == len(lines):
        return
    with open(path + ".tmp", "w") as f:
        f.write("".join(r + "\n" for r in keep))
    os.replace(path + ".tmp", path)


def _write_json(path, data):
    """Write ``data`` as JSON beside ``path`` and rename it into place, so a
    kill mid-write leaves the old file, never a truncated one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        jsonio.dump(data, f, indent=1)
    os.replace(tmp, path)


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
    if strategy == "multi-worker":
        # The cluster (and this process's place in it) comes from $TF_CONFIG.
        _patch_keras_multi_worker_logs()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be 'auto', 'default', 'mirrored', 'multi-worker' or a "
                     f"tf.distribute.Strategy, got {strategy!r}")


def _patch_keras_multi_worker_logs():
    """Let ``model.fit`` run under ``MultiWorkerMirroredStrategy`` with Keras 3.

    Keras 3 (3.x with TF 2.16-2.20) reduces the per-replica training logs
    across workers with ``strategy.reduce("MEAN", v, axis=0)``, which fails
    on the scalar logs every ``train_step`` returns ("Invalid reduction
    dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388).
    Scalars are reduced with ``axis=None`` instead (the mean over replicas;
    our logs are global-batch values, equal on every replica); anything
    else goes to Keras unchanged. Idempotent.
    """
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "_tfgen_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and keras_tf_trainer._collective_all_reduce_multi_worker(strategy):
            def _reduce(v):
                if v.shape.rank == 0:
                    return strategy.reduce("MEAN", v, axis=None)
                return original(v, strategy, reduction)
            return tf.nest.map_structure(_reduce, values)
        return original(values, strategy, reduction)

    reduce_per_replica._tfgen_patched = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica


def is_multi_worker(strategy) -> bool:
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def is_chief(strategy) -> bool:
    """Whether this process writes the run's outputs: always, except under a
    multi-worker strategy, where only the chief (task ``chief``, or worker 0
    when the cluster has no chief) does."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Shard ``ds`` by element across workers (``AutoShardPolicy.DATA``).

    Every worker builds the same seeded pipeline; the strategy splits each
    global batch into per-replica batches and worker ``w`` keeps the
    ``w``-th of every ``num_workers``, so the workers together see each
    global batch once, in contiguous blocks (the order ``_sample_local``
    and the all-gathers assume). The default ``AUTO`` would shard a
    file-backed pipeline (TFDS) by file instead, giving each worker other
    examples than one device would see, or failing with fewer files than
    workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


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
      precision: ``"float32"`` (default), ``"mixed_bfloat16"`` or
        ``"mixed_float16"``: the Keras dtype policy the networks are built
        with (weights stay float32; under ``mixed_float16`` every optimizer
        is wrapped for loss scaling). The global policy is restored after
        the model is built.
    """

    def __init__(self, recipe, out_dir, *, steps: int | None = None, strategy="auto", data=None,
                 data_dir=None, verbose: int | None = None, seed: int | None = None,
                 sample_pictures: bool = True, evaluate_at_end: bool = True, precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
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
        self.diverged = None  # the TrainingDiverged that stopped run(), if one did
        self.plateau = None   # the learning-rate schedule's callback, when the recipe has one
        self.clock = None     # training time over all the run's processes

    # -- pieces ---------------------------------------------------------------
    def dataset(self, skip_batches: int = 0) -> tf.data.Dataset:
        r = self.recipe
        if self._array is not None:
            ds = tfgen.data.from_array(self._array, r.batch_size, seed=r.seed, repeat=True)
        else:
            ds = tfgen.data.load(r.dataset, r.train_split, r.batch_size, seed=r.seed, repeat=True,
                                 data_dir=self.data_dir, **r.dataset_options)
        if is_multi_worker(self.strategy):
            ds = shard_by_data(ds)
        # Batches already consumed by a resumed run are skipped, so the data
        # order continues as in an uninterrupted run.
        return ds.skip(skip_batches) if skip_batches else ds

    def build_model(self):
        keras.utils.set_random_seed(self.recipe.seed)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(self.precision)
        try:
            with self.strategy.scope():
                self.model = recipes.build_model(self.recipe, self.info["shape"])
        finally:
            keras.mixed_precision.set_global_policy(previous)
        return self.model

    def _run_state(self) -> dict:
        """Trackables of the run (not the model) that its checkpoints carry."""
        state = {"clock": self.clock.state} if self.clock is not None else {}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state
        return state

    def _checkpoint(self, model) -> tf.train.Checkpoint:
        return checkpoint_for(model, **self._run_state())

    def _restore(self, model, path: str, *, consumed: bool = False):
        """Restore the checkpoint at ``path`` into ``model``, its optimizers and the
        run's state. A checkpoint from a run without the recipe's schedule (or with
        one the recipe no longer has) still restores: the schedule's counters then
        start afresh (or are left in the file); so does one older than the
        training clock. Returns the names of the run states restored."""
        saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
        state = {k: v for k, v in self._run_state().items() if k in saved}
        for key in set(self._run_state()) - saved:
            log.info("checkpoint %s has no %s state: it starts afresh", path, key)
        status = checkpoint_for(model, **state).restore(path)
        if consumed and not ({"plateau", "clock"} & saved) - set(state):
            status.assert_consumed()  # every variable of the file found its object
        else:
            status.assert_existing_objects_matched().expect_partial()
        return set(state)

    def _callbacks(self, manager):
        out = self.out_dir
        # The schedule and the clock run before the checkpoint callback, so an epoch's
        # checkpoint holds the rate, counters and time that epoch left. So does the
        # log: a checkpoint on disk implies its epoch's row in log.csv (a kill between
        # the two leaves a row with no checkpoint, which the resuming run drops).
        callbacks = [self.clock] + ([self.plateau] if self.plateau is not None else [])
        callbacks += [cb.StopOnNonFinite(os.path.join(out, "checkpoints")),
                     keras.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=True),
                     cb.CheckpointEveryEpoch(manager),
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
        if is_chief(self.strategy):
            return self._run()
        # A non-chief worker of a multi-worker run does all the chief does
        # (saving a checkpoint is a collective), but into a temporary
        # directory that is deleted afterwards; it resumes from the chief's
        # checkpoints (which needs a file system shared with the chief).
        import shutil
        import tempfile
        out_dir, tmp = self.out_dir, tempfile.mkdtemp(prefix="tfgen-worker-")
        try:
            self.out_dir = tmp
            return self._run(resume_from=os.path.join(out_dir, "checkpoints"))
        finally:
            self.out_dir = out_dir
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, resume_from=None):
        os.makedirs(self.out_dir, exist_ok=True)
        model = self.build_model()
        plateau = self.recipe.optimizer.plateau
        # the recipe's epoch length, not self.spe: a --steps shorter than an epoch cuts it
        self.plateau = cb.ReduceLROnPlateau(*plateau, verbose=self.verbose,
                                            steps_per_epoch=self.recipe.steps_per_epoch) if plateau else None
        self.clock = cb.TrainingClock()
        ckpt_dir = os.path.join(self.out_dir, "checkpoints")
        manager = tf.train.CheckpointManager(self._checkpoint(model), ckpt_dir, max_to_keep=2)
        latest = tf.train.latest_checkpoint(resume_from) if resume_from else manager.latest_checkpoint
        initial_step = 0
        if latest:
            restored = self._restore(model, latest)
            initial_step = cb.current_step(model)
            if "clock" not in restored and initial_step:
                self.clock.state.from_step.assign(initial_step)  # an older checkpoint: time before it unknown
            log.info("resuming %s from %s (step %d)", self.recipe.name, latest, initial_step)
            if self.verbose:
                print(f"resuming from step {initial_step} ({latest})")
        elif getattr(model, "spectral_whitening", 0):
            self._adapt(model)  # a resumed run has the weights from its checkpoint
        _write_json(os.path.join(self.out_dir, "recipe.json"), self.recipe.to_dict())
        _trim_log(os.path.join(self.out_dir, "log.csv"), first_epoch=initial_step // self.spe)
        self.clock.start()
        if initial_step < self.epochs * self.spe:
            callbacks = self._callbacks(manager)
            try:
                self.history = self._fit(model, initial_step, callbacks)
            except TrainingDiverged as e:
                # Raised from the batch that diverged, before any later callback
                # (checkpoint, pictures) ran; finish() is not reached, so nothing
                # is saved. Close log.csv and the TensorBoard writers, as fit would.
                self.diverged = e
                for c in callbacks:
                    try:
                        c.on_train_end()
                    except Exception:  # noqa: BLE001 (closing files; the divergence is the error)
                        pass
                raise
        elif initial_step:
            self._build_optimizers(model, latest, initial_step)
            self.clock.start()  # nothing was trained: the throwaway step is not training time
        self.train_seconds = self.clock.seconds()
        self.finish()
        return model

    def _adapt(self, model):
        """Set the statistics a model's loss takes from the training data (IML's
        spectral weights) before its first step."""
        r = self.recipe
        x = self._train_examples()
        model.adapt(x)
        log.info("adapted %s to %d training examples", r.name, len(x))

    def _train_examples(self):
        """The training examples as one array: the in-memory data, else the recipe's split."""
        if self._array is not None:
            return self._array
        r = self.recipe
        return tfgen.data.load_numpy(r.dataset, r.train_split, data_dir=self.data_dir, **r.dataset_options)

    def _build_optimizers(self, model, checkpoint: str, step: int):
        """Make a run that resumes at its last step (killed in ``finish``, say)
        save its optimizer state in ``model.keras``.

        Keras builds an optimizer's slot variables at its first update, and
        until then a checkpoint's values for them wait as deferred
        restorations, which ``model.save`` does not see: ``model.keras``
        would lose the moments and the step counter. Which variables each
        optimizer updates only the model's ``train_step`` knows, so one
        throwaway step builds them all, and restoring the checkpoint again
        puts every variable (weights, slots, counters) back.
        """
        if all(opt.built for opt in optimizers_of(model).values()):
            return
        model.train_on_batch(next(iter(self.dataset(step))))
        self._restore(model, checkpoint, consumed=True)

    def _fit(self, model, step: int, callbacks) -> dict:
        """Train from global step ``step`` to ``epochs * spe``; the History.

        A checkpoint taken by this command lies on an epoch boundary. One
        taken by an earlier command with a shorter ``--steps`` (whose epoch
        was cut to its length) may not: that epoch is finished first with
        a short ``fit``, so the run still ends at ``epochs * spe`` steps,
        with checkpoints on the boundaries an uninterrupted run has.
        """
        history: dict = {}
        epoch = step // self.spe
        for length, last_epoch in ((-step % self.spe, epoch + 1), (self.spe, self.epochs)):
            if length == 0 or epoch >= last_epoch:
                continue
            h = model.fit(self.dataset(step), epochs=last_epoch, steps_per_epoch=length, initial_epoch=epoch,
                          callbacks=callbacks, verbose=self.verbose,
                          shuffle=False).history  # the dataset shuffles itself
            for k, v in h.items():
                history.setdefault(k, []).extend(v)
            step += length * (last_epoch - epoch)
            epoch = last_epoch
        return history

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
        else:
            x = self._train_examples()
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
        """Save ``model.keras``, export the SavedModel, evaluate, write ``metrics.json``.

        Raises ``TrainingDiverged`` (and writes nothing) when the run stopped on
        a non-finite loss or the model's weights are not finite: a broken model
        never replaces a good ``model.keras`` or export.
        """
        model, out = self.model, self.out_dir
        if self.diverged is not None:
            raise TrainingDiverged(f"{self.diverged}; not saving model.keras or the export")
        bad = non_finite_state(model)
        if bad:
            raise TrainingDiverged(
                f"the weights of {self.recipe.name!r} are not finite at step {cb.current_step(model)} "
                f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); not saving model.keras or "
                f"the export")
        prior_fit = self.fit_learned_prior()
        keras_path = os.path.join(out, "model.keras")
        tmp = keras_path + ".tmp.keras"
        # Both files are written in full before either replaces its old
        # version (the export swaps itself in, then model.keras is renamed),
        # so a failure leaves the old pair, not a new model.keras beside an
        # old export.
        try:
            model.save(tmp)
            model.export(os.path.join(out, "saved_model"), overwrite=True)
            os.replace(tmp, keras_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        if self.sample_pictures:
            grid = cb.SampleGrid(out, seed=self.recipe.seed,
                                 data=getattr(getattr(self, "sample_grid", None), "data", None),
                                 centers=self.info.get("centers"))
            grid.set_model(model)
            grid.draw(cb.current_step(model) // self.spe)
            self.final_picture = grid.last_path
        from_step = int(self.clock.state.from_step.numpy()) if self.clock is not None else 0
        summary = {"recipe": self.recipe.name, "seed": self.recipe.seed,
                   "steps": cb.current_step(model), "dataset": self.recipe.dataset,
                   "train_seconds": round(getattr(self, "train_seconds", 0.0), 1),
                   **({"train_seconds_from_step": from_step} if from_step else {}),
                   "precision": self.precision, "tfgen_version": tfgen.__version__}
        if prior_fit:
            summary["prior_fit"] = prior_fit
        if self.history:
            summary["final_logs"] = {k: float(v[-1]) for k, v in self.history.items()}
        if self.plateau is not None:
            summary["learning_rates"] = {name: float(np.asarray(opt.learning_rate))
                                         for name, opt in optimizers_of(model).items()}
            # over the whole run, resumed parts included; log.csv has each epoch's rate
            summary["lr_reductions"] = int(self.plateau.state.reductions.numpy())
        if self.evaluate_at_end:
            summary["metrics"] = evaluate(model, self.recipe.dataset, dataset_options=self.recipe.dataset_options,
                                          seed=self.recipe.seed, data_dir=self.data_dir)
        _write_json(os.path.join(out, "metrics.json"), summary)
        self.summary = summary
        return summary
