"""Matplotlib set-up shared by the evaluation figures: Agg backend, atomic PNG writes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import io  # noqa: E402

DPI = 150


def new_figure(width: float = 5.0, height: float = 3.6):
    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def save(fig, path, dpi: int = DPI):
    """Write ``fig`` as a PNG atomically (tight layout), close it and return the path."""
    fig.tight_layout()
    out = io.save_figure(path, fig, dpi=dpi)
    plt.close(fig)
    return out
