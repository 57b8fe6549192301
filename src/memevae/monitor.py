"""What a run shows while it trains: per-epoch cross coherence, learning curves, generation grids.

These are trainer callbacks (:class:`memevae.training.trainer.Callback`) that :func:`memevae.train`
adds to every run; they stand beside it, above :mod:`memevae.evaluation`, whose measures and
figures they use:

- :class:`CoherenceMonitor` measures cross coherence in every direction (paper Sec. 4.1, "Cross
  Coherence") after each epoch on a fixed set of test pairs, with judges (digit classifiers) trained on the
  train split only, and adds ``coherence/<source>-><target>`` to the epoch's record, so it lands in
  ``metrics.jsonl`` and the checkpoint's history beside the losses.
- :class:`LearningCurves` redraws ``figures/curves.png`` (losses and coherence against epochs)
  after each epoch (:func:`memevae.evaluation.curves.plot_curves`, which also draws several runs
  side by side: ``memevae curves RUN...``).
- :class:`GenerationGrid` saves cross- and self-generations of ten fixed test digits.

The per-epoch coherence uses the first ``items`` test pairs (500 by default; test pairs are
shuffled by the data seed, so about 50 per class) and a fixed latent-noise seed, so two epochs or
two runs are compared on the same items and noise. It is a monitor: ``memevae evaluate`` measures
coherence on every test pair.
"""

from __future__ import annotations

import time

from .evaluation.curves import coherence_keys, plot_curves
from .evaluation.metrics.coherence import cross_coherence
from .training.trainer import Callback


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
        rows = test_data.paired_rows()
        if len(rows) == 0:
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
        from .evaluation.figures import save_generation_grid

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


__all__ = ["CoherenceMonitor", "GenerationGrid", "LearningCurves", "TensorBoard"]
