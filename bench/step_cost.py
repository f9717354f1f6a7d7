"""Train-step cost of GRAM-nets and MMD-nets against a plain GAN step.

All three use the same MLPs and batch: the ``gram-ring8`` recipe's networks
(generator ``20 -> 100 -> 100 -> 2``, critic ``2 -> 100 -> 100 -> K`` with
K = 10 for GRAM; the GAN's discriminator is the same MLP with a 1-unit logit
head; MMD-net has no critic), batch 200 of ring data. GRAM and MMD-net are
built by ``tfgen.trainers.recipes.build_model`` exactly as a user gets them;
the GAN reference is written here the way the keras-io GAN examples write
theirs (``keras.Model`` subclass, ``train_step`` with a discriminator update
on real + fake and a non-saturating generator update on fresh codes, two
Adam optimizers).

Timing protocol: each model is compiled by Keras as ``model.fit`` would
compile it (``make_train_function``; ``jit_compile="auto"``, which Keras
resolves to no XLA on a CPU-only machine), warmed up (tracing and the first
steps), and then its ``train_function`` is called directly, one step per
call, on an iterator over one fixed batch repeated (``Dataset.from_tensors
(x).repeat()``), so input-pipeline threads do not compete for the CPU and
callbacks/progress bars are not counted. ``--rounds`` rounds each time
``--steps`` steps of every model (the order rotates between rounds), and the
report gives the median per-step time over rounds and the ratio to the GAN.

Then GRAM's step is broken down with ``tf.function``'d micro-benchmarks on
the same networks and batch (networks forward/backward, the Gram matrices,
the ratio solve, the optimizer updates), and a variant of the ratio solve
with a hand-written gradient is timed against the library's.

    .venv/bin/python bench/step_cost.py                         # batch 200, hidden 100
    .venv/bin/python bench/step_cost.py --dims 512x1000         # also hidden 512, batch 1000
    .venv/bin/python bench/step_cost.py --rounds 3 --steps 100 --out /tmp/x.md   # quick

Writes ``docs/step_cost.md``. A benchmark: never part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import tfgen  # noqa: E402
from tfgen import ops  # noqa: E402
from tfgen import distributions  # noqa: E402
from tfgen.distributions.priors import as_stateless_seed  # noqa: E402
from tfgen.models import GRAM, networks  # noqa: E402
from tfgen.trainers import recipes  # noqa: E402

GOAL = 1.3  # the project's goal: a GRAM step costs at most 1.3x a GAN step


# ---------------------------------------------------------------------------------------------
# The reference: a plain GAN, written as the keras-io GAN examples write it
# ("DCGAN to generate face images", "Customizing what happens in fit(): GAN").
# ---------------------------------------------------------------------------------------------
class GAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim, seed=0):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real):
        batch_size = tf.shape(real)[0]
        z = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(z)
        combined = tf.concat([real, fake], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        # keras-io adds a little label noise ("an important trick")
        labels += 0.05 * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        z = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        misleading = tf.ones((batch_size, 1))  # non-saturating: G wants D to say "real"
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


# ---------------------------------------------------------------------------------------------
# A candidate speed-up, measured but not used by the library: the KMM ratio solve with a
# hand-written gradient. r = A^{-1} b with A = K_qq + eps I symmetric, so
#   dL/db = A^{-1} g  and  dL/dA = -(A^{-1} g) r^T,
# one more Cholesky solve with the factor already computed: O(N^2) for the backward pass
# instead of differentiating through the Cholesky factorisation (O(N^3)). The float32 factor
# is computed once and checked; a float64 factor is used only when it is not finite, and the
# backward pass reuses whichever factor the forward pass used, so no NaN leaks into gradients.
# ---------------------------------------------------------------------------------------------
@tf.custom_gradient
def spd_solve(a, b):
    chol32 = tf.linalg.cholesky(a)
    ok = tf.reduce_all(tf.math.is_finite(chol32))

    def solve_with(x):
        return tf.cond(ok, lambda: tf.linalg.cholesky_solve(chol32, x),
                       lambda: tf.cast(tf.linalg.cholesky_solve(tf.linalg.cholesky(tf.cast(a, tf.float64)),
                                                                tf.cast(x, tf.float64)), a.dtype))

    r = solve_with(b)

    def grad(g):
        y = solve_with(g)
        return -tf.matmul(y, r, transpose_b=True), y

    return r, grad


def density_ratio_fast(k_qq, k_qp, eps=1e-3):
    """Same value as ``tfgen.ops.density_ratio``; gradient by :func:`spd_solve`."""
    n = tf.shape(k_qq)[-1]
    m = tf.cast(tf.shape(k_qp)[-1], k_qq.dtype)
    rhs = tf.reduce_sum(k_qp, axis=-1, keepdims=True)
    a = k_qq + eps * tf.eye(n, dtype=k_qq.dtype)  # (..., N, N): batched over bandwidths
    return tf.cast(n, k_qq.dtype) / m * tf.squeeze(spd_solve(a, rhs), -1)


@contextlib.contextmanager
def ratio_solver(fn):
    """Trace GRAM with ``fn`` in place of ``tfgen.ops.density_ratio`` (GRAM calls it as
    ``ops.density_ratio``). Only while a function is being traced: the library is untouched."""
    original = ops.density_ratio
    ops.density_ratio = fn
    try:
        yield
    finally:
        ops.density_ratio = original


def ratio_stand_in(k_qq, k_qp, eps=1e-3):
    """A cheap differentiable stand-in for the ratio solve (to time everything else)."""
    return tf.reduce_mean(k_qq, -1) + tf.reduce_mean(k_qp, -1) + eps


class GRAMFastSolve(GRAM):
    """GRAM with :func:`density_ratio_fast` in place of ``ops.density_ratio`` (bench only)."""

    def ratio_and_mmd(self, f_data, f_gen):
        with ratio_solver(density_ratio_fast):
            return super().ratio_and_mmd(f_data, f_gen)


@tf.custom_gradient
def spd_solve_f32(a, b):
    """:func:`spd_solve` without the float64 fallback. With unit-diagonal kernel matrices and
    eps = 1e-3, float32 rounding (~N * 6e-8 on the eigenvalues) cannot make ``K + eps I``
    indefinite; only NaN features could break the factor, and float64 would not mend those."""
    chol = tf.linalg.cholesky(a)
    r = tf.linalg.cholesky_solve(chol, b)

    def grad(g):
        y = tf.linalg.cholesky_solve(chol, g)
        return -tf.matmul(y, r, transpose_b=True), y

    return r, grad


def density_ratio_f32(k_qq, k_qp, eps=1e-3):
    """:func:`density_ratio_fast` without the float64 fallback (:func:`spd_solve_f32`)."""
    n = tf.shape(k_qq)[-1]
    m = tf.cast(tf.shape(k_qp)[-1], k_qq.dtype)
    a = k_qq + eps * tf.eye(n, dtype=k_qq.dtype)
    r = spd_solve_f32(a, tf.reduce_sum(k_qp, axis=-1, keepdims=True))
    return tf.cast(n, k_qq.dtype) / m * tf.squeeze(r, -1)


class GRAMNoFallback(GRAM):
    """GRAM with :func:`density_ratio_f32` in place of ``ops.density_ratio`` (bench only)."""

    def ratio_and_mmd(self, f_data, f_gen):
        with ratio_solver(density_ratio_f32):
            return super().ratio_and_mmd(f_data, f_gen)


class StatelessGaussian(distributions.Gaussian):
    """``N(loc, scale^2 I)`` drawn with one ``tf.random.stateless_normal`` instead of TFP's
    ``MultivariateNormalDiag.sample`` (bench only; other codes for the same seed)."""

    def sample(self, n, seed=None):
        z = tf.random.stateless_normal((n, self.dim), seed=as_stateless_seed(seed))
        return self.loc + self.scale * z


# ---------------------------------------------------------------------------------------------
def build_models(hidden: int, batch: int, seed: int, jit):
    """GRAM, MMD-net (from the recipes) and the GAN, with the same widths."""
    widths = (hidden, hidden)
    gram_r = recipes.get("gram-ring8")
    gram_r = gram_r.replace(batch_size=batch,
                            generator=recipes.NetworkSpec("mlp", widths), critic=recipes.NetworkSpec("mlp", widths))
    mmd_r = recipes.get("mmd-net-ring8").replace(batch_size=batch, generator=recipes.NetworkSpec("mlp", widths))
    keras.utils.set_random_seed(seed)
    models = {}
    models["GAN"] = GAN(networks.mlp(2, widths, 1, name="discriminator"),
                        networks.mlp(gram_r.latent_dim, widths, 2, name="generator"), gram_r.latent_dim, seed)
    models["GAN"].compile(d_optimizer=gram_r.optimizer.build(), g_optimizer=gram_r.optimizer.build(),
                          loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    models["MMD-net"] = recipes.build_model(mmd_r, (2,))
    models["GRAM"] = recipes.build_model(gram_r, (2,))
    # The candidate, with the very same networks and optimizers' settings.
    g = models["GRAM"]
    fast = GRAMFastSolve(networks.mlp(gram_r.latent_dim, widths, 2, name="generator"),
                         networks.mlp(2, widths, gram_r.critic_dim, name="critic"), g.prior,
                         seed=g.seed, **gram_r.model_options)
    fast.compile(optimizer=gram_r.optimizer.build(), critic_optimizer=gram_r.optimizer.build())
    models["GRAM (fast solve)"] = fast
    for name, cls, prior in [("GRAM (fast solve, no fallback)", GRAMNoFallback, g.prior),
                             ("GRAM (fast solve, no fallback, plain prior)", GRAMNoFallback,
                              StatelessGaussian(gram_r.latent_dim))]:
        v = cls(networks.mlp(gram_r.latent_dim, widths, 2, name="generator"),
                networks.mlp(2, widths, gram_r.critic_dim, name="critic"), prior,
                seed=g.seed, **gram_r.model_options)
        v.compile(optimizer=gram_r.optimizer.build(), critic_optimizer=gram_r.optimizer.build())
        models[name] = v
    if jit is not None:
        for m in models.values():
            m.jit_compile = jit
    return models, gram_r


def sync(out):
    for v in tf.nest.flatten(out):
        if hasattr(v, "numpy"):
            v.numpy()
            return


def time_train_function(model, iterator, steps: int) -> float:
    """Seconds per step of ``steps`` calls of ``model.train_function`` (one step per call)."""
    fn = model.train_function
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn(iterator)
    sync(out)
    return (time.perf_counter() - t0) / steps


def time_fn(fn, args, calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean ms per call of ``fn(*args)``."""
    sync(fn(*args))
    sync(fn(*args))
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        sync(out)
        per.append((time.perf_counter() - t0) / calls * 1e3)
    return statistics.median(per)


def step_table(models, x, steps: int, rounds: int, warmup: int):
    ds = tf.data.Dataset.from_tensors(x).repeat()
    iters = {}
    for name, m in models.items():
        m.make_train_function()
        iters[name] = iter(ds)
        for _ in range(warmup):
            out = m.train_function(iters[name])
        sync(out)
    names = list(models)
    per = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            per[n].append(time_train_function(models[n], iters[n], steps) * 1e3)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {per[n][-1]:.3f} ms" for n in names), flush=True)
    return per


def breakdown(model: GRAM, x, calls: int, rounds: int):
    """GRAM's step in pieces, each a ``tf.function`` on the same networks and batch."""
    g, c = model.generator, model.critic
    n = int(x.shape[0])
    z = model.prior.sample(n, seed=1)
    gv, cv = g.trainable_variables, c.trainable_variables
    p0, q0 = c(x), c(g(z))
    res = {}

    @tf.function
    def sample_codes(seed):
        return model.prior.sample(n, seed=seed)

    @tf.function
    def nets_fwd(x, z):
        return c(x, training=True), c(g(z, training=True), training=True)

    w1 = tf.random.normal(p0.shape, seed=1)
    w2 = tf.random.normal(q0.shape, seed=2)

    @tf.function
    def nets_fwd_bwd_concat(x, z):
        # The same, with the critic called once on [x; G(z)] as the GAN calls its discriminator
        # (valid for critics without BatchNorm).
        with tf.GradientTape(persistent=True) as tape:
            f = c(tf.concat([x, g(z, training=True)], 0), training=True)
            fd, fg = f[:n], f[n:]
            l_c = tf.reduce_sum(fd * w1) + tf.reduce_sum(fg * w2)
            l_g = tf.reduce_sum(fg * w2)
        return tape.gradient(l_c, cv), tape.gradient(l_g, gv)

    @tf.function
    def nets_fwd_bwd(x, z):
        # The networks' part of train_step: same tape structure, a linear stand-in for the loss.
        with tf.GradientTape(persistent=True) as tape:
            fd = c(x, training=True)
            fg = c(g(z, training=True), training=True)
            l_c = tf.reduce_sum(fd * w1) + tf.reduce_sum(fg * w2)
            l_g = tf.reduce_sum(fg * w2)
        return tape.gradient(l_c, cv), tape.gradient(l_g, gv)

    def head(p, q, ratio_fn):
        with ratio_solver(ratio_fn):
            r, mmd2 = model.ratio_and_mmd(p, q)
        return -ops.pearson_divergence(r, lam=model.lam, positivity=model.positivity), \
            tf.sqrt(tf.maximum(mmd2, 1e-12))

    def head_fwd_bwd(ratio_fn):
        @tf.function
        def f(p, q):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch([p, q])
                l_c, l_g = head(p, q, ratio_fn)
            return tape.gradient(l_c, [p, q]), tape.gradient(l_g, [p, q])
        return f

    head_fwd = tf.function(lambda p, q: head(p, q, ops.density_ratio))

    sq = ops.pairwise_sq_distances
    gamma = ops.gamma_from_bandwidth(tf.constant(model.bandwidths or [1.0]), model.parameterization)
    k_qq = tf.exp(-gamma[:, None, None] * sq(q0)[None])
    k_qp = tf.exp(-gamma[:, None, None] * sq(q0, p0)[None])

    def ratio_fwd_bwd(ratio_fn):
        @tf.function
        def f(a, b):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                r = ratio_fn(a, b, eps=model.eps)
                loss = ops.pearson_divergence(tf.reduce_mean(r, 0))
            return tape.gradient(loss, [a, b])
        return f

    a32 = k_qq[0] + model.eps * tf.eye(n)
    cholesky = tf.function(lambda a: tf.linalg.cholesky(a))
    cholesky_xla = tf.function(lambda a: tf.linalg.cholesky(a), jit_compile=True)
    ratio_fwd = tf.function(lambda a, b: ops.density_ratio(a, b, eps=model.eps))

    grads_c = [tf.zeros_like(v) for v in cv]
    grads_g = [tf.zeros_like(v) for v in gv]

    @tf.function
    def apply_updates():
        model.critic_optimizer.apply_gradients(zip(grads_c, cv))
        model.optimizer.apply_gradients(zip(grads_g, gv))
        return model.optimizer.iterations

    latent = model.latent_dim

    @tf.function
    def stateless_normal(seed):
        return tf.random.stateless_normal((n, latent), seed=seed)

    noop = tf.function(lambda x: x)
    items = [
        ("tf.function call overhead (identity)", noop, (x,)),
        ("prior sample (library: TFP MultivariateNormalDiag, stateless seed)", sample_codes, (tf.constant([1, 2]),)),
        ("tf.random.stateless_normal, same shape", stateless_normal, (tf.constant([1, 2]),)),
        ("networks forward (G, critic on data and on G(z))", nets_fwd, (x, z)),
        ("networks forward + backward (train_step's tape, linear stand-in loss)", nets_fwd_bwd, (x, z)),
        ("networks forward + backward, critic called once on [x; G(z)]", nets_fwd_bwd_concat, (x, z)),
        ("Gram head forward (distances, kernels, MMD, ratio, Pearson)", head_fwd, (p0, q0)),
        ("Gram head forward + backward, ratio solve replaced by a cheap stand-in", head_fwd_bwd(ratio_stand_in), (p0, q0)),
        ("Gram head forward + backward (library)", head_fwd_bwd(ops.density_ratio), (p0, q0)),
        ("Gram head forward + backward (hand-written solve gradient)", head_fwd_bwd(density_ratio_fast), (p0, q0)),
        ("Gram head forward + backward (hand-written solve gradient, no float64 fallback)",
         head_fwd_bwd(density_ratio_f32), (p0, q0)),
        ("ratio solve forward (library: check factor + cond + solve)", ratio_fwd, (k_qq, k_qp)),
        ("ratio solve forward + backward (library)", ratio_fwd_bwd(ops.density_ratio), (k_qq, k_qp)),
        ("ratio solve forward + backward (hand-written gradient)", ratio_fwd_bwd(density_ratio_fast), (k_qq, k_qp)),
        ("ratio solve forward + backward (hand-written gradient, no float64 fallback)",
         ratio_fwd_bwd(density_ratio_f32), (k_qq, k_qp)),
        (f"one Cholesky factorisation ({n}x{n}, float32)", cholesky, (a32,)),
        (f"one Cholesky factorisation ({n}x{n}, float32), XLA", cholesky_xla, (a32,)),
        ("ratio solve forward + backward (library), XLA",
         tf.function(ratio_fwd_bwd(ops.density_ratio).python_function, jit_compile=True), (k_qq, k_qp)),
        ("optimizer updates (2 x Adam apply)", apply_updates, ()),
    ]
    for name, fn, args in items:
        res[name] = time_fn(fn, args, calls, rounds)
        print(f"  {res[name]:8.3f} ms  {name}", flush=True)
    return res


def check_variants(model: GRAM, x):
    """Max relative difference of all critic and generator gradients, and max |r| difference,
    of each bench variant against the library, on the same networks, batch and codes."""
    z = model.prior.sample(int(x.shape[0]), seed=3)

    def library(m, fd, fg):
        return m.ratio_and_mmd(fd, fg)

    def fast(m, fd, fg):
        with ratio_solver(density_ratio_fast):
            return m.ratio_and_mmd(fd, fg)

    def grads(ratio_and_mmd):
        m = model
        with tf.GradientTape(persistent=True) as tape:
            fd, fg = m.critic(x), m.critic(m.generator(z))
            r, mmd2 = ratio_and_mmd(m, fd, fg)
            l_c = -ops.pearson_divergence(r, lam=m.lam, positivity=m.positivity)
            l_g = tf.sqrt(tf.maximum(mmd2, 1e-12))
        return (tape.gradient(l_c, m.critic.trainable_variables)
                + tape.gradient(l_g, m.generator.trainable_variables)), r

    ga, ra = grads(library)
    out = {}
    def no_fallback(m, fd, fg):
        with ratio_solver(density_ratio_f32):
            return m.ratio_and_mmd(fd, fg)

    for name, fn in [("hand-written solve gradient", fast), ("the same without fallback", no_fallback)]:
        gb, rb = grads(fn)
        # Relative to the largest gradient entry of all: the critic's output bias has an exactly
        # zero gradient (distances ignore a shift), so a per-tensor ratio would compare noise.
        scale = max(float(tf.reduce_max(tf.abs(u))) for u in ga) + 1e-30
        rel = max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(ga, gb)) / scale
        out[name] = (rel, float(tf.reduce_max(tf.abs(ra - rb))))

    # Yardstick: gradients of the Pearson objective w.r.t. the Gram matrices, each float32 solve
    # against the library's solve in float64 (the kernel matrix is ill-conditioned: ~1/eps).
    fd, fg = model.critic(x), model.critic(model.generator(z))
    gamma = ops.gamma_from_bandwidth(tf.constant(model.bandwidths or [1.0]), model.parameterization)
    k_qq = tf.exp(-gamma[:, None, None] * ops.pairwise_sq_distances(fg)[None])
    k_qp = tf.exp(-gamma[:, None, None] * ops.pairwise_sq_distances(fg, fd)[None])

    def solve_grads(fn, dtype):
        a, b = tf.cast(k_qq, dtype), tf.cast(k_qp, dtype)
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = ops.pearson_divergence(tf.reduce_mean(fn(a, b, eps=model.eps), 0))
        return [tf.cast(g, tf.float64) for g in tape.gradient(loss, [a, b])]

    g64 = solve_grads(ops.density_ratio, tf.float64)
    scale = max(float(tf.reduce_max(tf.abs(u))) for u in g64)
    yard = {}
    for name, fn in [("library", ops.density_ratio), ("hand-written gradient", density_ratio_fast),
                     ("hand-written gradient, no fallback", density_ratio_f32)]:
        g32 = solve_grads(fn, tf.float32)
        yard[name] = max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(g32, g64)) / scale
    return out, yard


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(len(os.sched_getaffinity(0)))
    return (f"`nproc` = {nproc} ({cpu}, {platform.machine()}), Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, intra-op threads "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, CPU only")


def parse_dims(text):
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            h, b = item.lower().split("x")
            out.append((int(h), int(b)))
        except ValueError:
            raise SystemExit(f"--dims: expected HIDDENxBATCH[,HIDDENxBATCH...] such as 512x1000, got {item!r}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=200, help="batch size (default %(default)s, the recipe's)")
    p.add_argument("--hidden", type=int, default=100, help="hidden width of every network (default %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="train steps per model per round (default %(default)s)")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps per model after tracing (default %(default)s)")
    p.add_argument("--dims", default="", help="extra HIDDENxBATCH configurations, e.g. 512x1000")
    p.add_argument("--jit", choices=["auto", "on", "off"], default="auto",
                   help="jit_compile for all models: auto (Keras' default: no XLA on CPU), on, off")
    p.add_argument("--dims-steps", type=int, default=None,
                   help="steps per round (and micro-benchmark calls) for the --dims configurations "
                        "(default: a fifth of --steps / --calls; their steps are slower)")
    p.add_argument("--jit-compare", action="store_true",
                   help="also time the first configuration with jit_compile=True (XLA) for all models")
    p.add_argument("--no-profile", action="store_true", help="skip GRAM's micro-benchmark breakdown")
    p.add_argument("--calls", type=int, default=200, help="calls per round in the micro-benchmarks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/step_cost.md", help="markdown report (default %(default)s)")
    args = p.parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    jit = {"auto": None, "on": True, "off": False}[args.jit]
    small = args.dims_steps or max(10, args.steps // 5)
    small_calls = args.dims_steps or max(10, args.calls // 5)
    configs = [(args.hidden, args.batch, jit, args.steps, args.calls)]
    configs += [(h, b, jit, small, small_calls) for h, b in parse_dims(args.dims)]
    if args.jit_compare:
        configs.append((args.hidden, args.batch, True, args.steps, args.calls))
    command = "python bench/step_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])

    sections, summary = [], []
    for hidden, batch, cfg_jit, n_steps, n_calls in configs:
        xla = "" if cfg_jit is None else f", jit_compile={cfg_jit}"
        print(f"== hidden {hidden}, batch {batch}{xla}", flush=True)
        models, recipe = build_models(hidden, batch, args.seed, cfg_jit)
        x = tf.constant(tfgen.data.load_numpy(recipe.dataset, n=max(batch, 1000), seed=args.seed)[:batch])
        per = step_table(models, x, n_steps, args.rounds, min(args.warmup, n_steps))
        med = {n: statistics.median(v) for n, v in per.items()}
        paired = {n: statistics.median(a / b for a, b in zip(v, per["GAN"])) for n, v in per.items()}
        jit_used = {n: bool(m.jit_compile) for n, m in models.items()}
        rows = ["| model | median ms / step | min | max | ratio to GAN (of medians) | median of per-round ratios |",
                "|---|---|---|---|---|---|"]
        for n in models:
            rows.append(f"| {n} | {med[n]:.3f} | {min(per[n]):.3f} | {max(per[n]):.3f} | "
                        f"{med[n] / med['GAN']:.2f}x | {paired[n]:.2f}x |")
        ratio = med["GRAM"] / med["GAN"]
        summary.append((hidden, batch, med, ratio, cfg_jit))
        print("\n".join(rows), flush=True)
        sec = [f"### hidden {hidden}, batch {batch}{xla}", "",
               f"Networks: G {recipe.latent_dim} -> {hidden} -> {hidden} -> 2; GRAM critic 2 -> {hidden} -> "
               f"{hidden} -> {recipe.critic_dim}; GAN discriminator 2 -> {hidden} -> {hidden} -> 1; "
               f"MMD-net: G only. XLA (jit_compile) used: "
               + ", ".join(f"{n} {'yes' if j else 'no'}" for n, j in jit_used.items()) + ".", ""]
        sec += [f"({args.rounds} rounds x {n_steps} steps per model.)", ""] + rows
        sec += ["", f"GRAM / GAN = **{ratio:.2f}x** (goal <= {GOAL}x: **{'met' if ratio <= GOAL else 'NOT met'}**). "
                f"Bench-only variants (see Suggestions): hand-written solve gradient "
                f"{med['GRAM (fast solve)'] / med['GAN']:.2f}x; also without the float64 fallback "
                f"{med['GRAM (fast solve, no fallback)'] / med['GAN']:.2f}x; also with the plain prior draw "
                f"{med['GRAM (fast solve, no fallback, plain prior)'] / med['GAN']:.2f}x.", ""]
        if not args.no_profile and not cfg_jit:
            print("  GRAM breakdown:", flush=True)
            checks, yard = check_variants(models["GRAM"], x)
            bd = breakdown(models["GRAM"], x, n_calls, args.rounds)
            sec += [f"GRAM step broken down (tf.function micro-benchmarks, median of {args.rounds} rounds "
                    f"x {n_calls} calls; the pieces overlap, they do not sum to the step):", "",
                    "| piece | ms / call | share of the GRAM step |", "|---|---|---|"]
            for name, v in bd.items():
                sec.append(f"| {name} | {v:.3f} | {100 * v / med['GRAM']:.0f}% |")
            sec += [""] + [f"Check, {name} vs the library: max difference of all critic and generator "
                           f"gradients, relative to the largest gradient entry, {rel:.1e}, max |r| difference {rdiff:.1e}."
                           for name, (rel, rdiff) in checks.items()] + [""]
            sec += ["Float32 rounding yardstick: gradients of the Pearson objective with respect to the "
                    "Gram matrices, each float32 solve against the library's solve in float64 (max "
                    "difference relative to the largest entry): "
                    + ", ".join(f"{n} {v:.1e}" for n, v in yard.items())
                    + ". The variants are as close to float64 as the library is.", ""]
            summary[-1] = summary[-1] + (bd,)
        sections.append("\n".join(sec))
        for m in models.values():
            del m
        keras.backend.clear_session()

    lines = ["# Train-step cost: GRAM-net and MMD-net vs a plain GAN", "",
             "Generated by `bench/step_cost.py` (a benchmark: not part of the test run).", "",
             f"- command: `{command}`",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"- machine: {machine()}", "",
             "## Protocol", "",
             "- same MLPs and batch for all: the `gram-ring8` recipe's networks (G 20 -> H -> H -> 2, "
             "critic 2 -> H -> H -> 10 for GRAM, the same MLP with a 1-unit logit head as the GAN's "
             "discriminator; MMD-net has only G), ring8 data.",
             "- GRAM and MMD-net come from `tfgen.trainers.recipes.build_model` (GRAM: 2 x Adam, sigma 1, "
             "one Cholesky ratio solve per step; MMD-net: RMSprop). The GAN is written in the script as the "
             "keras-io GAN examples write theirs: `keras.Model` subclass, discriminator step on real + fake "
             "with BCE from logits (and keras-io's 0.05 label noise), then a non-saturating generator step "
             "on fresh codes; two Adam optimizers.",
             f"- timing: Keras builds each model's `train_function` as `fit` does (a `tf.function`; "
             f"`jit_compile={args.jit}`), {args.warmup} untimed warm-up steps after tracing, then "
             f"`train_function(iterator)` is called directly, one step per call, on "
             f"`Dataset.from_tensors(batch).repeat()` (no input-pipeline threads competing for the 2 cores, "
             f"no callbacks or progress bar). {args.rounds} rounds, each timing {args.steps} steps of every "
             f"model in rotating order (fewer for the larger `--dims` configurations, as noted there); the table gives the median over rounds and the ratio to the GAN. "
             "The per-round ratio column pairs models timed seconds apart, so it is the more robust figure "
             "on this shared, noisy machine.",
             "- the `GRAM (...)` variants are bench-only subclasses of GRAM (same networks, settings and "
             "optimizers) that test the Suggestions below, one change at a time: `fast solve` = the ratio "
             "solve with a hand-written gradient (float64 fallback kept); `no fallback` = also without the "
             "float64 fallback; `plain prior` = also drawing the codes with `tf.random.stateless_normal`. "
             "They are not part of the library.", "",
             "## Summary", "",
             "| hidden | batch | XLA | GAN ms | MMD-net ms | GRAM ms | GRAM / GAN | goal <= 1.3x | "
             "GRAM with suggestions 1-3 ms | its ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for item in summary:
        hidden, batch, med, ratio, cfg_jit = item[:5]
        fast = med["GRAM (fast solve, no fallback, plain prior)"]
        lines.append(f"| {hidden} | {batch} | {'on' if cfg_jit else 'off'} | {med['GAN']:.3f} | "
                     f"{med['MMD-net']:.3f} | {med['GRAM']:.3f} | **{ratio:.2f}x** | "
                     f"{'met' if ratio <= GOAL else 'NOT met'} | {fast:.3f} | {fast / med['GAN']:.2f}x |")
    lines += ["", "## Results", ""] + sections
    lines += ["", "## Suggestions", "", "SUGGESTIONS_PLACEHOLDER", ""]
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    suggestions = suggest(summary)
    text = text.replace("SUGGESTIONS_PLACEHOLDER", suggestions)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")


def suggest(summary) -> str:
    """Suggestions written from the measured numbers (for the lead: the library is not changed here)."""
    out = []
    xla = [item for item in summary if item[4]]
    for item in summary:
        if len(item) < 6:
            continue
        hidden, batch, med, ratio, _, bd = item
        gram, gan = med["GRAM"], med["GAN"]
        fast = med["GRAM (fast solve)"]
        nofb = med["GRAM (fast solve, no fallback)"]
        allthree = med["GRAM (fast solve, no fallback, plain prior)"]
        lib_head = bd["Gram head forward + backward (library)"]
        fast_head = bd["Gram head forward + backward (hand-written solve gradient)"]
        no_ratio = bd["Gram head forward + backward, ratio solve replaced by a cheap stand-in"]
        chol = bd[f"one Cholesky factorisation ({batch}x{batch}, float32)"]
        nets = bd["networks forward + backward (train_step's tape, linear stand-in loss)"]
        nets_cat = bd["networks forward + backward, critic called once on [x; G(z)]"]
        tfp = bd["prior sample (library: TFP MultivariateNormalDiag, stateless seed)"]
        plain = bd["tf.random.stateless_normal, same shape"]
        out += [f"At hidden {hidden}, batch {batch} (GRAM {gram:.2f} ms, GAN {gan:.2f} ms, {ratio:.2f}x):", ""]
        out.append(
            f"1. **Ratio solve with a hand-written gradient** (`tfgen.ops.density_ratio`). The library "
            f"differentiates through `tf.linalg.cholesky` and `cholesky_solve` and factors the matrix twice "
            f"(a gradient-free float32 check, then the solve inside `tf.cond`). The Gram head's "
            f"forward + backward takes {lib_head:.2f} ms, of which about {lib_head - no_ratio:.2f} ms is the "
            f"solve (one {batch}x{batch} Cholesky alone: {chol:.2f} ms). Since r = A^-1 b with A "
            f"symmetric, dL/db = A^-1 g and dL/dA = -(A^-1 g) r^T: one more solve with the factor already "
            f"made, O(N^2) instead of backpropagating an O(N^3) factorisation. `spd_solve` in this script "
            f"does that with `tf.custom_gradient` (one float32 factor, checked; float64 only when it is "
            f"not finite, and the backward pass reuses the factor the forward pass used, so the NaN-gradient "
            f"problem the library's `tf.cond` dance avoids cannot arise). It gives the same gradients "
            f"(relative difference printed above). Head: {fast_head:.2f} ms. Whole step: {fast:.2f} ms "
            f"({fast / gan:.2f}x GAN): " + (f"saves {gram - fast:.2f} ms ({100 * (gram - fast) / gram:.0f}%)."
                                           if fast < gram else "no saving measured in the whole step."))
        nofb_head = bd["Gram head forward + backward (hand-written solve gradient, no float64 fallback)"]
        out.append(
            f"2. **Drop the float64 fallback** (and with it the `tf.cond` and the second factorisation). "
            f"The kernels have unit diagonal and eps = 1e-3, so float32 rounding (about N x 6e-8 on the "
            f"eigenvalues) cannot make K + eps I indefinite; only NaN features break the factor, and "
            f"float64 would not mend those (a NaN check on the loss can report them). In graph mode the "
            f"`tf.cond` and its gradient are expensive at this size. Head forward + backward: "
            f"{nofb_head:.2f} ms (library {lib_head:.2f} ms; hand-written gradient with the fallback "
            f"{fast_head:.2f} ms). Whole step with 1 and 2: {nofb:.2f} ms ({nofb / gan:.2f}x GAN).")
        out.append(
            f"3. **Draw the codes with `tf.random.stateless_normal`** in `Gaussian.sample` (and `Uniform`) "
            f"instead of building a TFP `MultivariateNormalDiag` and sampling it in every step: "
            f"{tfp:.2f} ms vs {plain:.2f} ms per call (both include the "
            f"{bd['tf.function call overhead (identity)']:.2f} ms call overhead). Whole step with 1, 2 and 3: "
            f"{allthree:.2f} ms. This changes which codes a given seed draws, so runs would not "
            f"reproduce earlier runs bit for bit. MMD-net and every model that samples its prior in "
            f"`train_step` would gain the same.")
        out.append(
            f"   **1 + 2 + 3 together**: {allthree:.2f} ms per step, **{allthree / gan:.2f}x GAN** "
            f"(goal {GOAL}x: {'met' if allthree / gan <= GOAL else 'not met'}; library {ratio:.2f}x).")
        out.append(
            f"4. Calling the critic once on `[x; G(z)]` (as the GAN does with its discriminator; only "
            f"valid without BatchNorm, METHODS.md §2 note 8): the networks' forward + backward goes from "
            f"{nets:.2f} ms to {nets_cat:.2f} ms, "
            + ("worth doing." if nets_cat < 0.9 * nets else "not worth the special case."))
        out.append(
            f"5. Floor: one `tf.function` call costs {bd['tf.function call overhead (identity)']:.2f} ms here, "
            f"and at this size every step is mostly op dispatch (the matrices are small), so op count matters "
            f"more than FLOPs. `steps_per_execution > 1` in `compile` amortises the per-call Python overhead "
            f"for all models alike.")
        out.append("")
    for item in xla:
        hidden, batch, med, ratio = item[:4]
        out.append(
            f"- **Do not turn on XLA for GRAM on CPU.** With `jit_compile=True` (hidden {hidden}, batch {batch}) "
            f"GRAM takes {med['GRAM']:.2f} ms per step ({ratio:.2f}x GAN at {med['GAN']:.2f} ms), and the "
            f"hand-written-gradient variant takes {med['GRAM (fast solve)']:.2f} ms (see the XLA rows of "
            f"the breakdown for the Cholesky and the solve under XLA). DESIGN.md says "
            f"\"`jit_compile=True` where XLA accepts the ops\"; for GRAM on CPU it should stay off "
            f"(Keras' `auto` already keeps it off on CPU-only machines).")
    return "\n".join(out) if out else "(profiling skipped)"


if __name__ == "__main__":
    main()
