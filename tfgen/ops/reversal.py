"""Generator reversal: latent codes ``z`` with ``G(z) ~ x`` by gradient descent
on ``z`` (Kilcher, Lucchi & Hofmann, "Generator Reversal", Alg. 1), stopped by
the MMD two-sample test of their §4.

For a data batch ``x`` the codes start at ``z0 ~ N(0, init_scale^2 I)``
(paper: ``init_scale = 1e-4``) and take plain gradient steps
``z <- z - lr * grad_z L`` on

    ``L(z) = sum_i mean_pixels (G(z_i) - x_i)^2``,

the per-example mean squared error summed over the batch, so every code gets
its own gradient, unscaled by the batch size (METHODS.md §3, ambiguity 3).

The stopping rule (paper §4, "MMD as a stopping criterion"): a batch of
generated images ``x_g`` (``reference``, e.g. ``G(z_g)``) is reversed *along
with* ``x``, from its own ``z0`` draws, so both sets of codes start near 0 and
move apart as the reconstructions improve (the rise of the paper's Fig. 4 only
happens that way; METHODS.md §3, ambiguity 1). After every step the unbiased
``MMD_u^2`` between the data codes and the reference codes is computed with
``k(z, w) = exp(-gamma ||z - w||^2)`` (the paper's "kernel bandwidth 1e-4" read
as ``gamma``; as a standard deviation the test could never trip, ambiguity 2),
and the reversal stops once it exceeds ``threshold`` -- once the reversed data
codes can be told apart from those of generated samples -- or after ``steps``
steps. ``compare_to="true_codes"`` compares with the known codes ``z_g`` of
the generated batch instead of reversing it.

The whole reversal is one ``tf.while_loop`` (one batched generator call per
step), built inline when called inside a ``tf.function`` (a ``train_step``)
and run through a ``tf.function`` cached per generator when called eagerly.
No gradient flows out of it: codes, errors and the statistic are constants to
the caller.
"""

from __future__ import annotations

import math
import numbers
import weakref
from typing import NamedTuple, Optional

import tensorflow as tf

from tfgen.ops.mmd import mmd2 as _mmd2

COMPARE_TO = ("reference", "true_codes")


class Reversal(NamedTuple):
    """The result of :func:`reverse`.

    Attributes:
      codes: ``(n, d)`` codes of the data batch.
      error: ``(n,)`` per-example mean squared error of ``G(codes)`` against ``x``
        (mean over pixels / features), at the returned codes.
      steps: int32 scalar, the number of gradient steps taken.
      mmd2: float32 scalar, the ``MMD_u^2`` of the last stopping test (after
        the last step); NaN when no test was run (no ``reference`` and no
        ``reference_z``).
      reference_codes: ``(m, d)`` reversed codes of ``reference``, or None when
        no reference batch was reversed.
    """

    codes: tf.Tensor
    error: tf.Tensor
    steps: tf.Tensor
    mmd2: tf.Tensor
    reference_codes: Optional[tf.Tensor]


def reversal_mmd2(codes, reference_codes, gamma=1e-4) -> tf.Tensor:
    """Unbiased ``MMD_u^2`` between two sets of codes under ``exp(-gamma ||z - w||^2)``.

    The statistic of the stopping test (KDE-GAN paper §4, eq. 3; Gretton et
    al. 2012). It is the U-statistic of :func:`tfgen.ops.mmd2`: the ``i = j``
    terms of the within-set sums are left out; the cross term averages over
    all ``n * m`` pairs, which also allows ``n != m`` (eq. 3 of the paper,
    written for ``n = m``, also leaves out the ``i = j`` cross pairs; both are
    unbiased). Needs at least two codes in each set; it can be negative.
    """
    if isinstance(gamma, (int, float)) and not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    codes = tf.convert_to_tensor(codes)
    reference_codes = tf.cast(tf.convert_to_tensor(reference_codes), codes.dtype)
    if not isinstance(gamma, (int, float)):
        gamma = tf.cast(tf.reshape(gamma, [1]), codes.dtype)  # a 1-D tensor skips Python validation
    return _mmd2(codes, reference_codes, gamma, parameterization="gamma", estimator="unbiased")


# -- the compiled loop ---------------------------------------------------------------------

def _per_example_mse(output, target):
    axes = list(range(1, output.shape.rank)) if output.shape.rank is not None else None
    if axes is None:
        axes = tf.range(1, tf.rank(output))
    elif not axes:  # a generator with (n,) outputs: the squared error itself
        return tf.square(output - target)
    return tf.reduce_mean(tf.square(output - target), axis=axes)


def _reverse_loop(generator, x, z0, reference, reference_z0, reference_z, steps, lr,
                  threshold, gamma, min_steps, *, mode, training):
    """The reversal as one ``tf.while_loop``; every numeric argument is a tensor.

    ``mode``: "none" (no test), "reference" (``reference`` reversed alongside
    ``x``) or "true_codes" (data codes against the fixed ``reference_z``).
    """
    n = tf.shape(x)[0]
    if mode == "reference":
        # One generator call per step on the stacked batch; the loss is a sum of
        # per-example terms, so the two halves do not interact (except through
        # batch statistics when training=True).
        codes0 = tf.concat([z0, reference_z0], 0)
        target = tf.concat([x, tf.cast(reference, x.dtype)], 0)
    else:
        codes0, target = z0, x

    def test(codes):
        if mode == "reference":
            return tf.cast(reversal_mmd2(codes[:n], codes[n:], gamma), tf.float32)
        if mode == "true_codes":
            return tf.cast(reversal_mmd2(codes, reference_z, gamma), tf.float32)
        return tf.constant(math.nan, tf.float32)

    def cond(i, codes, stat):
        tripped = tf.logical_and(i >= min_steps, stat > threshold)
        return tf.logical_and(i < steps, tf.logical_not(tripped))

    def body(i, codes, stat):
        with tf.GradientTape() as tape:
            tape.watch(codes)
            output = tf.cast(generator(codes, training=training), target.dtype)
            loss = tf.reduce_sum(_per_example_mse(output, target))
        codes = codes - tf.cast(lr, codes.dtype) * tape.gradient(loss, codes)
        return i + 1, codes, test(codes)

    i, codes, stat = tf.while_loop(
        cond, body, (tf.constant(0, tf.int32), codes0, tf.constant(math.nan, tf.float32)))
    error = _per_example_mse(tf.cast(generator(codes, training=training), target.dtype), target)
    data_codes, data_error = codes[:n], error[:n]
    ref_codes = tf.stop_gradient(codes[n:]) if mode == "reference" else None
    return Reversal(tf.stop_gradient(data_codes), tf.stop_gradient(data_error),
                    tf.stop_gradient(i), tf.stop_gradient(stat), ref_codes)


# One tf.function per generator (weakly keyed, so a dropped generator takes its
# traces with it); it retraces per structure (mode, training, given z0 or not)
# and per input shape, never per value: every number goes in as a tensor.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_COMPILED_STRONG: dict = {}  # generators that cannot be weakly referenced


def _compiled(generator, jit_compile: bool = False):
    try:
        fns = _COMPILED.get(generator)
    except TypeError:
        fns = _COMPILED_STRONG.get(id(generator), (None, None))[1]
    if fns is None:
        fns = {}
        try:
            _COMPILED[generator] = fns
        except TypeError:
            _COMPILED_STRONG[id(generator)] = (generator, fns)
    if jit_compile not in fns:
        ref = _weak(generator)

        def run(*args, mode, training):
            return _reverse_loop(ref(), *args, mode=mode, training=training)

        fns[jit_compile] = tf.function(run, reduce_retracing=True, jit_compile=jit_compile)
    return fns[jit_compile]


def _weak(obj):
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


# -- checks --------------------------------------------------------------------------------

def _static_shape(obj, name):
    shape = getattr(obj, name, None)
    if shape is None:
        return None
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        return None if len(shape) != 1 else tuple(shape[0])
    try:
        return tuple(shape)
    except TypeError:
        return None


def _latent_dim(generator, z0):
    shape = _static_shape(generator, "input_shape")
    if shape is not None and len(shape) == 2 and shape[-1] is not None:
        return int(shape[-1])
    if z0 is not None and z0.shape.rank == 2 and z0.shape[1] is not None:
        return int(z0.shape[1])
    raise ValueError("cannot infer the generator's latent dimension (it has no input_shape "
                     "(batch, d)); pass z0 of shape (n, d)")


def _check_number(name, value, ok, expected):
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not ok(value):
        raise ValueError(f"{name} must be {expected}, got {value}")


def _check_codes(name, codes, rows, rows_name, latent_dim):
    if codes.shape.rank is not None and codes.shape.rank != 2:
        raise ValueError(f"{name} must have shape (n, latent_dim), got {codes.shape}")
    if codes.shape.rank == 2:
        n, d = codes.shape
        if n is not None and rows is not None and n != rows:
            raise ValueError(f"{name} must have one code per row of {rows_name} ({rows}), got {n}")
        if d is not None and latent_dim is not None and d != latent_dim:
            raise ValueError(f"{name} must have {latent_dim} columns (the generator's latent "
                             f"dimension), got shape {codes.shape}")


def _check_finite(name, t):
    if tf.executing_eagerly() and not bool(tf.reduce_all(tf.math.is_finite(t))):
        raise ValueError(f"{name} contains NaN or infinite values")


# -- the public entry point ----------------------------------------------------------------

def reverse(generator, x, *, z0=None, steps=50, lr=1.0, reference=None, reference_z0=None,
            reference_z=None, compare_to: str = "reference", threshold=1e-4, gamma=1e-4,
            min_steps=1, init_scale=1e-4, seed=None, training: bool = False,
            jit_compile: bool = False) -> Reversal:
    """Codes ``z`` with ``generator(z) ~ x``: gradient descent on the codes
    (KDE-GAN paper Alg. 1) with the MMD stopping rule of its §4.

    Args:
      generator: a callable (a Keras model) mapping ``(n, d)`` codes to
        ``(n, ...)`` outputs; called as ``generator(z, training=training)``.
      x: ``(n, ...)`` targets with the generator's output shape.
      z0: ``(n, d)`` starting codes (e.g. the previous codes, to warm-start);
        default ``N(0, init_scale^2 I)`` draws.
      steps: the cap on gradient steps (``T_max``; >= 1). Without a stopping
        test exactly ``steps`` steps are taken.
      lr: the step size of ``z <- z - lr * grad`` (paper: 1.0).
      reference: ``(m, ...)`` generated images ``G(z_g)``; reversed alongside
        ``x`` from their own ``z0`` draws, for the stopping test.
      reference_z0: ``(m, d)`` starting codes for ``reference``.
      reference_z: ``(m, d)`` known codes ``z_g``; with
        ``compare_to="true_codes"`` the test compares the data codes with
        these instead of reversing a reference batch.
      compare_to: "reference" (default; needs ``reference`` to test) or
        "true_codes" (needs ``reference_z``).
      threshold: stop once ``MMD_u^2 > threshold`` (paper: 1e-4). ``inf``
        never stops early, ``-inf`` stops after ``min_steps``.
      gamma: the kernel ``exp(-gamma ||z - w||^2)`` of the test (paper: 1e-4).
      min_steps: steps always taken before the test may stop (1 <= min_steps <= steps).
      init_scale: standard deviation of the default ``z0`` draws (paper: 1e-4).
      seed: an int or a ``[2]`` integer tensor for the stateless ``z0`` draws;
        None draws a fresh seed.
      training: passed to the generator (default inference mode, as sampling;
        with ``training=True`` batch normalisation would pool x and reference).
      jit_compile: compile the loop with XLA (one fused program for all the
        steps; on CPU 1.35x faster per step for the MNIST MLP generator,
        ``bench/reversal_cost.py --xla``). Also inside a traced function
        (the KDE-GAN's ``train_step``), as a nested XLA-compiled function.

    Returns:
      A :class:`Reversal` ``(codes, error, steps, mmd2, reference_codes)``,
      all without gradient to the generator or the inputs. ``mmd2`` is NaN
      when no test was run. With fewer than two rows in either set the test
      statistic is undefined (NaN) and the cap applies.

    Raises:
      ValueError: on shapes that do not fit the generator, non-positive
        ``lr``/``gamma``, ``steps < 1``, ``min_steps`` outside ``[1, steps]``,
        NaN inputs (eagerly), or a ``compare_to`` without what it needs.
    """
    if compare_to not in COMPARE_TO:
        raise ValueError(f"compare_to must be one of {COMPARE_TO}, got {compare_to!r}")
    _check_number("steps", steps, lambda v: v >= 1 and float(v).is_integer(), "an integer >= 1")
    _check_number("min_steps", min_steps, lambda v: v >= 1 and float(v).is_integer(),
                  "an integer >= 1")
    if (isinstance(steps, numbers.Real) and isinstance(min_steps, numbers.Real)
            and min_steps > steps):
        raise ValueError(f"min_steps must be <= steps ({steps}), got {min_steps}")
    _check_number("lr", lr, lambda v: v > 0, "positive")
    _check_number("gamma", gamma, lambda v: v > 0, "positive")
    _check_number("init_scale", init_scale, lambda v: v >= 0, "non-negative")
    if isinstance(threshold, numbers.Real) and math.isnan(threshold):
        raise ValueError("threshold must be a number or +-inf, got nan")

    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 1:
        raise ValueError(f"x must have shape (n, ...), got {x.shape}")
    out_shape = _static_shape(generator, "output_shape")
    if out_shape is not None and x.shape.rank is not None:
        want, got = tuple(out_shape[1:]), tuple(x.shape[1:])
        if len(want) != len(got) or any(a is not None and b is not None and a != b
                                         for a, b in zip(want, got)):
            raise ValueError(f"x must have the generator's output shape (n, "
                             f"{', '.join(map(str, want))}), got {x.shape}")
    _check_finite("x", x)
    dtype = x.dtype

    if z0 is not None:
        z0 = tf.cast(tf.convert_to_tensor(z0), dtype)
    latent_dim = _latent_dim(generator, z0)
    n_static = x.shape[0] if x.shape.rank is not None else None
    if z0 is not None:
        _check_codes("z0", z0, n_static, "x", latent_dim)
        _check_finite("z0", z0)

    if compare_to == "true_codes":
        if reference is not None or reference_z0 is not None:
            raise ValueError("compare_to='true_codes' compares with reference_z and reverses no "
                             "reference batch: pass reference_z, not reference / reference_z0")
        if reference_z is None:
            raise ValueError("compare_to='true_codes' needs reference_z, the (m, d) known codes")
        reference_z = tf.cast(tf.convert_to_tensor(reference_z), dtype)
        _check_codes("reference_z", reference_z, None, "", latent_dim)
        _check_finite("reference_z", reference_z)
        mode = "true_codes"
    else:
        if reference_z is not None:
            raise ValueError("reference_z is only used with compare_to='true_codes'")
        if reference is None and reference_z0 is not None:
            raise ValueError("reference_z0 was given without reference")
        mode = "none" if reference is None else "reference"
    if mode == "reference":
        reference = tf.cast(tf.convert_to_tensor(reference), dtype)
        if (reference.shape.rank is not None and x.shape.rank is not None
                and (reference.shape.rank != x.shape.rank
                     or any(a is not None and b is not None and a != b
                            for a, b in zip(reference.shape[1:], x.shape[1:])))):
            raise ValueError(f"reference must have the shape of x's rows (m, "
                             f"{', '.join(map(str, x.shape[1:]))}), got {reference.shape}")
        _check_finite("reference", reference)
        if reference_z0 is not None:
            reference_z0 = tf.cast(tf.convert_to_tensor(reference_z0), dtype)
            m_static = reference.shape[0] if reference.shape.rank is not None else None
            _check_codes("reference_z0", reference_z0, m_static, "reference", latent_dim)
            _check_finite("reference_z0", reference_z0)

    # Starting codes: stateless draws from two streams of one seed.
    if z0 is None or (mode == "reference" and reference_z0 is None):
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        elif isinstance(seed, int):
            seed = tf.constant([seed, 0], tf.int64)
        else:
            seed = tf.convert_to_tensor(seed)
            if seed.shape.rank is not None and seed.shape != (2,):
                raise ValueError(f"seed must be an int or a [2] integer tensor, got shape {seed.shape}")
            seed = tf.cast(seed, tf.int64)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        scale = tf.cast(init_scale, dtype)
        if z0 is None:
            z0 = scale * tf.random.stateless_normal(tf.stack([tf.shape(x)[0], latent_dim]), seeds[0],
                                                    dtype=dtype)
        if mode == "reference" and reference_z0 is None:
            reference_z0 = scale * tf.random.stateless_normal(
                tf.stack([tf.shape(reference)[0], latent_dim]), seeds[1], dtype=dtype)

    def as_tensor(v, dt):
        return tf.cast(tf.convert_to_tensor(v), dt)

    args = (x, z0, reference, reference_z0, reference_z,
            as_tensor(steps, tf.int32), as_tensor(lr, dtype), as_tensor(threshold, tf.float32),
            as_tensor(gamma, dtype), as_tensor(min_steps, tf.int32))
    if tf.executing_eagerly():
        return _compiled(generator, bool(jit_compile))(*args, mode=mode, training=bool(training))
    if jit_compile:
        # Traced inside another function: call an XLA-compiled function (None stands
        # for an absent argument, as tf.function takes it as a static value).
        return tf.function(lambda *a: _reverse_loop(generator, *a, mode=mode, training=training),
                           jit_compile=True)(*args)
    return _reverse_loop(generator, *args, mode=mode, training=training)
