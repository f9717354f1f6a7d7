"""The contract every tfgen model keeps (DESIGN.md, "The base class").

A ``GenerativeModel`` is a ``keras.Model`` built from sub-networks and a
prior. ``train_step`` is the method, written once with ``tf.GradientTape``,
so ``model.fit`` trains it under any ``tf.distribute`` strategy.

Losses that need the whole batch (MMD, Gram matrices, density ratios, k-NN)
are computed on the *global* batch: each replica all-gathers what it
computed, evaluates the loss on the gathered tensors, and differentiates
``loss / num_replicas``. The all-gather's gradient sums the upstream
gradients of all replicas and hands each its own slice, and the optimizer
sums the replicas' gradients, so the update equals the single-device update
at the same global batch (tested in ``tests/harness.py``).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfgen.distributions import Prior


def keep_update_order() -> None:
    """Turn off Grappler's dependency optimizer, process-wide.

    A tfgen ``train_step`` takes several optimizer updates in one ``tf.function``
    (n_critic critic steps, then the generator's), and each reads the weights the
    previous one wrote. ``tf.function`` orders those reads after the writes with
    control edges; with the dependency optimizer on (TensorFlow's default), a
    WGAN-GP step with n_critic = 2 gave one of several results in ~20% of
    processes on CPU (TF 2.20), both in loss and weights, while eager execution,
    n_critic = 1, or this optimizer off gave the same result in every process
    (``tests/models/test_wgan_gp.py::test_step_is_the_same_in_every_process``).
    Called by every ``GenerativeModel.compile``; set
    ``tf.config.optimizer.set_experimental_options({"dependency_optimization": True})``
    afterwards to undo it."""
    tf.config.optimizer.set_experimental_options({"dependency_optimization": False})


@keras.saving.register_keras_serializable(package="tfgen")
class GenerativeModel(keras.Model):
    """Base class: ``generate(z)``, ``sample(n, seed)``, ``train_step``, ``export``.

    Subclasses list the constructor arguments that hold Keras objects in
    ``_keras_args`` so ``get_config``/``from_config`` serialize them, and put
    their other hyperparameters in ``get_config``.
    """

    _keras_args: tuple[str, ...] = ("generator", "prior")

    def __init__(self, generator: keras.Model, prior: Prior, *, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(generator, keras.Model):
            raise ValueError(f"generator must be a keras.Model, got {type(generator).__name__}")
        if not isinstance(prior, Prior):
            raise ValueError(f"prior must be a tfgen.distributions.Prior, got {type(prior).__name__}")
        in_dim = generator.input_shape[-1]
        if in_dim != prior.dim:
            raise ValueError(f"the generator takes codes of size {in_dim} but the prior has dim {prior.dim}")
        self.generator = generator
        self.prior = prior
        self.seed = int(seed)
        self.data_shape = tuple(generator.output_shape[1:])
        self._trackers: dict[str, keras.metrics.Mean] = {}
        # The sub-networks are built Keras models, so this model is built too
        # (saving and export check the flag).
        self.built = True

    # ---- the generative model -------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.prior.dim

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def generate(self, z, training=False):
        """Map codes ``z (n, latent_dim)`` to data space."""
        if not tf.is_tensor(z):
            z = np.asarray(z)
            if z.dtype.kind not in "iuf":
                raise ValueError(f"z must be a numeric array of codes, got dtype {z.dtype}")
            if z.ndim != 2 or z.shape[1] != self.latent_dim:
                raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
            z = z.astype(np.float32, copy=False)
        return self.generator(z, training=training)

    def sample(self, n: int, seed=None, batch_size: int = 10_000):
        """``n`` samples: ``z ~ prior`` then ``generate(z)``. Same seed, same samples."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        z = self.prior.sample(int(n), seed=seed)
        if int(n) <= batch_size:
            return self.generate(z)
        return tf.concat([self.generate(z[i:i + batch_size]) for i in range(0, int(n), batch_size)], 0)

    # ---- pieces train_step implementations share ----------------------------
    def _track(self, **values):
        """Update the ``keras.metrics.Mean`` tracker of each named value; returns the logs."""
        for name, value in values.items():
            if name not in self._trackers:
                raise KeyError(f"{type(self).__name__} has no tracker {name!r}; declare it in __init__")
            self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items()}

    def _declare_trackers(self, *names: str):
        for name in names:
            self._trackers[name] = keras.metrics.Mean(name=name)

    @property
    def metrics(self):
        return list(self._trackers.values())

    @staticmethod
    def _unpack(data):
        """``fit`` hands ``x``, ``(x,)`` or ``(x, y)``; the methods are unsupervised."""
        if isinstance(data, (tuple, list)):
            data = data[0]
        return tf.convert_to_tensor(data)

    @property
    def train_steps(self):
        """The counter of ``train_step`` calls taken (a variable, checkpointed):
        the generator optimizer's iterations, for methods with one generator
        update per step. A method with several (the Level Set GAN) points it
        at another optimizer. The ``Trainer`` counts steps with it."""
        return self.optimizer.iterations

    def compile(self, *args, **kwargs):
        """``keras.Model.compile``, after :func:`keep_update_order`."""
        keep_update_order()
        return super().compile(*args, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling a loaded model whose class overrides `compile`, so this
        # does what its default does: compile, then create the optimizer's variables so
        # the saved optimizer state loads into them.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, **kwargs):
        """``keras.Model.fit``, refusing data that yields no batch: Keras only warns
        ("Your input ran out of data") and returns an empty history, so a
        pipeline filtered down to nothing would "train" silently."""
        if isinstance(x, tf.data.Dataset) and int(x.cardinality()) == 0:
            raise ValueError("x: the tf.data.Dataset is empty (cardinality 0), so fit would take no step")
        if isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[0] == 0:
            raise ValueError(f"x: expected a non-empty array, got shape {x.shape}")
        history = super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)
        if not history.history and epochs > kwargs.get("initial_epoch", 0) and not self.stop_training:
            raise ValueError("x: fit took no step: the data yielded no batch in the first epoch "
                             "(an empty dataset, or a filter that drops every example?)")
        return history

    def _step_seed(self, salt: int = 0):
        """A stateless seed for this training step: a function of the model's seed
        and its step counter, so a resumed run draws the same codes as an
        uninterrupted one, and every replica draws the same ones."""
        step = tf.cast(self.train_steps, tf.int32)
        return tf.stack([tf.constant(self.seed * 7919 + salt, tf.int32), step])

    @staticmethod
    def _replicas():
        ctx = tf.distribute.get_replica_context()
        n = 1 if ctx is None else ctx.num_replicas_in_sync
        return ctx, n

    def _gather(self, x):
        """All-gather ``x`` along the batch axis across replicas (identity on one device)."""
        ctx, n = self._replicas()
        return x if n == 1 else ctx.all_gather(x, axis=0)

    def _sample_local(self, draw, local_batch, salt: int = 0):
        """This replica's slice of a global batch drawn by ``draw(n, seed)``.

        The global batch is drawn with one seed on every replica and sliced,
        so R replicas see exactly the draws one device would see.
        """
        ctx, n = self._replicas()
        if n == 1:
            return draw(local_batch, self._step_seed(salt))
        full = draw(local_batch * n, self._step_seed(salt))
        start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * local_batch
        return full[start:start + local_batch]

    def _sample_local_codes(self, local_batch, salt: int = 0):
        """This replica's slice of the global batch of codes for this step."""
        return self._sample_local(lambda n, seed: self.prior.sample(n, seed=seed), local_batch, salt)

    def _critic_slices(self, x, n_slices: int):
        """Split this replica's batch into ``n_slices`` batches, one per critic
        step, *strided* (``x[i::n_slices]``) rather than contiguous: with R
        replicas each holding a contiguous block of the global batch (and the
        block size a multiple of ``n_slices``), replica r's slice i is then
        block r of the one-device slice i, so R replicas take exactly the
        one-device steps."""
        if n_slices == 1:
            return [x]
        return [x[i::n_slices] for i in range(n_slices)]

    def _replica_scale(self, loss):
        """``loss / num_replicas``: see the module docstring. Call it inside the tape."""
        _, n = self._replicas()
        return loss if n == 1 else loss / n

    def _check_network(self, net, role: str, *, unit: str | None = None):
        """Validate a second network (critic, discriminator) that reads data:
        a Keras model taking the generator's output shape, and with ``unit``,
        one output (``(n,)`` or ``(n, 1)``) per example."""
        if not isinstance(net, keras.Model):
            raise ValueError(f"{role} must be a keras.Model, got {type(net).__name__}")
        if tuple(net.input_shape[1:]) != self.data_shape:
            raise ValueError(f"the {role} takes inputs of shape {net.input_shape[1:]} but the "
                             f"generator makes {self.data_shape}")
        out = tuple(net.output_shape[1:])
        if unit is not None and out not in ((), (1,)):
            raise ValueError(f"the {role} must output one {unit} per example, got shape {out}")

    def _compile_second_optimizer(self, attr: str, optimizer, network):
        """For two-network methods (a critic or discriminator beside the
        generator), after ``keras.Model.compile``: set ``self.<attr>`` to
        ``optimizer`` (a fresh copy of the generator's when None), wrapped for
        loss scaling under ``mixed_float16``, record it in the compile config
        (so ``.keras`` files restore it), and build both optimizers' slots now,
        inside any strategy scope the caller holds, each for its own network
        (``network``: a Keras model or a list of variables)."""
        if optimizer is None:
            optimizer = self.optimizer.__class__.from_config(self.optimizer.get_config())
        optimizer = keras.optimizers.get(optimizer)
        if self.dtype_policy.name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        setattr(self, attr, optimizer)
        self._compile_config.config[attr] = optimizer
        self.optimizer.build(self.generator.trainable_variables)
        optimizer.build(network.trainable_variables if isinstance(network, keras.Model) else list(network))

    # ---- serialization and export --------------------------------------------
    def get_config(self):
        config = {"seed": self.seed, "name": self.name}
        for key in self._keras_args:
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls._keras_args:
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def export_layers(self) -> list:
        """The layers the serving signatures read (``generate`` and ``prior.sample``);
        a subclass whose ``generate`` uses more adds them."""
        return [self.generator, self.prior]

    def export(self, path, *, overwrite: bool = False, max_samples: int = 100_000):
        """Write a SavedModel servable by TF Serving (see ``tfgen.export.export_model``)."""
        from tfgen.export import export_model

        return export_model(self, path, overwrite=overwrite, max_samples=max_samples)
