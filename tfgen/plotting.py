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
    if lim is None:
        ref = data if data is not None else samples
        finite = ref[np.all(np.isfinite(ref), axis=1)]
        lim = 1.3 * float(np.max(np.abs(finite))) if finite.size else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
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
