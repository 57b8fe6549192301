"""Evaluate a trained run: every metric of the paper's Sec. 4 by name, written to
``RUN/evaluation/metrics.json`` (figures in ``RUN/evaluation/figures/``), with per-metric wall
time and the paper's MNIST-SVHN numbers alongside (Tables 3 and 4).

Example:
    >>> from memevae.evaluation import evaluate
    >>> results = evaluate("runs/meme-mnist-textured-f1-seed0", metrics=["coherence", "latent"])  # doctest: +SKIP
    >>> results["metrics"]["coherence"]["values"]["mnist->textured"]                              # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable

from .. import __version__, io
from ..data.pairs import recorded_variant
from ._common import dataset_label
from .judges import JudgeError, default_judges_dir, load_judges
from .reference import paper_values

RESULTS_FORMAT = 1


@dataclass
class Context:
    """What a metric may use; expensive parts (train data, judges) are loaded on first use."""

    run: object
    figures_dir: Path
    judge_source: object = None
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
        return self.data_config.load("test")

    @cached_property
    def train(self):
        """Every training pair (the partial-observation scheme NOT applied: probes see all images)."""
        from ..data import load_pairs

        c = self.data_config
        return load_pairs(c.dataset, "train", c.data_dir, seed=c.seed, verify=c.verify, rendering=c.rendering)

    @cached_property
    def judges(self) -> dict:
        return resolve_judges(self.judge_source, self.data_config, self.test.modalities)

    @property
    def title(self) -> str:
        config = self.run.config
        data = config["data"]
        f = data.get("paired_fraction", 1.0)
        scheme = "" if f == 1 else (" paired only" if data.get("paired_only") else f" unpaired={data.get('unpaired')}")
        return f"{config['model'].upper()} on {dataset_label(recorded_variant(config))}, f={f:g}{scheme}, seed {data.get('seed', 0)}"


@dataclass
class Metric:
    name: str
    description: str
    compute: Callable[[Context, dict], dict]
    needs_judges: bool = False
    cheap: bool = True
    figures: tuple[str, ...] = field(default_factory=tuple)


def _accepted(fn, kwargs: dict) -> dict:
    """The keyword arguments ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _colleague(module: str, function: str, metric: str):
    """Import a metric function written in another module lazily, with a one-line error if absent."""
    import importlib

    try:
        return getattr(importlib.import_module(f"memevae.evaluation.{module}"), function)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"metric {metric!r} needs memevae.evaluation.{module}.{function}, which is not available "
                         f"in this installation ({error})") from error


def _coherence(ctx: Context, options: dict) -> dict:
    from .coherence import cross_coherence

    return cross_coherence(ctx.model, ctx.test, ctx.judges, **{"seed": ctx.seed, "progress": ctx.progress, **options})


def _latent(ctx: Context, options: dict) -> dict:
    from .latent import latent_accuracy

    return latent_accuracy(ctx.model, ctx.train, ctx.test, **{"seed": ctx.seed, "progress": ctx.progress, **options})


def _relatedness(ctx: Context, options: dict) -> dict:
    from .relatedness import relatedness

    return relatedness(ctx.model, ctx.test, **{"progress": ctx.progress, "figures_dir": ctx.figures_dir, "title": ctx.title, **options})


def _tsne(ctx: Context, options: dict) -> dict:
    from .embeddings import tsne

    return tsne(ctx.model, ctx.test, **{"seed": ctx.seed, "progress": ctx.progress, "figures_dir": ctx.figures_dir,
                                         "title": ctx.title, **options})


def _grids(ctx: Context, options: dict) -> dict:
    from .grids import generation_grids

    return generation_grids(ctx.model, ctx.test, ctx.figures_dir, **{"seed": ctx.seed, "title": ctx.title, **options})


def _likelihood(ctx: Context, options: dict) -> dict:
    fn = _colleague("likelihood", "marginal_log_likelihood", "likelihood")
    defaults = _accepted(fn, {"seed": ctx.seed, "progress": ctx.progress})
    return fn(ctx.model, ctx.test, **{**defaults, **options})


def _snr(ctx: Context, options: dict) -> dict:
    """Gradient SNR along a short training run started from this run's parameters (copies; the run
    is not changed), on its training pairs; ``snr.png`` in the figures folder."""
    fn = _colleague("snr", "gradient_snr", "snr")
    defaults = _accepted(fn, {"seed": ctx.seed, "progress": ctx.progress})
    result = fn(ctx.model, ctx.train, **{**defaults, **options})
    if result.get("curves"):
        try:
            plot = _colleague("snr", "plot_snr", "snr")
        except ValueError:
            plot = None
        if plot is not None:
            plot(result, ctx.figures_dir / "snr.png")
    return result


def _mi(ctx: Context, options: dict) -> dict:
    """Table 6: loads ``gp-<modality>.pt`` from the judges' folder, or trains a GP-headed classifier
    on real training images (generative_quality saves it there for next time), then scores
    generations."""
    fn = _colleague("generative_quality", "mutual_information", "mi")
    source = ctx.judge_source
    folder = None if isinstance(source, dict) else (
        Path(source) if source is not None else default_judges_dir(ctx.data_config.variant, ctx.data_config.data_dir))
    defaults = _accepted(fn, {"seed": ctx.seed, "progress": ctx.progress, "train_data": ctx.train, "classifier_dir": folder})
    return fn(ctx.model, ctx.test, **{**defaults, **options})


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("coherence", "cross coherence, both directions (Fig. 5, Table 3)", _coherence, needs_judges=True),
    Metric("latent", "linear latent accuracy per modality (Fig. 7, Table 4)", _latent),
    Metric("relatedness", "W2 relatedness histograms and class matrix (Fig. 8, 9)", _relatedness,
           figures=("relatedness-histogram.png", "relatedness-classes.png")),
    Metric("tsne", "t-SNE of latent codes by digit and modality (Fig. 19, 20)", _tsne, figures=("tsne.png",)),
    Metric("grids", "cross- and self-generation grids (Fig. 3, 11-17)", _grids, figures=("generation.png",)),
    Metric("likelihood", "importance-weighted marginal log-likelihood (Table 2)", _likelihood, cheap=False),
    Metric("snr", "gradient signal-to-noise ratio (Fig. 10)", _snr, cheap=False),
    Metric("mi", "mutual information of generations under a GP classifier (Table 6)", _mi, cheap=False),
)}
DEFAULT_METRICS = tuple(name for name, metric in METRICS.items() if metric.cheap)


def parse_metrics(metrics) -> list[str]:
    """A list (or comma-separated string) of metric names; None: the cheap default set; "all": every one."""
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if list(metrics) == ["all"]:
        return list(METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)} (or 'all')")
    if not metrics:
        raise ValueError(f"no metrics given; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(metrics))


def resolve_judges(source, data_config, modalities) -> dict:
    """Judges by modality: ``source`` may be a dict of callables (used as given), a folder, or None
    (the default folder of the run's data set, see :func:`default_judges_dir`)."""
    if isinstance(source, dict):
        missing = [m for m in modalities if m not in source]
        if missing:
            raise JudgeError(f"judges given for {', '.join(source)} but not {', '.join(missing)}")
        return source
    folder = Path(source) if source is not None else default_judges_dir(data_config.variant, data_config.data_dir)
    return load_judges(folder, modalities, dataset=data_config.dataset, data_dir=data_config.data_dir,
                            rendering=data_config.rendering)


def results_path(run_path) -> Path:
    return Path(run_path) / "evaluation" / "metrics.json"


def _judge_summary(judges: dict) -> dict:
    return {m: (c.summary() if hasattr(c, "summary") else {"modality": m, "note": "classifier given in Python, not a saved file"})
            for m, c in judges.items()}


def evaluate(run, metrics=None, judges=None, *, checkpoint: str = "last", options: dict | None = None, seed: int = 0,
             progress: bool = True, write: bool = True, log=None, classifiers=None) -> dict:
    """Compute ``metrics`` for a run and (with ``write``) save them to ``RUN/evaluation/metrics.json``.

    Args:
        run: a :class:`memevae.runs.Run` or a run directory (loaded at ``checkpoint``).
        metrics: names from :data:`METRICS` (list or comma-separated); default the cheap ones
            (coherence, latent, relatedness, tsne, grids). "likelihood", "snr", "mi" on request.
        judges: judge folder, ``{modality: callable}``, or None for the default folder
            ``<data-dir or ~/.cache/memevae>/classifiers/<dataset>/``.
        options: per-metric keyword arguments, e.g. ``{"tsne": {"points": 500}}``.
        seed: seeds every metric's sampling.
        classifiers: the former name of ``judges`` (still accepted).

    Returns the results dict written to the file: run identity, dataset label ("MNIST-Textured" or
    "MNIST-SVHN"), the judges used, ``metrics[name] = {"values", "wall_time_s", "figures",
    "evaluated_at"}`` and ``reference`` (the paper's MNIST-SVHN numbers for this configuration).
    Metrics already in the file for the same checkpoint are kept unless recomputed.
    """
    from ..runs import Run, load_run

    log = log if log is not None else (lambda message: print(message, file=sys.stderr, flush=True)) if progress else (lambda _: None)
    if classifiers is not None:
        if judges is not None:
            raise ValueError("give judges or classifiers (its former name), not both")
        judges = classifiers
    names = parse_metrics(metrics)
    options = dict(options or {})
    unknown = [k for k in options if k not in METRICS]
    if unknown:
        raise ValueError(f"options for unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if not isinstance(run, Run):
        run = load_run(run, checkpoint=checkpoint)
    ctx = Context(run, Path(run.path) / "evaluation" / "figures", judges, progress, seed)
    if any(METRICS[n].needs_judges for n in names):
        judges = ctx.judges  # fail before any slow work when a judge is missing or refused
    else:
        judges = {}

    config = run.config
    data = config["data"]
    epoch = run.history[-1]["epoch"] if run.history else 0
    identity = {"checkpoint": checkpoint, "epoch": epoch}
    results = {
        "format": RESULTS_FORMAT,
        "memevae_version": __version__,
        "run": str(run.path),
        "model": config["model"],
        "dataset": data["dataset"],
        "data_variant": recorded_variant(config),
        "dataset_label": dataset_label(recorded_variant(config)),
        "modalities": list(run.model.modality_names),
        "data": data,
        **identity,
        "seed": seed,
        "metrics": {},
    }
    reference = paper_values(config["model"], run.model.modality_names, data.get("unpaired"), data.get("paired_fraction", 1.0),
                             data.get("paired_only", False))
    reference["note"] = "paper values are on MNIST-SVHN" + (
        f"; this run is {results['dataset_label']}, a different data set: shown for orientation only"
        if data["dataset"] != "mnist-svhn" else "")
    path = results_path(run.path)
    if write and path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError:
            previous = {}
        if all(previous.get(k) == v for k, v in identity.items()) and previous.get("model") == config["model"]:
            results["metrics"] = previous.get("metrics", {})
            if "classifiers" in previous:
                results["classifiers"] = previous["classifiers"]
    if judges:
        results["classifiers"] = io.json_ready(_judge_summary(judges), drop=("per_item",))
        for modality, info in results["classifiers"].items():
            if "test_accuracy" in info:
                trained_on = info.get("trained_on") or {}
                log(f"judge {modality}: test accuracy {info['test_accuracy']:.4f}, trained on the {trained_on.get('split')} "
                    f"split of {trained_on.get('dataset')} ({trained_on.get('source', trained_on.get('data_dir'))}), "
                    f"sha256 {str(info.get('sha256'))[:12]}")
    results["reference"] = reference

    for name in names:
        metric = METRICS[name]
        log(f"{name}: {metric.description} ...")
        before = _figure_stamps(ctx.figures_dir)
        start = time.perf_counter()
        values = metric.compute(ctx, dict(options.get(name, {})))
        seconds = time.perf_counter() - start
        after = _figure_stamps(ctx.figures_dir)
        figures = sorted(str(p.relative_to(Path(run.path))) for p, stamp in after.items() if before.get(p) != stamp)
        results["metrics"][name] = {"values": io.json_ready(values, drop=("per_item",)), "wall_time_s": round(seconds, 3), "figures": figures,
                                    "options": io.json_ready(options.get(name, {}), drop=("per_item",)),
                                    "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        log(f"{name}: done in {seconds:.1f} s" + _headline(name, values))
        if write:  # after each metric, so a later failure keeps the finished ones
            io.write_json(path, results)
    if write:
        io.write_json(path, results)
    return results


def _figure_stamps(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.png")} if folder.exists() else {}


_NESTED_HEADLINES = {"likelihood": ("estimates/", "/mean"), "mi": ("generated/", "/mi"), "snr": ("summary/", "")}
_BOOKKEEPING = ("items", "batch_size", "knn_k", "points", "figures", "examples", "samples", "seed", "learning_rate")


def _flatten(values, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def headline(name: str, values: dict) -> dict[str, float]:
    """The few numbers worth printing for a metric's result (nested results flattened)."""
    if name in _NESTED_HEADLINES:
        start, end = _NESTED_HEADLINES[name]
        return {k[len(start):len(k) - len(end)]: v for k, v in _flatten(values).items()
                if k.startswith(start) and k.endswith(end) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {k: v for k, v in values.items() if isinstance(v, float) and "/" not in k and k not in _BOOKKEEPING}


def _headline(name: str, values: dict) -> str:
    shown = headline(name, values)
    return (": " + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:8])) if shown else ""


__all__ = ["evaluate", "METRICS", "DEFAULT_METRICS", "parse_metrics", "resolve_judges", "results_path", "Metric", "headline"]
