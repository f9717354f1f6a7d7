"""Latent priors (keras-serializable, TFP-backed, parameters in variables)."""

from tfgen.distributions.priors import BinaryMeanMixture, Gaussian, Prior, Uniform, as_stateless_seed
from tfgen.distributions.kde import KDE, heldout_log_likelihood

__all__ = ["BinaryMeanMixture", "Gaussian", "KDE", "Prior", "Uniform", "as_stateless_seed",
           "heldout_log_likelihood"]
