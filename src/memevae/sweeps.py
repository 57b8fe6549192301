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
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import io
from .data import DataConfig
from .models import model_class, preset_options
from .options import build, check_choices
from .training.rundir import RunDir, RunError


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
        check_choices(self)
        for name in self.models:
            model_class(name)  # a one-line error for an unknown model
        for name, preset in self.presets.items():
            preset_options(name, preset)  # a one-line error for an unknown preset
        checks = [("epochs", self.epochs >= 1, ">= 1"), ("jobs", self.jobs >= 1, ">= 1"),
                  ("limit", self.limit is None or self.limit >= 1, ">= 1 (or absent: every row)"),
                  ("fractions", all(0 < f <= 1 for f in self.fractions), "in (0, 1]"),
                  ("seeds", all(s >= 0 for s in self.seeds), ">= 0")]
        for name, ok, need in checks:
            if not ok:
                raise ValueError(f"sweep {self.name!r}: {name} must be {need}, got {getattr(self, name)!r}")

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
        args += _flags(dataclasses.asdict(self.data), DATA_FLAGS) + _flags(self.train, TRAIN_FLAGS)
        return args + _flags(self.model_options, {k: "--" + k.replace("_", "-") for k in self.model_options})


# config field -> `memevae train` flag, for the fields a sweep sets
DATA_FLAGS = {"dataset": "--dataset", "rendering": "--rendering", "data_dir": "--data-dir", "paired_fraction": "--paired-fraction",
              "unpaired": "--unpaired", "paired_only": "--paired-only", "pairs_per_image": "--pairs-per-image", "seed": "--seed",
              "limit": "--limit", "features": "--features", "features_dir": "--features-dir", "modalities": "--modalities"}
TRAIN_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--lr", "device": "--device",
               "coherence_items": "--coherence-items", "precision": "--precision", "checkpoint_every": "--checkpoint-every"}


def _flags(values: dict, flags: dict) -> list[str]:
    out = []
    for key, value in values.items():
        if key not in flags or value is None or value is False:
            continue
        out += [flags[key]] if value is True else [flags[key], str(value)]
    return out


def load_sweep(path, data_dir=None, **overrides) -> SweepConfig:
    """The sweep of a TOML file; ``overrides`` (e.g. ``epochs=2, limit=512``, None: not given)
    replace its values, ``data_dir`` sets every run's data folder. Unknown keys and bad values
    are one-line errors."""
    path = Path(path)
    try:
        text = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no sweep file {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML ({error})") from None
    unknown = sorted(set(text) - {"sweep", "data", "train", "model_options", "presets", "vary"})
    if unknown or "sweep" not in text:
        raise ValueError(f"{path}: a sweep file has a [sweep] table and optional [data], [train], [model_options.<model>] "
                         f"tables, [presets], [vary.<model>] tables" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    values = {**text["sweep"], **{k: text[k] for k in ("data", "train", "model_options", "presets", "vary") if k in text}}
    values.setdefault("name", path.stem)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if data_dir is not None:
        values["data"] = {**values.get("data", {}), "data_dir": str(Path(data_dir).expanduser().resolve())}
    return build(SweepConfig, values, f"sweep file {path}")


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
    from .runs import run_name

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
    wanted = {k: v for k, v in dataclasses.asdict(spec.data).items() if k not in ("download", "verify")}
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


def run_steps(steps: list[list[str]], log_path: Path, threads: int) -> int:
    """Run ``memevae`` commands one after the other in subprocesses (output appended to
    ``log_path``); the return code of the first that fails, else 0."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        for args in steps:
            log.write(f"$ memevae {' '.join(args)}\n")
            log.flush()
            code = subprocess.run([sys.executable, "-m", "memevae.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
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


def run_sweep(sweep: SweepConfig, *, progress: bool = True) -> dict:
    """Train and evaluate every run of ``sweep`` that is not done, then write the report
    (``<folder>/report/report.md``). Returns {"runs", "failed", "report", "seconds"}."""
    from .evaluation.report import write_report

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
    say(f"sweep {sweep.name}: {len(specs)} runs, {len(specs) - len(left)} done, {len(left)} to train or evaluate, "
        f"{sweep.jobs} at a time (budget: {sweep.epochs} epochs, {sweep.limit or 'all'} training rows)")
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
