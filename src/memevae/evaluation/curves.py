"""The learning curves of runs: losses and per-epoch cross coherence against epochs
(``figures/curves.png`` of each run, ``memevae curves RUN...`` for several side by side)."""

from __future__ import annotations

CHANCE = 0.1
"""Coherence of a model whose generations carry no class information (ten balanced classes)."""


def coherence_keys(record: dict) -> list[str]:
    """The per-epoch coherence entries of a metrics record, e.g. ``["coherence/mnist->textured", ...]``."""
    return sorted(key for key in record if key.startswith("coherence/"))


def _loss_keys(history: list[dict]) -> list[str]:
    keys = {key for record in history for key in record if key.endswith("/loss") and key.split("/")[0] in ("train", "test")}
    return sorted(keys, key=lambda k: (k.startswith("test"), k))


def _markevery(points: list) -> int:
    """Every how many points a line of ``points`` draws a marker: all of them up to 15, then about 15."""
    return max(1, len(points) // 15)


def plot_curves(histories: dict[str, list[dict]], path, title: str = ""):
    """Losses (left) and per-epoch coherence (right, chance dashed) against epochs. With one run each
    coherence direction has a colour of its own; with several, each run has a colour. Every line
    has markers (so a single epoch shows as points) and, per direction or kind of loss, its own
    marker; a run's train losses per kind of batch are solid, its test loss dotted, coherence
    directions differ in line style. The epoch axis has integer ticks. Without any coherence in the
    histories (no judges, e.g. CUB) the losses fill the figure alone. Returns the path.

    >>> history = [{"epoch": e, "train/paired/loss": 100 / e, "coherence/a->b": 0.1 * e} for e in (1, 2, 3)]
    >>> plot_curves({"demo": history}, "curves.png").name  # doctest: +SKIP
    'curves.png'
    """
    from matplotlib.ticker import MaxNLocator

    from .plotting import colours as colour_cycle
    from .plotting import save, subplots, suptitle

    any_coherence = any(coherence_keys(record) for history in histories.values() for record in history)
    if any_coherence:
        fig, (losses, coherence) = subplots(1, 2, figsize=(10, 3.8))
    else:
        fig, losses = subplots(1, 1, figsize=(5.6, 3.8))
    colours = colour_cycle()
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v", "P"]
    several = len(histories) > 1
    last_epoch = 1
    for n, (label, history) in enumerate(histories.items()):
        colour = colours[n % len(colours)]
        epochs = [record["epoch"] for record in history]
        for k, key in enumerate(_loss_keys(history)):
            points = [(record["epoch"], record[key]) for record in history if record.get(key) is not None]  # None: non-finite
            if not points:
                continue
            style = ":" if key.startswith("test") else "-"
            losses.plot(*zip(*points), style, marker=markers[k % len(markers)], markersize=4, markevery=_markevery(points),
                        color=colour, alpha=1.0 if "paired" in key else 0.6, label=f"{label}: {key.removesuffix('/loss')}")
        keys = sorted({key for record in history for key in coherence_keys(record)})
        for k, key in enumerate(keys):
            points = [(record["epoch"], record[key]) for record in history if record.get(key) is not None]
            if not points:
                continue
            coherence.plot(*zip(*points), styles[k % len(styles)], marker=markers[k % len(markers)], markersize=4,
                           markevery=_markevery(points), color=colour if several else colours[k % len(colours)],
                           label=f"{label}: {key.removeprefix('coherence/')}")
        last_epoch = max([last_epoch, *epochs])
    for ax in (losses, coherence) if any_coherence else (losses,):
        ax.set_xlim(0.5, last_epoch + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss (negative objective per item)")
    values = [v for line in losses.get_lines() for v in line.get_ydata()]
    if values and min(values) > 0:  # kinds of batches differ by orders of magnitude: a log axis with plain labels
        from matplotlib.ticker import FuncFormatter, LogLocator

        losses.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        losses.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        losses.yaxis.set_major_formatter(plain)
        losses.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    losses.set_title("losses", fontsize=10)
    losses.legend(fontsize=6, loc="upper right")
    if any_coherence:
        coherence.axhline(CHANCE, color="grey", linestyle="--", linewidth=0.8, label="chance")
        coherence.set_ylim(0, 1)
        coherence.set_xlabel("epoch")
        coherence.set_ylabel("cross coherence")
        coherence.set_title("cross coherence (fixed test pairs)", fontsize=10)
        coherence.legend(fontsize=6, loc="upper left")
    if title:
        suptitle(fig, title, 10)
    return save(fig, path)


__all__ = ["CHANCE", "coherence_keys", "plot_curves"]
