"""Sample-quality metrics over a feature network: FID, KID, Inception Score, and the
nearest-training-neighbour distance (METHODS.md 6(c); KDE-GAN paper, App. Tab. 1).

* :func:`frechet_distance` / :func:`fid`: Heusel et al. 2017 (TTUR ``fid.py``),
  the Fréchet distance between Gaussians fitted to two feature sets::

      d^2 = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2))

  with TTUR's numerical guards: when ``sqrtm`` is not finite, ``eps * I`` is
  added to both covariances and it is retried; an imaginary part (rounding
  makes ``sqrtm`` of the non-symmetric product complex) is dropped only when
  the largest ``|imag|`` on its diagonal is at most 1e-3, else it is an
  error. Covariances are unbiased (``np.cov(rowvar=False)``).
* :func:`kid`: Bińkowski et al. 2018 ("Demystifying MMD GANs",
  ``compute_scores.py``), the unbiased MMD² with the cubic polynomial kernel
  ``k(x, y) = (gamma <x, y> + coef0)^degree``, ``gamma = 1/d``, averaged over
  random subsets (each drawn without replacement)::

      MMD² = (sum K~xx + sum K~yy) / (m (m - 1)) - 2 sum Kxy / m^2

  (``K~`` with its diagonal zeroed).
* :func:`inception_score`: Salimans et al. 2016 (openai ``improved-gan``),
  ``exp(mean_x KL(p(y|x) || p(y)))`` per split, mean and std over splits.
  :func:`classifier_inception_score` computes the probabilities with a
  :class:`~tfgen.metrics.classifier.FeatureNetwork` (the "MNIST IS" of a LeNet).
* :func:`nearest_neighbour_distance`: the KDE-GAN paper's memorisation check,
  the L2 pixel distance of each generated sample to its nearest training
  image (paper: MNIST 4.26 ± 0.37), through :mod:`tfgen.ops.knn` (ScaNN by
  default, with its recall@1 measured against exact search).

Everything that is summed is float64: FID's traces on 2048-d covariances and
KID's cubed kernels lose digits in float32.

Standard deviations are population ones (``ddof=0``), as ``numpy.std`` in the
reference codes.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import scipy
import scipy.linalg
from scipy.special import rel_entr

from tfgen.metrics._arrays import as_rows

__all__ = ["classifier_inception_score", "feature_statistics", "fid", "frechet_distance",
           "inception_score", "kid", "nearest_neighbour_distance", "polynomial_mmd2"]

# TTUR's threshold on the diagonal of sqrtm's imaginary part
_MAX_IMAG = 1e-3
_SCIPY_DISP_DEPRECATED = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 16)


def _int_at_least(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm(a)`` without its warnings. SciPy < 1.16 needs ``disp=False`` to
    return instead of printing; 1.16 deprecated ``disp`` (removed in 1.18), and warns
    ``LinAlgWarning`` on singular input, which the caller handles by checking finiteness."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        if _SCIPY_DISP_DEPRECATED:
            return np.asarray(scipy.linalg.sqrtm(a))
        return np.asarray(scipy.linalg.sqrtm(a, disp=False)[0])


# --------------------------------------------------------------------------- FID


def _as_mean(mu, name: str) -> np.ndarray:
    try:
        arr = np.asarray(mu, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric (d,) mean vector") from exc
    arr = np.atleast_1d(arr)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected a finite (d,) mean vector, got shape {arr.shape}")
    return arr


def _as_cov(sigma, name: str, d: int) -> np.ndarray:
    try:
        arr = np.asarray(sigma, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric (d, d) covariance matrix") from exc
    arr = np.atleast_2d(arr)
    if arr.shape != (d, d):
        raise ValueError(f"{name}: expected a ({d}, {d}) covariance matrix to match the mean, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (TTUR ``fid.py``).

    ``||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2))``.

    Args:
      mu1, mu2: ``(d,)`` means.
      sigma1, sigma2: ``(d, d)`` covariances.
      eps: added to both diagonals when ``sqrtm(S1 S2)`` is not finite (rank-
        deficient covariances, e.g. fewer samples than features), then retried.

    Raises:
      ValueError: mismatched shapes, non-finite input, or a ``sqrtm`` whose
        diagonal has an imaginary part larger than 1e-3 (the covariances are
        not positive semi-definite, or badly conditioned).
    """
    mu1 = _as_mean(mu1, "mu1")
    mu2 = _as_mean(mu2, "mu2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same dimension, got {mu1.size} and {mu2.size}")
    d = mu1.size
    sigma1 = _as_cov(sigma1, "sigma1", d)
    sigma2 = _as_cov(sigma2, "sigma2", d)
    if not (isinstance(eps, numbers.Real) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        warnings.warn(f"frechet_distance: sqrtm(sigma1 sigma2) is not finite (singular product); "
                      f"adding {eps:g} to the diagonal of both covariances", RuntimeWarning,
                      stacklevel=2)
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise ValueError(f"frechet_distance: sqrtm(sigma1 sigma2) is not finite even after "
                             f"adding eps={eps:g} to the diagonals; pass a larger eps")
    if np.iscomplexobj(covmean):
        largest = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest > _MAX_IMAG:
            raise ValueError(f"frechet_distance: sqrtm(sigma1 sigma2) has an imaginary component "
                             f"of {largest:.3g} on its diagonal (> {_MAX_IMAG:g}); are the "
                             f"covariances positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_statistics(features):
    """``(mu (d,), sigma (d, d))`` of ``(n, d)`` features: mean and unbiased covariance
    (``np.cov(rowvar=False)``, as TTUR), in float64. Needs n >= 2."""
    x = as_rows(features, "features", min_points=2)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _features(x, name: str, feature_network, batch_size: int) -> np.ndarray:
    if feature_network is None:
        return as_rows(x, name, min_points=2)
    from tfgen.metrics.classifier import as_feature_network  # noqa: PLC0415 (keras is heavy)

    network = as_feature_network(feature_network)
    try:
        return network.features(x, batch_size=batch_size)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def fid(real, generated, feature_network=None, batch_size: int = 500, eps: float = 1e-6) -> float:
    """Fréchet Inception Distance (TTUR protocol) between two sets.

    Args:
      real, generated: images in [0, 1] (``(n, H, W, C)`` or flat) when a
        ``feature_network`` is given, else ``(n, d)`` features directly.
      feature_network: a :class:`~tfgen.metrics.classifier.FeatureNetwork`, a
        Keras model (its ``"features"`` layer if it has one, else its output),
        a path or zoo name (loaded with ``FeatureNetwork.load``), or None.
        TTUR used 2048-d InceptionV3 ``pool_3`` features on 50,000 samples per
        set; FIDs are only comparable at the same network and sample count
        (FID is biased upwards at small n).
      batch_size: images per forward pass.
      eps: see :func:`frechet_distance`.
    """
    batch_size = _int_at_least(batch_size, "batch_size", 1)
    if feature_network is not None:  # load once, not once per set
        from tfgen.metrics.classifier import as_feature_network  # noqa: PLC0415

        feature_network = as_feature_network(feature_network)
    f_real = _features(real, "real", feature_network, batch_size)
    f_gen = _features(generated, "generated", feature_network, batch_size)
    if f_real.shape[1] != f_gen.shape[1]:
        raise ValueError(f"real and generated must have the same number of features, got "
                         f"{f_real.shape[1]} and {f_gen.shape[1]}")
    mu1, s1 = feature_statistics(f_real)
    mu2, s2 = feature_statistics(f_gen)
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


# --------------------------------------------------------------------------- KID


def polynomial_mmd2(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased MMD² of Bińkowski et al. (``compute_scores.py``, ``mmd_est='unbiased'``) with
    ``k(a, b) = (gamma <a, b> + coef0)^degree`` on two equal-size ``(m, d)`` sets:
    ``(sum K~xx + sum K~yy) / (m (m - 1)) - 2 sum Kxy / m^2``."""
    x = as_rows(x, "x", min_points=2)
    y = as_rows(y, "y", min_points=2)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (m, d), got {x.shape} and {y.shape}")
    return _poly_mmd2(x, y, degree, 1.0 / x.shape[1] if gamma is None else float(gamma), float(coef0))


def _poly_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m = x.shape[0]
    kxx = (gamma * (x @ x.T) + coef0) ** degree
    kyy = (gamma * (y @ y.T) + coef0) ** degree
    kxy = (gamma * (x @ y.T) + coef0) ** degree
    sum_xx = kxx.sum() - np.trace(kxx)
    sum_yy = kyy.sum() - np.trace(kyy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(real_features, gen_features, *, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int = 0):
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased polynomial MMD² averaged
    over random subsets.

    Each of ``subsets`` rounds draws ``subset_size`` rows of each set without
    replacement (independently per round) and computes :func:`polynomial_mmd2`.
    METHODS.md 6(c): 100 subsets of 1000 (the reference CLI's defaults).

    Args:
      real_features, gen_features: ``(n, d)`` and ``(m, d)`` features (e.g.
        :meth:`FeatureNetwork.features`).
      subsets: number of subsets.
      subset_size: rows per subset; capped at ``min(n, m)`` with a warning.
      degree, gamma, coef0: the kernel ``(gamma <x, y> + coef0)^degree``;
        ``gamma=None`` means ``1/d``.
      seed: seeds the subset draws.

    Returns:
      ``(mean, std)`` of MMD² over the subsets (std with ``ddof=0``). The
      estimate is unbiased, so it can be slightly negative when the sets
      come from one distribution.
    """
    x = as_rows(real_features, "real_features", min_points=2)
    y = as_rows(gen_features, "gen_features", min_points=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"real_features and gen_features must have the same number of features, "
                         f"got {x.shape[1]} and {y.shape[1]}")
    subsets = _int_at_least(subsets, "subsets", 1)
    subset_size = _int_at_least(subset_size, "subset_size", 2)
    degree = _int_at_least(degree, "degree", 1)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    if not (isinstance(gamma, numbers.Real) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma: expected a positive number or None (= 1/d), got {gamma!r}")
    if not (isinstance(coef0, numbers.Real) and math.isfinite(coef0)):
        raise ValueError(f"coef0: expected a finite number, got {coef0!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    limit = min(len(x), len(y))
    if subset_size > limit:
        warnings.warn(f"kid: subset_size={subset_size} is larger than the smaller set "
                      f"({limit} points); using subsets of {limit}", UserWarning, stacklevel=2)
        subset_size = limit
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xi = x[rng.choice(len(x), subset_size, replace=False)]
        yi = y[rng.choice(len(y), subset_size, replace=False)]
        values[i] = _poly_mmd2(xi, yi, degree, float(gamma), float(coef0))
    return float(values.mean()), float(values.std())


# --------------------------------------------------------------------------- Inception Score


def inception_score(probabilities, splits: int = 10):
    """Inception Score (Salimans et al. 2016; openai ``improved-gan``) from class probabilities.

    The ``n`` rows are cut into ``splits`` consecutive parts
    (``[i n // splits, (i + 1) n // splits)``); each part scores
    ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the part's mean
    prediction (``0 log 0 = 0``).

    Args:
      probabilities: ``(n, classes)`` rows of non-negative numbers summing to 1.
      splits: number of parts, ``1 <= splits <= n``.

    Returns:
      ``(mean, std)`` over the splits (``ddof=0``). Between 1 (every image
      gets the same prediction) and ``classes`` (confident and evenly spread).
    """
    p = as_rows(probabilities, "probabilities")
    splits = _int_at_least(splits, "splits", 1)
    n = len(p)
    if splits > n:
        raise ValueError(f"splits: expected at most n = {n} splits, got {splits}")
    if p.min() < 0 or np.max(np.abs(p.sum(axis=1) - 1.0)) > 1e-3:
        raise ValueError("probabilities: expected rows of non-negative numbers that sum to 1 "
                         "(softmax outputs, not logits)")
    scores = np.empty(splits)
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = rel_entr(part, marginal).sum(axis=1).mean()
        scores[i] = math.exp(kl)
    return float(scores.mean()), float(scores.std())


def classifier_inception_score(images, feature_network, splits: int = 10, batch_size: int = 500):
    """:func:`inception_score` of ``images`` (in [0, 1]) under a classifier's softmax
    (``feature_network``: a :class:`~tfgen.metrics.classifier.FeatureNetwork`, a Keras
    model with a ``"logits"`` layer, a path or a zoo name)."""
    from tfgen.metrics.classifier import as_feature_network  # noqa: PLC0415

    network = as_feature_network(feature_network)
    if not network.has_probabilities:
        raise ValueError(f"feature_network: {network!r} has no logits layer, so no class "
                         f"probabilities for an Inception Score")
    return inception_score(network.probabilities(images, batch_size=batch_size), splits=splits)


# --------------------------------------------------------------------------- memorisation


def nearest_neighbour_distance(samples, train=None, *, backend: str = "scann", index=None,
                               measure_recall: int = 1000, seed: int = 0, **index_options):
    """Distance of each generated sample to its nearest training image (KDE-GAN paper, App.
    Tab. 1: mean ± std of the L2 pixel distance; MNIST 4.26 ± 0.37 for KDE-GAN).

    A small mean says the model reproduces training images (memorisation); a
    large one can also mean poor samples, so read it with a quality metric.

    Args:
      samples: ``(n, d)`` or images ``(n, H, W, C)`` (pixels in [0, 1], as the paper).
      train: the training set, same features per point. May be None when a
        fitted ``index`` is given (its stored database is then used).
      backend: ``"scann"`` (default; falls back to exact when ScaNN is not
        installed) or ``"exact"``, for :func:`tfgen.ops.make_index`.
      index: an already fitted :class:`~tfgen.ops.ExactKNN` / :class:`~tfgen.ops.ScannKNN`
        over ``train``, reused instead of building one (build it once, score
        many sample sets); ``backend`` and ``index_options`` are then unused.
      measure_recall: how many samples (a seeded random subset) are also
        searched exactly to measure the approximate search's recall@1; 0
        skips it (``recall`` is then None for an approximate index).
      seed: seeds the choice of the recall queries.
      **index_options: options for ``make_index`` (``mode``, ``num_leaves``,
        ``reorder_k``, ``chunk_size``...).

    Returns:
      dict with ``mean``, ``std`` (``ddof=0``), ``distances`` (float64
      ``(n,)``, L2, not squared), ``indices`` (the nearest training rows),
      ``recall`` (recall@1 against :class:`~tfgen.ops.ExactKNN` on the checked
      samples, a tie at the exact distance counting as found; 1.0 for the exact
      backend), ``recall_queries`` and ``backend``.
    """
    from tfgen.ops.knn import ExactKNN, make_index  # noqa: PLC0415

    x = as_rows(samples, "samples")
    measure_recall = _int_at_least(measure_recall, "measure_recall", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    if index is None:
        if train is None:
            raise ValueError("train: expected the training set (or a fitted index=)")
        db = as_rows(train, "train")
        if db.shape[1] != x.shape[1]:
            raise ValueError(f"samples and train must have the same number of features per point, "
                             f"got {x.shape[1]} and {db.shape[1]}")
        index = make_index(backend, **index_options).fit(db.astype(np.float32))
    else:
        if getattr(index, "database", None) is None or not hasattr(index, "search"):
            raise ValueError("index: expected a fitted tfgen.ops k-NN index (ExactKNN or ScannKNN "
                             "after .fit(train))")
        stored = np.asarray(index.database, dtype=np.float64)
        if train is None:
            db = stored
        else:
            db = as_rows(train, "train")
            if db.shape != stored.shape:
                raise ValueError(f"train has shape {db.shape} but the index was fitted on "
                                 f"{stored.shape}")
        if db.shape[1] != x.shape[1]:
            raise ValueError(f"samples have {x.shape[1]} features per point but the index's "
                             f"database has {db.shape[1]}")
    exact = isinstance(index, ExactKNN)
    name = "exact" if exact else "scann"

    idx, _ = index.search(x.astype(np.float32), 1)
    idx = np.asarray(idx)[:, 0].astype(np.int64)
    # float64 distances by differences: the search's float32 matmul form loses ~1e-7 ||x||^2
    diff = x - db[idx]
    dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))

    if exact:
        rec, checked = 1.0, len(x)
    elif measure_recall == 0:
        rec, checked = None, 0
    else:
        checked = min(measure_recall, len(x))
        rows = np.sort(np.random.default_rng(seed).choice(len(x), checked, replace=False))
        exact_idx, _ = ExactKNN().fit(db.astype(np.float32)).search(x[rows].astype(np.float32), 1)
        # A hit is a returned neighbour as close as the exact one (float64 distances), so
        # another training point at the same distance (a duplicate image) is not a miss;
        # otherwise this is recall@1 by index (tfgen.ops.knn_recall).
        exact_idx = np.asarray(exact_idx)[:, 0].astype(np.int64)
        ed = x[rows] - db[exact_idx]
        exact_dist = np.sqrt(np.einsum("ij,ij->i", ed, ed))
        rec = float(np.mean(dist[rows] <= exact_dist * (1 + 1e-6) + 1e-12))
    return {"mean": float(dist.mean()), "std": float(dist.std()), "distances": dist, "indices": idx,
            "recall": rec, "recall_queries": checked, "backend": name}
