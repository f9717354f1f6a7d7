"""Evaluation metrics for generative models (DESIGN.md, Metrics).

Uses :mod:`tfgen.ops`; :mod:`tfgen.data` is imported lazily, only by
:func:`toy_mode_stats`. The feature networks (:mod:`tfgen.metrics.classifier`
for images, :mod:`tfgen.metrics.audio` for spoken digits) load on first use.
"""

from tfgen.metrics.image import (classifier_inception_score, feature_statistics, fid, frechet_distance,
                                 inception_score, kid, nearest_neighbour_distance, polynomial_mmd2)
from tfgen.metrics.knn_kl import KNN_KL_MODES, knn_kl
from tfgen.metrics.parzen import (PROTOCOLS as PARZEN_PROTOCOLS, iml_kde_score, parzen_log_likelihood,
                                 parzen_protocol, select_bandwidth)
from tfgen.metrics.toy import mode_stats, toy_mode_stats
from tfgen.metrics.two_sample import mmd_statistic, mmd_two_sample_test

__all__ = ["KNN_KL_MODES", "PARZEN_PROTOCOLS", "iml_kde_score", "knn_kl", "mmd_statistic", "mmd_two_sample_test",
           "mode_stats", "parzen_log_likelihood", "parzen_protocol", "select_bandwidth",
           "toy_mode_stats"]
__all__ += ["FeatureNetwork", "classifier_inception_score", "feature_statistics", "fid",
            "frechet_distance", "inception_score", "inception_v3", "kid", "lenet",
            "nearest_neighbour_distance", "polynomial_mmd2", "train_classifier"]
__all__ += ["fit_length", "load_spoken_digit_classifier", "spoken_digit_classifier", "spoken_digit_probabilities",
            "spoken_digit_scores", "train_spoken_digit_classifier"]

# The classifiers' names load on first use (PEP 562), so that
# ``python -m tfgen.metrics.classifier`` (or ``.audio``) does not import the module twice
# and ``import tfgen.metrics`` does not import Keras.
_CLASSIFIER_NAMES = ("FeatureNetwork", "inception_v3", "lenet", "train_classifier")
_AUDIO_NAMES = ("fit_length", "load_spoken_digit_classifier", "spoken_digit_classifier",
                "spoken_digit_probabilities", "spoken_digit_scores", "train_spoken_digit_classifier")


def __getattr__(name):
    if name in _CLASSIFIER_NAMES:
        from tfgen.metrics import classifier  # noqa: PLC0415

        return getattr(classifier, name)
    if name in _AUDIO_NAMES:
        from tfgen.metrics import audio  # noqa: PLC0415

        return getattr(audio, name)
    raise AttributeError(f"module 'tfgen.metrics' has no attribute {name!r}")
