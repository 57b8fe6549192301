"""Helpers shared by the metrics: eval mode, batched posteriors, batches, progress bars, labels."""

from __future__ import annotations

import contextlib
import sys
import time

import torch

from ..data.formats import as_float_images

def dataset_label(variant: str) -> str:
    """The name results are published under (the data set's declared label: "MNIST-Textured" is never
    called "MNIST-SVHN"), with a data variant's rendering named ("mnist-textured/bright-v1" ->
    "MNIST-Textured (bright-v1)").

    >>> dataset_label("mnist-textured/bright-v1"), dataset_label("mnist-svhn")
    ('MNIST-Textured (bright-v1)', 'MNIST-SVHN')
    """
    from ..data import registry

    dataset, _, rendering = variant.partition("/")
    label = registry.get(dataset).label if dataset in registry.names() else dataset
    return f"{label} ({rendering})" if rendering else label


def label_noun(data) -> str:
    """What the labels of ``data`` (a :class:`~memevae.data.MultimodalDataset`) are called in figures
    and metric keys: its data set's ``label_noun``, "digit" or "class" (CUB)."""
    from ..data import registry

    return registry.get(data.name).label_noun if data.name in registry.names() else "digit"


@contextlib.contextmanager
def evaluation_mode(model):
    """``model.eval()`` and ``torch.no_grad()`` inside; the previous train/eval mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")




def paired_rows(data) -> torch.Tensor:
    """Row numbers of the fully observed rows of a MultimodalDataset (all test rows are); a
    one-line ValueError when it has none."""
    rows = data.paired_rows()
    if len(rows) == 0:
        raise ValueError(f"{data.name} has no fully observed rows; evaluation needs paired test data")
    return rows


def batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


PROGRESS_EVERY_S = 60.0
"""Seconds between the plain progress lines of a metric whose output is not a terminal."""


class Progress:
    """Progress of a metric's loop: a tqdm bar on a terminal; when ``stream`` (stderr by default) is
    not one (e.g. redirected to a log file) a plain line at most every ``every_s`` seconds
    (:data:`PROGRESS_EVERY_S` by default) of ``clock`` instead, such as ``log-likelihood (K=1000): 12/128 batches, 61 s`` (with the
    postfix, e.g. ``, loss 16165.1``), as training's progress does; nothing when ``progress`` is
    False. ``update``, ``set_postfix`` and ``close`` as tqdm's."""

    def __init__(self, total: int, description: str, progress: bool = True, unit: str = "batch", stream=None,
                 every_s: float | None = None, clock=time.monotonic):
        from tqdm.auto import tqdm

        from ..training.callbacks import _is_terminal

        self.stream = stream or sys.stderr
        terminal = _is_terminal(self.stream)
        self.bar = tqdm(total=total, desc=description, unit=unit, file=self.stream, disable=not (progress and terminal),
                        leave=False, dynamic_ncols=True)
        self.lines = progress and not terminal
        self.total, self.description, self.unit, self.clock = total, description, unit, clock
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.done, self.postfix = 0, {}
        self.started = self.shown = clock()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        now = self.clock()
        if self.lines and now - self.shown >= self.every_s:
            self.shown = now
            postfix = "".join(f", {key} {value}" for key, value in self.postfix.items())
            print(f"{self.description}: {self.done}/{self.total} {self.unit}{'es' if self.unit.endswith('h') else 's'}, "
                  f"{now - self.started:.0f} s{postfix}", file=self.stream, flush=True)

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = values
        self.bar.set_postfix(refresh=refresh, **values)

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, description: str, progress: bool, unit: str = "batch") -> Progress:
    """A :class:`Progress` on stderr."""
    return Progress(total, description, progress, unit)


def posteriors(model, modality: str, images: torch.Tensor, batch_size: int = 500, progress: bool = False,
               description: str | None = None, prepare=as_float_images) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, scale) of q(z | x) for every example, on the CPU, computed in eval mode. ``images``:
    bank rows, turned into model inputs by ``prepare`` (the data's format, ``data.formats[m].prepare``;
    by default images as float in [0, 1])."""
    device = model_device(model)
    locs, scales = [], []
    n = len(images)
    bar = progress_bar((n + batch_size - 1) // batch_size, description or f"encode {modality}", progress)
    with evaluation_mode(model):
        for part in batches(n, batch_size):
            q = model.encode(modality, prepare(images[part]).to(device))
            locs.append(q.loc.float().cpu())
            scales.append(q.scale.float().cpu())
            bar.update(1)
    bar.close()
    return torch.cat(locs), torch.cat(scales)
