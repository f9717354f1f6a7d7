"""Data for tfgen: toy mixtures, scikit-learn digits, TFDS image sets with an offline IDX path.

Every loader returns float32 data: images NHWC in [0, 1], toy points of shape (n, 2)
(DESIGN.md, Conventions). See :func:`load` for the names, splits and options.
"""

from tfgen.data.api import info, load, load_numpy, names
from tfgen.data.idx import read_idx
from tfgen.data.pipeline import from_array
from tfgen.data.toy import grid_centers, ring_centers

__all__ = ["from_array", "grid_centers", "info", "load", "load_numpy", "names", "read_idx", "ring_centers"]
