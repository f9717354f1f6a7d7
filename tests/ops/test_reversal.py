"""Tests for ``tfgen.ops.reversal``: generator reversal by gradient descent on
the codes (KDE-GAN paper Alg. 1) and its MMD stopping rule (§4).

Small generators only (the CPU is shared); the whole file runs in well under
a minute.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgen.ops import Reversal, mmd, reversal_mmd2, reverse

INF = float("inf")


# --- generators -----------------------------------------------------------------------

def mlp_generator(latent=4, hidden=32, out=16, seed=0):
    """latent -> hidden tanh -> out, orthogonal weights: well conditioned and
    injective on the region the test codes live in."""
    return keras.Sequential([
        keras.Input((latent,)),
        keras.layers.Dense(hidden, "tanh", kernel_initializer=keras.initializers.Orthogonal(seed=seed)),
        keras.layers.Dense(out, kernel_initializer=keras.initializers.Orthogonal(seed=seed + 1)),
    ])


def linear_generator(w, b, image_shape=None):
    """G(z) = z W + b (optionally reshaped to an image)."""
    w = np.asarray(w, np.float32)
    layers = [keras.Input((w.shape[0],)), keras.layers.Dense(w.shape[1])]
    if image_shape is not None:
        layers.append(keras.layers.Reshape(image_shape))
    g = keras.Sequential(layers)
    g.layers[0].set_weights([w, np.asarray(b, np.float32)])
    return g


class CountingGenerator:
    """A plain callable around a Keras model that counts its Python calls:
    inside a ``tf.function`` Python runs only while tracing."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.input_shape, self.output_shape = model.input_shape, model.output_shape

    def __call__(self, z, training=False):
        self.calls += 1
        return self.model(z, training=training)


def _normal(shape, seed, scale=1.0):
    return (scale * np.random.RandomState(seed).randn(*shape)).astype(np.float32)


# --- the gradient step ------------------------------------------------------------------

def _hand_steps(z, w, b, x, lr, steps):
    """Gradient descent on sum_i mean_j (z_i W + b - x_i)_j^2, in float64:
    grad_i = (2 / D) (z_i W + b - x_i) W^T."""
    z, w, b, x = (np.asarray(a, np.float64) for a in (z, w, b, x))
    for _ in range(steps):
        z = z - lr * (2.0 / w.shape[1]) * (z @ w + b - x) @ w.T
    return z, np.mean((z @ w + b - x) ** 2, axis=1)


@pytest.mark.parametrize("image_shape", [None, (2, 3, 1)], ids=["rows", "images"])
def test_gradient_steps_match_hand_computation_for_linear_generator(image_shape):
    # Per-example MSE (mean over the 6 features / pixels) summed over the batch:
    # each code takes its own unscaled step (METHODS.md §3, ambiguity 3).
    w, b = _normal((3, 6), 0), _normal((6,), 1)
    z0, x = _normal((5, 3), 2), _normal((5, 6), 3)
    g = linear_generator(w, b, image_shape)
    x_in = x if image_shape is None else x.reshape((5,) + image_shape)
    for steps in (1, 3):
        got = reverse(g, x_in, z0=z0, steps=steps, lr=0.3)
        want_z, want_err = _hand_steps(z0, w, b, x, 0.3, steps)
        np.testing.assert_allclose(got.codes.numpy(), want_z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.error.numpy(), want_err, rtol=1e-4, atol=1e-6)
        assert got.error.shape == (5,) and int(got.steps) == steps
    # one row alone takes the same step as inside the batch (no 1/n scaling)
    alone = reverse(g, x_in[:1], z0=z0[:1], steps=1, lr=0.3)
    np.testing.assert_allclose(alone.codes.numpy(), _hand_steps(z0[:1], w, b, x[:1], 0.3, 1)[0],
                               rtol=1e-5, atol=1e-5)


def test_recovers_codes_of_injective_mlp_generator():
    # Tolerances: per-example MSE < 1e-8 and every code within 1e-3 of the truth
    # after 300 steps of lr 2 from z0 ~ N(0, 1e-8 I) (observed: ~1e-13 and ~3e-6).
    g = mlp_generator()
    z_true = _normal((64, 4), 4, scale=0.7)
    x = g(z_true)
    got = reverse(g, x, steps=300, lr=2.0, seed=0)
    assert isinstance(got, Reversal)
    assert got.codes.shape == (64, 4) and got.error.shape == (64,)
    assert float(tf.reduce_max(got.error)) < 1e-8
    np.testing.assert_allclose(got.codes.numpy(), z_true, atol=1e-3)
    # no stopping test: exactly `steps` steps, NaN statistic, no reference codes
    assert int(got.steps) == 300 and got.steps.dtype == tf.int32
    assert math.isnan(float(got.mmd2)) and got.mmd2.dtype == tf.float32
    assert got.reference_codes is None


def test_default_z0_is_small_gaussian_from_stateless_seed():
    # With a negligible step the codes are z0 itself: N(0, init_scale^2 I).
    g = mlp_generator()
    x = g(_normal((500, 4), 5))
    a = reverse(g, x, steps=1, lr=1e-12, seed=3, init_scale=1e-4).codes.numpy()
    assert abs(a.std() / 1e-4 - 1.0) < 0.05 and abs(a.mean()) < 1e-5
    np.testing.assert_array_equal(a, reverse(g, x, steps=1, lr=1e-12, seed=3).codes.numpy())
    np.testing.assert_array_equal(
        a, reverse(g, x, steps=1, lr=1e-12, seed=tf.constant([3, 0])).codes.numpy())
    assert not np.allclose(a, reverse(g, x, steps=1, lr=1e-12, seed=4).codes.numpy())
    fresh = [reverse(g, x, steps=1, lr=1e-12).codes.numpy() for _ in range(2)]
    assert not np.allclose(fresh[0], fresh[1])
    # the reference batch gets its own draws
    r = reverse(g, x, steps=1, lr=1e-12, seed=3, reference=x, threshold=INF)
    np.testing.assert_array_equal(r.codes.numpy(), a)
    assert not np.allclose(r.reference_codes.numpy(), a)


def test_warm_start_from_previous_codes_continues_the_descent():
    g = mlp_generator()
    x = g(_normal((16, 4), 6))
    first = reverse(g, x, steps=10, lr=1.0, seed=1)
    resumed = reverse(g, x, z0=first.codes, steps=10, lr=1.0)
    straight = reverse(g, x, steps=20, lr=1.0, seed=1)
    np.testing.assert_allclose(resumed.codes.numpy(), straight.codes.numpy(), rtol=1e-5, atol=1e-6)


# --- the stopping test ------------------------------------------------------------------

def _loop_mmd2_unbiased(x, y, gamma):
    """Gretton et al. 2012's U-statistic, written out over all pairs."""
    def k(a, b):
        return math.exp(-gamma * float(np.sum((np.float64(a) - np.float64(b)) ** 2)))
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


@pytest.mark.parametrize("gamma", [1e-4, 0.5])
def test_reversal_mmd2_matches_numpy_u_statistic(gamma):
    z, w = _normal((9, 5), 7), _normal((6, 5), 8) + 0.8
    want = _loop_mmd2_unbiased(z, w, gamma)
    # float32 kernels near 1 cancel to ~1e-7 absolute (far below the paper's
    # threshold 1e-4); in float64 the match is tight
    assert float(reversal_mmd2(z, w, gamma)) == pytest.approx(want, rel=1e-4, abs=5e-7)
    assert float(reversal_mmd2(np.float64(z), np.float64(w), gamma)) == pytest.approx(
        want, rel=1e-9, abs=1e-12)
    # identical samples: the U-statistic is below 0 (the diagonal is left out)
    assert float(reversal_mmd2(z, z, gamma)) < 0
    with pytest.raises(ValueError, match="gamma"):
        reversal_mmd2(z, w, 0.0)


def test_stopping_rule_cap_and_min_steps():
    g = mlp_generator()
    x = g(_normal((32, 4), 9))
    ref = g(_normal((32, 4), 10) + 1.0)   # a shifted batch: the codes separate
    kw = dict(reference=ref, lr=2.0, gamma=1.0, seed=2)
    never = reverse(g, x, steps=25, threshold=INF, **kw)
    assert int(never.steps) == 25
    assert reverse(g, x, steps=25, threshold=-INF, **kw).steps == 1
    assert reverse(g, x, steps=25, threshold=-INF, min_steps=4, **kw).steps == 4
    # the returned statistic is MMD_u^2 of the returned codes
    assert float(never.mmd2) == pytest.approx(
        float(reversal_mmd2(never.codes, never.reference_codes, 1.0)), rel=1e-5, abs=1e-7)
    # an ordinary threshold: stops at the first step whose statistic exceeds it
    thr = 0.5 * float(never.mmd2)
    stopped = reverse(g, x, steps=25, threshold=thr, **kw)
    t = int(stopped.steps)
    assert 1 <= t < 25 and float(stopped.mmd2) > thr
    if t > 1:
        before = reverse(g, x, steps=t - 1, threshold=INF, **kw)
        assert float(before.mmd2) <= thr
    np.testing.assert_allclose(
        stopped.codes.numpy(), reverse(g, x, steps=t, threshold=INF, **kw).codes.numpy(), atol=1e-6)


def test_compare_to_true_codes():
    g = mlp_generator()
    z_g = _normal((32, 4), 11)
    x = g(_normal((32, 4), 12))
    got = reverse(g, x, steps=5, lr=2.0, reference_z=z_g, compare_to="true_codes", gamma=1.0,
                  threshold=INF, seed=0)
    assert got.reference_codes is None and int(got.steps) == 5
    assert float(got.mmd2) == pytest.approx(float(reversal_mmd2(got.codes, z_g, 1.0)), rel=1e-5)
    # codes near 0 against N(0, I) codes: told apart at once
    assert reverse(g, x, steps=5, reference_z=z_g, compare_to="true_codes", gamma=1.0,
                   threshold=1e-2, seed=0).steps == 1


def _ring8(n, seed):
    rs = np.random.RandomState(seed)
    angle = 2.0 * np.pi * rs.randint(8, size=n) / 8.0
    return (np.stack([2.0 * np.cos(angle), 2.0 * np.sin(angle)], 1) + 0.2 * rs.randn(n, 2)).astype(np.float32)


def _toy_generator():
    init = keras.initializers.GlorotNormal
    return keras.Sequential([keras.Input((2,)),
                             keras.layers.Dense(64, "tanh", kernel_initializer=init(0)),
                             keras.layers.Dense(64, "tanh", kernel_initializer=init(1)),
                             keras.layers.Dense(2, kernel_initializer=init(2))])


def test_stopping_rule_stops_earlier_for_untrained_than_for_trained_generator():
    """Paper §4 / Figs. 4-5: reversed codes of data and of generated samples can
    be told apart quickly when the generator is far from the data, so the test
    trips early; for a generator trained on the data they stay hard to tell apart.

    An MLP generator (2 -> 64 -> 64 -> 2) trained for 300 Adam steps on ring8
    with MMD as the loss, against its untrained copy; the data batch comes from
    ring8, the reference batch is G(z), z ~ N(0, I). gamma = 1 (codes live on
    the unit scale of the prior; the paper's 1e-4 makes the test a test of the
    mean alone on this 2-D set), threshold 0.05 (the trained generator's
    statistic stays below 0.01 at this batch size), lr 0.1 (lr 1 throws the
    trained generator's codes into its saturated region in one step).
    Observed: untrained stops after 6 steps; trained runs to the cap of 60.
    """
    untrained, trained = _toy_generator(), _toy_generator()
    trained.set_weights(untrained.get_weights())
    opt = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step(x, seed):
        z = tf.random.stateless_normal([256, 2], seed)
        with tf.GradientTape() as tape:
            loss = mmd(x, trained(z), [0.1, 0.3, 1.0, 3.0], "std")
        grads = tape.gradient(loss, trained.trainable_variables)
        opt.apply_gradients(zip(grads, trained.trainable_variables))
        return loss

    for i in range(300):
        train_step(tf.constant(_ring8(256, 1000 + i)), tf.constant([0, i]))
    held_out, z_eval = _ring8(1000, 5), tf.random.stateless_normal([1000, 2], [3, 3])
    fit = {name: float(mmd(held_out, g(z_eval), [0.1, 0.3, 1.0, 3.0], "std"))
           for name, g in [("untrained", untrained), ("trained", trained)]}
    assert fit["trained"] < 0.3 * fit["untrained"], fit  # training did fit the toy set

    steps = {}
    for name, g in [("untrained", untrained), ("trained", trained)]:
        steps[name] = []
        for s in range(3):
            x = _ring8(256, 100 + s)
            ref = g(tf.random.stateless_normal([256, 2], [7, s]))
            r = reverse(g, x, reference=ref, steps=60, lr=0.1, gamma=1.0, threshold=0.05, seed=s)
            steps[name].append(int(r.steps))
    assert max(steps["untrained"]) < 20, steps
    assert min(steps["trained"]) > 3 * max(steps["untrained"]), steps


# --- compilation and gradients ----------------------------------------------------------

def test_runs_inside_tf_function_with_unknown_batch():
    g = mlp_generator()
    x, ref = g(_normal((12, 4), 13)), g(_normal((10, 4), 14))

    @tf.function(input_signature=[tf.TensorSpec([None, 16]), tf.TensorSpec([None, 16]),
                                  tf.TensorSpec([2], tf.int32)])
    def step(x, ref, seed):
        r = reverse(g, x, reference=ref, steps=30, lr=2.0, gamma=1.0, threshold=0.1, seed=seed)
        assert r.codes.shape.as_list() == [None, 4]
        return r

    graph = step(x, ref, tf.constant([5, 6]))
    eager = reverse(g, x, reference=ref, steps=30, lr=2.0, gamma=1.0, threshold=0.1, seed=[5, 6])
    assert graph.codes.shape == (12, 4) and graph.reference_codes.shape == (10, 4)
    assert int(graph.steps) == int(eager.steps)
    np.testing.assert_allclose(graph.codes.numpy(), eager.codes.numpy(), atol=1e-5)
    np.testing.assert_allclose(graph.error.numpy(), eager.error.numpy(), rtol=1e-4, atol=1e-8)


def test_xla_compiled_loop_gives_the_same_reversal():
    """``jit_compile=True`` (eagerly and inside a traced function) takes the same number
    of steps to the same codes as the graph loop, with and without a stopping test."""
    g = mlp_generator()
    x, ref = g(_normal((12, 4), 17)), g(_normal((12, 4), 18, scale=3.0))   # ref told apart at step 2
    for kwargs in ({"reference": ref, "threshold": 0.1, "gamma": 1.0}, {"threshold": INF}):
        plain = reverse(g, x, steps=30, lr=2.0, seed=[7, 8], **kwargs)
        xla = reverse(g, x, steps=30, lr=2.0, seed=[7, 8], jit_compile=True, **kwargs)
        traced = tf.function(lambda x: reverse(g, x, steps=30, lr=2.0, seed=[7, 8], jit_compile=True,
                                               **kwargs))(x)
        for out in (xla, traced):
            assert int(out.steps) == int(plain.steps)
            np.testing.assert_allclose(out.codes.numpy(), plain.codes.numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out.error.numpy(), plain.error.numpy(), rtol=1e-3, atol=1e-7)
    assert 1 < int(reverse(g, x, steps=30, lr=2.0, seed=[7, 8], reference=ref, threshold=0.1,
                           gamma=1.0, jit_compile=True).steps) < 30   # the test did stop it


def test_eager_calls_reuse_one_trace_per_generator():
    g = CountingGenerator(mlp_generator())
    x, ref = g.model(_normal((8, 4), 15)), g.model(_normal((8, 4), 16))
    reverse(g, x, reference=ref, steps=5, lr=1.0, seed=0)
    traced = g.calls
    assert traced > 0
    # other values of every number, the same shapes: no new trace
    out = reverse(g, x, reference=ref, steps=7, lr=0.5, threshold=INF, gamma=0.3, min_steps=2,
                  init_scale=1e-3, seed=1)
    assert g.calls == traced and int(out.steps) == 7
    reverse(g, x + 0.1, reference=ref, steps=5, seed=2)
    assert g.calls == traced


def test_outputs_carry_no_gradient_to_the_generator():
    g = mlp_generator()
    x, ref = g(_normal((8, 4), 17)), g(_normal((8, 4), 18))

    def total(r):
        return (tf.reduce_sum(r.codes) + tf.reduce_sum(r.error) + tf.reduce_sum(r.reference_codes)
                + r.mmd2)

    with tf.GradientTape() as tape:
        tape.watch(x)
        r = reverse(g, x, reference=ref, steps=3, seed=0, gamma=1.0)
        loss = total(r)
    grads = tape.gradient(loss, g.trainable_variables + [x])
    assert all(gr is None for gr in grads)

    @tf.function
    def in_graph(x):
        with tf.GradientTape() as tape:
            loss = total(reverse(g, x, reference=ref, steps=3, seed=0, gamma=1.0))
        return [gr is None for gr in tape.gradient(loss, g.trainable_variables)]

    assert all(in_graph(x))


# --- input checks -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((4, 15), np.float32)), "x must have the generator's output shape"),
    (dict(z0=np.zeros((4, 3), np.float32)), "z0 must have 4 columns"),
    (dict(z0=np.zeros((5, 4), np.float32)), "z0 must have one code per row"),
    (dict(z0=np.zeros((4,), np.float32)), "z0 must have shape"),
    (dict(steps=0), "steps"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1.0), "lr"),
    (dict(gamma=0.0), "gamma"),
    (dict(min_steps=0), "min_steps"),
    (dict(steps=3, min_steps=4), "min_steps"),
    (dict(compare_to="data"), "compare_to"),
    (dict(compare_to="true_codes"), "reference_z"),
    (dict(reference=np.zeros((4, 16), np.float32), reference_z=np.zeros((4, 4), np.float32),
          compare_to="true_codes"), "reference_z"),
    (dict(reference_z0=np.zeros((4, 4), np.float32)), "reference_z0"),
    (dict(reference=np.zeros((4, 8), np.float32)), "reference must have the shape"),
    (dict(x=np.full((4, 16), np.nan, np.float32)), "NaN"),
    (dict(seed=tf.constant([1, 2, 3])), "seed"),
])
def test_bad_inputs_raise_value_error(kwargs, match):
    g = mlp_generator()
    kwargs = {"x": np.zeros((4, 16), np.float32), **kwargs}
    x = kwargs.pop("x")
    with pytest.raises(ValueError, match=match):
        reverse(g, x, **kwargs)
