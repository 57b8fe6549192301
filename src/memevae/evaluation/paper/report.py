"""The report over many evaluated runs: tables and plots in the layout of the paper's Table 3
(coherence per scheme x f, both directions), Table 4 (latent accuracy), Table 5 (CUB's CCA
coherence) and Fig. 5 / 7 (the same against f, one-std shading), with the paper's numbers beside
ours (:mod:`.reference`).

Each metric writes its own section (:meth:`memevae.evaluation.metric.Metric.report`, given a
:class:`Part`: the runs of one data set) with the tables and figures here, in the metrics'
``order``; values a metric lists in its ``report_columns`` share one "Other measures" table.

Runs are grouped by (model, dataset, unpaired scheme, paired fraction f), read from each run's
``config.json`` and ``evaluation/metrics.json``; a group's cells are mean +- std over its runs
(seeds), the std with the n - 1 denominator (blank for a single run). At f = 1 every scheme is the
same fully paired training set, so, as in the paper, the f = 1 column of every scheme row shows
the fully paired runs.

Example:
    >>> write_report(["runs/a", "runs/b"], "report/")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import io
from ...training.rundir import RunError
from ...data.pairs import recorded_variant
from .._common import dataset_label
from ..metric import metrics
from ..plotting import save, suptitle
from ..pipeline import results_path
from .reference import CCA, EPOCHS, FRACTIONS, _lookup, paper_scheme, to_paper_names

FULL = "full"
"""The scheme name of f = 1 runs (no unpaired remainder)."""


@dataclass
class RunRecord:
    path: str
    model: str
    dataset: str
    scheme: str
    fraction: float
    seed: int
    modalities: tuple[str, ...]
    metrics: dict
    epoch: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def group(self) -> tuple:
        return (self.model, self.dataset, self.scheme, self.fraction)


def scheme_of(data: dict) -> str:
    f = float(data.get("paired_fraction", 1.0))
    if f == 1.0:
        return FULL
    if data.get("paired_only"):
        return "paired-only"
    return str(data.get("unpaired"))


def read_run(path) -> RunRecord:
    """One run's identity (config.json) and evaluation results (evaluation/metrics.json)."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.exists():
        raise RunError(f"{path} is not a memevae run (no config.json)")
    config = json.loads(config_path.read_text())
    metrics_file = results_path(path)
    if not metrics_file.exists():
        raise RunError(f"{path} has not been evaluated (no {metrics_file}); run: memevae evaluate {path}")
    results = json.loads(metrics_file.read_text())
    data = config["data"]
    values = {name: entry.get("values", {}) for name, entry in results.get("metrics", {}).items()}
    settings = {"model_options": config.get("model_options", {}), "epochs": config.get("train", {}).get("epochs"),
                "pairs_per_image": data.get("pairs_per_image", 1), "data_dir": data.get("data_dir"), "limit": data.get("limit")}
    return RunRecord(str(path), config["model"], recorded_variant(config), scheme_of(data), float(data.get("paired_fraction", 1.0)),
                     int(data.get("seed", 0)), tuple(results.get("modalities") or config["model_config"]["modalities"]),
                     values, int(results.get("epoch", 0)), settings)


@dataclass
class Cell:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    def __str__(self) -> str:
        if self.std is None:
            return f"{self.mean:.3f} (n=1)"
        return f"{self.mean:.3f} ± {self.std:.3f} (n={self.n})"


def summarise(records: list[RunRecord], metric: str, key: str) -> dict[tuple, Cell]:
    """Group -> Cell of ``records[i].metrics[metric][key]`` over the group's runs (runs lacking the
    value are skipped)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for record in records:
        value = record.metrics.get(metric, {}).get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            groups[record.group].append(float(value))
    return {group: Cell(values) for group, values in groups.items()}


@dataclass
class Part:
    """The runs of one data set, as a metric's section of the report sees them: ``records`` (every
    run of the report: colours and models are shared across data sets), the ``dataset``, the
    report's folder ``out`` and the ``suffix`` its figure names take (empty for a report of one data set)."""

    records: list[RunRecord]
    dataset: str
    out: Path
    suffix: str = ""

    @property
    def members(self) -> list[RunRecord]:
        """The runs on this data set."""
        return [r for r in self.records if r.dataset == self.dataset]

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.members[0].modalities

    @property
    def many(self) -> bool:
        """More than two modalities: MoPoE-style summaries instead of the paper's tables (App. E)."""
        return len(self.modalities) > 2

    def keys(self, metric: str, keep=lambda key: True) -> list[str]:
        """The value keys of ``metric`` the runs of this data set recorded (those ``keep`` accepts), in order of appearance."""
        return list(dict.fromkeys(k for r in self.members for k in r.metrics.get(metric, {}) if keep(k)))

    def figure(self, stem: str) -> tuple[str, Path]:
        """(name, path) of the figure ``stem`` of this part: ``<stem><suffix>.png`` in the report's folder."""
        name = f"{stem}{self.suffix}.png"
        return name, self.out / name

    def tables_against_f(self, metric: str, keys: list[str], paper_table: dict, heading: str, figure: str,
                         ylabel: str, title: str, alt: str) -> list[str]:
        """A section in the paper's layout: a table per key of ``metric`` (the paper's rows from
        ``paper_table`` beside ours), then the figure of those keys against f."""
        lines = [f"### {heading}", ""]
        for key in keys:
            lines += [f"**{key.replace('->', ' → ')}**", "", table(self.records, self.dataset, metric, key, paper_table), ""]
        name, path = self.figure(figure)
        plot_against_f(self.records, self.dataset, metric, keys, paper_table, path, ylabel, title)
        return lines + [f"![{alt}]({name})", ""]

def _paper_cell(table: dict, key: str, model: str, scheme: str, f: float, modalities) -> str:
    named = table is not CCA  # CUB's modalities carry the paper's own names
    if named and "mnist" not in modalities:  # the MNIST-SVHN tables are for digits
        return ""
    rows = table.get(to_paper_names(key) if named else key)
    if rows is None:
        return ""
    value = _lookup(rows, model, None if scheme == FULL else paper_scheme(scheme, modalities) if named else scheme, f)
    if value is None:
        return "–"
    return f"{value[0]:.3f}" + (f" ± {value[1]:.3f}" if value[1] is not None else "")


def row_label(model: str, scheme: str) -> str:
    """A row's name: the model, and the scheme unless f = 1 ("MEME_SPLIT", "MVAE")."""
    return model.upper() + ("" if scheme == FULL else "_" + scheme.upper())


def _rows_for(records: list[RunRecord], dataset: str):
    """(model, scheme) row keys present for a data set: the schemes seen at f < 1, or "full" alone."""
    keys = []
    for model in sorted({r.model for r in records if r.dataset == dataset}):
        schemes = sorted({r.scheme for r in records if r.dataset == dataset and r.model == model and r.scheme != FULL})
        keys += [(model, s) for s in (schemes or [FULL])]
    return keys


def _fractions(records, dataset) -> list[float]:
    return sorted({r.fraction for r in records if r.dataset == dataset}, reverse=True)


def _cell_for(cells: dict, model, dataset, scheme, f):
    return cells.get((model, dataset, FULL if f == 1.0 else scheme, f))


def table(records: list[RunRecord], dataset: str, metric: str, key: str, paper_table: dict) -> str:
    """A markdown table, rows (model, scheme) with the paper's row under each (MNIST-SVHN for digits,
    Table 5's CUB for CCA coherence), columns f."""
    cells = summarise(records, metric, key)
    fractions = _fractions(records, dataset)
    modalities = next(r.modalities for r in records if r.dataset == dataset)
    header = "| model | " + " | ".join(f"f = {f:g}" for f in fractions) + " |"
    lines = [header, "|" + "---|" * (len(fractions) + 1)]
    for model, scheme in _rows_for(records, dataset):
        ours = [_cell_for(cells, model, dataset, scheme, f) for f in fractions]
        if not any(ours):
            continue
        lines.append(f"| {row_label(model, scheme)} (ours, {dataset_label(dataset)}) | "
                     + " | ".join(str(c) if c else "–" for c in ours) + " |")
        paper = [_paper_cell(paper_table, key, model, scheme, f, modalities) for f in fractions]
        if any(p and p != "–" for p in paper):
            where, name = ("CUB, ResNet-101", scheme) if paper_table is CCA else ("MNIST-SVHN", _paper_name(scheme, modalities))
            lines.append(f"| {row_label(model, name)} (paper, {where}) | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def _paper_name(scheme: str, modalities) -> str:
    """The paper's name of a scheme row ("svhn" for the non-MNIST modality; other names as they are)."""
    return paper_scheme(scheme, modalities) or scheme


def plot_against_f(records, dataset, metric: str, keys: list[str], paper_table: dict, path, ylabel: str, title: str):
    """One panel per key (direction or modality): mean against f per (model, scheme) with one-std
    shading, and the paper's MNIST-SVHN values dashed (Fig. 5 / Fig. 7); the y axis spans [0, 1]
    with chance (ten classes, 0.1) dashed grey, and one legend for all panels lies below them."""
    from ..curves import CHANCE
    from ..plotting import colour_map, legend_below, subplots

    modalities = next(r.modalities for r in records if r.dataset == dataset)
    fig, axes = subplots(1, len(keys), figsize=(5.2 * len(keys), 4.0), squeeze=False)
    colours = colour_map("tab10")
    row_keys = _rows_for(records, dataset)
    for ax, key in zip(axes[0], keys):
        cells = summarise(records, metric, key)
        for k, (model, scheme) in enumerate(row_keys):
            points = [(f, _cell_for(cells, model, dataset, scheme, f)) for f in _fractions(records, dataset)]
            points = sorted((f, c) for f, c in points if c)
            if not points:
                continue
            f = np.array([p[0] for p in points])
            mean = np.array([p[1].mean for p in points])
            std = np.array([p[1].std or 0.0 for p in points])
            colour = colours(k % 10)
            ax.plot(f, mean, "o-", color=colour, label=f"{row_label(model, scheme)} ({dataset_label(dataset)})")
            ax.fill_between(f, mean - std, mean + std, color=colour, alpha=0.2)
            rows = paper_table.get(to_paper_names(key), {})
            ref = [(fr, _lookup(rows, model, None if scheme == FULL else paper_scheme(scheme, modalities), fr)) for fr in FRACTIONS]
            ref = sorted((fr, v[0]) for fr, v in ref if v is not None and (scheme != FULL or fr == 1.0))
            if ref:
                ax.plot([r[0] for r in ref], [r[1] for r in ref], "x--", color=colour, alpha=0.7,
                        label=f"{row_label(model, _paper_name(scheme, modalities))} (paper, MNIST-SVHN)")
        ax.axhline(CHANCE, color="grey", lw=1, ls="--", label="chance (ten classes)")
        ax.set_xscale("log", base=2)
        ticks = sorted(set(_fractions(records, dataset)) | set(FRACTIONS))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(0, 1)
        ax.set_xlabel("fraction of paired training data f")
        ax.set_ylabel(ylabel)
        ax.set_title(key.replace("->", " \u2192 "), fontsize=10)
        ax.grid(alpha=0.3)
    legend_below(fig, axes.flat)
    suptitle(fig, f"{title}, {dataset_label(dataset)}: mean \u00b1 1 std over seeds", 10)
    return save(fig, path)


def epoch_means(members: list[RunRecord], key: str) -> tuple[list[int], list[float]]:
    """Epochs and the mean over runs of ``key`` in their metrics.jsonl (epochs every run reached)."""
    from ...run import load_history

    series = []
    for record in members:
        try:
            series.append({row["epoch"]: row[key] for row in load_history(record.path) if row.get(key) is not None})
        except RunError:
            continue
    epochs = sorted(set.intersection(*(set(s) for s in series))) if series else []
    return epochs, [float(np.mean([s[e] for s in series])) for e in epochs]


def plot_epoch_curves(records, dataset, directions: list[str], path):
    """The per-epoch cross coherence (each run's ``metrics.jsonl``): one panel per direction and f,
    one line per (model, scheme), the mean over seeds; chance (0.1) dashed; one legend below the panels."""
    from ..curves import CHANCE
    from ..plotting import colour_map, legend_below, subplots

    fractions = sorted(_fractions(records, dataset), reverse=True)
    fig, axes = subplots(len(directions), len(fractions), figsize=(4.4 * len(fractions), 3.4 * len(directions)), squeeze=False)
    colours, styles = colour_map("tab10"), {}
    models = sorted({r.model for r in records})
    for row, key in enumerate(directions):
        for col, f in enumerate(fractions):
            ax = axes[row, col]
            groups = defaultdict(list)
            for r in records:
                if r.dataset == dataset and r.fraction == f:
                    groups[(r.model, r.scheme)].append(r)
            for (model, scheme), members in sorted(groups.items()):
                epochs, means = epoch_means(members, f"coherence/{key}")
                if epochs:
                    style = styles.setdefault(scheme, ("-", "--", ":", "-.")[len(styles) % 4])
                    ax.plot(epochs, means, style, marker="o", ms=3, color=colours(models.index(model) % 10),
                            label=f"{row_label(model, scheme)} (n={len(members)})")
            ax.axhline(CHANCE, color="grey", lw=1, ls="--")
            ax.set_ylim(0, 1)
            given = key.removeprefix("mean/")
            ax.set_title(f"from {given} given modalities, f = {f:g}" if given != key else f"{key.replace('->', ' → ')}, f = {f:g}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("cross coherence (per-epoch test subset)")
            ax.grid(alpha=0.3)
    legend_below(fig, axes.flat)
    suptitle(fig, f"Cross coherence along training, {dataset_label(dataset)}: mean over seeds", 10)
    return save(fig, path)


def _settings_note(records: list[RunRecord]) -> list[str]:
    """Warnings for groups whose runs differ in settings other than the seed."""
    notes = []
    by_group = defaultdict(list)
    for r in records:
        by_group[r.group].append(r)
    for group, members in by_group.items():
        differing = sorted({k for r in members for k in r.settings if any(r.settings[k] != o.settings.get(k) for o in members)})
        seeds = Counter(r.seed for r in members)
        if differing:
            notes.append(f"- {row_label(group[0], group[2])} f={group[3]:g} ({dataset_label(group[1])}): runs differ in "
                         f"{', '.join(differing)}; they are averaged together.")
        repeated = [s for s, c in seeds.items() if c > 1]
        if repeated:
            notes.append(f"- {row_label(group[0], group[2])} f={group[3]:g}: seed(s) {repeated} appear more than once.")
    return notes


def _budget(records: list[RunRecord]) -> str:
    """The training budget of the runs: epochs and training rows per run."""
    epochs = sorted({r.settings.get("epochs") for r in records}, key=str)
    rows = sorted({r.settings.get("limit") or "all" for r in records}, key=str)
    many = any(len(r.modalities) > 2 for r in records)
    paper = sorted({(name, EPOCHS[name]) for name in
                    ("cub" if r.dataset.split("/")[0] == "cub" else "mnist-svhn" for r in records if len(r.modalities) == 2)})
    stated = [f"{epochs} epochs on {'CUB' if name == 'cub' else 'MNIST-SVHN'}, on every training pair" for name, epochs in paper]
    stated += ["no run with more than two modalities: App. E gives the objective only"] if many else []
    return (f"Budget: {' / '.join(map(str, epochs))} epoch(s) per run, {' / '.join(map(str, rows))} training rows per run "
            f"(the paper: {'; '.join(stated)}).")


def build_report(records: list[RunRecord], out: Path, skipped: list[str] = ()) -> str:
    """The markdown text; figures are written into ``out``. Per data set, each metric's section
    (:meth:`~memevae.evaluation.metric.Metric.report`) in the metrics' order, then the other measures."""
    paper_rows = ("Rows marked *paper* are Joy et al. (ICLR 2022) on MNIST-SVHN (Tables 3 and 4) or on CUB (Table 5); on "
                  "MNIST-Textured they are for orientation only, not the same data set, and runs on different textured "
                  "renderings are reported apart. Scheme names: the modality kept for the unpaired remainder (paper Sec. "
                  "4.1); the paper's SVHN scheme corresponds to our non-MNIST modality.")
    many_rows = ("With more than two modalities there are no paper rows (App. E states the objective only); scheme "
                 "\"random\": the other rows keep a random non-empty proper subset of the modalities.")
    intro = [paper_rows] * any(len(r.modalities) == 2 for r in records) + [many_rows] * any(len(r.modalities) > 2 for r in records)
    lines = ["# memevae evaluation report", "",
             f"{len(records)} evaluated run(s). Cells: mean ± std over runs (seeds) of a group (model, data set, unpaired "
             "scheme, f); std uses the n − 1 denominator. " + " ".join(intro), "", _budget(records), ""]
    for dataset in sorted({r.dataset for r in records}):
        suffix = "" if len({r.dataset for r in records}) == 1 else "-" + dataset.replace("/", "-")
        lines += [f"## {dataset_label(dataset)}", ""]
        part = Part(records, dataset, out, suffix)
        for metric in metrics().values():
            lines += metric().report(part)
        other = _other_measures(records, dataset)
        if other:
            lines += ["### Other measures", "", other, ""]
    notes = _settings_note(records)
    if notes:
        lines += ["## Notes", "", *notes, ""]
    lines += ["## Runs", "", "| run | model | data set | scheme | f | seed | epoch | metrics |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r.dataset, r.model, r.scheme, -r.fraction, r.seed)):
        lines.append(f"| {r.path} | {r.model} | {dataset_label(r.dataset)} | {r.scheme} | {r.fraction:g} | {r.seed} | {r.epoch} | "
                     f"{', '.join(sorted(r.metrics))} |")
    if skipped:
        lines += ["", "Not included:", "", *[f"- {s}" for s in skipped]]
    return "\n".join(lines) + "\n"


def subset_mean(record, metric: str, keys: list[str]) -> float | None:
    """The mean of a run's ``metric`` values over ``keys`` (None unless every key has a finite value)."""
    values = [record.metrics.get(metric, {}).get(k) for k in keys]
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(np.mean(values)) if values and len(values) == len(keys) else None


def subset_table(part: Part, title: str, metric: str, columns: list[tuple[str, list[str]]]) -> list[str]:
    """With more than two modalities: a table titled ``title`` of one row per (model, scheme, f) with
    a value of ``metric``, one column per (name, keys), each cell the mean ± std over seeds of a
    run's mean of ``metric`` over the column's keys (:func:`subset_mean`); [] when no run has ``metric``."""
    members = part.members
    groups = sorted({r.group for r in members if metric in r.metrics}, key=lambda g: (g[0], g[2], -g[3]))
    if not groups:
        return []
    out = [f"**{title}**", "", "| model | f | " + " | ".join(name for name, _ in columns) + " |",
           "|" + "---|" * (len(columns) + 2)]
    for group in groups:
        runs = [r for r in members if r.group == group]
        cells = []
        for _, keys in columns:
            values = [v for v in (subset_mean(r, metric, keys) for r in runs) if v is not None]
            cells.append(str(Cell(values)) if values else "–")
        out.append(f"| {row_label(group[0], group[2])} | {group[3]:g} | " + " | ".join(cells) + " |")
    return out + [""]


def _other_measures(records, dataset) -> str:
    """One table of the values the metrics list in their ``report_columns``, a row per group."""
    columns = [(metric.name, key, label) for metric in metrics().values() for key, label in metric.report_columns]
    present = [(m, k, label) for m, k, label in columns if any(k in r.metrics.get(m, {}) for r in records if r.dataset == dataset)]
    if not present:
        return ""
    groups = sorted({r.group for r in records if r.dataset == dataset}, key=lambda g: (g[0], g[2], -g[3]))
    lines = ["| group | " + " | ".join(label for _, _, label in present) + " |", "|" + "---|" * (len(present) + 1)]
    for group in groups:
        cells = [summarise([r for r in records if r.group == group], m, k).get(group) for m, k, _ in present]
        lines.append(f"| {row_label(group[0], group[2])} f={group[3]:g} | " + " | ".join(str(c) if c else "–" for c in cells) + " |")
    return "\n".join(lines)


def write_report(runs, out, strict: bool = False) -> Path:
    """Read each run's results, write ``out/report.md`` and its figures; returns the report path.

    Runs that are not evaluated are listed at the end of the report (``strict``: an error instead).
    A run given more than once (``R``, ``R/``, ``./R``, a link to it) is read and counted once.
    """
    out = Path(out)
    records, skipped = [], []
    for path in {Path(path).resolve(): path for path in runs}.values():
        try:
            records.append(read_run(path))
        except RunError as error:
            if strict:
                raise
            skipped.append(str(error))
    if not records:
        raise RunError("no evaluated runs to report on" + (": " + "; ".join(skipped) if skipped else ""))
    text = build_report(records, out, skipped)
    return io.write_text(out / "report.md", text)


__all__ = ["write_report", "build_report", "read_run", "summarise", "table", "plot_against_f", "plot_epoch_curves", "subset_table",
           "Cell", "Part", "RunRecord", "scheme_of"]
