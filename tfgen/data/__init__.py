"""Data for tfgen: toy mixtures, scikit-learn digits, TFDS image sets with an offline IDX path,
and FSDD audio with an offline WAV path.

Every loader returns float32 data: images NHWC in [0, 1], toy points of shape (n, 2), audio
chunks of shape (n, 800) in [-1, 1] (DESIGN.md, Conventions). See :func:`load` for the
names, splits and options, and :mod:`tfgen.data.audio` for the chunking (IML §4.2).
"""

from tfgen.data.api import info, load, load_numpy, names
from tfgen.data.audio import (Utterance, chunk_arrays, frame, hann_window, load_fsdd, n_frames, overlap_add,
                              read_wav, utterance_chunks, write_wav)
from tfgen.data.idx import read_idx
from tfgen.data.pipeline import from_array
from tfgen.data.toy import grid_centers, ring_centers

__all__ = ["Utterance", "chunk_arrays", "frame", "from_array", "grid_centers", "hann_window", "info", "load",
           "load_fsdd", "load_numpy", "n_frames", "names", "overlap_add", "read_idx", "read_wav", "ring_centers",
           "utterance_chunks", "write_wav"]
