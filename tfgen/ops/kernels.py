"""Gaussian (RBF) kernels with an explicit bandwidth parameterisation.

The papers and their codes disagree on what "bandwidth sigma" means
(METHODS.md §2, ambiguity 5): GRAM's Julia code and MMD-GAN use
``exp(-d^2 / (2 sigma^2))`` (sigma is a standard deviation), GRAMFlow and
GMMN use ``exp(-d^2 / (2 sigma))`` (sigma is a variance), and KDE-GAN's
"1e-4" reads best as ``exp(-gamma d^2)``. Every kernel here takes
``parameterization`` so the meaning is stated at the call site.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

PARAMETERIZATIONS = ("std", "variance", "gamma")


def _as_bandwidths(bandwidths) -> list[float]:
    if isinstance(bandwidths, (int, float)) or getattr(bandwidths, "ndim", None) == 0:
        bandwidths = [bandwidths]
    bandwidths = [float(b) for b in bandwidths]
    if not bandwidths:
        raise ValueError("bandwidths must be a non-empty list of positive numbers")
    if any(not b > 0 for b in bandwidths):
        raise ValueError(f"bandwidths must be positive, got {bandwidths}")
    return bandwidths


def gamma_from_bandwidth(bandwidth, parameterization: str = "std"):
    """The ``gamma`` of ``exp(-gamma d^2)`` for a bandwidth of the given meaning."""
    if parameterization == "std":
        return 1.0 / (2.0 * tf.square(bandwidth))
    if parameterization == "variance":
        return 1.0 / (2.0 * bandwidth)
    if parameterization == "gamma":
        return bandwidth
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")


def gaussian_kernel(sq_distances, bandwidth, parameterization: str = "std") -> tf.Tensor:
    """``k = exp(-gamma * d^2)`` for one bandwidth (see module docstring for its meaning)."""
    sq_distances = tf.convert_to_tensor(sq_distances)
    if isinstance(bandwidth, (int, float)):
        _as_bandwidths(bandwidth)  # validates
    # convert (not cast) so a Python float reaches float64 data unrounded
    if isinstance(bandwidth, tf.Tensor):
        bandwidth = tf.cast(bandwidth, sq_distances.dtype)
    else:
        bandwidth = tf.convert_to_tensor(bandwidth, dtype=sq_distances.dtype)
    gamma = gamma_from_bandwidth(bandwidth, parameterization)
    return tf.exp(-gamma * sq_distances)


def gaussian_kernels(sq_distances, bandwidths: Sequence[float] | float,
                     parameterization: str = "std") -> tf.Tensor:
    """Stacked kernels ``(S, N, M)``, one slice per bandwidth.

    Kept separate (not summed) because GRAM averages density ratios over
    bandwidths while MMD sums over them. ``bandwidths`` may also be a 1-D
    tensor (e.g. a median heuristic computed in the graph); it is then
    taken as it is, without the Python-side validation.
    """
    sq_distances = tf.convert_to_tensor(sq_distances)
    if isinstance(bandwidths, tf.Tensor):
        bws = tf.reshape(tf.cast(bandwidths, sq_distances.dtype), [-1])
    else:
        bws = tf.constant(_as_bandwidths(bandwidths), sq_distances.dtype)
    gammas = gamma_from_bandwidth(bws, parameterization)
    return tf.exp(-gammas[:, None, None] * sq_distances[None])


def median_heuristic(sq_distances) -> tf.Tensor:
    """Bandwidth (as a std) from the median of the pairwise squared distances.

    ``sigma = sqrt(median(d^2))`` over all entries, as GRAM's ``kmm.jl``
    (following Sugiyama et al. 2012) does when no bandwidth is given. The
    median is exact (a sort), and it is a constant: no gradient flows
    through the bandwidth choice.
    """
    d = tf.reshape(tf.stop_gradient(tf.convert_to_tensor(sq_distances)), [-1])
    d = tf.sort(d)
    n = tf.size(d)
    lo = d[(n - 1) // 2]
    hi = d[n // 2]
    return tf.sqrt(0.5 * (lo + hi))
