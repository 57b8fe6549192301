"""Sweeps: the paper's grids of runs (data sets x models x partial-observation schemes x f x
seeds; Tables 3-5 and 7, Fig. 5-7) from one small TOML file, trained and evaluated by one command.

A sweep expands its grid into runs (one run directory each, named as ``memevae train`` names
them), trains them in parallel processes up to ``jobs``, skips the finished ones, resumes the
interrupted ones from their last checkpoint, evaluates each, and ends with ``memevae report``
over all of them. ``epochs`` and ``limit`` set a stated reduced budget: they are written into
every run's ``config.json`` and every report. ``sweep.json`` in the sweep's folder records the
grid, the budget and each run's state, rewritten as runs finish.

Example (``memevae sweep table3.toml --epochs 2 --limit 512``):

.. code-block:: toml

    [sweep]
    name = "table3"
    models = ["meme", "mmvae", "mvae"]
    fractions = [1.0, 0.25, 0.0625]
    schemes = ["split", "mnist", "textured"]
    seeds = [0, 1]
    epochs = 100
    metrics = ["coherence", "latent"]

    [model_options.mmvae]
    latent_dim = 64

Expansion: f = 1 is one run per (data set, model, seed), whatever the schemes; f < 1 is one run
per scheme for models that learn from unpaired data, and one paired-only run for those that
cannot (MMVAE), as the paper's comparison trains them. ``paired_only = true`` trains every f < 1
run on its paired subset alone (ablation App. J.2).

A sweep does what its file says or nothing: before anything runs, every key of every table is
checked against the settings a run takes (:class:`SweepConfig` for [sweep]; the options of
``memevae train`` for [data] and [train]; the model's config for [model_options.<model>] and
[vary.<model>]), every value against its field's type and checks, and the metrics against the
registered ones; each problem is one line, naming its table and, for a key in the wrong place
(``[data] limit``, ``[train] lr``), where it belongs or what it is called. Settings the grid sets
per run (data set, f, scheme, seed, ``limit``, ``epochs``) are given in [sweep] only. A grid entry
given twice (``seeds = [0, 0]``) is refused, as are values that would name one folder for two
runs. A sweep's folder is marked as memevae marks a run's (:func:`memevae.training.rundir.mark_folder`); a
folder that holds files but neither that mark nor a ``sweep.json`` of memevae's is never written to. The runs'
processes end with the sweep's, even when it is killed (Linux), and a run that another process
is training is named before anything starts.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import difflib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import typing
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import io
from .data import DataConfig, DataError
from .models import model_class, preset_options
from .options import check_choices, command_line, flag_names, type_problems
from .training.trainer import TrainConfig
from .training import rundir
from .training.rundir import RunDir, RunError, RunLock


@dataclass
class SweepConfig:
    """A grid of runs and how to run it (the ``[sweep]`` table of a sweep file)."""

    name: str
    """The sweep's name; its folder is ``<out>/<name>`` unless ``out`` is given."""
    datasets: list[str] = field(default_factory=lambda: [DataConfig().dataset])
    """Data sets, e.g. ["mnist-textured"]."""
    models: list[str] = field(default_factory=lambda: ["meme"])
    """Models: "meme", "mvae", "mmvae"."""
    fractions: list[float] = field(default_factory=lambda: [1.0])
    """f, the fractions of training pairs kept paired (Sec. 4.1)."""
    schemes: list[str] = field(default_factory=lambda: ["split"])
    """What the other pairs keep when f < 1: a modality name, "split" (Sec. 4.1), "random" or a
    "+"-joined proper subset of the modalities (:func:`~memevae.data.apply_scheme`)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds; each seeds data split, initialisation and noise of its runs."""
    paired_only: bool = False
    """Train every f < 1 run on its paired subset alone (ablation App. J.2)."""
    epochs: int = 100
    """Epochs per run (App. K: 100 for MNIST-SVHN)."""
    limit: int | None = None
    """Training rows per run (None: all): with ``epochs``, the sweep's budget."""
    metrics: list[str] = field(default_factory=lambda: ["coherence", "latent"])
    """Metrics each run is evaluated on (``memevae evaluate --metrics``)."""
    jobs: int = 1
    """Runs trained at once, each in its own process with cpu_count // jobs threads."""
    backend: Literal["local", "submitit"] = "local"
    """"local": processes on this machine; "submitit": jobs through submitit (Slurm on a cluster,
    its local executor elsewhere; ``pip install "memevae[cluster]"``)."""
    out: str | None = None
    """The sweep's folder (default ``sweeps/<name>``)."""
    data: dict = field(default_factory=dict)
    """Further data options for every run (e.g. {"data_dir": "~/data", "rendering": "bright"})."""
    train: dict = field(default_factory=dict)
    """Further training options for every run (e.g. {"batch_size": 128})."""
    model_options: dict = field(default_factory=dict)
    """Model options by model, e.g. {"meme": {"pseudo_samples": 64}} (the ``[model_options.<model>]`` tables)."""
    presets: dict = field(default_factory=dict)
    """A named preset per model, e.g. {"mmvae": "official"} (the ``[presets]`` table; options in
    ``model_options`` override it)."""
    vary: dict = field(default_factory=dict)
    """Model options to sweep, by model: {"meme": {"pseudo_samples": [1, 10, 100]}} (the
    ``[vary.<model>]`` tables); every combination is a run, its folder named after the values."""

    def __post_init__(self):
        found = self.problems()
        if found:
            raise SweepError(f"sweep {self.name!r}", found)

    def problems(self) -> list[str]:
        """Every problem of this sweep, one line each: values of another type than their field's,
        keys of [data], [train], [model_options.<model>] and [vary.<model>] that a run cannot take
        (with where they belong), values the run configs refuse, unknown metrics and duplicate
        grid entries. Types come first: values are checked once their types are right."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = [f"[sweep] {problem}" for problem in type_problems(SweepConfig, values)]
        typed = {name for name, value in values.items() if not type_problems(SweepConfig, {name: value})}
        try:
            check_choices(self)
        except ValueError as error:
            out.append(f"[sweep] {error}")
        from .evaluation.metric import metrics

        checks = [("epochs", lambda: self.epochs >= 1, ">= 1"), ("jobs", lambda: self.jobs >= 1, ">= 1"),
                  ("limit", lambda: self.limit is None or self.limit >= 1, ">= 1 (or absent: every row)"),
                  ("fractions", lambda: all(0 < f <= 1 for f in self.fractions), "in (0, 1]"),
                  ("seeds", lambda: all(0 <= s < 2**32 for s in self.seeds), "from 0 to 2**32 - 1"),
                  ("metrics", lambda: set(self.metrics) <= set(metrics()), f"among {', '.join(metrics())}")]
        out += [f"[sweep] {name} must be {need}, got {getattr(self, name)!r}" for name, ok, need in checks if name in typed and not ok()]
        for name in {"datasets", "models", "fractions", "schemes", "seeds", "metrics"} & typed:
            out += _duplicates(f"[sweep] {name}", getattr(self, name))
        for name in self.models if "models" in typed else []:
            try:
                model_class(name)
            except ValueError as error:
                out.append(f"[sweep] {error}")
        if {"datasets", "models", *TABLES} - typed:
            return out  # the tables are checked against the data sets and models once those are right
        return list(dict.fromkeys(out + self._table_problems()))  # a problem of [data] is met once per data set

    def _table_problems(self) -> list[str]:
        """The problems of the [data], [train], [presets], [model_options.<model>] and [vary.<model>] tables."""
        from .data import registry

        out, data = _key_problems("data", self.data, DataConfig, DATA_KEYS)
        datasets = {}
        for dataset in self.datasets:
            try:
                datasets[dataset] = DataConfig(**{**data, "dataset": dataset})
            except (ValueError, DataError) as error:
                out.append(f"[data] {error}" if dataset in registry.names() else f"[sweep] datasets: {error}")
        problems, train = _key_problems("train", self.train, TrainConfig, TRAIN_KEYS)
        try:
            TrainConfig(**train)
        except ValueError as error:
            problems.append(f"[train] {error}")
        out += problems
        for name, preset in self.presets.items():
            try:
                if not isinstance(preset, str):
                    raise ValueError(f"{name}'s preset must be text, got {preset!r}")
                preset_options(name, preset)
            except ValueError as error:
                out.append(f"[presets] {error}")
        for table in ("model_options", "vary"):
            for name, options in getattr(self, table).items():
                try:
                    config_class = model_class(name).config_class
                except ValueError as error:
                    out.append(f"[{table}.{name}] {error}")
                    continue
                if not isinstance(options, dict):
                    out.append(f"[{table}.{name}] must be a table of {name}'s options, got {options!r}")
                elif table == "model_options":
                    out += _key_problems(f"{table}.{name}", options, config_class, model_keys(name))[0]
                else:
                    out += _vary_problems(name, options, config_class, self.model_options.get(name, {}))
        if out:
            return out  # the options of each model are tried together once each is right on its own
        for name in self.models:
            for options in _option_grid(self, name):
                for data in datasets.values():
                    try:
                        model_class(name).config_class(modalities=data.kinds(), shapes=_placeholder_shapes(data.kinds()),
                                                       **{**preset_options(name, self.presets.get(name)),
                                                          **self.model_options.get(name, {}), **options})
                    except ValueError as error:
                        out.append(f"[vary.{name}] {options} {error}" if options else f"[model_options.{name}] {error}")
        return out

    @property
    def folder(self) -> Path:
        return Path(self.out) if self.out else Path("sweeps") / self.name

    @property
    def budget(self) -> dict:
        return {"epochs": self.epochs, "limit": self.limit}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its model, data and training options, and its directory."""

    model: str
    data: DataConfig
    train: dict
    model_options: dict
    path: Path
    preset: str | None = None

    def train_command(self, resume: bool) -> list[str]:
        """The ``memevae train`` arguments of this run (``--resume`` to continue it)."""
        if resume:
            return ["train", "--out", str(self.path), "--resume", "--epochs", str(self.train["epochs"]), "--quiet"]
        args = ["train", "--out", str(self.path), "--model", self.model, "--quiet"] + (["--preset", self.preset] if self.preset else [])
        data = self.data.record()
        args += command_line({k: v for k, v in data.items() if k not in DATA_OWN}, DataConfig)
        for cls in dict.fromkeys(DataConfig.option_classes().values()):
            args += command_line({k: data[k] for k in data.keys() & DATA_OWN if k in _field_names(cls)}, cls)
        args += command_line(self.train, TrainConfig)
        return args + command_line(self.model_options, model_class(self.model).config_class)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


DATA_OWN = set(DataConfig.option_classes())
"""The data sets' own options (CUB's features, PolyMNIST's modalities), each the option of ``memevae train``."""
DATA_FLAGS = {k: v for k, v in DataConfig.flags().items() if v}
"""{setting: its ``memevae train`` option} of every data setting a sweep passes to its runs
(:func:`memevae.options.flag_names`, which the command line is built from)."""
TRAIN_FLAGS = {k: v for k, v in flag_names(TrainConfig).items() if v}
"""{setting: its ``memevae train`` option} of every training setting a sweep passes to its runs."""

GRID = {"dataset": "datasets", "paired_fraction": "fractions", "unpaired": "schemes", "paired_only": "paired_only",
        "seed": "seeds", "limit": "limit", "epochs": "epochs"}
"""The run settings the grid sets, each with the key of [sweep] that sets it."""
TABLES = ("data", "train", "model_options", "presets", "vary")
"""The fields of :class:`SweepConfig` that are tables of their own in a sweep file."""
DATA_KEYS = sorted(set(DATA_FLAGS) - set(GRID))
"""The keys of [data]: the data options of ``memevae train`` that the grid does not set."""
TRAIN_KEYS = sorted(set(TRAIN_FLAGS) - set(GRID))
"""The keys of [train]: the training options of ``memevae train`` that the grid does not set."""


def model_keys(name: str) -> list[str]:
    """The keys of [model_options.<name>] and [vary.<name>]: the fields of the model's config that
    ``memevae train`` takes as options (not the mappings, which come from the data or a preset)."""
    config_class = model_class(name).config_class
    hints = typing.get_type_hints(config_class)
    return sorted(f.name for f in dataclasses.fields(config_class) if (typing.get_origin(hints[f.name]) or hints[f.name]) is not dict)


class SweepError(ValueError):
    """The problems of a sweep or a sweep file, one line each (``problems``)."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"{what}: {self.problems[0]}")
        else:
            super().__init__(f"{what} has {len(self.problems)} problems:" + "".join(f"\n  {p}" for p in self.problems))


def _places() -> dict[str, list[str]]:
    """{table: its keys} for every table of a sweep file."""
    from .models import MODELS

    return {"sweep": [f.name for f in dataclasses.fields(SweepConfig) if f.name not in TABLES], "data": DATA_KEYS,
            "train": TRAIN_KEYS, **{f"model_options.{name}": model_keys(name) for name in MODELS}}


def _misplaced(table: str, key: str, cls=None) -> str:
    """Why ``key`` is not a key of [``table``] (whose settings are dataclass ``cls``'s), and where
    it belongs or what it is called."""
    if key in GRID:
        return f"[{table}] {key}: the grid sets it for each run; give {GRID[key]} in [sweep]"
    if key in TABLES:
        return f"[{table}] {key}: give it as a table of its own, [{key}]"
    places = _places()
    flags = {flag.removeprefix("--").replace("-", "_"): name for flags in (DATA_FLAGS, TRAIN_FLAGS)
             for name, flag in flags.items() if not flag.startswith("--no-")}
    name = key if key not in flags or flags[key] == key else flags[key]
    home = [place for place, keys in places.items() if name in keys]
    if name != key:
        return f"[{table}] {key}: no such option; it is called {name} (memevae train's --{key.replace('_', '-')})" + (
            f", in [{home[0]}]" if home and home[0] != table else "")
    if home:
        return f"[{table}] {key}: not an option of [{table}]; it belongs in {' or '.join(f'[{place}]' for place in home)}"
    if cls is not None and key in {f.name for f in dataclasses.fields(cls)}:
        return f"[{table}] {key}: memevae train takes no option for it, so a sweep cannot set it"
    close = difflib.get_close_matches(key, places.get(table, []), n=1)
    return f"[{table}] {key}: no such option; " + (f"did you mean {close[0]}?" if close else
                                                    f"the options are {', '.join(places.get(table, []))}")


def _key_problems(table: str, values, cls, keys: list[str]) -> tuple[list[str], dict]:
    """The keys of table ``values`` that are not among ``keys`` and the values of another type
    than their field of dataclass ``cls``, one line each; and the keys and values that are right."""
    if not isinstance(values, dict):
        return [f"[{table}] must be a table, got {values!r}"], {}
    known = {k: v for k, v in values.items() if k in keys}
    wrong = type_problems(cls, known)
    right = {k: v for k, v in known.items() if not type_problems(cls, {k: v})}
    return [_misplaced(table, key, cls) for key in values if key not in keys] + [f"[{table}] {p}" for p in wrong], right


def _vary_problems(name: str, options: dict, config_class, fixed: dict) -> list[str]:
    """The problems of [vary.<name>]: unknown options, values that are not non-empty lists of the
    option's type or that repeat, and options also fixed in [model_options.<name>]."""
    table = f"vary.{name}"
    out = [_misplaced(table, key, config_class) for key in options if key not in model_keys(name)]
    for key, values in options.items():
        if key not in model_keys(name):
            continue
        if not isinstance(values, list) or not values:
            out.append(f"[{table}] {key} must be a list of the values to try, got {values!r}")
            continue
        out += sorted({f"[{table}] {problem}" for value in values for problem in type_problems(config_class, {key: value})})
        out += _duplicates(f"[{table}] {key}", values)
        if key in fixed:
            out.append(f"[{table}] {key} is also set in [model_options.{name}]; give it in one of them")
    return out


def _duplicates(what: str, values: list) -> list[str]:
    """A line naming the values that ``values`` lists more than once (each run is trained and
    counted once), or none."""
    repeated = [value for i, value in enumerate(values) if value in values[:i]]
    return [f"{what} lists {', '.join(map(repr, dict.fromkeys(repeated)))} more than once; "
            f"give each value once"] if repeated else []


def _placeholder_shapes(kinds: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """A shape of the right form for each modality whose kind takes sizes from the data, so that
    a model's options can be checked before its data are read."""
    from .modalities import modality_kinds

    return {name: tuple(1 if size is None else size for size in modality_kinds()[kind].shape)
            for name, kind in kinds.items() if None in modality_kinds()[kind].shape}


def load_sweep(path, data_dir=None, **overrides) -> SweepConfig:
    """The sweep of a TOML file; ``overrides`` (e.g. ``epochs=2, limit=512``, None: not given)
    replace its values, ``data_dir`` sets every run's data folder. Every key and value is checked
    before anything runs: the problems are one :class:`SweepError` with a line each."""
    path = Path(path)
    try:
        text = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no sweep file {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML ({error})") from None
    unknown = sorted(set(text) - {"sweep", *TABLES})
    if unknown or not isinstance(text.get("sweep"), dict):
        raise ValueError(f"{path}: a sweep file has a [sweep] table and optional [data], [train], [model_options.<model>] "
                         f"tables, [presets], [vary.<model>] tables" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    sweep = {"name": path.stem, **text["sweep"], **{k: v for k, v in overrides.items() if v is not None}}
    keys = _places()["sweep"]
    problems = [_misplaced("sweep", key) for key in sweep if key not in keys]
    tables = {table: text[table] for table in TABLES if table in text}
    if data_dir is not None:
        tables["data"] = {**tables.get("data", {}), "data_dir": str(Path(data_dir).expanduser().resolve())}
    try:
        config = SweepConfig(**{k: v for k, v in sweep.items() if k in keys}, **tables)
    except SweepError as error:
        problems += error.problems
    if problems:
        raise SweepError(f"sweep file {path}", problems)
    return config


EXAMPLES = Path(__file__).parent / "sweep_examples"
"""The example sweep files that ship with memevae, one per table of the paper."""


def examples() -> dict[str, Path]:
    """{name: path} of the shipped example sweeps."""
    return {p.stem: p for p in sorted(EXAMPLES.glob("*.toml"))}


def describe(path: Path) -> str:
    """The first comment line of a sweep file."""
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    return first.lstrip("# ").strip()


def find(config: str) -> Path:
    """A sweep file's path: ``config`` itself when it is a file, else the shipped example of that name."""
    path = Path(config)
    if path.is_file():
        return path
    if config in examples():
        return examples()[config]
    raise ValueError(f"no sweep file {config}; give a TOML file or one of the shipped examples: {', '.join(examples())}")


def expand(sweep: SweepConfig) -> list[RunSpec]:
    """The runs of the grid (module text), in a stable order."""
    from .run import run_name

    from .data import DataError
    from .data.schemes import kept_subset, unpaired_choices

    specs = []
    for dataset in sweep.datasets:
        modalities = tuple(DataConfig(**{**sweep.data, "dataset": dataset}).kinds())
        bad = []
        for scheme in sweep.schemes:
            try:
                kept_subset(scheme, modalities)
            except DataError:
                bad.append(scheme)
        if bad and any(f < 1 for f in sweep.fractions) and not sweep.paired_only:
            raise ValueError(f"sweep {sweep.name!r}: {dataset} has no scheme {', '.join(bad)}; "
                             f"choose from {unpaired_choices(modalities)}")
        for name in sweep.models:
            learns_unpaired = model_class(name).learns_from_unpaired
            for f in sweep.fractions:
                if f == 1:
                    variants = [{}]
                elif sweep.paired_only or not learns_unpaired:
                    variants = [{"paired_only": True}]
                else:
                    variants = [{"unpaired": scheme} for scheme in sweep.schemes]
                for variant, options in itertools.product(variants, _option_grid(sweep, name)):
                    for seed in sweep.seeds:
                        data = DataConfig(**{**sweep.data, "dataset": dataset, "paired_fraction": f, "seed": seed,
                                             "limit": sweep.limit, **variant})
                        train = {**sweep.train, "epochs": sweep.epochs}
                        suffix = "".join(f"-{key.replace('_', '')}-{_plain_name(value)}" for key, value in options.items())
                        specs.append(RunSpec(name, data, train, {**sweep.model_options.get(name, {}), **options},
                                             sweep.folder / "runs" / (run_name(name, data) + suffix), sweep.presets.get(name)))
    folders = [spec.path.name for spec in specs]
    shared = sorted({name for name in folders if folders.count(name) > 1})
    if shared:  # e.g. [vary] values that differ only in punctuation: one folder would hold two runs
        raise ValueError(f"sweep {sweep.name!r}: several runs of the grid would share the folder {', '.join(shared)}; "
                         f"give values that name different folders")
    return specs


def _plain_name(value) -> str:
    """An option's value as part of a folder name ("mnist->textured" -> "mnist-to-textured")."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(value).replace("->", "-to-")).strip("-")


def _option_grid(sweep: SweepConfig, model: str) -> list[dict]:
    """Every combination of the model's ``vary`` options ([{}] when none vary)."""
    varied = sweep.vary.get(model, {})
    return [dict(zip(varied, values)) for values in itertools.product(*varied.values())]


State = Literal["new", "partial", "trained", "evaluated"]


def state(spec: RunSpec, metrics: list[str]) -> State:
    """How far a run has come: no checkpoint yet ("new"), stopped before its last epoch
    ("partial"), trained but not evaluated on every metric at its last epoch ("trained"), or done."""
    run_dir = RunDir(spec.path)
    if not run_dir.has_checkpoint("last"):
        return "new" if not (spec.path / "config.json").exists() else "partial"
    try:
        epoch = run_dir.load_checkpoint("last")["epoch"]
    except RunError:
        return "partial"
    if epoch < spec.train["epochs"]:
        return "partial"
    results = spec.path / "evaluation" / "metrics.json"
    try:
        done = json.loads(results.read_text())
    except (OSError, json.JSONDecodeError):
        return "trained"
    return "evaluated" if done.get("epoch") == epoch and set(metrics) <= set(done.get("metrics", {})) else "trained"


def recorded_differences(spec: RunSpec) -> list[str]:
    """How a run already in the sweep's folder differs from what the sweep asks of it: its data
    (e.g. another ``limit``), model, model options, or more epochs than the budget. [] for a new run."""
    try:
        config = json.loads((spec.path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    recorded = {k: v for k, v in config.get("data", {}).items() if k not in ("download", "verify")}
    if "dataset" in config.get("data", {}):  # compared as this memevae records it
        try:
            recorded = {k: v for k, v in DataConfig.from_record(config["data"]).record().items() if k not in ("download", "verify")}
        except (ValueError, TypeError, DataError):
            pass
    wanted = {k: v for k, v in spec.data.record().items() if k not in ("download", "verify")}
    out = [f"{k} {recorded.get(k)!r} (the sweep: {v!r})" for k, v in wanted.items() if recorded.get(k) != v]
    if config.get("model") != spec.model:
        out.append(f"model {config.get('model')!r} (the sweep: {spec.model!r})")
    options = {**preset_options(spec.model, spec.preset), **spec.model_options}
    if config.get("model_options") != options:
        out.append(f"model options {config.get('model_options')} (the sweep: {options})")
    if config.get("train", {}).get("epochs", 0) > spec.train["epochs"]:
        out.append(f"epochs {config['train']['epochs']} (the sweep: {spec.train['epochs']})")
    return out


def commands(spec: RunSpec, metrics: list[str], now: State) -> list[list[str]]:
    """What is left to do for a run in state ``now``, as ``memevae`` argument lists."""
    steps = []
    if now in ("new", "partial"):
        steps.append(spec.train_command(resume=now == "partial"))
    if now != "evaluated":
        steps.append(["evaluate", str(spec.path), "--metrics", ",".join(metrics), "--quiet"])
    return steps


def _die_with(parent: int):
    """A ``preexec_fn`` for a child of process ``parent``: on Linux, the kernel kills the child
    (SIGKILL) when the thread that started it ends, so that the runs of a killed sweep do not go
    on training (and holding their run's lock) without it; elsewhere nothing."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def arm():
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the sweep died before the signal was armed
                os._exit(1)
    return arm


PR_SET_PDEATHSIG = 1
"""Linux's prctl option that sets the signal a process receives when its parent ends."""


def run_steps(steps: list[list[str]], log_path: Path, threads: int) -> int:
    """Run ``memevae`` commands one after the other in subprocesses (output appended to
    ``log_path``), each ended with the process that runs them (Linux); the return code of the
    first that fails, else 0."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        for args in steps:
            log.write(f"$ memevae {' '.join(args)}\n")
            log.flush()
            code = subprocess.run([sys.executable, "-m", "memevae.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=_die_with(os.getpid())).returncode
            if code:
                return code
    return 0


def _execute(sweep: SweepConfig, specs: list[RunSpec], states: dict, progress) -> dict[str, int]:
    """Run what is left of every run (``states``: each run's state by name), up to ``sweep.jobs``
    at once; {run name: return code}."""
    threads = max(1, (os.cpu_count() or 1) // sweep.jobs)
    todo = {spec.path.name: commands(spec, sweep.metrics, states[spec.path.name]) for spec in specs}
    logs = sweep.folder / "logs"
    if sweep.backend == "submitit":
        return _execute_submitit(sweep, todo, logs, threads, progress)
    codes = {}
    with ThreadPoolExecutor(max_workers=sweep.jobs) as pool:
        futures = {pool.submit(run_steps, steps, logs / f"{name}.log", threads): name for name, steps in todo.items() if steps}
        for future in as_completed(futures):
            codes[futures[future]] = future.result()
            progress(futures[future], codes[futures[future]])
    return codes


def _execute_submitit(sweep, todo, logs, threads, progress) -> dict[str, int]:
    try:
        import submitit
    except ImportError:
        raise ValueError('the submitit backend needs submitit: pip install "memevae[cluster]"') from None
    executor = submitit.AutoExecutor(folder=str(logs / "submitit"))
    executor.update_parameters(name=f"memevae-{sweep.name}", cpus_per_task=threads, timeout_min=24 * 60,
                               slurm_array_parallelism=sweep.jobs)
    jobs = {name: executor.submit(run_steps, steps, logs / f"{name}.log", threads) for name, steps in todo.items() if steps}
    codes = {}
    for name, job in jobs.items():
        codes[name] = job.result()
        progress(name, codes[name])
    return codes


def write_manifest(sweep: SweepConfig, specs: list[RunSpec], states: dict, started: str, codes: dict | None = None) -> Path:
    """``sweep.json``: the grid, the budget and each run's state (``states``, by run name)."""
    runs = [{"run": str(s.path), "model": s.model, "dataset": s.data.dataset, "paired_fraction": s.data.paired_fraction,
             "unpaired": s.data.unpaired, "paired_only": s.data.paired_only, "seed": s.data.seed,
             "state": states[s.path.name], **({"return_code": codes[s.path.name]} if codes and s.path.name in codes else {})}
            for s in specs]
    return io.write_json(sweep.folder / "sweep.json", {"sweep": dataclasses.asdict(sweep), "budget": sweep.budget,
                                                        "started": started, "runs": runs})


def earlier_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds the ``sweep.json`` of a memevae sweep (a JSON object with the sweep,
    its budget and its runs): a sweep folder made before sweep folders were marked."""
    try:
        manifest = json.loads((Path(folder) / "sweep.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(manifest, dict) and isinstance(manifest.get("sweep"), dict) and isinstance(manifest.get("runs"), list)
            and "budget" in manifest)


def _not_a_sweep(folder: Path) -> str:
    found = "its sweep.json is not a memevae sweep's" if (folder / "sweep.json").exists() else "it has no sweep.json"
    return (f"{folder} holds files but is not a memevae sweep folder ({found}); nothing was written; "
            f"give --out a new or empty folder, or the folder of an earlier sweep")


def check_folder(folder: Path) -> None:
    """Refuse in one line, as a run folder is refused (:func:`memevae.training.rundir.check_folder`),
    a sweep folder that memevae did not make: one that exists, is not empty, and holds neither the
    marker of a sweep's folder nor a ``sweep.json`` of memevae's (:func:`earlier_sweep`). A new or
    empty folder, or a sweep's own, is fine; :func:`run_sweep` marks it as the sweep's."""
    rundir.check_folder(folder, "sweep", recognise=earlier_sweep, foreign=_not_a_sweep)


def _lock_holder(path: Path) -> str | None:
    """Who holds the training lock of run folder ``path`` (as its lock file names them), or None."""
    if not (path / ".lock").exists():
        return None
    try:
        RunLock(path).acquire().release()
    except RunError:
        return (path / ".lock").read_text().strip() or "another process"
    return None


def run_sweep(sweep: SweepConfig, *, progress: bool = True) -> dict:
    """Train and evaluate every run of ``sweep`` that is not done, then write the report
    (``<folder>/report/report.md``). Returns {"runs", "failed", "report", "seconds"}."""
    from .evaluation.paper.report import write_report

    check_folder(sweep.folder)
    specs = expand(sweep)
    clashes = [f"{spec.path.name}: {'; '.join(found)}" for spec in specs if (found := recorded_differences(spec))]
    if clashes:  # never mix budgets or settings in one sweep folder
        raise ValueError(f"{len(clashes)} run(s) in {sweep.folder} were trained with other settings than this sweep's "
                         f"({clashes[0]}{'; ...' if len(clashes) > 1 else ''}); use another --out for these settings")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda _: None)
    # each run's state is read once here (it opens the checkpoint), then again only when the run ends
    states = {s.path.name: state(s, sweep.metrics) for s in specs}
    left = [s for s in specs if states[s.path.name] != "evaluated"]
    busy = [f"{s.path.name}: {holder}" for s in left if (holder := _lock_holder(s.path))]
    if busy:  # a run of this folder trains in another process (another sweep, or memevae train)
        raise ValueError(f"{len(busy)} run(s) of {sweep.folder} are in use by another process ({busy[0]}"
                         f"{'; ...' if len(busy) > 1 else ''}); wait for it to finish or stop it, then run the sweep again")
    say(f"sweep {sweep.name}: {len(specs)} runs, {len(specs) - len(left)} done, {len(left)} to train or evaluate, "
        f"{sweep.jobs} at a time (budget: {sweep.epochs} epochs, {sweep.limit or 'all'} training rows)")
    rundir.mark_folder(sweep.folder, "sweep")
    write_manifest(sweep, specs, states, started)
    begin, finished = time.perf_counter(), []
    by_name = {s.path.name: s for s in specs}

    def report_progress(name, code):
        finished.append(name)
        states[name] = state(by_name[name], sweep.metrics)
        write_manifest(sweep, specs, states, started)
        say(f"[{len(finished)}/{len(left)}] {name}: {'done' if code == 0 else f'failed (code {code}), see logs/{name}.log'}")

    codes = _execute(sweep, left, states, report_progress)
    write_manifest(sweep, specs, states, started, codes)
    evaluated = [s.path for s in specs if states[s.path.name] == "evaluated"]
    report = write_report(evaluated, sweep.folder / "report") if evaluated else None
    failed = sorted(name for name, code in codes.items() if code)
    return {"runs": len(specs), "failed": failed, "report": report, "seconds": time.perf_counter() - begin}


__all__ = ["SweepConfig", "RunSpec", "load_sweep", "expand", "state", "commands", "run_sweep"]
