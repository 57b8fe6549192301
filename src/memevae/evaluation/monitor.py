"""What a run shows while it trains: per-epoch cross coherence, learning curves, generation grids.

These are trainer callbacks (:class:`memevae.training.trainer.Callback`) that :func:`memevae.train`
adds to every run:

- :class:`CoherenceMonitor` measures cross coherence in every direction (paper Sec. 4.1, "Cross
  Coherence") after each epoch on a fixed set of test pairs, with judges (digit classifiers) trained on the
  train split only, and adds ``coherence/<source>-><target>`` to the epoch's record, so it lands in
  ``metrics.jsonl`` and the checkpoint's history beside the losses.
- :class:`LearningCurves` redraws ``figures/curves.png`` (losses and coherence against epochs)
  after each epoch; :func:`plot_curves` draws the same figure for several runs side by side
  (``memevae curves RUN...``).
- :class:`GenerationGrid` saves cross- and self-generations of ten fixed test digits.

The per-epoch coherence uses the first ``items`` test pairs (500 by default; test pairs are
shuffled by the data seed, so about 50 per class) and a fixed latent-noise seed, so two epochs or
two runs are compared on the same items and noise. It is a monitor: ``memevae evaluate`` measures
coherence on every test pair.
"""

from __future__ import annotations

import time

from ..training.trainer import Callback
from .metrics.coherence import cross_coherence

CHANCE = 0.1
"""Coherence of a model whose generations carry no class information (ten balanced classes)."""


def coherence_keys(record: dict) -> list[str]:
    """The per-epoch coherence entries of a metrics record, e.g. ``["coherence/mnist->textured", ...]``."""
    return sorted(key for key in record if key.startswith("coherence/"))


class CoherenceMonitor(Callback):
    """Cross coherence after every epoch on the first ``items`` paired rows of ``test_data``; adds
    ``coherence/<s>-><t>`` and ``time/coherence_s`` to the record. With more than two modalities
    it measures every direction from a subset to a missing modality and records their means by
    subset size, ``coherence/mean/<k>`` (the full table is ``memevae evaluate``'s).

    Must come before the callbacks that write the record (checkpoints, metrics log, figures).

    Example (two fake judges that read a digit's class from nothing: chance, whatever the model):
        >>> import torch
        >>> from memevae.data import load_pairs
        >>> from memevae.models import MEME, MEMEConfig
        >>> from memevae.training.trainer import Trainer, TrainConfig
        >>> test = load_pairs("mnist-textured", "test")
        >>> judges = {m: (lambda x: torch.zeros(len(x), 10)) for m in test.modalities}  # always "0"
        >>> model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=4))
        >>> trainer = Trainer(model, test.subset(torch.arange(64)), TrainConfig(epochs=1, batch_size=32, test_samples=64),
        ...                   callbacks=[CoherenceMonitor(test, judges, items=200)])
        >>> record = trainer.fit()[-1]
        >>> round(record["coherence/mnist->textured"], 2), round(record["coherence/textured->mnist"], 2)
        (0.1, 0.1)
    """

    def __init__(self, test_data, judges: dict, items: int = 500, seed: int = 0):
        rows = test_data.patterns().get(tuple(test_data.modalities))
        if rows is None or len(rows) == 0:
            raise ValueError("the per-epoch coherence needs paired test rows")
        self.data = test_data.subset(rows[:items])
        self.judges = judges
        self.seed = seed

    def on_epoch_end(self, trainer, record):
        started = time.perf_counter()
        values = cross_coherence(trainer.model, self.data, self.judges, seed=self.seed, progress=False)
        summary = len(self.data.modalities) > 2
        record.update({f"coherence/{key}": value for key, value in values.items()
                       if key != "items" and (key.startswith("mean/") or not summary)})
        record["time/coherence_s"] = time.perf_counter() - started


class GenerationGrid(Callback):
    """Saves a cross- and self-generation grid of fixed test examples after each ``every`` epochs
    (and the last) as ``figures/generation-epoch-NNNN.png``."""

    def __init__(self, figures, examples: dict, every: int = 1, title: str = "", show=None):
        self.figures = figures
        self.examples = examples
        self.every = every
        self.title = title
        self.show = show
        """What a person sees of examples (:meth:`memevae.data.MultimodalDataset.show`); None: images."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] % self.every and record["epoch"] != trainer.config.epochs:
            return
        from .figures import save_generation_grid

        heading = f"{self.title + ', ' if self.title else ''}epoch {record['epoch']}"
        coherence = ", ".join(f"{key.removeprefix('coherence/')} {record[key]:.2f}" for key in coherence_keys(record))
        save_generation_grid(trainer.model, self.examples, self.figures / f"generation-epoch-{record['epoch']:04d}.png",
                             title=heading + (f" (coherence {coherence})" if coherence else ""), show=self.show)


class TensorBoard(Callback):
    """Each epoch's values (losses, test losses, cross coherence, timings) as TensorBoard scalars
    and its generation grid (when :class:`GenerationGrid` wrote one) as an image, in ``folder``.
    Needs ``pip install "memevae[tensorboard]"``; view with ``tensorboard --logdir RUN/tensorboard``."""

    def __init__(self, folder, figures=None):
        self.writer = self.writer_class()(str(folder))
        self.figures = figures

    @staticmethod
    def writer_class():
        """torch's ``SummaryWriter``; a one-line error naming the extra when the tensorboard package is missing."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError('TensorBoard logging needs the tensorboard package: pip install "memevae[tensorboard]"') from None
        return SummaryWriter

    def on_epoch_end(self, trainer, record):
        epoch = record["epoch"]
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, epoch)
        grid = self.figures / f"generation-epoch-{epoch:04d}.png" if self.figures is not None else None
        if grid is not None and grid.exists():
            import matplotlib.image

            self.writer.add_image("generation", matplotlib.image.imread(grid)[..., :3], epoch, dataformats="HWC")
        self.writer.flush()

    def on_fit_end(self, trainer):
        self.writer.close()


class LearningCurves(Callback):
    """Redraws ``figures/curves.png`` from the trainer's history after every epoch."""

    def __init__(self, figures, title: str = ""):
        self.figures = figures
        self.title = title

    def on_epoch_end(self, trainer, record):
        plot_curves({self.title or "run": trainer.history}, self.figures / "curves.png")


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


def load_history(path) -> list[dict]:
    """A run's per-epoch records from its ``metrics.jsonl``."""
    from ..training.rundir import RunDir, RunError

    run = RunDir(path)
    if not run.metrics_path.exists():
        raise RunError(f"{path} has no metrics.jsonl: not a memevae run, or one that has not finished an epoch")
    return run.read_metrics()


__all__ = ["CoherenceMonitor", "GenerationGrid", "LearningCurves", "plot_curves", "coherence_keys", "load_history", "CHANCE"]
