"""Latent priors (keras-serializable, TFP-backed, parameters in variables)."""

from tfgen.distributions.priors import BinaryMeanMixture, Gaussian, Prior, Uniform, as_stateless_seed
from tfgen.distributions.gmm import GaussianMixture
from tfgen.distributions.hmm import HiddenMarkovModel
from tfgen.distributions.kde import KDE, heldout_log_likelihood

__all__ = ["BinaryMeanMixture", "Gaussian", "GaussianMixture", "HiddenMarkovModel", "KDE", "Prior", "Uniform",
           "as_stateless_seed", "heldout_log_likelihood"]
