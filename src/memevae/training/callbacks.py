"""Callbacks: progress, metrics log, checkpoints. (Those that measure or draw, such as the per-epoch
coherence and the figures, live in :mod:`memevae.monitor`.)"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from .rundir import RunDir
from .trainer import Callback, TrainingError, parameters_finite


class ProgressBar(Callback):
    """A bar per epoch with the running mean loss; one summary line per epoch.

    ``disable=None`` (the default) draws the bar only on a terminal; when ``stream`` is not one (e.g.
    stderr redirected to a log file) it writes instead a plain line at most every ``every_s`` seconds
    of ``clock``, such as ``epoch 3/10: step 120/469, 45 items/s, loss 16165.1`` (items/s from the
    batch size, the running mean loss), so a long epoch shows it is alive."""

    def __init__(self, stream=None, disable: bool | None = None, every_s: float = 60.0, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.disable = disable
        self.lines = disable is None and not _is_terminal(self.stream)
        self.every_s = every_s
        self.clock = clock
        self.bar = None
        self.total = 0.0
        self.epoch = self.batches = 0
        self.started = self.shown = 0.0

    def on_fit_start(self, trainer):
        failed = [name for name, took in trainer.cpu_settings.items() if not took]
        if failed and not self.disable:
            print(f"note: the CPU setting(s) {', '.join(failed)} did not take effect on this machine; training computes "
                  f"the same values, possibly more slowly (memevae.training.cpu)", file=self.stream, flush=True)

    def on_epoch_start(self, trainer, epoch, batches):
        self.total = 0.0
        self.epoch, self.batches = epoch, batches
        self.started = self.shown = self.clock()
        self.bar = tqdm(total=batches, desc=f"epoch {epoch}/{trainer.config.epochs}", unit="batch",
                        file=self.stream, disable=self.disable, leave=False, dynamic_ncols=True)

    def on_batch_end(self, trainer, step, loss):
        self.total += loss
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.total / (step + 1):.1f}", refresh=False)
        now = self.clock()
        if self.lines and now - self.shown >= self.every_s:
            self.shown = now
            rate = (step + 1) * trainer.config.batch_size / max(now - self.started, 1e-9)
            print(f"epoch {self.epoch}/{trainer.config.epochs}: step {step + 1}/{self.batches}, {rate:.0f} items/s, "
                  f"loss {self.total / (step + 1):.1f}", file=self.stream, flush=True)

    def on_epoch_end(self, trainer, record):
        self.bar.close()
        losses = [f"{key.removeprefix('train/')} {value:.1f}" for key, value in record.items() if key.startswith("train/") and key.endswith("/loss")]
        test = record.get("test/paired/loss", "absent")
        coherence = [f"{key.removeprefix('coherence/')} {value:.3f}" for key, value in record.items() if key.startswith("coherence/")]
        line = (f"epoch {record['epoch']}/{trainer.config.epochs}: " + ", ".join(losses)
                + ("" if test == "absent" else ", test non-finite" if test is None else f", test {test:.1f}")
                + (f"; coherence {', '.join(coherence)}" if coherence else "")
                + f" ({record['time/epoch_s']:.1f} s, {record['time/items_per_s']:.0f} items/s)")
        if not self.disable:
            print(line, file=self.stream, flush=True)


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Checkpointer(Callback):
    """Writes ``checkpoints/last.pt`` after every epoch (and ``epoch-NNNN.pt`` every ``every``
    epochs), atomically: model, optimiser, RNG state, epoch, history, and the run config."""

    def __init__(self, run_dir: RunDir, config: dict, every: int = 0):
        self.run_dir = run_dir
        self.config = config
        self.every = every

    def on_epoch_end(self, trainer, record):
        if not parameters_finite(trainer.model):  # never replace a good checkpoint by a broken one
            raise TrainingError(f"the parameters became non-finite during epoch {record['epoch']}; its checkpoint was not written")
        state = {**trainer.state_dict(), "config": self.config}
        names = ["last"] + ([f"epoch-{record['epoch']:04d}"] if self.every and record["epoch"] % self.every == 0 else [])
        try:
            self.run_dir.save_checkpoint(state, *names)
        except OSError as error:  # e.g. a full disk: the write went to a temporary file, now removed
            raise TrainingError(f"could not write the checkpoint of epoch {record['epoch']} in {self.run_dir.checkpoints} "
                                f"({error.strerror or error}); no checkpoint file was changed by the failed write") from None


class MetricsLog(Callback):
    """Rewrites ``metrics.jsonl`` (one JSON object per epoch) from the trainer's history."""

    def __init__(self, run_dir: RunDir):
        self.run_dir = run_dir

    def on_fit_start(self, trainer):
        self.run_dir.write_metrics(trainer.history)

    def on_epoch_end(self, trainer, record):
        self.run_dir.write_metrics(trainer.history)
