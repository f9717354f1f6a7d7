"""tfgen: a TensorFlow/Keras zoo of implicit generative models.

``tfgen.data``, ``tfgen.ops``, ``tfgen.distributions``, ``tfgen.metrics`` are
the library; ``tfgen.models`` (the methods) and ``tfgen.trainers`` (recipes,
Trainer, callbacks) stand on it; ``tfgen.load`` reads the zoo and exports.

Subpackages load on first use, so ``import tfgen`` is cheap and imports no
TensorFlow until something needs it.
"""

import importlib

__version__ = "0.1.0"

_LAZY = ("data", "distributions", "metrics", "models", "ops", "trainers", "export", "zoo",
         "plotting", "cli", "demo")


def load(name_or_path, *, format: str = "saved_model"):
    """Load a zoo entry or an export; see ``tfgen.zoo.load``."""
    from tfgen.zoo import load as _load

    return _load(name_or_path, format=format)


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"tfgen.{name}")
    raise AttributeError(f"module 'tfgen' has no attribute {name!r}")


__all__ = ["__version__", "load", *_LAZY]
