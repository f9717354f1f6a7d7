"""Pictures of samples: image grids and 2-D scatter plots (matplotlib, Agg)."""

from __future__ import annotations

import math
import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(images, path, *, ncols: int | None = None, title: str | None = None) -> str:
    """Save ``images (n, h, w, c)`` in [0, 1] as one PNG grid; returns the path."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, h, w, 1 or 3), got {images.shape}")
    n, h, w, c = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    canvas = np.ones((nrows * (h + 1) + 1, ncols * (w + 1) + 1, c), np.float32)
    for i in range(n):
        r, q = divmod(i, ncols)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = images[i]
    plt = _plt()
    scale = max(1.0, 256 / canvas.shape[1])
    fig = plt.figure(figsize=(canvas.shape[1] * scale / 100 * 2, canvas.shape[0] * scale / 100 * 2 + (0.3 if title else 0)))
    ax = fig.add_axes([0, 0, 1, 0.93 if title else 1])
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray" if c == 1 else None,
              interpolation="nearest", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return path


def scatter(samples, path, *, data=None, centers=None, title: str | None = None, lim: float | None = None) -> str:
    """Save a scatter of 2-D ``samples`` over optional ``data`` and mode ``centers``."""
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"scatter needs (n, 2) samples, got {samples.shape}")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    if data is not None:
        data = np.asarray(data)
        ax.scatter(data[:, 0], data[:, 1], s=2, c="#bbbbbb", label="data", rasterized=True)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="#1f77b4", label="samples", rasterized=True)
    if centers is not None:
        centers = np.asarray(centers)
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="#d62728", s=30, label="modes")
    return _finish_2d(fig, ax, path, data if data is not None else samples, lim, title, markerscale=3)


def _finish_2d(fig, ax, path, ref, lim, title, markerscale):
    """Square axes of half-width ``lim`` (default 1.3x the largest finite
    coordinate of ``ref``), legend and title; saves and returns the path."""
    if lim is None:
        finite = ref[np.all(np.isfinite(ref), axis=1)]
        lim = 1.3 * float(np.max(np.abs(finite))) if finite.size else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=markerscale)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
    return path


def loss_curves(history: dict, path, *, title: str | None = None) -> str:
    """One panel per logged quantity of a Keras History dict."""
    keys = [k for k, v in history.items() if len(v)]
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(np.arange(1, len(history[k]) + 1), history[k])
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def _save(fig, path):
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def interpolation_codes(prior, rows: int = 8, steps: int = 10, seed: int = 0):
    """Codes on straight lines between pairs of prior draws: ``(rows * steps, dim)``,
    row ``r`` going from ``z0_r`` (t = 0) to ``z1_r`` (t = 1) in ``steps`` points."""
    import tensorflow as tf

    if rows < 1 or steps < 2:
        raise ValueError(f"need rows >= 1 and steps >= 2, got rows={rows}, steps={steps}")
    z0 = prior.sample(rows, seed=seed)
    z1 = prior.sample(rows, seed=seed + 1)
    t = tf.reshape(tf.linspace(0.0, 1.0, steps), [1, steps, 1])
    z = (1.0 - t) * z0[:, None, :] + t * z1[:, None, :]
    return tf.reshape(z, [rows * steps, -1])


def latent_interpolation(model, path, *, rows: int = 8, steps: int = 10, seed: int = 0,
                         title: str | None = None) -> str:
    """The SGN paper's Figure 3c for any image model with a ``prior``: each row
    decodes codes on the straight line between two prior draws. Returns the path."""
    if not hasattr(model, "prior"):
        raise ValueError("latent interpolation needs a Keras model with a prior "
                         "(load it with format='keras'), not a bare SavedModel")
    images = np.asarray(model.generate(interpolation_codes(model.prior, rows, steps, seed)))
    if images.ndim != 4:
        raise ValueError(f"latent interpolation draws images; this model generates shape {images.shape[1:]}")
    return image_grid(images, path, ncols=steps, title=title)


def manifold_traversal(model, starts, ends, path, *, steps: int = 10, reversal_steps: int = 500,
                       reversal_lr: float = 10.0, seed: int = 0, title: str | None = None) -> dict:
    """The KDE-GAN paper's manifold traversal: the codes of two real images are
    found by generator reversal (``tfgen.ops.reverse``, a fixed number of steps,
    no stopping test: the ends should reconstruct well), and each row shows the
    first image, ``steps`` decodings on the straight line between the two codes,
    and the second image. Works for any image model with a generator.

    Returns ``{"path", "reconstruction_mse"}`` (the mean per-pixel error of the
    reversed ends, so a poor reversal is visible in numbers too).
    """
    import tensorflow as tf

    from tfgen import ops

    starts, ends = np.asarray(starts, np.float32), np.asarray(ends, np.float32)
    if starts.shape != ends.shape or starts.ndim != 4:
        raise ValueError(f"starts and ends must be image batches of one shape (n, H, W, C), "
                         f"got {starts.shape} and {ends.shape}")
    if steps < 2:
        raise ValueError(f"need steps >= 2, got {steps}")
    if not hasattr(model, "generator"):
        raise ValueError("manifold traversal needs a Keras model with a generator "
                         "(load it with format='keras'), not a bare SavedModel")
    rows = len(starts)
    rev = ops.reverse(model.generator, np.concatenate([starts, ends]), steps=reversal_steps,
                      lr=reversal_lr, seed=seed)
    if not np.all(np.isfinite(rev.codes.numpy())):
        raise ValueError(f"the reversal diverged (non-finite codes) at lr {reversal_lr}: lower reversal_lr")
    z0, z1 = rev.codes[:rows], rev.codes[rows:]
    t = tf.reshape(tf.linspace(0.0, 1.0, steps), [1, steps, 1])
    z = tf.reshape((1.0 - t) * z0[:, None, :] + t * z1[:, None, :], [rows * steps, -1])
    decoded = np.asarray(model.generate(z)).reshape((rows, steps) + starts.shape[1:])
    grid = np.concatenate([starts[:, None], decoded, ends[:, None]], axis=1)
    image_grid(grid.reshape((-1,) + starts.shape[1:]), path, ncols=steps + 2, title=title)
    return {"path": path, "reconstruction_mse": float(np.mean(rev.error))}


def latent_grid_codes(prior, n: int = 21, low=None, high=None):
    """An ``n x n`` regular grid over a 2-D latent box, ``(n * n, 2)``, row-major.

    The box is the prior's support for a ``Uniform`` prior (``low``/``high``),
    else ``[-2, 2]^2`` (two standard deviations of a standard Gaussian)."""
    if prior.dim != 2:
        raise ValueError(f"the latent grid needs a 2-D latent space, this model's has {prior.dim} dimensions")
    if n < 2:
        raise ValueError(f"the grid needs n >= 2 points per side, got {n}")
    if low is None:
        low = float(np.min(np.asarray(prior.low))) if hasattr(prior, "low") else -2.0
    if high is None:
        high = float(np.max(np.asarray(prior.high))) if hasattr(prior, "high") else 2.0
    t = np.linspace(low, high, n, dtype=np.float32)
    u, v = np.meshgrid(t, t, indexing="ij")
    return np.stack([u.ravel(), v.ravel()], 1)


def latent_grid(model, path, *, n: int = 21, data=None, centers=None, title: str | None = None,
                lim: float | None = None) -> str:
    """The Level Set GAN paper's toy picture (its Figs. 1 and 2, left): the
    generator evaluated on a regular grid of its 2-D latent space, the images
    of the grid lines drawn over the data. A generator that keeps the grid's
    local structure and contracts it onto the modes draws dense knots at the
    modes joined by stretched lines. Returns the path."""
    if not hasattr(model, "prior"):
        raise ValueError("the latent grid needs a Keras model with a prior (format='keras')")
    z = latent_grid_codes(model.prior, n)
    x = np.asarray(model.generate(z))
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"the latent grid draws 2-D data; this model generates shape {x.shape[1:]}")
    grid = x.reshape(n, n, 2)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    if data is not None:
        data = np.asarray(data)
        ax.scatter(data[:, 0], data[:, 1], s=2, c="#bbbbbb", label="data", rasterized=True)
    for i in range(n):  # lines of constant z1, then of constant z2
        ax.plot(grid[i, :, 0], grid[i, :, 1], c="#1f77b4", lw=0.6)
        ax.plot(grid[:, i, 0], grid[:, i, 1], c="#1f77b4", lw=0.6)
    ax.scatter(grid[..., 0].ravel(), grid[..., 1].ravel(), s=3, c="#1f77b4", label=f"G on a {n}x{n} grid")
    if centers is not None:
        centers = np.asarray(centers)
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="#d62728", s=30, label="modes")
    return _finish_2d(fig, ax, path, data if data is not None else x, lim, title, markerscale=2)


def spectrograms(waves, titles=None, sample_rate: int = 8000, path=None, *, ncols: int | None = None,
                 window: int = 256, hop: int = 64, dynamic_range_db: float = 80.0, suptitle: str | None = None):
    """Log-magnitude spectrograms of waveforms in a grid, as IML's Figure 6 shows its spoken digits.

    Each waveform is cut into ``window``-sample Hann-windowed frames ``hop`` apart
    (:func:`tfgen.data.audio.frame`), and ``20 log10 |rfft|`` is drawn (time across, frequency
    up to ``sample_rate / 2``), shown over the top ``dynamic_range_db`` decibels of each panel.

    Args:
        waves: one float waveform ``(n,)`` or a sequence of them (lengths may differ), or a
            2-D array ``(count, n)``.
        titles: one title per waveform, or ``None``.
        sample_rate: Hz, for the axes.
        path: where to save a PNG; ``None`` returns the open figure instead.
        ncols: panels per row (default: all in one row up to 4, then rows of 4).
        window, hop: the STFT frame and hop in samples (``hop`` must divide ``window``).

    Returns:
        ``path`` when given (the figure is saved and closed), else the matplotlib figure.
    """
    from tfgen.data.audio import frame

    if hasattr(waves, "shape") and len(waves.shape) == 1:  # one waveform (numpy or eager tensor)
        waves = [waves]
    waves = list(waves)
    if not waves:
        raise ValueError("waves: expected at least one waveform")
    if titles is not None and len(titles) != len(waves):
        raise ValueError(f"titles: expected one per waveform ({len(waves)}), got {len(titles)}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    specs = []
    for i, w in enumerate(waves):
        try:
            frames = frame(w, window, hop)
        except ValueError as e:
            raise ValueError(f"waves[{i}]: {e}") from e
        mag = np.abs(np.fft.rfft(frames.astype(np.float64), axis=1)).T  # (freq, time)
        db = 20.0 * np.log10(np.maximum(mag, 1e-10))
        specs.append(np.maximum(db, db.max() - dynamic_range_db))
    n = len(specs)
    ncols = ncols or min(n, 4)
    nrows = int(math.ceil(n / ncols))
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        seconds = specs[i].shape[1] * hop / sample_rate
        ax.imshow(specs[i], origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                  extent=[0.0, seconds, 0.0, sample_rate / 2000.0])
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    # tight_layout ignores a suptitle: keep the top 0.35 inch for it, or it covers the first row's titles
    top = 1.0 - (0.35 / fig.get_figheight() if suptitle else 0.0)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
    if path is None:
        return fig
    _save(fig, path)
    return path
