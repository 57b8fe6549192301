"""The metric protocol: what a metric of the paper's Sec. 4 declares, what it may use, and how
metrics are found.

A metric is a subclass of :class:`Metric` in a module of :mod:`memevae.evaluation.metrics`: its
``name``, a one-line ``description``, its typed ``Options`` dataclass (each field documented under
it; ``Literal`` for choices), what it ``needs`` from the run ("judges": the judge of each target
modality; "train": the training pairs), whether it is ``cheap`` (run by default), the ``figures``
it may write, the optional packages it ``requires``, and ``compute(context, options) -> values``. :func:`evaluate
<memevae.evaluation.evaluate>` runs a list of them and records each one's values, wall time and
figures; the command line builds ``--<metric>-<option>`` flags from the ``Options`` fields. For
``memevae report`` (:mod:`memevae.evaluation.paper.report`) a metric writes its own section of the
report over many runs (:meth:`Metric.report`) and may list values for its table of other
measures (``report_columns``). Adding a metric is adding one module there.

Example:
    >>> sorted(metrics())[:3]
    ['cca-coherence', 'coherence', 'grids']
    >>> metrics()["tsne"].Options().points
    2000
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import ClassVar

from .. import options as typed
from ..data.pairs import recorded_variant
from ._common import dataset_label


@dataclass
class NoOptions:
    """A metric without options."""


class Metric:
    """One metric: subclass it in a module of :mod:`memevae.evaluation.metrics` (module text)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    needs: ClassVar[frozenset[str]] = frozenset()
    """From the context: "judges" (a judge per target modality), "train" (the training pairs)."""
    cheap: ClassVar[bool] = True
    """Part of the default set (a few seconds to a minute on a CPU)."""
    order: ClassVar[int] = 100
    """Where it comes in listings and in the default run (lower first)."""
    figures: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    """Packages of the ``eval`` extra it imports (e.g. "scikit-learn"); checked before any metric runs."""
    report_columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(value key, column title) of the values the report's "Other measures" table shows, one row per
    group of runs (mean ± std over seeds); for a metric without a section of its own."""

    def compute(self, context: "Context", options) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def unsupported(cls, dataset) -> str | None:
        """Why this metric cannot measure runs on ``dataset`` (a :class:`~memevae.data.DataSet`), or None.
        By default a metric that needs judges needs a data set whose classes judges read."""
        if "judges" in cls.needs and not dataset.judged:
            return f"it needs judges (classifiers) of the classes, and {dataset.label} has none"
        return None

    def headline(self, values: dict) -> dict[str, float]:
        """The few numbers worth printing: by default the top-level float values."""
        return {k: v for k, v in values.items() if isinstance(v, float) and "/" not in k and k != "items"}

    def report(self, part) -> list[str]:
        """This metric's section of the report over many runs for one data set: markdown lines
        (figures written into the report's folder), or [] for none, the default. ``part`` is a
        :class:`memevae.evaluation.paper.report.Part`: the runs of the data set, their recorded
        values, and the tables and figures the report lays them out with."""
        return []

    @classmethod
    def options(cls, given=None):
        """``Options`` from a dict (unknown keys a one-line error), an ``Options`` instance, or None (defaults)."""
        if isinstance(given, cls.Options):
            typed.check_choices(given)
            return given
        return typed.build(cls.Options, dict(given or {}), f"metric {cls.name!r}")


@cache
def metrics() -> dict[str, type[Metric]]:
    """Every metric of :mod:`memevae.evaluation.metrics`, by name, in their ``order``."""
    from . import metrics as package

    found = []
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        found += [value for value in vars(loaded).values()
                  if isinstance(value, type) and issubclass(value, Metric) and value.__module__ == loaded.__name__]
    return {m.name: m for m in sorted(found, key=lambda m: (m.order, m.name))}


def default_metrics() -> tuple[str, ...]:
    return tuple(name for name, metric in metrics().items() if metric.cheap)


@dataclass
class Context:
    """What a metric may use; the expensive parts (data, judges) are loaded on first use."""

    run: object
    figures_dir: Path
    judges_source: object = None
    """A judge folder, {modality: callable}, or None (the default folder of the run's data)."""
    progress: bool = True
    seed: int = 0

    @property
    def model(self):
        return self.run.model

    @cached_property
    def data_config(self):
        return self.run.data_config

    @cached_property
    def test(self):
        return self.run.load_data("test")

    @cached_property
    def train(self):
        """Every training pair (the partial-observation scheme NOT applied: probes see all images)."""
        return self.run.training_pairs()

    @cached_property
    def judges(self) -> dict:
        from .judges import resolve_judges

        return resolve_judges(self.judges_source, self.data_config, self.test.modalities)

    @property
    def title(self) -> str:
        config = self.run.config
        data = config["data"]
        f = data.get("paired_fraction", 1.0)
        scheme = "" if f == 1 else (" paired only" if data.get("paired_only") else f" unpaired={data.get('unpaired')}")
        return f"{config['model'].upper()} on {dataset_label(recorded_variant(config))}, f={f:g}{scheme}, seed {data.get('seed', 0)}"


__all__ = ["Metric", "NoOptions", "Context", "metrics", "default_metrics"]
