"""tfgen: a TensorFlow/Keras zoo of implicit generative models.

``tfgen.data``, ``tfgen.ops``, ``tfgen.distributions``, ``tfgen.metrics`` are
the library; ``tfgen.models`` (the methods) and ``tfgen.trainers`` (recipes,
Trainer, callbacks) stand on it; ``tfgen.load`` reads the zoo and exports.
"""

import importlib

__version__ = "0.1.0"

from tfgen import distributions, ops  # noqa: E402
from tfgen.zoo import load  # noqa: E402

_LAZY = ("data", "metrics", "models", "trainers", "export", "zoo", "plotting", "cli")


def __getattr__(name):
    # The heavier subpackages load on first use, and models/trainers
    # (which import this package) never import in a cycle.
    if name in _LAZY:
        return importlib.import_module(f"tfgen.{name}")
    raise AttributeError(f"module 'tfgen' has no attribute {name!r}")


__all__ = ["__version__", "distributions", "load", "ops", *_LAZY]
