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
import inspect
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
# instead of differentiating through the Cholesky factorisation (O(N^3)).
# ---------------------------------------------------------------------------------------------
# The library's solve (tfgen.ops.density_ratio.spd_solve) has had the hand-written gradient
# since this bench suggested it; the "fast solve" variants below now time the same code.
from tfgen.ops.density_ratio import spd_solve  # noqa: E402


@tf.custom_gradient
def spd_solve_plain(a, b):
    """:func:`spd_solve` without any fallback. With unit-diagonal kernel matrices and
    eps = 1e-3, float32 rounding of the *kernel entries* (~6e-8) cannot make ``K + eps I``
    indefinite; what can is rounding in the distances of nearly coincident features (see the
    report), which float64 Gram matrices avoid at the source."""
    chol = tf.linalg.cholesky(a)
    r = tf.linalg.cholesky_solve(chol, b)

    def grad(g):
        y = tf.linalg.cholesky_solve(chol, g)
        return -tf.matmul(y, r, transpose_b=True), y

    return r, grad


def _ratio_with(solve, k_qq, k_qp, eps):
    n = tf.shape(k_qq)[-1]
    m = tf.cast(tf.shape(k_qp)[-1], k_qq.dtype)
    a = k_qq + tf.cast(eps, k_qq.dtype) * tf.eye(n, dtype=k_qq.dtype)  # batched over bandwidths
    r = solve(a, tf.reduce_sum(k_qp, axis=-1, keepdims=True))
    return tf.cast(n, k_qq.dtype) / m * tf.squeeze(r, -1)


def density_ratio_fast(k_qq, k_qp, eps=1e-3):
    """Same value as ``tfgen.ops.density_ratio``; gradient by :func:`spd_solve`."""
    return _ratio_with(spd_solve, k_qq, k_qp, eps)


def density_ratio_plain(k_qq, k_qp, eps=1e-3):
    """Same value; gradient by :func:`spd_solve_plain` (no fallback)."""
    return _ratio_with(spd_solve_plain, k_qq, k_qp, eps)


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

    solver = staticmethod(density_ratio_fast)

    def ratio_and_mmd(self, f_data, f_gen):
        with ratio_solver(self.solver):
            return super().ratio_and_mmd(f_data, f_gen)


class GRAMPlainSolve(GRAMFastSolve):
    """GRAM with :func:`density_ratio_plain` (bench only)."""

    solver = staticmethod(density_ratio_plain)


class StatelessGaussian(distributions.Gaussian):
    """``N(loc, scale^2 I)`` drawn with one ``tf.random.stateless_normal`` instead of TFP's
    ``MultivariateNormalDiag.sample`` (bench only; other codes for the same seed)."""

    def sample(self, n, seed=None):
        z = tf.random.stateless_normal((n, self.dim), seed=as_stateless_seed(seed))
        return self.loc + self.scale * z


def gram_dtype_of(model) -> str:
    """The dtype GRAM computes its Gram matrices in (``gram_dtype`` where the library has it)."""
    return getattr(model, "gram_dtype", "float32")


GRAM_HAS_DTYPE = "gram_dtype" in inspect.signature(GRAM.__init__).parameters


# ---------------------------------------------------------------------------------------------
def build_models(hidden: int, batch: int, seed: int, jit):
    """GAN, MMD-net and GRAM (the last two from the recipes), with the same widths, and the
    bench-only GRAM variants. Returns ``(models, recipe, roles)``; ``roles`` names the variants."""
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
    g = models["GRAM"]
    default = gram_dtype_of(g)
    roles = {"fast": "GRAM (fast solve)", "fast_prior": "GRAM (fast solve, plain prior)"}
    specs = [(roles["fast"], GRAMFastSolve, False, {}), (roles["fast_prior"], GRAMFastSolve, True, {})]
    if GRAM_HAS_DTYPE:
        other = "float32" if default == "float64" else "float64"
        roles["other_dtype"] = f"GRAM ({other} Gram)"
        roles["f32_all"] = "GRAM (float32 Gram, plain solve, plain prior)"
        specs += [(roles["other_dtype"], GRAM, False, {"gram_dtype": other}),
                  (roles["f32_all"], GRAMPlainSolve, True, {"gram_dtype": "float32"})]
    for name, cls, plain_prior, extra in specs:
        # The same networks' shapes, settings and optimizers as the recipe's GRAM.
        v = cls(networks.mlp(gram_r.latent_dim, widths, 2, name="generator"),
                networks.mlp(2, widths, gram_r.critic_dim, name="critic"),
                StatelessGaussian(gram_r.latent_dim) if plain_prior else g.prior,
                seed=g.seed, **{**gram_r.model_options, **extra})
        v.compile(optimizer=gram_r.optimizer.build(), critic_optimizer=gram_r.optimizer.build())
        models[name] = v
    if jit is not None:
        for m in models.values():
            m.jit_compile = jit
    return models, gram_r, roles


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


def breakdown(models, roles, x, calls: int, rounds: int):
    """GRAM's step in pieces, each a ``tf.function`` on the same networks and batch."""
    model = models["GRAM"]
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

    def head(m, p, q, ratio_fn):
        if ratio_fn is None:
            r, mmd2 = m.ratio_and_mmd(p, q)
        else:
            with ratio_solver(ratio_fn):
                r, mmd2 = m.ratio_and_mmd(p, q)
        return -ops.pearson_divergence(r, lam=m.lam, positivity=m.positivity), \
            tf.sqrt(tf.maximum(mmd2, 1e-12))

    def head_fwd_bwd(m, ratio_fn=None):
        @tf.function
        def f(p, q):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch([p, q])
                l_c, l_g = head(m, p, q, ratio_fn)
            return tape.gradient(l_c, [p, q]), tape.gradient(l_g, [p, q])
        return f

    head_fwd = tf.function(lambda p, q: head(model, p, q, None))

    sq = ops.pairwise_sq_distances
    gamma = ops.gamma_from_bandwidth(tf.constant(model.bandwidths or [1.0]), model.parameterization)
    k64 = (tf.exp(-tf.cast(gamma, tf.float64)[:, None, None] * sq(tf.cast(q0, tf.float64))[None]),
           tf.exp(-tf.cast(gamma, tf.float64)[:, None, None] * sq(tf.cast(q0, tf.float64),
                                                                    tf.cast(p0, tf.float64))[None]))
    k32 = tuple(tf.cast(k, tf.float32) for k in k64)

    def ratio_fwd_bwd(ratio_fn, jit=False):
        @tf.function(jit_compile=jit)
        def f(a, b):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                r = ratio_fn(a, b, eps=model.eps)
                loss = ops.pearson_divergence(tf.reduce_mean(r, 0))
            return tape.gradient(loss, [a, b])
        return f

    eye = tf.eye(n, dtype=tf.float64)
    a64 = k64[0][0] + model.eps * eye
    a32 = tf.cast(a64, tf.float32)
    cholesky = tf.function(lambda a: tf.linalg.cholesky(a))
    cholesky_xla = tf.function(lambda a: tf.linalg.cholesky(a), jit_compile=True)

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

    dt = gram_dtype_of(model)
    noop = tf.function(lambda x: x)
    items = [
        ("tf.function call overhead (identity)", noop, (x,)),
        ("prior sample (library's Prior.sample)", sample_codes, (tf.constant([1, 2]),)),
        ("tf.random.stateless_normal, same shape", stateless_normal, (tf.constant([1, 2]),)),
        ("networks forward (G, critic on data and on G(z))", nets_fwd, (x, z)),
        ("networks forward + backward (train_step's tape, linear stand-in loss)", nets_fwd_bwd, (x, z)),
        ("networks forward + backward, critic called once on [x; G(z)]", nets_fwd_bwd_concat, (x, z)),
        (f"Gram head forward, library ({dt})", head_fwd, (p0, q0)),
        (f"Gram head forward + backward, library ({dt})", head_fwd_bwd(model), (p0, q0)),
        (f"Gram head forward + backward, ratio solve replaced by a cheap stand-in ({dt})",
         head_fwd_bwd(model, ratio_stand_in), (p0, q0)),
        (f"Gram head forward + backward, hand-written solve gradient ({dt})",
         head_fwd_bwd(model, density_ratio_fast), (p0, q0)),
    ]
    if "other_dtype" in roles:
        other = models[roles["other_dtype"]]
        od = gram_dtype_of(other)
        items += [(f"Gram head forward + backward, library ({od})", head_fwd_bwd(other), (p0, q0))]
        f32 = models[roles["f32_all"]]
        items += [("Gram head forward + backward, plain solve (float32, no fallback)",
                   head_fwd_bwd(f32), (p0, q0))]
    items += [
        ("ratio solve forward + backward, library (float32: pre-check factor + cond + solve)",
         ratio_fwd_bwd(ops.density_ratio), k32),
        ("ratio solve forward + backward, library (float64)", ratio_fwd_bwd(ops.density_ratio), k64),
        ("ratio solve forward + backward, hand-written gradient (float32, with fallback)",
         ratio_fwd_bwd(density_ratio_fast), k32),
        ("ratio solve forward + backward, hand-written gradient (float64)", ratio_fwd_bwd(density_ratio_fast), k64),
        ("ratio solve forward + backward, plain solve (float32, no fallback)", ratio_fwd_bwd(density_ratio_plain), k32),
        (f"one Cholesky factorisation ({n}x{n}, float32)", cholesky, (a32,)),
        (f"one Cholesky factorisation ({n}x{n}, float64)", cholesky, (a64,)),
        ("optimizer updates (2 x Adam apply)", apply_updates, ()),
    ]
    if n <= 300:  # XLA's CPU Cholesky is slow enough that larger sizes would take minutes
        items += [
            (f"one Cholesky factorisation ({n}x{n}, float32), XLA", cholesky_xla, (a32,)),
            ("ratio solve forward + backward, library (float32), XLA", ratio_fwd_bwd(ops.density_ratio, True), k32),
        ]
    for name, fn, args in items:
        res[name] = time_fn(fn, args, calls, rounds)
        print(f"  {res[name]:8.3f} ms  {name}", flush=True)
    return res


def check_variants(model: GRAM, x):
    """Max difference of all critic and generator gradients (relative to the largest entry) and
    max |r| difference of the hand-written solve gradient against the library, on the same
    networks, batch and codes; and a float32-rounding yardstick."""
    z = model.prior.sample(int(x.shape[0]), seed=3)

    def grads(ratio_fn):
        m = model
        with tf.GradientTape(persistent=True) as tape:
            fd, fg = m.critic(x), m.critic(m.generator(z))
            if ratio_fn is None:
                r, mmd2 = m.ratio_and_mmd(fd, fg)
            else:
                with ratio_solver(ratio_fn):
                    r, mmd2 = m.ratio_and_mmd(fd, fg)
            l_c = -ops.pearson_divergence(r, lam=m.lam, positivity=m.positivity)
            l_g = tf.sqrt(tf.maximum(mmd2, 1e-12))
        return (tape.gradient(l_c, m.critic.trainable_variables)
                + tape.gradient(l_g, m.generator.trainable_variables)), r

    ga, ra = grads(None)
    gb, rb = grads(density_ratio_fast)
    # Relative to the largest gradient entry of all: the critic's output bias has an exactly
    # zero gradient (distances ignore a shift), so a per-tensor ratio would compare noise.
    scale = max(float(tf.reduce_max(tf.abs(u))) for u in ga) + 1e-30
    check = (max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(ga, gb)) / scale,
             float(tf.reduce_max(tf.abs(ra - rb))))

    # Yardstick: gradients of the Pearson objective w.r.t. the Gram matrices, each float32 solve
    # against the library's float64 solve. The K_qq gradient is compared symmetrised: K_qq is a
    # symmetric function of the features, and the library's Cholesky gradient returns the
    # symmetric part while -(A^-1 g) r^T is not symmetric; both give the same feature gradients.
    fd, fg = model.critic(x), model.critic(model.generator(z))
    fd, fg = tf.cast(fd, tf.float64), tf.cast(fg, tf.float64)
    gamma = tf.cast(ops.gamma_from_bandwidth(tf.constant(model.bandwidths or [1.0]), model.parameterization),
                    tf.float64)
    k_qq = tf.exp(-gamma[:, None, None] * ops.pairwise_sq_distances(fg)[None])
    k_qp = tf.exp(-gamma[:, None, None] * ops.pairwise_sq_distances(fg, fd)[None])

    def solve_grads(fn, dtype):
        a, b = tf.cast(k_qq, dtype), tf.cast(k_qp, dtype)
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = ops.pearson_divergence(tf.reduce_mean(fn(a, b, eps=model.eps), 0))
        ga_, gb_ = [tf.cast(g, tf.float64) for g in tape.gradient(loss, [a, b])]
        return [0.5 * (ga_ + tf.linalg.matrix_transpose(ga_)), gb_]

    g64 = solve_grads(ops.density_ratio, tf.float64)
    scale = max(float(tf.reduce_max(tf.abs(u))) for u in g64)
    yard = {}
    for name, fn, dtype in [("library float32", ops.density_ratio, tf.float32),
                            ("hand-written float32", density_ratio_fast, tf.float32),
                            ("plain float32", density_ratio_plain, tf.float32),
                            ("hand-written float64", density_ratio_fast, tf.float64)]:
        g = solve_grads(fn, dtype)
        yard[name] = max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(g, g64)) / scale
    return check, yard


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
                   help="steps per round (and micro-benchmark calls) for the --dims and --jit-compare configurations "
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
        configs.append((args.hidden, args.batch, True, small, small_calls))
    command = "python bench/step_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])

    sections, summary = [], []
    for hidden, batch, cfg_jit, n_steps, n_calls in configs:
        xla = "" if cfg_jit is None else f", jit_compile={cfg_jit}"
        print(f"== hidden {hidden}, batch {batch}{xla}", flush=True)
        models, recipe, roles = build_models(hidden, batch, args.seed, cfg_jit)
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
        item = dict(hidden=hidden, batch=batch, jit=cfg_jit, med=med, paired=paired, roles=roles,
                    ratio=med["GRAM"] / med["GAN"], gram_dtype=gram_dtype_of(models["GRAM"]))
        summary.append(item)
        print("\n".join(rows), flush=True)
        sec = [f"### hidden {hidden}, batch {batch}{xla}", "",
               f"Networks: G {recipe.latent_dim} -> {hidden} -> {hidden} -> 2; GRAM critic 2 -> {hidden} -> "
               f"{hidden} -> {recipe.critic_dim}; GAN discriminator 2 -> {hidden} -> {hidden} -> 1; "
               f"MMD-net: G only. The library's GRAM computes its Gram matrices in {item['gram_dtype']}. "
               f"XLA (jit_compile) used: "
               + ", ".join(f"{n} {'yes' if j else 'no'}" for n, j in jit_used.items()) + ".", "",
               f"({args.rounds} rounds x {n_steps} steps per model.)", ""] + rows
        r = item["ratio"]
        sec += ["", f"GRAM / GAN = **{r:.2f}x** (paired {paired['GRAM']:.2f}x); goal <= {GOAL}x: "
                f"**{'met' if r <= GOAL and paired['GRAM'] <= GOAL else 'NOT met'}**.", ""]
        if not args.no_profile and not cfg_jit:
            print("  GRAM breakdown:", flush=True)
            check, yard = check_variants(models["GRAM"], x)
            bd = breakdown(models, roles, x, n_calls, args.rounds)
            item["bd"], item["check"], item["yard"] = bd, check, yard
            sec += [f"GRAM's step in pieces (tf.function micro-benchmarks on the same networks and batch, "
                    f"median of {args.rounds} rounds x {n_calls} calls; each includes one tf.function call "
                    f"overhead, and the pieces overlap, so they do not add up to the step):", "",
                    "| piece | ms / call | vs the GRAM step |", "|---|---|---|"]
            for name, v in bd.items():
                sec.append(f"| {name} | {v:.3f} | {100 * v / med['GRAM']:.0f}% |")
            sec += ["", f"Check, hand-written solve gradient vs the library (same networks, batch and codes, "
                        f"{item['gram_dtype']}): max difference of all critic and generator gradients "
                        f"{check[0]:.1e} relative to the largest entry; max |r| difference {check[1]:.1e}.", "",
                    "Rounding yardstick: gradients of the Pearson objective with respect to the Gram matrices "
                    "(K_qq part symmetrised), each solve against the library's float64 solve, max difference "
                    "relative to the largest entry: "
                    + ", ".join(f"{n} {v:.1e}" for n, v in yard.items()) + ".", ""]
        sections.append("\n".join(sec))
        del models
        keras.backend.clear_session()

    lines = ["# Train-step cost: GRAM-net and MMD-net vs a plain GAN", "",
             "Generated by `bench/step_cost.py` (a benchmark: not part of the test run).", "",
             f"- command: `{command}`",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"- machine: {machine()}. The machine is shared, and other jobs ran during the "
             f"measurement, so single timings are noisy; the interleaved rounds and the paired ratios "
             f"are there for that reason.", "",
             "## Protocol", "",
             "- same MLPs and batch for all: the `gram-ring8` recipe's networks (G 20 -> H -> H -> 2, "
             "critic 2 -> H -> H -> 10 for GRAM, the same MLP with a 1-unit logit head as the GAN's "
             "discriminator; MMD-net has only G), ring8 data.",
             "- GRAM and MMD-net come from `tfgen.trainers.recipes.build_model` as the library has them "
             "(GRAM: 2 x Adam, sigma 1, one Cholesky ratio solve per step; MMD-net: RMSprop). The GAN is "
             "written in the script as the keras-io GAN examples write theirs: `keras.Model` subclass, "
             "discriminator step on real + fake with BCE from logits (and keras-io's 0.05 label noise), "
             "then a non-saturating generator step on fresh codes; two Adam optimizers.",
             f"- timing: Keras builds each model's `train_function` as `fit` does (a `tf.function`; "
             f"`jit_compile={args.jit}`), untimed warm-up steps after tracing, then "
             f"`train_function(iterator)` is called directly, one step per call (as `fit` does with "
             f"`steps_per_execution=1`), on `Dataset.from_tensors(batch).repeat()`, so there are no "
             f"input-pipeline threads competing for the 2 cores and no callbacks or progress bar. "
             f"{args.rounds} rounds, each timing {args.steps} steps of every model in rotating order "
             f"(fewer for the `--dims` and XLA configurations, as noted there). The tables give the "
             f"median over rounds and two ratios to the GAN: the ratio of the medians, and the median "
             f"of the per-round ratios, which pairs models timed seconds apart and is the more robust "
             f"figure on a noisy machine.",
             "- the `GRAM (...)` rows are bench-only subclasses of GRAM (same network shapes, settings "
             "and optimizers) that test the Suggestions below: `fast solve` = the ratio solve with a "
             "hand-written gradient (suggestion 1); `plain prior` = also drawing the codes with "
             "`tf.random.stateless_normal` (suggestion 2); `float32 Gram` / `float64 Gram` = the "
             "library's GRAM with the other `gram_dtype`; `float32 Gram, plain solve, plain prior` = "
             "suggestions 1-3 together. None of them is part of the library.", "",
             "## Summary", "",
             "| hidden | batch | XLA | GAN ms | MMD-net ms | GRAM ms | GRAM / GAN (paired) | goal <= 1.3x | "
             "best bench variant | its ms | its ratio (paired) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for it in summary:
        med, paired = it["med"], it["paired"]
        variants = [n for n in med if n.startswith("GRAM (")]
        best = min(variants, key=lambda n: paired[n])
        lines.append(f"| {it['hidden']} | {it['batch']} | {'on' if it['jit'] else 'off'} | {med['GAN']:.3f} | "
                     f"{med['MMD-net']:.3f} | {med['GRAM']:.3f} | **{it['ratio']:.2f}x** ({paired['GRAM']:.2f}x) | "
                     f"{'met' if it['ratio'] <= GOAL and paired['GRAM'] <= GOAL else 'NOT met'} | {best} | "
                     f"{med[best]:.3f} | {med[best] / med['GAN']:.2f}x ({paired[best]:.2f}x) |")
    base = summary[0]
    variants = [n for n in base["med"] if n.startswith("GRAM (")]
    best = min(variants, key=lambda n: base["paired"][n])
    met = base["ratio"] <= GOAL and base["paired"]["GRAM"] <= GOAL
    lines += ["", f"**Verdict.** At the recipe's size (hidden {base['hidden']}, batch {base['batch']}) the "
              f"library's GRAM step is {base['ratio']:.2f}x the GAN step (paired {base['paired']['GRAM']:.2f}x): "
              f"the {GOAL}x goal is **{'met' if met else 'not met'}**. The best bench-only variant, `{best}`, "
              f"is at {base['med'][best] / base['med']['GAN']:.2f}x (paired {base['paired'][best]:.2f}x); "
              f"see Suggestions for what it changes."]
    lines += ["", "## Suggestions", "", suggest(summary), "", "## Results", ""] + sections
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def suggest(summary) -> str:
    """Suggestions written from the measured numbers (for the lead: the library is not changed here)."""
    out = ["**Status.** Suggestions 1 and 2 below were adopted by the library after the first run of "
           "this script: `tfgen.ops.density_ratio.spd_solve` is the hand-written-gradient solve (with "
           "the float64 re-factorisation kept for float32), and `Gaussian`/`Uniform.sample` draw with "
           "plain stateless ops; the `gram-ring8` and `gram-digits` recipes use float32 Gram matrices "
           "(suggestion 3). So the `fast solve` and `plain prior` rows now time what the library "
           "does, and the text of 1 and 2 describes the change, not a gap. What remains between the "
           "library's row and the best variant is the float32 fallback's check and `tf.cond`.", ""]
    for it in summary:
        if "bd" not in it:
            continue
        med, paired, roles, bd = it["med"], it["paired"], it["roles"], it["bd"]
        n, dt = it["batch"], it["gram_dtype"]
        gram, gan = med["GRAM"], med["GAN"]
        fast, fast_prior = med[roles["fast"]], med[roles["fast_prior"]]
        lib_head = bd[f"Gram head forward + backward, library ({dt})"]
        stand_in = bd[f"Gram head forward + backward, ratio solve replaced by a cheap stand-in ({dt})"]
        fast_head = bd[f"Gram head forward + backward, hand-written solve gradient ({dt})"]
        nets = bd["networks forward + backward (train_step's tape, linear stand-in loss)"]
        nets_cat = bd["networks forward + backward, critic called once on [x; G(z)]"]
        tfp = bd["prior sample (library's Prior.sample)"]
        plain = bd["tf.random.stateless_normal, same shape"]
        call = bd["tf.function call overhead (identity)"]
        chol = bd[f"one Cholesky factorisation ({n}x{n}, {dt})"]
        out += [f"**At hidden {it['hidden']}, batch {n}** (GRAM {gram:.2f} ms, GAN {gan:.2f} ms: "
                f"{it['ratio']:.2f}x, paired {paired['GRAM']:.2f}x). Where GRAM's time goes: the networks' "
                f"forward + backward {nets:.2f} ms (the GAN does about two of these), the Gram head's "
                f"forward + backward {lib_head:.2f} ms, of which the ratio solve is about "
                f"{lib_head - stand_in:.2f} ms (one {n}x{n} {dt} Cholesky alone: {chol:.2f} ms), the two "
                f"Adam updates {bd['optimizer updates (2 x Adam apply)']:.2f} ms, and the prior draw "
                f"{tfp:.2f} ms (each figure includes one {call:.2f} ms call overhead).", ""]
        out.append(
            f"1. **Give the ratio solve a hand-written gradient** (`tfgen.ops.density_ratio`). The library "
            f"differentiates through `tf.linalg.cholesky` and `cholesky_solve`, and in float32 it also "
            f"factors the matrix twice: a gradient-free check, then the solve inside `tf.cond`. Since "
            f"r = A^-1 b with A symmetric, dL/db = A^-1 g and dL/dA = -(A^-1 g) r^T. That is one more "
            f"triangular solve pair with the factor already made, O(N^2) instead of backpropagating an "
            f"O(N^3) factorisation. `spd_solve` in this script does it with `tf.custom_gradient`. In "
            f"float32 it makes one factor and checks it, and makes a float64 factor only when the first "
            f"is not finite. The backward pass reuses whichever factor the forward pass used, so no NaN "
            f"reaches an untaken branch. It gives the same gradients (see the checks under Results). "
            f"Head: {fast_head:.2f} ms instead of {lib_head:.2f} ms. Whole step: {fast:.2f} ms "
            f"({fast / gan:.2f}x GAN, paired {paired[roles['fast']]:.2f}x), "
            + (f"saving {gram - fast:.2f} ms ({100 * (gram - fast) / gram:.0f}%)." if fast < gram
               else "no saving measured in the whole step."))
        out.append(
            f"2. **Draw the codes with `tf.random.stateless_normal`** in `Gaussian.sample` (and uniform "
            f"codes with `tf.random.stateless_uniform`) instead of building a TFP `MultivariateNormalDiag` "
            f"and sampling it in every step: {tfp:.2f} ms vs {plain:.2f} ms per call. Whole step with 1 "
            f"and 2: {fast_prior:.2f} ms ({fast_prior / gan:.2f}x, paired {paired[roles['fast_prior']]:.2f}x). "
            f"A given seed would then draw other codes, so runs would not reproduce earlier runs bit for "
            f"bit. MMD-net and every model that samples its prior in `train_step` would gain the same.")
        if "other_dtype" in roles:
            other = roles["other_dtype"]
            od = "float32" if dt == "float64" else "float64"
            o_head = bd[f"Gram head forward + backward, library ({od})"]
            p_head = bd["Gram head forward + backward, plain solve (float32, no fallback)"]
            f32_all = med[roles["f32_all"]]
            out.append(
                f"3. **Precision of the Gram matrices** (`gram_dtype`, library default {dt}). The library's "
                f"head costs {lib_head:.2f} ms in {dt} and {o_head:.2f} ms in {od}. The whole library step "
                f"takes {gram:.2f} ms in {dt} and {med[other]:.2f} ms in {od} (paired "
                f"{paired['GRAM']:.2f}x vs {paired[other]:.2f}x GAN). In float32, with the hand-written "
                f"gradient and no fallback (`spd_solve_plain`), the head takes {p_head:.2f} ms. With "
                f"the plain prior draw as well, the whole step takes **{f32_all:.2f} ms: "
                f"{f32_all / gan:.2f}x GAN, paired {paired[roles['f32_all']]:.2f}x**. float64 is there "
                f"for wide bandwidths (sigma 10 and 100 on MNIST), where float32 rounding of the "
                f"matmul-form distances rivals eps. On the ring (sigma 1, K = 10), GRAM trained in "
                f"float32 before `gram_dtype` existed, and the 12 stability settings of "
                f"`bench/gram_stability.py` had no NaN. In float32 the solve's gradients differ from "
                f"float64 by {100 * it['yard']['library float32']:.1f}% of their largest entry (the "
                f"rounding yardstick under Results), which is small next to minibatch noise. A "
                f"per-recipe `gram_dtype` (float32 for the toy recipes), or distances in float64 with "
                f"the kernels and the solve in float32, would keep both.")
        out.append(
            f"4. Calling the critic once on `[x; G(z)]`, as the GAN does with its discriminator, is only "
            f"valid without BatchNorm (METHODS.md §2 note 8). The networks' forward + backward goes "
            f"from {nets:.2f} ms to {nets_cat:.2f} ms: "
            + ("worth doing." if nets_cat < 0.9 * nets else "not worth the special case."))
        if call > 0.05 * gram:
            out.append(
                f"5. At this size a step is mostly op dispatch: one `tf.function` call costs {call:.2f} ms "
                f"and the matrices are small, so op count matters more than FLOPs. `steps_per_execution > 1` "
                f"in `compile` spreads the per-call Python overhead over several steps, for every model "
                f"alike.")
        out.append("")
    for it in summary:
        if not it["jit"]:
            continue
        med = it["med"]
        out.append(
            f"- **Keep XLA off for GRAM on CPU.** With `jit_compile=True` (hidden {it['hidden']}, batch "
            f"{it['batch']}) GRAM takes {med['GRAM']:.2f} ms per step: {it['ratio']:.2f}x the GAN at "
            f"{med['GAN']:.2f} ms, which itself changes little under XLA. The breakdown's XLA rows time "
            f"the Cholesky and the solve under XLA. DESIGN.md says \"`jit_compile=True` where XLA "
            f"accepts the ops\". XLA accepts GRAM's ops, but on CPU it is slower, so it should stay "
            f"off; Keras' `auto` already keeps it off on CPU-only machines.")
    return "\n".join(out) if out else "(profiling skipped)"


if __name__ == "__main__":
    main()
