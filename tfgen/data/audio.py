"""Audio: the Free Spoken Digit Dataset (FSDD), Hann-windowed chunking and overlap-add.

IML (Subakan, Koyejo & Smaragdis, "Learning the Base Distribution in Implicit Generative
Models", §4.2) works on 8 kHz audio cut into 100 ms chunks (800 samples) that overlap by
50 ms, each multiplied by a Hann window; an autoencoder codes every chunk, an HMM models the
code sequences, and generated chunks are put back together by overlap-add. This module does
the data side of that:

* :func:`load_fsdd` reads the recordings (float32 waveforms in [-1, 1]) with their digit,
  speaker and take index;
* :func:`frame` cuts a waveform into windowed chunks and :func:`overlap_add` is its exact
  inverse (see :func:`frame` for the padding convention);
* :func:`utterance_chunks` gives one chunk sequence per recording (what the HMM is fitted
  on) and :func:`chunk_arrays` all chunks of a split stacked (what the autoencoder trains
  on, and what ``tfgen.data.load("fsdd")`` serves);
* :func:`read_wav` / :func:`write_wav` read and write 16-bit PCM WAV files with the
  standard library's ``wave`` module.

Where FSDD comes from (``source="auto"``, the default), as for the image sets:

1. a TFDS ``spoken_digit`` that is already prepared in ``data_dir`` or TFDS's default
   directory (never downloads);
2. else the original files in ``data_dir`` or ``$TFGEN_DATA_DIR``, in ``<dir>/fsdd/`` or in
   ``<dir>/`` itself: ``manifest.csv`` + ``recordings/*.wav`` as stored in ``shared/data``,
   or just ``recordings/*.wav`` (or ``*.wav``) named ``{digit}_{speaker}_{take}.wav`` as in
   the upstream repository;
3. else a TFDS download; if that fails, one ``FileNotFoundError`` naming both ways.

``source="tfds"`` and ``source="files"`` pick one path. FSDD's official split puts takes
0-4 of every (speaker, digit) in **test** (300 recordings) and takes 5-49 in **train**
(2,700). TFDS publishes only a ``train`` split holding every recording, so on the TFDS path
the take index is parsed from the ``audio/filename`` feature and the same rule applied; a
file name that does not parse is an error, since the split could not be honoured. TFDS's
``spoken_digit`` 1.0.9 is an older release with fewer speakers than the 3,000 recordings
the offline files hold, so its splits are smaller.

Both paths return recordings in the same order: by speaker, then digit, then take.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import glob
import logging
import numbers
import os
import re
import tempfile
import wave as wavelib

import numpy as np

from tfgen.data import images

logger = logging.getLogger("tfgen.data")

__all__ = ["Utterance", "load_fsdd", "hann_window", "n_frames", "frame", "overlap_add", "utterance_chunks",
           "chunk_arrays", "read_wav", "write_wav", "FSDD"]

SAMPLE_RATE = 8000
FRAME_LENGTH = 800  # 100 ms at 8 kHz (IML §4.2)
TEST_TAKES = 5  # takes 0-4 of every (speaker, digit) are the official test set
TFDS_NAME = "spoken_digit"
_FILE_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
_MANIFEST_COLUMNS = ("file", "digit", "speaker", "index")

# Nominal sizes of the full 3,000-recording release (shared/data/fsdd, upstream commit
# 26eb9aa), counted from manifest.csv's num_samples with the default framing
# (800-sample chunks, hop 400): sum over recordings of ceil(L / 400) + 1.
FSDD = dict(
    sample_rate=SAMPLE_RATE, num_classes=10,
    utterances={"train": 2700, "test": 300},
    chunks={"train": 27701, "test": 3028},
)


def describe(frame_length: int = FRAME_LENGTH, hop: int | None = None) -> str:
    """A one-line description of FSDD served with this framing."""
    frame_length, hop = check_framing(frame_length, hop)
    return (f"Free Spoken Digit Dataset: spoken digits 0-9, 6 speakers x 50 takes, 8 kHz mono; served as "
            f"{frame_length}-sample ({1000 * frame_length / SAMPLE_RATE:g} ms) Hann-windowed chunks with hop "
            f"{hop} ({100 * (1 - hop / frame_length):g}% overlap; IML §4.2 uses 800 / 400)")


_logged_file_reads: set = set()


# ---------------------------------------------------------------------------------------------
# Recordings


@dataclasses.dataclass(frozen=True, eq=False)
class Utterance:
    """One FSDD recording.

    Attributes:
        wave: float32 ``(num_samples,)`` in [-1, 1): the int16 PCM values divided by 32768.
        digit: the spoken digit, 0-9 (the class label).
        speaker: the speaker's name, e.g. ``"george"``.
        index: the take, 0-49; takes 0-4 are the test split.
        file: the file name, e.g. ``"0_george_0.wav"``.
    """

    wave: np.ndarray
    digit: int
    speaker: str
    index: int
    file: str

    @property
    def split(self) -> str:
        return _split_of(self.index)


def _split_of(index: int) -> str:
    return "test" if index < TEST_TAKES else "train"


def _parse_file_name(name: str):
    """``"7_jackson_32.wav"`` -> ``(7, "jackson", 32)``, or ``None``."""
    m = _FILE_NAME.match(os.path.basename(name))
    return None if m is None else (int(m.group(1)), m.group(2), int(m.group(3)))


def _order(meta):
    digit, speaker, index = meta
    return speaker, digit, index


def load_fsdd(split: str = "train", *, data_dir=None, source: str = "auto") -> list[Utterance]:
    """The recordings of one FSDD split, as a list of :class:`Utterance`.

    Args:
        split: ``"train"`` (takes 5-49, 2,700 recordings), ``"test"`` (takes 0-4, 300), or an
            integer slice of one, e.g. ``"train[:100]"``, which selects recordings in their
            order (by speaker, then digit, then take).
        data_dir: a TFDS data dir and/or a directory with the original files (module doc).
        source: "auto", "tfds" or "files" (module doc).

    Raises:
        ValueError: a bad split or source; a corrupt or foreign file (not 8 kHz mono 16-bit,
            a manifest without the expected columns, a TFDS file name without a take index).
        FileNotFoundError: FSDD is neither available through TFDS nor as files.
    """
    base, sl = images.parse_split(split, ("train", "test"))
    if source not in images.SOURCES:
        raise ValueError(f"option source: expected one of {list(images.SOURCES)}, got {source!r}")
    where, arg, download = _resolve_source(data_dir, source)
    if where == "files":
        root, entries = arg
        waves = _read_recordings(root, entries)
        utts = [Utterance(w, d, s, i, os.path.basename(f)) for (f, d, s, i), w in zip(entries, waves)]
    else:
        utts = _tfds_utterances(arg, download, data_dir)
    chosen = [u for u in utts if u.split == base][sl]
    if not chosen:
        raise ValueError(f"split {split!r} selects no recordings (FSDD {base!r} has "
                         f"{sum(u.split == base for u in utts)} from {where})")
    return chosen


def find_fsdd_files(data_dir=None):
    """``(root, entries)`` for the first directory holding FSDD's files, or ``None``.

    ``entries`` are ``(relative_path, digit, speaker, index)`` in speaker/digit/take order,
    from ``manifest.csv`` when there is one, else from the WAV file names. Only the manifest
    and the directory listing are read, no audio.
    """
    for d in images.idx_search_dirs("fsdd", data_dir):
        entries = _manifest_entries(d)
        if entries is None:
            entries = _listed_entries(d)
        if entries:
            return d, entries
    return None


def _manifest_path(directory):
    p = os.path.join(directory, "manifest.csv")
    return p if os.path.isfile(p) else None


def _manifest_rows(directory):
    path = _manifest_path(directory)
    if path is None:
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in _MANIFEST_COLUMNS if not rows or c not in rows[0]]
    if missing and not os.path.isdir(os.path.join(directory, "recordings")):
        return None  # some other data set's manifest, in a directory that is not FSDD's
    if missing:
        raise ValueError(f"{path}: expected an FSDD manifest with columns {list(_MANIFEST_COLUMNS)} "
                         f"(and one row per recording), missing {missing}")
    return path, rows


def _manifest_entries(directory):
    found = _manifest_rows(directory)
    if found is None:
        return None
    path, rows = found
    entries = []
    for line, r in enumerate(rows, start=2):
        try:
            digit, speaker, index = int(r["digit"]), r["speaker"], int(r["index"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path} line {line}: expected integer digit and index, got {r}") from e
        if "split" in r and r["split"] not in ("", _split_of(index)):
            raise ValueError(f"{path} line {line}: split {r['split']!r} disagrees with take {index} "
                             f"(takes 0-{TEST_TAKES - 1} are test, the rest train)")
        entries.append((r["file"], digit, speaker, index))
    entries.sort(key=lambda e: _order(e[1:]))
    return entries


def _listed_entries(directory):
    entries = []
    for sub in ("recordings", ""):
        for p in glob.glob(os.path.join(glob.escape(os.path.join(directory, sub)), "*.wav")):
            meta = _parse_file_name(p)
            if meta is not None:
                entries.append((os.path.relpath(p, directory), *meta))
        if entries:
            break
    entries.sort(key=lambda e: _order(e[1:]))
    return entries


@functools.lru_cache(maxsize=2)
def _read_all(root, files, stamp):
    """Decode every listed WAV once per directory (``stamp``, the newest mtime, invalidates).

    The int16 arrays are kept (21 MB for all of FSDD), so that train and test, ``load`` and
    ``load_numpy`` in one process share one read.
    """
    del stamp
    out = []
    for rel in files:
        path = os.path.join(root, rel)
        pcm, rate = _read_pcm16(path)
        if rate != SAMPLE_RATE or pcm.ndim != 1:
            raise ValueError(f"{path}: expected an FSDD recording (mono, {SAMPLE_RATE} Hz), got "
                             f"{pcm.shape[1] if pcm.ndim == 2 else 1} channel(s) at {rate} Hz")
        out.append(pcm)
    return tuple(out)


def _read_recordings(root, entries):
    files = tuple(e[0] for e in entries)
    # A few ms of stat calls, so that a changed or replaced file is read again.
    stamp = max(os.stat(os.path.join(root, f)).st_mtime_ns for f in files)
    pcm = _read_all(os.path.abspath(root), files, stamp)
    if root not in _logged_file_reads:  # once per directory, not on every call
        _logged_file_reads.add(root)
        logger.info("TFDS has no prepared %s; reading the original FSDD WAV files from %s",
                    TFDS_NAME, os.path.abspath(root))
    return [(p.astype(np.float32) / 32768.0) for p in pcm]


def _resolve_source(data_dir, source):
    """``("files", (root, entries), None)`` or ``("tfds", dir, download)``; reads no audio."""
    if source in ("tfds", "auto"):
        prepared = images.tfds_prepared_dir(TFDS_NAME, data_dir)
        if prepared is not None:
            return "tfds", prepared, False
        if source == "tfds":
            return "tfds", data_dir, True
    found = find_fsdd_files(data_dir)
    if found is not None:
        return "files", found, None
    if source == "files":
        raise FileNotFoundError(_missing_message(data_dir, None, files_only=True))
    return "tfds", data_dir, True


def _missing_message(data_dir, tfds_error, files_only=False) -> str:
    searched = images.idx_search_dirs("fsdd", data_dir)
    where = ", ".join(searched) if searched else f"none (neither data_dir= nor ${images.ENV_VAR} is set)"
    lines = ["Cannot load dataset 'fsdd'."]
    if not files_only:
        dirs = [str(data_dir)] if data_dir else []
        lines.append(f"TFDS (tensorflow_datasets) has no prepared {TFDS_NAME!r} in "
                     f"{', '.join(dirs + [images.tfds_default_dir()])} and downloading it failed: "
                     f"{type(tfds_error).__name__}: {tfds_error}")
    lines.append(f"Searched for the original FSDD files in: {where}.")
    lines.append("Provide the data in one of two ways:")
    lines.append(f"  (1) TFDS: run once with network access so that tensorflow_datasets downloads and prepares "
                 f"{TFDS_NAME!r}, or pass data_dir= (or set $TFDS_DATA_DIR) to a directory where it is prepared;")
    lines.append(f"  (2) set ${images.ENV_VAR} (or pass data_dir=) to a directory holding recordings/*.wav "
                 "(named {digit}_{speaker}_{take}.wav, optionally with manifest.csv) either directly or in an "
                 "'fsdd/' subfolder.")
    return "\n".join(lines)


def _tfds_utterances(tfds_dir, download, data_dir):
    """Every recording of TFDS's ``spoken_digit`` (its only split, ``train``), ordered."""
    try:
        ds = images.tfds_dataset(TFDS_NAME, "train", tfds_dir, download)
    except Exception as e:  # offline: DownloadError, ConnectionError, ... all mean "no data"
        if not download:  # prepared data that fails to read is a real error
            raise
        raise FileNotFoundError(_missing_message(data_dir, e)) from e
    utts = []
    for ex in ds.as_numpy_iterator():
        name = ex["audio/filename"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        meta = _parse_file_name(name)
        if meta is None:
            raise ValueError(f"TFDS {TFDS_NAME}: audio/filename {name!r} is not of the form "
                             "'{digit}_{speaker}_{take}.wav', so the take-based train/test split "
                             f"(takes 0-{TEST_TAKES - 1} = test) cannot be applied")
        digit, speaker, index = meta
        if int(ex["label"]) != digit:
            raise ValueError(f"TFDS {TFDS_NAME}: {name!r} has label {int(ex['label'])}, but its name says {digit}")
        audio = np.asarray(ex["audio"])
        wave = (audio.astype(np.float32) / 32768.0).reshape(-1)
        utts.append(Utterance(wave, digit, speaker, index, name))
    utts.sort(key=lambda u: (u.speaker, u.digit, u.index))
    return utts


def fsdd_lengths(data_dir=None):
    """``{split: [num_samples, ...]}`` from an offline ``manifest.csv``, or ``None``.

    Reads only the CSV (the ``num_samples`` column), so :func:`tfgen.data.info` can count
    chunks for non-default framings without decoding audio.
    """
    for d in images.idx_search_dirs("fsdd", data_dir):
        found = _manifest_rows(d)
        if found is not None and "num_samples" in found[1][0]:
            return _lengths_cached(found[0], os.stat(found[0]).st_mtime_ns)
    return None


@functools.lru_cache(maxsize=4)
def _lengths_cached(path, stamp):
    del stamp
    with open(path, newline="") as f:
        out = {"train": [], "test": []}
        for r in csv.DictReader(f):
            out[_split_of(int(r["index"]))].append(int(r["num_samples"]))
    return out


# ---------------------------------------------------------------------------------------------
# Chunking (IML §4.2)


def check_framing(frame_length, hop):
    """Validated ``(frame_length, hop)``; ``hop=None`` means half the frame (50% overlap)."""
    if isinstance(frame_length, bool) or not isinstance(frame_length, numbers.Integral) or frame_length < 2:
        raise ValueError(f"frame_length: expected an integer >= 2, got {frame_length!r}")
    frame_length = int(frame_length)
    if hop is None:
        if frame_length % 2:
            raise ValueError(f"frame_length={frame_length}: 50% overlap (hop=None) needs an even frame_length, "
                             "so that two Hann windows half a frame apart sum to 1")
        return frame_length, frame_length // 2
    if isinstance(hop, bool) or not isinstance(hop, numbers.Integral) or hop < 1:
        raise ValueError(f"hop: expected a positive integer or None, got {hop!r}")
    hop = int(hop)
    if frame_length % hop or frame_length // hop < 2:
        raise ValueError(f"hop={hop}: expected a proper divisor of frame_length={frame_length} (e.g. "
                         f"{frame_length // 2 if frame_length % 2 == 0 else 'an even frame_length with hop half of it'}"
                         "), so that shifted Hann windows sum to a constant and overlap-add inverts frame()")
    return frame_length, hop


def hann_window(frame_length: int = FRAME_LENGTH) -> np.ndarray:
    """The *periodic* Hann window ``w[n] = 0.5 - 0.5 cos(2 pi n / N)``, ``n = 0..N-1``, float64.

    Periodic (the DFT-even form, as ``tf.signal.hann_window(periodic=True)``) rather than
    symmetric: copies shifted by ``N / 2`` sum to exactly 1, which is what makes 50%
    overlap-add reconstruct the signal.
    """
    if isinstance(frame_length, bool) or not isinstance(frame_length, numbers.Integral) or frame_length < 1:
        raise ValueError(f"frame_length: expected a positive integer, got {frame_length!r}")
    n = np.arange(frame_length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame_length)


def n_frames(length: int, frame_length: int = FRAME_LENGTH, hop: int | None = None) -> int:
    """How many chunks :func:`frame` makes of ``length`` samples: ``ceil(length / hop) + N / hop - 1``
    (``ceil(length / 400) + 1`` for the default 800 / 400)."""
    frame_length, hop = check_framing(frame_length, hop)
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"length: expected a positive integer number of samples, got {length!r}")
    return -(-int(length) // hop) + frame_length // hop - 1


def _as_wave(wave, name="wave"):
    try:
        x = np.asarray(wave)
    except Exception as e:  # a symbolic tensor, ragged lists, ...
        raise ValueError(f"{name}: expected a 1-D float waveform (numpy array or eager tensor), "
                         f"could not convert it: {e}") from e
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (for int16 PCM divide by 32768 first)" if np.issubdtype(x.dtype, np.integer) else ""
        raise ValueError(f"{name}: expected a float waveform in [-1, 1], got dtype {x.dtype}{hint}")
    if x.ndim != 1:
        raise ValueError(f"{name}: expected one mono waveform of shape (num_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected a non-empty waveform, got 0 samples")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"{name}: expected finite values, found {len(bad)} NaN/Inf; the first at index {bad[0]}")
    return x


def frame(wave, frame_length: int = FRAME_LENGTH, hop: int | None = None) -> np.ndarray:
    """Cut a waveform into overlapping Hann-windowed chunks (IML §4.2): ``(n_frames, frame_length)`` float32.

    The defaults are the paper's: 800-sample (100 ms at 8 kHz) chunks, hop 400 (50% overlap),
    each multiplied by a periodic Hann window (:func:`hann_window`).

    Padding convention: ``frame_length - hop`` zeros (400 by default) are put before the
    signal and zeros after it up to a whole number of hops, so chunk ``j`` covers samples
    ``j * hop - (frame_length - hop)`` to ``j * hop + hop - 1`` of the signal. Every sample,
    the first and the last included, then lies under ``frame_length / hop`` windows whose
    values sum to a constant (1 at 50% overlap), and :func:`overlap_add` inverts this
    exactly: ``overlap_add(frame(x))[:len(x)] == x`` to float32 precision. There are
    :func:`n_frames` ``= ceil(len / hop) + frame_length / hop - 1`` chunks; the first and the
    last are partly padding (the first chunk's first half, for example, is zeros).

    Args:
        wave: float ``(num_samples,)`` array or eager tensor, finite, non-empty.
        frame_length: samples per chunk (>= 2).
        hop: samples between chunk starts; ``None`` (default) is ``frame_length // 2``, which
            needs an even ``frame_length``. Other hops must divide ``frame_length``.

    Raises:
        ValueError: a wave that is not a non-empty finite 1-D float array; a ``frame_length``
            or ``hop`` for which shifted windows would not sum to a constant.
    """
    frame_length, hop = check_framing(frame_length, hop)
    x = _as_wave(wave)
    k = frame_length // hop  # windows over each sample
    n = n_frames(len(x), frame_length, hop)
    padded = np.zeros((n + k - 1) * hop, np.float64)
    padded[frame_length - hop:frame_length - hop + len(x)] = x
    blocks = padded.reshape(n + k - 1, hop)
    # Chunk j is blocks j .. j+k-1 laid end to end.
    chunks = np.concatenate([blocks[i:i + n] for i in range(k)], axis=1)
    return (chunks * hann_window(frame_length)).astype(np.float32)


def overlap_add(frames, hop: int | None = None) -> np.ndarray:
    """Put chunks back into a waveform by overlap-add (IML §4.2): float32 ``(n_frames * hop,)``.

    Chunk ``j`` is added at ``j * hop - (frame_length - hop)`` (the :func:`frame` convention),
    the sum is divided by the window sum ``frame_length / (2 hop)`` (1 at 50% overlap, so
    then this is the paper's plain "overlap by 50 percent and add"), and the leading
    ``frame_length - hop`` samples, which only :func:`frame`'s padding reaches, are dropped.
    So ``overlap_add(frame(x))[:len(x)]`` is ``x``, and the rest is (near) zero. Generated
    chunks need no analysis window of their own: a decoder trained on windowed chunks
    outputs windowed chunks.

    Args:
        frames: ``(n_frames, frame_length)`` array or eager tensor of one utterance.
        hop: as in :func:`frame`; ``None`` is ``frame_length // 2``.
    """
    try:
        f = np.asarray(frames)
    except Exception as e:
        raise ValueError(f"frames: expected an array (n_frames, frame_length), could not convert it: {e}") from e
    if f.ndim != 2 or f.shape[0] == 0 or not np.issubdtype(f.dtype, np.floating):
        raise ValueError(f"frames: expected a non-empty float array (n_frames, frame_length) of one "
                         f"utterance, got {f.dtype} {f.shape}")
    frame_length, hop = check_framing(f.shape[1], hop)
    k = frame_length // hop
    n = f.shape[0]
    blocks = np.zeros((n + k - 1, hop), np.float64)
    parts = f.astype(np.float64).reshape(n, k, hop)
    for i in range(k):
        blocks[i:i + n] += parts[:, i]
    out = blocks.reshape(-1)[frame_length - hop:] / (k / 2.0)
    return out.astype(np.float32)


def utterance_chunks(split: str = "train", *, frame_length: int = FRAME_LENGTH, hop: int | None = None,
                     data_dir=None, source: str = "auto"):
    """One chunk sequence per FSDD recording: the sequences IML fits its HMM to.

    Returns:
        ``(chunks, digits)``: a list of float32 ``(n_frames_i, frame_length)`` arrays
        (:func:`frame` of each recording, in :func:`load_fsdd`'s order) and int64 digits.
    """
    frame_length, hop = check_framing(frame_length, hop)
    utts = load_fsdd(split, data_dir=data_dir, source=source)
    return [frame(u.wave, frame_length, hop) for u in utts], np.array([u.digit for u in utts], np.int64)


def chunk_arrays(split: str = "train", *, frame_length: int = FRAME_LENGTH, hop: int | None = None,
                 data_dir=None, source: str = "auto"):
    """All chunks of a split stacked: ``(x float32 (N, frame_length), y int64 (N,))``, ``y`` the
    digit of the recording each chunk came from. Recording by recording, in order."""
    seqs, digits = utterance_chunks(split, frame_length=frame_length, hop=hop, data_dir=data_dir, source=source)
    x = np.concatenate(seqs)
    y = np.repeat(digits, [len(s) for s in seqs])
    return x, y


# ---------------------------------------------------------------------------------------------
# WAV files


def _read_pcm16(path):
    """``(int16 (n,) or (n, channels), sample_rate)``; ``ValueError`` for anything else."""
    path = os.fspath(path)
    try:
        with wavelib.open(path, "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wavelib.Error, EOFError) as e:
        raise ValueError(f"{path}: not a readable PCM WAV file ({e})") from e
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM samples, got {8 * width}-bit")
    if len(raw) != frames * channels * width:
        raise ValueError(f"{path}: truncated: the header promises {frames} frames, the file holds "
                         f"{len(raw) // (channels * width)}")
    pcm = np.frombuffer(raw, "<i2")
    return (pcm if channels == 1 else pcm.reshape(-1, channels)), rate


def read_wav(path):
    """Read a 16-bit PCM WAV file: ``(wave, sample_rate)``.

    ``wave`` is float32 in [-1, 1) (int16 / 32768), ``(n,)`` for mono and ``(n, channels)``
    otherwise.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a WAV file, not 16-bit PCM, or truncated.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no WAV file at {os.fspath(path)!r}")
    pcm, rate = _read_pcm16(path)
    return pcm.astype(np.float32) / 32768.0, rate


def write_wav(path, wave, sample_rate: int = SAMPLE_RATE) -> str:
    """Write a mono waveform as a 16-bit PCM WAV file; returns the path.

    Values are clipped to [-1, 1] and stored as ``round(x * 32768)`` limited to the int16
    range, so :func:`read_wav` gives back ``x`` to within 1/65536 (and 1 as 32767/32768).
    The file is written next to ``path`` and moved into place, so a failure leaves any
    existing file untouched.

    Raises:
        ValueError: ``wave`` not a non-empty finite 1-D float array; bad ``sample_rate``.
    """
    x = _as_wave(wave)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    pcm = np.clip(np.round(np.clip(x.astype(np.float64), -1.0, 1.0) * 32768.0), -32768, 32767).astype("<i2")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".wav.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f, wavelib.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; a written file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def nominal_chunks(frame_length: int = FRAME_LENGTH, hop: int | None = None, data_dir=None):
    """``{split: number of chunks}`` of the full release for a framing, without decoding audio.

    The default framing uses the stored counts; others count from an offline manifest's
    ``num_samples`` if one is found, else are ``None`` (unknown until loaded).
    """
    frame_length, hop = check_framing(frame_length, hop)
    if (frame_length, hop) == (FRAME_LENGTH, FRAME_LENGTH // 2):
        return dict(FSDD["chunks"])
    lengths = fsdd_lengths(data_dir)
    if lengths is None:
        return {"train": None, "test": None}
    return {s: sum(n_frames(n, frame_length, hop) for n in ls) for s, ls in lengths.items()}

