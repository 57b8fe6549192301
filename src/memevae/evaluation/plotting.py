"""Figures for files: matplotlib's object API, no pyplot and no global backend.

memevae draws every figure on a :class:`matplotlib.figure.Figure` of its own and writes it with
the Agg renderer, so it never calls ``matplotlib.use`` or touches pyplot's state: a notebook keeps
its inline backend, and figures written here never pop up or pile up in pyplot's figure list.
"""

from __future__ import annotations

import textwrap

from .. import io

DPI = 150


def subplots(*args, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure that pyplot does not manage."""
    from matplotlib.figure import Figure

    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def wrap_title(title: str, width: float, fontsize: float) -> str:
    r"""``title`` broken into lines no wider than ``width`` inches at ``fontsize`` points (about
    0.6 em a character); its own line breaks are kept.

    >>> wrap_title("MEME on PolyMNIST-Textured, f = 1\ncross- and self-generation of test examples", 2.0, 9)
    'MEME on PolyMNIST-\nTextured, f = 1\ncross- and self-generation\nof test examples'
    """
    columns = max(20, int(width * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, width=columns) for line in title.splitlines())


def suptitle(fig, title: str, fontsize: float = 10):
    """``fig``'s title, wrapped to the figure's width: a run's name and its numbers easily outgrow
    a narrow figure, and a line wider than the figure is cut off at both edges."""
    return fig.suptitle(wrap_title(title, fig.get_figwidth(), fontsize), fontsize=fontsize)


def new_figure(width: float = 5.0, height: float = 3.6):
    return subplots(figsize=(width, height))


def colours() -> list[str]:
    """The default colour cycle."""
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def colour_map(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def legend_below(fig, axes, fontsize: float = 7):
    """One legend for all of ``axes`` (each label once, in the order drawn) under the figure's
    panels, where it covers no data, in as many columns as entries of its longest label fit the
    figure's width; :func:`save` enlarges the written image to hold it. Returns the legend (None
    when nothing is labelled)."""
    entries = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if not entries:
        return None
    column = (0.6 * fontsize * max(map(len, entries)) + 3 * fontsize) / 72  # inches: the label and its handle
    columns = max(1, min(len(entries), int(fig.get_figwidth() / column)))
    return fig.legend(list(entries.values()), list(entries), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=columns, fontsize=fontsize, frameon=False)


def save(fig, path, dpi: int = DPI, tight: bool = True):
    """Write ``fig`` as a PNG atomically (tight layout by default) and return the path; a figure
    legend outside the figure (:func:`legend_below`) is included by enlarging the image."""
    if tight:
        fig.tight_layout()
    return io.save_figure(path, fig, dpi=dpi, **({"bbox_inches": "tight"} if fig.legends else {}))
