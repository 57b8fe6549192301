"""Evaluate a trained run: every metric of the paper's Sec. 4 by name, written to
``RUN/evaluation/metrics.json`` (figures in ``RUN/evaluation/figures/``), with per-metric wall
time and the paper's MNIST-SVHN numbers alongside (Tables 3 and 4).

The results of each checkpoint have their own file: ``metrics.json`` holds those of ``last`` (what
reports and sweeps read), ``metrics-<checkpoint>.json`` those of any other (figures in
``figures-<checkpoint>/``); ``out`` puts the whole ``evaluation`` folder elsewhere. Each write
merges into the file under a lock (``.results.lock`` beside it), so evaluations running at once
on one run keep each other's metrics.

Example:
    >>> from memevae.evaluation import evaluate
    >>> results = evaluate("runs/meme-mnist-textured-f1-seed0", metrics=["coherence", "latent"])  # doctest: +SKIP
    >>> results["metrics"]["coherence"]["values"]["mnist->textured"]                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import io
from ..data import registry
from ..data.pairs import recorded_variant
from ..training.rundir import RunError, check_folder, check_writable, mark_folder, results_lock
from ..version import __version__
from ._common import dataset_label
from .metric import Context, Metric, default_metrics, metrics as registered
from .paper.reference import cub_paper_values, paper_values

RESULTS_FORMAT = 1


def parse_metrics(names) -> list[str]:
    """A list (or comma-separated string) of metric names; None: the cheap default set; "all": every one."""
    known = registered()
    if names is None:
        return list(default_metrics())
    if isinstance(names, str):
        names = [m.strip() for m in names.split(",") if m.strip()]
    if list(names) == ["all"]:
        return list(known)
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(known)} (or 'all')")
    if not names:
        raise ValueError(f"no metrics given; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def results_folder(run_path, out=None) -> Path:
    """Where a run's evaluation results go: ``out`` if given, else ``RUN/evaluation``."""
    return Path(out) if out is not None else Path(run_path) / "evaluation"


def results_path(run_path, checkpoint: str = "last", out=None) -> Path:
    """The results file of a run's ``checkpoint``: ``metrics.json`` for ``last``, ``metrics-<checkpoint>.json``
    for any other, in :func:`results_folder`."""
    return results_folder(run_path, out) / ("metrics.json" if checkpoint == "last" else f"metrics-{checkpoint}.json")


def figures_path(run_path, checkpoint: str = "last", out=None) -> Path:
    """The figures folder of a run's ``checkpoint``: ``figures/`` for ``last``, ``figures-<checkpoint>/`` for any other."""
    return results_folder(run_path, out) / ("figures" if checkpoint == "last" else f"figures-{checkpoint}")


EXTRA_MODULES = {"scikit-learn": "sklearn"}
"""The import name of each package a metric may require whose name differs from it."""


def check_requirements(chosen) -> None:
    """Refuse, before any metric runs, metrics whose packages (their ``requires``) cannot be
    imported, naming the extra that installs them."""
    missing: dict[str, list[str]] = {}
    for metric, _ in chosen:
        for package in metric.requires:
            try:
                importlib.import_module(EXTRA_MODULES.get(package, package))
            except ImportError:
                missing.setdefault(package, []).append(metric.name)
    if missing:
        needs = "; ".join(f"{', '.join(names)} need{'s' if len(names) == 1 else ''} {package}" for package, names in missing.items())
        raise ValueError(f"{needs}, which is not installed: pip install \"memevae[eval]\" (or leave them out with --metrics)")


def _judge_summary(judges: dict) -> dict:
    return {m: (j.summary() if hasattr(j, "summary") else {"modality": m, "note": "classifier given in Python, not a saved file"})
            for m, j in judges.items()}


def _chosen(metrics, options) -> list[tuple[Metric, object]]:
    """The metrics to run, each with its typed options (unknown metric or option: a one-line error)."""
    names = parse_metrics(metrics)
    options = dict(options or {})
    known = registered()
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ValueError(f"options for unknown metric(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [(known[name](), known[name].options(options.get(name))) for name in names]


def _header(run, checkpoint: str, seed: int) -> dict:
    """The identity of the results: the run, its data variant, checkpoint, epoch, seed."""
    config = run.config
    variant = recorded_variant(config)
    return {"format": RESULTS_FORMAT, "memevae_version": __version__, "run": str(run.path), "model": config["model"],
            "dataset": config["data"]["dataset"], "data_variant": variant, "dataset_label": dataset_label(variant),
            "modalities": list(run.model.modality_names), "data": config["data"], "checkpoint": checkpoint,
            "epoch": run.history[-1]["epoch"] if run.history else 0, "seed": seed, "metrics": {}}


def _reference(config: dict, modalities, label: str) -> dict:
    """The paper's numbers for the run's configuration (CUB's Table 5 for CUB runs, MNIST-SVHN's
    otherwise), with a note when the data differ."""
    data = config["data"]
    if data["dataset"] == "cub":
        reference = cub_paper_values(config["model"], data.get("unpaired"), data.get("paired_fraction", 1.0),
                                     data.get("paired_only", False))
        reference["note"] = "paper values are on CUB with ResNet-101 features" + (
            f"; this run is {label}: shown for orientation only" if data.get("features") != "resnet101" else "")
        return reference
    reference = paper_values(config["model"], modalities, data.get("unpaired"), data.get("paired_fraction", 1.0),
                             data.get("paired_only", False))
    reference["note"] = "paper values are on MNIST-SVHN" + (
        f"; this run is {label}, a different data set: shown for orientation only" if data["dataset"] != "mnist-svhn" else "")
    return reference


IDENTITY = ("checkpoint", "epoch", "model")
"""What results must share to be merged into one file: the same model at the same checkpoint and epoch."""


def _read_results(path: Path) -> dict:
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


def save_results(path: Path, results: dict, log=lambda _: None) -> dict:
    """Merge ``results`` into the results file ``path`` and write it, under its lock: the file's
    metric entries and judges of the same model, checkpoint and epoch that ``results`` does not
    recompute are kept (results of another state are replaced, which ``log`` says). Returns what
    was written; a failed write (e.g. a full disk) is one line saying what the file still holds."""
    with results_lock(path.parent):
        previous = _read_results(path)
        if previous and all(previous.get(k) == results[k] for k in IDENTITY):
            results = {**results, "metrics": {**previous.get("metrics", {}), **results["metrics"]},
                       **({"classifiers": {**previous.get("classifiers", {}), **results.get("classifiers", {})}}
                          if "classifiers" in previous or "classifiers" in results else {})}
        elif previous.get("metrics"):
            log(f"{path} held results of checkpoint {previous.get('checkpoint')} at epoch {previous.get('epoch')} "
                f"({', '.join(previous['metrics'])}); replaced by those of {results['checkpoint']} at epoch {results['epoch']}")
        try:
            io.write_json(path, results)
        except OSError as error:
            kept = previous.get("metrics", {})
            lost = [name for name, entry in results["metrics"].items() if kept.get(name) != entry]
            raise RunError(f"could not write {path} ({error.strerror or error}); the file was not changed"
                           + (f" and still holds {', '.join(kept)}" if kept else "") + f"; the results of {', '.join(lost)} "
                           f"were not saved: free some space or write them elsewhere with --out DIR, then evaluate again") from None
    return results


def _log_judges(results: dict, log) -> None:
    for modality, info in results["classifiers"].items():
        if "test_accuracy" in info:
            trained_on = info.get("trained_on") or {}
            log(f"judge {modality}: test accuracy {info['test_accuracy']:.4f}, trained on the {trained_on.get('split')} "
                f"split of {trained_on.get('dataset')} ({trained_on.get('source', trained_on.get('data_dir'))}), "
                f"sha256 {str(info.get('sha256'))[:12]}")


def _measure(metric: Metric, options, context: Context, root: Path) -> tuple[dict, dict]:
    """Run one metric: its values and its entry in ``metrics.json`` (values, wall time, figures
    (relative to ``root`` when inside it), options, seed)."""
    before = _figure_stamps(context.figures_dir)
    start = time.perf_counter()
    try:
        values = metric.compute(context, options)
    except OSError as error:
        if error.errno not in WRITE_ERRORS:
            raise
        raise RunError(f"{metric.name} could not write {error.filename or context.figures_dir} ({error.strerror}); its results "
                       f"were not saved: free some space or write them elsewhere with --out DIR, then evaluate again") from None
    seconds = time.perf_counter() - start
    after = _figure_stamps(context.figures_dir)
    figures = sorted(str(p.relative_to(root) if p.is_relative_to(root) else p) for p, stamp in after.items() if before.get(p) != stamp)
    changed = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if getattr(options, f.name) != f.default}
    return values, {"values": io.json_ready(values, drop=("per_item",)), "wall_time_s": round(seconds, 3), "figures": figures, "options": io.json_ready(changed),
                    "seed": context.seed, "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
"""The errors of a write that the disk or its permissions refused (a one-line error, not a traceback)."""


def evaluate(run, metrics=None, judges=None, *, checkpoint: str = "last", options: dict | None = None, seed: int = 0,
             progress: bool = True, write: bool = True, log=None, classifiers=None, out=None) -> dict:
    """Compute ``metrics`` for a run and (with ``write``) save them to ``RUN/evaluation/metrics.json``
    (checkpoint ``last``) or ``RUN/evaluation/metrics-<checkpoint>.json`` (:func:`results_path`).

    Args:
        run: a :class:`memevae.run.Run` or a run directory (loaded at ``checkpoint``).
        metrics: names of :func:`~memevae.evaluation.metric.metrics` (list or comma-separated);
            default the cheap ones (coherence, latent, relatedness, tsne, grids); "all": every one.
        judges: judge folder, ``{modality: callable}``, or None for the default folder
            ``<data-dir or ~/.cache/memevae>/classifiers/<dataset>/``; ``classifiers`` is its
            name in early memevae 0.1.0 (still accepted).
        options: per-metric options, ``{"tsne": {"points": 500}}`` or ``{"tsne": TSNEOptions(points=500)}``.
        seed: seeds every metric's sampling.
        out: a folder for the results and figures instead of ``RUN/evaluation`` (e.g. for a run
            folder this user may not write); a new or empty folder, or one evaluate made before.

    Returns the results dict written to the file: run identity, dataset label ("MNIST-Textured" or
    "MNIST-SVHN"), the judges used, ``metrics[name] = {"values", "wall_time_s", "figures",
    "options", "seed", "evaluated_at"}`` and ``reference`` (the paper's numbers for this
    configuration: MNIST-SVHN's Tables 3-4, or Table 5 for a CUB run). Metrics already in the file for the same checkpoint and epoch are kept unless
    recomputed, also those another evaluation writes meanwhile (:func:`save_results`). Missing
    packages (``pip install "memevae[eval]"``), an unwritable results folder and a ``out`` that
    holds other files are refused before any metric runs.
    """
    from ..run import Run, load_run

    log = log if log is not None else (lambda message: print(message, file=sys.stderr, flush=True)) if progress else (lambda _: None)
    if classifiers is not None:
        if judges is not None:
            raise ValueError("give judges or classifiers (its former name), not both")
        judges = classifiers
    if not isinstance(run, Run):
        run = load_run(run, checkpoint=checkpoint)
    dataset = registry.get(run.data_config.dataset)
    if metrics is None or metrics == "all" or metrics == ["all"]:  # those of the set that can measure this data
        offered = default_metrics() if metrics is None else tuple(registered())
        skipped = {name: why for name in offered if (why := registered()[name].unsupported(dataset))}
        metrics = [name for name in offered if name not in skipped]
        for name, why in skipped.items():
            log(f"{name}: skipped, {why}")
    chosen = _chosen(metrics, options)
    refused = [f"{metric.name}: {why}" for metric, _ in chosen if (why := metric.unsupported(dataset))]
    if refused:
        raise ValueError(f"cannot measure {dataset.label} runs with {'; '.join(refused)}")
    check_requirements(chosen)
    path = results_path(run.path, checkpoint, out)
    if write:
        _check_results_folder(path.parent, out)
    context = Context(run, figures_path(run.path, checkpoint, out), judges, progress, seed)
    judges = context.judges if any("judges" in metric.needs for metric, _ in chosen) else {}  # refused before slow work
    header = _header(run, checkpoint, seed)
    if judges:
        header["classifiers"] = io.json_ready(_judge_summary(judges))  # the key early memevae 0.1.0 wrote
        _log_judges(header, log)
    header["reference"] = _reference(run.config, run.model.modality_names, header["dataset_label"])
    results = header
    for metric, metric_options in chosen:
        log(f"{metric.name}: {metric.description} ...")
        values, header["metrics"][metric.name] = _measure(metric, metric_options, context, Path(run.path))
        log(f"{metric.name}: done in {header['metrics'][metric.name]['wall_time_s']:.1f} s" + _headline(metric, values))
        if write:  # after each metric, so a later failure keeps the finished ones
            results = save_results(path, header, log)
    return results


def _check_results_folder(folder: Path, out) -> None:
    """Refuse, before any metric runs, a results folder this process cannot write, and an ``out``
    that holds files evaluate did not write; mark a new ``out`` as evaluate's."""
    if out is None:
        check_writable(folder, "write the results elsewhere with --out DIR")
        return
    check_folder(folder, "evaluation")
    check_writable(folder, "choose another --out")
    mark_folder(folder, "evaluation")


def _figure_stamps(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.png")} if folder.exists() else {}


def headline(name: str, values: dict) -> dict[str, float]:
    """The few numbers worth printing for metric ``name``'s values (its :meth:`Metric.headline`)."""
    return registered()[name]().headline(values)


def _headline(metric: Metric, values: dict) -> str:
    shown = metric.headline(values)
    return (": " + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:8])) if shown else ""


__all__ = ["evaluate", "parse_metrics", "results_folder", "results_path", "figures_path", "save_results",
           "check_requirements", "headline"]
