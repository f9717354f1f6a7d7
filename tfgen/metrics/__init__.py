"""Evaluation metrics for generative models (DESIGN.md, Metrics).

Uses :mod:`tfgen.ops`; :mod:`tfgen.data` is imported lazily, only by
:func:`toy_mode_stats`.
"""

from tfgen.metrics.knn_kl import KNN_KL_MODES, knn_kl
from tfgen.metrics.parzen import (PROTOCOLS as PARZEN_PROTOCOLS, parzen_log_likelihood,
                                 parzen_protocol, select_bandwidth)
from tfgen.metrics.toy import mode_stats, toy_mode_stats
from tfgen.metrics.two_sample import mmd_statistic, mmd_two_sample_test

__all__ = ["KNN_KL_MODES", "PARZEN_PROTOCOLS", "knn_kl", "mmd_statistic", "mmd_two_sample_test",
           "mode_stats", "parzen_log_likelihood", "parzen_protocol", "select_bandwidth",
           "toy_mode_stats"]
