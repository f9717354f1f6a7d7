"""Gaussian Parzen-window mean log-likelihood (METHODS.md section 6(a)).

A Parzen window (kernel density estimate) is placed on ``N`` generator samples
``mu_j`` with an isotropic Gaussian kernel of width ``sigma``, and the mean
log density of held-out test points ``x`` under it is reported::

    LL(x) = logsumexp_j( -||x - mu_j||^2 / (2 sigma^2) ) - log N - (d/2) log(2 pi sigma^2)

This is the protocol of Goodfellow et al. 2014 (GAN paper, Table 1; Yann
Dauphin's ``goodfeli/adversarial:parzen_ll.py``) and of Li, Swersky & Zemel 2015
(GMMN; ``yujiali/gmmn:eval_mmd_generative_model.py kde_eval_mnist``), which the
SGN paper follows. The two reference codes write the same formula differently:
Goodfellow's ``logmeanexp_j(-1/2 ||(x - mu_j)/sigma||^2) - d log(sigma sqrt(2 pi))``
and Li's ``logsumexp_j(...) + KDE.factor`` with
``factor = -log N - (d/2) log(2 pi sigma^2)``; since
``logmeanexp = logsumexp - log N`` and ``d log(sigma sqrt(2 pi)) = (d/2) log(2 pi sigma^2)``
they are identical. Both use the *mean* over samples inside the log.

The bandwidth is chosen by a grid search maximising the mean log-likelihood of
a validation split (never the test split), and the test mean is reported with
its standard error ``std / sqrt(n_test)`` (population std, ``ddof=0``, as the
reference code's ``numpy.std``). :data:`PROTOCOLS` holds the two papers'
settings; :func:`parzen_protocol` runs one end to end.

Caveats:
  * Theis, van den Oord & Bethge 2016 ("A note on the evaluation of generative
    models", ICLR) show that Parzen estimates in high dimension (784 pixels
    here) are unreliable: far from the true log-likelihood even with millions
    of samples, and they can rank models in the wrong order (a k-means
    "model" beats the true distribution). Report them only for comparison with
    the papers that used them.
  * For ``li2015`` the 5,000 validation images are taken from the *training*
    set and must be held out of the model's training (GMMN trained on the
    remaining 55,000), otherwise sigma is tuned on memorised points.
  * Pixels are expected in [0, 1]; the numbers in the papers are on that
    scale (``log`` densities change by ``d log(scale)`` under rescaling).

Implementation: everything in float64 (784-d squared distances and the
``d/2 log`` constant lose digits in float32), squared distances in matmul form
clamped at 0, test points in blocks of ``chunk_size`` and, optionally, samples
in blocks of ``sample_chunk`` with a running (streaming) log-sum-exp, so the
largest temporary is ``n_sigmas x chunk_size x sample_chunk``. All bandwidths
of a grid are evaluated from the same distance block, so a grid search costs
one distance pass, not one per sigma. The loops run in one ``tf.function``
(no XLA: the last block of each loop has a different, data-dependent size).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings
from typing import Callable, Union

import numpy as np
import tensorflow as tf

from tfgen.metrics._arrays import as_rows

__all__ = [
    "PROTOCOLS", "Protocol", "iml_kde_score", "parzen_log_likelihood", "parzen_log_densities",
    "parzen_protocol", "select_bandwidth",
]


# --------------------------------------------------------------------------- validation


def _int_at_least(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _as_points(value, name: str) -> np.ndarray:
    """Float64 ``(n, d)`` rows (images flattened), checked, with a warning for [0, 255] data."""
    arr = as_rows(value, name)
    _warn_scale(arr, name)
    return arr


def _warn_scale(arr: np.ndarray, name: str) -> None:
    # Only patterns that look like mis-scaled images warn; toy data (signed,
    # unbounded) is legitimate input and stays silent.
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi > 1.5:
        warnings.warn(f"{name}: values lie in [{lo:g}, {hi:g}]; Parzen log-likelihoods are "
                      f"defined on pixels in [0, 1] (is this [0, 255] data?)", UserWarning,
                      stacklevel=3)
    elif lo < -0.5 and lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6:
        warnings.warn(f"{name}: values lie in [{lo:g}, {hi:g}]; Parzen log-likelihoods are "
                      f"defined on pixels in [0, 1] (is this [-1, 1] data?)", UserWarning,
                      stacklevel=3)


def _as_sigmas(sigmas, name: str) -> np.ndarray:
    try:
        values = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name}: expected positive finite bandwidth(s), got {sigmas!r}")
    return values


def _check_pair(samples: np.ndarray, points: np.ndarray, name: str) -> None:
    if samples.shape[1] != points.shape[1]:
        raise ValueError(f"{name}: expected points with the samples' {samples.shape[1]} features "
                         f"(after flattening), got {points.shape[1]}")


# --------------------------------------------------------------------------- presets


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A Parzen evaluation protocol: sample count, bandwidth grid, validation size."""

    n_samples: int
    sigmas: tuple
    n_validation: int
    description: str = ""
    name: str = "custom"

    def __post_init__(self):
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        _as_sigmas(self.sigmas, "Protocol.sigmas")
        _int_at_least(self.n_samples, "Protocol.n_samples", 1)
        _int_at_least(self.n_validation, "Protocol.n_validation", 1)


PROTOCOLS: dict[str, Protocol] = {
    "li2015": Protocol(
        name="li2015",
        n_samples=10_000,
        # Rounded: np.arange's float steps give 0.15000000000000002 etc.
        sigmas=tuple(np.round(np.arange(0.10, 0.30, 0.01), 2).tolist()),
        n_validation=5_000,
        description=(
            "Li, Swersky & Zemel 2015 (GMMN), yujiali/gmmn:eval_mmd_generative_model.py "
            "kde_eval_mnist and dataio/mnist.py: 10,000 samples, sigma in "
            "np.arange(0.10, 0.30, 0.01), 5,000 validation images from the training set "
            "(held out of training), mean +- SE on the 10,000 test images. Also SGN's protocol."),
    ),
    "goodfellow2014": Protocol(
        name="goodfellow2014",
        n_samples=10_000,
        sigmas=tuple(np.logspace(-1, 0, 10).tolist()),
        n_validation=1_000,
        description=(
            "Goodfellow et al. 2014 (GAN), goodfeli/adversarial:parzen_ll.py: 10,000 "
            "samples, sigma in numpy.logspace(-1, 0, 10), validation = MNIST "
            "train[50000:60000] limited to its first 1,000 (--limit_size default), "
            "mean +- SE on the 10,000 test images."),
    ),
}


def _get_protocol(protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    raise ValueError(f"protocol: expected one of {sorted(PROTOCOLS)} or a Protocol, got {protocol!r}")


# --------------------------------------------------------------------------- kernel


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float64),  # points
    tf.TensorSpec([None, None], tf.float64),  # samples
    tf.TensorSpec([None], tf.float64),        # sigmas
    tf.TensorSpec([], tf.int32),              # chunk_size
    tf.TensorSpec([], tf.int32),              # sample_chunk
])
def _log_densities_graph(points, samples, sigmas, chunk_size, sample_chunk):
    """``(n_points, n_sigmas)`` Parzen log densities; see :func:`parzen_log_densities`."""
    n_points = tf.shape(points)[0]
    n_samples = tf.shape(samples)[0]
    n_sigmas = tf.shape(sigmas)[0]
    dim = tf.cast(tf.shape(points)[1], tf.float64)
    neg_inv_two_var = -0.5 / tf.square(sigmas)[:, None, None]        # (S, 1, 1)
    samples_sq = tf.reduce_sum(tf.square(samples), axis=1)            # (N,)

    def block_lse(x):
        """logsumexp over all samples for a block of points: (S, c)."""
        c = tf.shape(x)[0]
        x_sq = tf.reduce_sum(tf.square(x), axis=1)[:, None]

        def body(j, run_max, run_sum):
            mu = samples[j:j + sample_chunk]
            sq = tf.maximum(x_sq + samples_sq[None, j:j + sample_chunk]
                            - 2.0 * tf.matmul(x, mu, transpose_b=True), 0.0)    # (c, b)
            logits = sq[None] * neg_inv_two_var                              # (S, c, b)
            new_max = tf.maximum(run_max, tf.reduce_max(logits, axis=-1))
            # A shift of -inf (every logit -inf) would give NaN; shift by 0 then.
            shift = tf.where(tf.math.is_finite(new_max), new_max, tf.zeros_like(new_max))
            run_sum = (run_sum * tf.exp(run_max - shift)
                       + tf.reduce_sum(tf.exp(logits - shift[..., None]), axis=-1))
            return j + sample_chunk, new_max, run_sum

        shape = tf.stack([n_sigmas, c])
        init = (tf.constant(0), tf.fill(shape, tf.constant(-np.inf, tf.float64)),
                tf.zeros(shape, tf.float64))
        _, run_max, run_sum = tf.while_loop(lambda j, m, s: j < n_samples, body, init,
                                            parallel_iterations=1)
        shift = tf.where(tf.math.is_finite(run_max), run_max, tf.zeros_like(run_max))
        return shift + tf.math.log(run_sum)

    n_blocks = (n_points + chunk_size - 1) // chunk_size
    out = tf.TensorArray(tf.float64, size=n_blocks, infer_shape=False,
                         element_shape=tf.TensorShape([None, None]))

    def outer(i, out):
        start = i * chunk_size
        return i + 1, out.write(i, tf.transpose(block_lse(points[start:start + chunk_size])))

    # One block at a time: memory is bounded by a single block's temporaries.
    _, out = tf.while_loop(lambda i, _: i < n_blocks, outer, (tf.constant(0), out),
                           parallel_iterations=1)
    lse = out.concat()                                                        # (n, S)
    log_norm = (-tf.math.log(tf.cast(n_samples, tf.float64))
                - 0.5 * dim * tf.math.log(2.0 * np.pi * tf.square(sigmas)))
    return lse + log_norm[None, :]


def _chunk_args(chunk_size, sample_chunk, n_samples: int) -> tuple[int, int]:
    chunk_size = _int_at_least(chunk_size, "chunk_size", 1)
    if sample_chunk is None:
        sample_chunk = n_samples
    sample_chunk = _int_at_least(sample_chunk, "sample_chunk", 1)
    return chunk_size, min(sample_chunk, n_samples)


def _log_densities(samples: np.ndarray, points: np.ndarray, sigmas: np.ndarray,
                   chunk_size: int, sample_chunk: int) -> np.ndarray:
    return _log_densities_graph(tf.constant(points), tf.constant(samples), tf.constant(sigmas),
                                tf.constant(chunk_size, tf.int32),
                                tf.constant(sample_chunk, tf.int32)).numpy()


# --------------------------------------------------------------------------- public API


def parzen_log_densities(samples, points, sigmas, *, chunk_size: int = 100,
                         sample_chunk: int | None = None) -> np.ndarray:
    """Per-point Parzen log densities for one or several bandwidths.

    ``out[i, k] = logmeanexp_j(-||x_i - mu_j||^2 / (2 sigma_k^2)) - (d/2) log(2 pi sigma_k^2)``
    (METHODS.md 6(a)); the distances are computed once for the whole grid.

    Args:
      samples: ``(N, ...)`` generator samples ``mu_j`` (kernel centres); flattened.
      points: ``(n, ...)`` points to evaluate, same number of features.
      sigmas: a positive bandwidth or a 1-D grid of them.
      chunk_size: points per block.
      sample_chunk: samples per block (streaming log-sum-exp); None = all at once.

    Returns:
      float64 ``(n, n_sigmas)`` array.
    """
    samples = _as_points(samples, "samples")
    points = _as_points(points, "points")
    _check_pair(samples, points, "points")
    sig = _as_sigmas(sigmas, "sigmas")
    chunk_size, sample_chunk = _chunk_args(chunk_size, sample_chunk, samples.shape[0])
    return _log_densities(samples, points, sig, chunk_size, sample_chunk)


def _summary(ll: np.ndarray) -> tuple[float, float]:
    return float(np.mean(ll)), float(np.std(ll) / math.sqrt(ll.shape[0]))


def parzen_log_likelihood(samples, test, sigma, *, chunk_size: int = 100,
                          sample_chunk: int | None = None) -> dict:
    """Mean Gaussian Parzen-window log-likelihood of ``test`` under ``samples``.

    Per test point (METHODS.md 6(a); Goodfellow et al. 2014, Li et al. 2015)::

        LL(x) = logsumexp_j(-||x - mu_j||^2 / (2 sigma^2)) - log N - (d/2) log(2 pi sigma^2)

    i.e. Goodfellow's ``logmeanexp_j(-1/2 ||(x - mu_j)/sigma||^2) - d log(sigma sqrt(2 pi))``
    and Li's ``logsumexp + factor`` with ``factor = -log N - (d/2) log(2 pi sigma^2)``:
    the same formula (a log-*mean*-exp over the N samples). Theis et al. 2016
    warn that this estimate is unreliable in high dimension.

    Args:
      samples: ``(N, ...)`` generator samples (kernel centres), pixels in [0, 1].
      test: ``(n, ...)`` test points with the same number of features.
      sigma: kernel width (standard deviation), > 0. Choose it on a validation
        split with :func:`select_bandwidth`, never on ``test``.
      chunk_size: test points per block.
      sample_chunk: samples per block (running log-sum-exp), so memory is
        ``chunk_size x sample_chunk``; None processes all samples per block.

    Returns:
      ``{"mean", "std_error", "sigma", "n_test", "n_samples"}``; ``std_error``
      is ``std / sqrt(n_test)`` with the population std (``ddof=0``).
    """
    sig = _as_sigmas(sigma, "sigma")
    if sig.size != 1:
        raise ValueError(f"sigma: expected a single positive number, got {sigma!r} "
                         f"(use select_bandwidth for a grid)")
    samples = _as_points(samples, "samples")
    test = _as_points(test, "test")
    _check_pair(samples, test, "test")
    chunk_size, sample_chunk = _chunk_args(chunk_size, sample_chunk, samples.shape[0])
    ll = _log_densities(samples, test, sig, chunk_size, sample_chunk)[:, 0]
    mean, se = _summary(ll)
    return {"mean": mean, "std_error": se, "sigma": float(sig[0]),
            "n_test": int(test.shape[0]), "n_samples": int(samples.shape[0])}


def select_bandwidth(samples, validation, sigmas, **kw) -> tuple[float, dict]:
    """Bandwidth with the highest mean validation log-likelihood over a grid.

    The line search of Goodfellow et al. 2014 (``parzen_ll.py``) and Li et al.
    2015 (``kde_eval_mnist``). ``validation`` must be held out of the model's
    training and disjoint from the test split. Ties go to the first grid value.

    Args:
      samples: ``(N, ...)`` generator samples.
      validation: ``(n, ...)`` validation points.
      sigmas: 1-D grid of positive bandwidths.
      **kw: ``chunk_size`` / ``sample_chunk`` as in :func:`parzen_log_likelihood`.

    Returns:
      ``(best_sigma, {sigma: mean validation LL})``.
    """
    unknown = set(kw) - {"chunk_size", "sample_chunk"}
    if unknown:
        raise ValueError(f"select_bandwidth: unexpected keyword(s) {sorted(unknown)}; "
                         f"expected chunk_size, sample_chunk")
    sig = _as_sigmas(sigmas, "sigmas")
    samples = _as_points(samples, "samples")
    validation = _as_points(validation, "validation")
    _check_pair(samples, validation, "validation")
    chunk_size, sample_chunk = _chunk_args(kw.get("chunk_size", 100), kw.get("sample_chunk"),
                                           samples.shape[0])
    means = _log_densities(samples, validation, sig, chunk_size, sample_chunk).mean(axis=0)
    curve = {float(s): float(m) for s, m in zip(sig, means)}
    return float(sig[int(np.argmax(means))]), curve


SampleSource = Union[Callable[[int, int], object], np.ndarray]


def parzen_protocol(sample_fn_or_array: SampleSource, validation, test, protocol="li2015",
                    seed: int = 0, progress: bool = False, *, chunk_size: int = 100,
                    sample_chunk: int | None = 500, eval_block: int = 1000) -> dict:
    """Run a published Parzen protocol end to end (METHODS.md 6(a)).

    Draws ``protocol.n_samples`` samples (``sample_fn(n, seed)``) or takes the
    first ``n_samples`` rows of a given array, chooses sigma on the first
    ``protocol.n_validation`` rows of ``validation`` by the grid search, and
    reports the mean +- standard error on all of ``test``.

    ``li2015`` (default): 10k samples, sigma in 0.10..0.29, 5k validation
    images taken from train and held out of training. ``goodfellow2014``: 10k
    samples, sigma in logspace(-1, 0, 10), validation = MNIST train[50000:60000],
    of which its code uses the first 1,000. Theis et al. 2016: these numbers are
    unreliable in high dimension; report them for comparison only.

    Args:
      sample_fn_or_array: ``sample_fn(n, seed) -> (n, ...)`` array, or an array
        of at least ``n_samples`` generated samples.
      validation: at least ``n_validation`` held-out points.
      test: test points (MNIST: the 10,000 test images).
      protocol: a name in :data:`PROTOCOLS` or a :class:`Protocol`.
      seed: passed to ``sample_fn``.
      progress: print progress and one line per sigma.
      chunk_size, sample_chunk: as in :func:`parzen_log_likelihood`; blocks of
        100 x 500 are cache-friendly (about 2x faster than unchunked samples for
        a 20-sigma grid on a 2-core CPU; MNIST-size li2015 took ~19 s there).
      eval_block: points per call of the compiled kernel (progress granularity).

    Returns:
      dict with ``mean``, ``std_error``, ``sigma``, ``validation_curve``
      ``{sigma: mean validation LL}``, ``protocol``, ``n_samples``,
      ``n_samples_given``, ``n_validation``, ``n_validation_given``, ``n_test``, ``seed``.
    """
    proto = _get_protocol(protocol)
    eval_block = _int_at_least(eval_block, "eval_block", 1)
    validation = _as_points(validation, "validation")
    test = _as_points(test, "test")
    if validation.shape[0] < proto.n_validation:
        raise ValueError(f"validation: protocol {proto.name!r} needs at least "
                         f"{proto.n_validation} points, got {validation.shape[0]}")
    _check_pair(validation, test, "test")
    if callable(sample_fn_or_array):
        drawn = sample_fn_or_array(proto.n_samples, seed)
        samples = _as_points(drawn, "sample_fn(n, seed)")
        if samples.shape[0] != proto.n_samples:
            raise ValueError(f"sample_fn: asked for {proto.n_samples} samples, "
                             f"returned {samples.shape[0]}")
    else:
        samples = _as_points(sample_fn_or_array, "samples")
        if samples.shape[0] < proto.n_samples:
            raise ValueError(f"samples: protocol {proto.name!r} needs {proto.n_samples} "
                             f"samples, got {samples.shape[0]}")
    n_given = int(samples.shape[0])
    samples = samples[:proto.n_samples]
    _check_pair(samples, validation, "validation")
    chunk_size, sample_chunk = _chunk_args(chunk_size, sample_chunk, samples.shape[0])
    val = validation[:proto.n_validation]
    sig = np.asarray(proto.sigmas, dtype=np.float64)
    start = time.perf_counter()

    def evaluate(points, sigmas, label):
        parts = []
        for i in range(0, points.shape[0], eval_block):
            parts.append(_log_densities(samples, points[i:i + eval_block], sigmas,
                                        chunk_size, sample_chunk))
            if progress:
                done = min(i + eval_block, points.shape[0])
                print(f"parzen {label}: {done}/{points.shape[0]} points "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        return np.concatenate(parts, axis=0)

    means = evaluate(val, sig, f"validation ({len(sig)} sigmas)").mean(axis=0)
    curve = {float(s): float(m) for s, m in zip(sig, means)}
    best = float(sig[int(np.argmax(means))])
    if progress:
        for s, m in curve.items():
            print(f"parzen sigma={s:.4g}: mean validation LL {m:.3f}"
                  f"{'  <- best' if s == best else ''}", flush=True)
    ll = evaluate(test, np.array([best]), f"test (sigma={best:.4g})")[:, 0]
    mean, se = _summary(ll)
    if progress:
        print(f"parzen {proto.name}: test LL {mean:.2f} +- {se:.2f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"mean": mean, "std_error": se, "sigma": best, "validation_curve": curve,
            "protocol": proto.name, "n_samples": int(samples.shape[0]),
            "n_samples_given": n_given, "n_validation": int(val.shape[0]),
            "n_validation_given": int(validation.shape[0]), "n_test": int(test.shape[0]),
            "seed": seed}


# --------------------------------------------------------------------------- the IML paper's "KDE score"


def iml_kde_score(sample_fn, test, *, sigma: float = 0.2, n_samples: int = 1000, n_draws: int = 10,
                  seed: int = 0, chunk_size: int = 100) -> dict:
    """The IML paper's Table 1 "KDE score", exactly as its code ran it (METHODS.md §5).

    Per draw ``r``: ``n_samples`` samples ``mu_j`` from the model, then for every
    test point ``logsumexp_j log N(x; mu_j, sigma^2 I)`` *without* the
    ``-log n_samples`` of a Parzen estimate, averaged over the test points;
    reported as the mean (and std) over ``n_draws`` draws. The reference code
    (``compute_nparam_density``): 1000 samples, ``sigma = 0.2`` (the text says
    0.01, its formula 0.1 I), no normalising count, 10 draws (2 in the
    2018-03 version). Not a log-likelihood: it grows with ``n_samples``.
    ``parzen_comparable = score - log(n_samples)`` is the Parzen mean
    log-likelihood at the same sigma (the §6a formula, without its
    validation-set bandwidth search).

    Args:
      sample_fn: ``sample_fn(n, seed) -> (n, ...)`` samples, pixels in [0, 1]
        (a model's ``sample``), or an ``(n_draws * n_samples, ...)`` array
        split into the draws in order.
      test: ``(n_test, ...)`` test points (the paper: all 10k MNIST test images).
      sigma: the kernel's standard deviation.
      seed: draw ``r`` uses seed ``seed + r``.

    Returns ``{"score", "std", "per_draw", "parzen_comparable", "sigma",
    "n_samples", "n_draws", "n_test", "seconds"}``.
    """
    n_samples = _int_at_least(n_samples, "n_samples", 1)
    n_draws = _int_at_least(n_draws, "n_draws", 1)
    test = _as_points(test, "test")
    t0 = time.time()
    if callable(sample_fn):
        draws = [np.asarray(sample_fn(n_samples, seed + r)) for r in range(n_draws)]
    else:
        arr = np.asarray(sample_fn)
        if arr.shape[0] != n_draws * n_samples:
            raise ValueError(f"sample_fn: an array must hold n_draws * n_samples = {n_draws * n_samples} "
                             f"samples, got {arr.shape[0]}")
        draws = [arr[r * n_samples:(r + 1) * n_samples] for r in range(n_draws)]
    per_draw = [parzen_log_likelihood(d, test, sigma, chunk_size=chunk_size)["mean"] + math.log(n_samples)
                for d in draws]
    score = float(np.mean(per_draw))
    return {"score": score, "std": float(np.std(per_draw)), "per_draw": [float(v) for v in per_draw],
            "parzen_comparable": score - math.log(n_samples), "sigma": float(sigma),
            "n_samples": n_samples, "n_draws": n_draws, "n_test": int(test.shape[0]),
            "seconds": round(time.time() - t0, 1)}
