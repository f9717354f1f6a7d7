"""Pure tensor mathematics shared by the methods: distances, kernels, MMD,
density ratios, k-nearest-neighbour search.

Imports nothing of the project but its own modules (DESIGN.md, layering).
"""

from tfgen.ops.density_ratio import density_ratio, pearson_divergence
from tfgen.ops.distances import chunked_row_reduce, pairwise_sq_distances
from tfgen.ops.kernels import gamma_from_bandwidth, gaussian_kernel, gaussian_kernels, median_heuristic
from tfgen.ops.knn import (ExactKNN, ScannKNN, make_index, recall as knn_recall, search as knn_search,
                           smallest_k)
from tfgen.ops.mmd import mmd, mmd2, mmd2_from_kernels
from tfgen.ops.reversal import Reversal, reversal_mmd2, reverse

__all__ = [
    "ExactKNN", "ScannKNN", "chunked_row_reduce", "density_ratio", "gamma_from_bandwidth",
    "gaussian_kernel", "gaussian_kernels", "knn_recall", "knn_search", "make_index",
    "median_heuristic", "mmd", "mmd2", "mmd2_from_kernels", "pairwise_sq_distances",
    "pearson_divergence", "smallest_k",
    "Reversal", "reversal_mmd2", "reverse",
]
