"""Latent priors (keras-serializable, TFP-backed, parameters in variables)."""

from tfgen.distributions.priors import BinaryMeanMixture, Gaussian, Prior, Uniform, as_stateless_seed

__all__ = ["BinaryMeanMixture", "Gaussian", "Prior", "Uniform", "as_stateless_seed"]
