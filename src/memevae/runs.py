"""Training runs from Python: :func:`train` writes a run directory, :func:`resume` continues it.

This is the entry point above :mod:`memevae.evaluation`: a run measures itself while it trains
(:mod:`memevae.monitor`). What a run directory holds, loaded (:class:`~memevae.run.Run`,
:func:`~memevae.run.load_run`), lives below evaluation in :mod:`memevae.run`; its names are
re-exported here.

Example:
    >>> run = train("runs/demo", data=DataConfig(), training=TrainConfig(epochs=1))  # doctest: +SKIP
    >>> run = load_run("runs/demo")                                                   # doctest: +SKIP
    >>> images = run.translate(mnist_batch, source="mnist", target="textured")          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from . import io
from .data import DataConfig, MultimodalDataset, registry
from .evaluation.judges import load_judges, shipped_judges_dir, train_command
from .evaluation.metrics.grids import one_per_class
from .modalities import modality_kinds
from .models import MultimodalVAE, model_class, model_from_config, preset_options
from .monitor import CoherenceMonitor, GenerationGrid, LearningCurves, TensorBoard
from .run import (Run, build_model, check_vocabularies, kind_sources, load_run, recorded_data, recorded_model_config, run_name,
                  save_vocabularies)
from .training import distributed
from .training.callbacks import Checkpointer, MetricsLog, ProgressBar
from .training.rundir import MARKER, RunDir, RunError, check_path, check_writable, folder_kind, mark_folder
from .training.trainer import RESUMABLE, NonFiniteError, Trainer, TrainConfig, TrainingError, resolve_device
from .version import __version__


def _monitor_judges(train_config: TrainConfig, data_config: DataConfig, modalities) -> dict:
    """The judges of the per-epoch coherence: ``train_config.judges``, else those shipped for the
    data variant; {} when it is off or no judges exist (said in one line)."""
    if not train_config.coherence_items or not registry.get(data_config.dataset).judged:
        return {}
    folder = train_config.judges or shipped_judges_dir(data_config.judges_variant)
    if folder is None:
        print(f"note: no judges ship for {data_config.judges_variant}, so the per-epoch coherence is off; train them with "
              f"'{train_command(data_config.dataset, data_config.data_dir, rendering=data_config.rendering)}' "
              f"and pass --judges DIR", file=sys.stderr)
        return {}
    return load_judges(folder, modalities, dataset=data_config.dataset, data_dir=data_config.data_dir,
                       rendering=data_config.rendering)


def _data_shapes(kinds: dict[str, str], data: MultimodalDataset) -> dict[str, tuple[int, ...]]:
    """The shapes of the modalities whose kind leaves sizes to the data, as ``data`` gives them."""
    open_kinds = {name for name, kind in kinds.items() if kind in modality_kinds() and None in modality_kinds()[kind].shape}
    return {name: data.model_shape(name) for name in kinds if name in open_kinds}


def _fixed_examples(data: MultimodalDataset, count: int = 10) -> dict[str, torch.Tensor]:
    """``count`` paired test rows to show each epoch (:func:`~memevae.evaluation.metrics.grids.one_per_class`)."""
    return data.batch(one_per_class(data, count)).data


def train(out: str | os.PathLike, model: str | None = None, data: DataConfig | None = None, training: TrainConfig | None = None,
          model_options: dict | None = None, resume: bool = False, progress: bool = True, checkpoint: str = "last",
          preset: str | None = None) -> Run:
    """Train ``model`` ("meme" by default) and write the run directory ``out``.

    ``preset`` names a set of model options the model offers (e.g. MMVAE's "official"); options in
    ``model_options`` override it. ``config.json`` records the preset's name under "preset" and the
    options it expanded to under "model_options".

    With ``resume=True`` continue the run saved in ``out`` from its checkpoint ``checkpoint``
    (from epoch 1 if it stopped before its first checkpoint), with its recorded settings. Only the
    fields of :data:`~memevae.training.trainer.RESUMABLE` (epochs, learning rate, ...) may differ
    in ``training``; each change is recorded in ``config.json`` under "resumes". Anything else that
    would change the model or the data is refused with a one-line error. See also :func:`resume`.

    The run directory is locked for the life of the call; a non-finite loss, gradient or parameter
    stops training before anything of that step is applied or saved.

    Under ``torchrun`` with several processes the call trains one data-parallel run
    (:mod:`memevae.training.distributed`): every process trains, and rank 0 alone takes the lock,
    writes the run directory and shows progress.
    """
    process = distributed.from_environment()
    writes = process is None or process.writes
    run_dir = RunDir(out)
    if resume:  # not a run: refused before the folder is touched
        check_path(run_dir.path)
        run_dir.read_config()
    else:  # a machine without the device, or a folder that is not free: refused before any write
        _device(process, (training or TrainConfig()).device)
        if writes:
            run_dir.check_free()
    if training is not None and training.tensorboard:
        TensorBoard.writer_class()  # the package is missing: refused before the folder is made
    if writes:
        advice = ("make it writable, or copy the run to a folder you may write and --resume it there" if resume
                  else "choose another --out")
        for folder in (run_dir.path, run_dir.checkpoints, run_dir.figures):
            if folder == run_dir.path or folder.exists():
                check_writable(folder, advice)
    new_folder, marked_here = not run_dir.path.exists(), writes and folder_kind(run_dir.path) is None
    if writes:
        mark_folder(run_dir.path, "run")
    with run_dir.lock() if writes else contextlib.nullcontext():
        if writes:
            run_dir.remove_leftovers()
        try:
            plan = (_resume_plan(run_dir, model, data, training, model_options, preset, checkpoint, process) if resume
                    else _new_plan(run_dir, model, data, training, model_options, preset, writes))
            return _fit(run_dir, plan, progress, process)
        except NonFiniteError as error:
            rate, default = _recorded_learning_rate(run_dir, training), TrainConfig().learning_rate
            lower = rate / 10 if rate <= default else default
            raise NonFiniteError(f"{error}; {checkpoint_status(run_dir)}; e.g. with a lower learning rate: "
                                 f"memevae train --out {run_dir.path} --resume --lr {lower:g}") from None
        except TrainingError as error:
            raise TrainingError(f"{error}; {checkpoint_status(run_dir)}") from None
        finally:
            if marked_here and not run_dir.exists():  # refused before the run was created: leave the folder as it was
                for made in (".lock", MARKER):
                    (run_dir.path / made).unlink(missing_ok=True)
                _remove_empty_tree(run_dir.path, keep_root=not new_folder)


@contextlib.contextmanager
def _recorded_config(run_dir: RunDir):
    """Turns a config.json that this memevae cannot read back (edited, or of another version)
    into one line naming it."""
    try:
        yield
    except RunError:
        raise
    except (TypeError, KeyError, ValueError) as error:
        raise RunError(f"{run_dir.config_path} does not describe a run this memevae can continue ({type(error).__name__}: "
                       f"{error}); restore it (each checkpoint holds a copy under 'config')") from None


def _remove_empty_tree(path: Path, keep_root: bool = False) -> None:
    for folder in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not keep_root and path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def resume(out: str | os.PathLike, *, progress: bool = True, checkpoint: str = "last", **changes) -> Run:
    """Continue the run in ``out`` with its recorded settings, changing only ``changes`` (fields of
    :data:`~memevae.training.trainer.RESUMABLE`, e.g. ``epochs=20, learning_rate=1e-4``)."""
    unknown = sorted(set(changes) - set(RESUMABLE))
    if unknown:
        raise RunError(f"a resumed run cannot change {', '.join(unknown)}; it may change {', '.join(RESUMABLE)}")
    run_dir = RunDir(out)
    with _recorded_config(run_dir):
        recorded = TrainConfig(**run_dir.read_config()["train"])
    return train(out, resume=True, training=dataclasses.replace(recorded, **changes), progress=progress, checkpoint=checkpoint)


def checkpoint_status(run_dir: RunDir) -> str:
    """What a stopped run left: "the checkpoint ... (end of epoch N) is intact; continue with
    --resume", or that no epoch finished (then --resume restarts it from epoch 1)."""
    if not run_dir.has_checkpoint("last"):
        return f"no epoch had finished, so {run_dir.path} has no checkpoint; --resume restarts the run from epoch 1"
    try:
        epoch = run_dir.load_checkpoint("last")["epoch"]
    except RunError as error:
        return str(error)
    return f"the checkpoint {run_dir.checkpoint_path('last')} (end of epoch {epoch}) is intact; continue with --resume"


def _recorded_learning_rate(run_dir: RunDir, training: TrainConfig | None) -> float:
    try:
        return float(run_dir.read_config()["train"]["learning_rate"])
    except (RunError, KeyError, TypeError, ValueError):
        return (training or TrainConfig()).learning_rate


def _resume_changes(config: dict, model, data, training, model_options, preset=None) -> dict:
    """The training fields that differ from the recorded run, {field: (old, new)}; refuses every
    other difference (a different model, data or a field outside RESUMABLE)."""
    refused = []
    if preset is not None and preset != config.get("preset"):
        refused.append(f"preset ({config.get('preset')} -> {preset})")
    if model is not None and model != config["model"]:
        refused.append(f"model ({config['model']} -> {model})")
    if model_options is not None and dict(model_options) != config["model_options"]:
        refused.append(f"model options ({config['model_options']} -> {model_options})")
    if data is not None:
        recorded = DataConfig.from_record(config["data"]).record()
        refused += [f"{k} ({recorded.get(k)!r} -> {v!r})" for k, v in data.record().items()
                    if k not in ("download", "verify") and recorded.get(k) != v]
    changes = {}
    if training is not None:
        recorded = dataclasses.asdict(TrainConfig(**config["train"]))
        for key, value in dataclasses.asdict(training).items():
            if recorded[key] != value:
                if key in RESUMABLE:
                    changes[key] = (recorded[key], value)
                else:
                    refused.append(f"{key} ({recorded[key]!r} -> {value!r})")
    if refused:
        raise RunError(f"a resumed run keeps its model and data, so it cannot change {'; '.join(refused)}; it may change "
                       f"{', '.join(RESUMABLE)} (start a new run in another --out for the rest)")
    return changes


def _device(process: distributed.Process | None, device: str) -> torch.device:
    return process.device(device) if process else resolve_device(device)


@dataclasses.dataclass
class _Plan:
    """What one call of :func:`train` fits: the model ``name`` that ``build`` makes from the
    training data, on ``data`` with ``training``. A resumed run carries its config.json
    (``record``), the checkpoint ``state`` it continues from (None: from epoch 1) and the training
    fields it changes ({field: (old, new)}); a new run its preset and model options, recorded
    when it is created."""

    name: str
    data: DataConfig
    training: TrainConfig
    build: Callable[[MultimodalDataset], MultimodalVAE]
    record: dict | None = None
    state: dict | None = None
    changes: dict = dataclasses.field(default_factory=dict)
    checkpoint: str = "last"
    preset: str | None = None
    options: dict = dataclasses.field(default_factory=dict)


def _new_plan(run_dir: RunDir, model, data, training, model_options, preset, writes: bool) -> _Plan:
    """A new run: ``model`` ("meme") with its preset's options and ``model_options`` over its defaults,
    one modality per data modality (its kind the data set's, or ``model_options["modalities"]``'s)."""
    name = model or "meme"
    model_class(name)  # fail early on an unknown model name
    options = {**preset_options(name, preset), **dict(model_options or {})}
    data_config = data or DataConfig()
    kinds = dict(options.get("modalities") or data_config.kinds())
    if writes:
        run_dir.check_free()  # before any data is loaded
    return _Plan(name, data_config, training or TrainConfig(),
                 lambda train_data: build_model(name, kinds, options, _data_shapes(kinds, train_data)),
                 preset=preset, options=options)


def _resume_plan(run_dir: RunDir, model, data, training, model_options, preset, checkpoint: str,
                 process: distributed.Process | None) -> _Plan:
    """The run saved in ``run_dir`` continued from ``checkpoint``: its recorded model (``model_config``),
    data and training, with only the RESUMABLE fields of ``training`` changed."""
    config = run_dir.read_config()
    with _recorded_config(run_dir):
        changes = _resume_changes(config, model, data, training, model_options, preset)
        data_config = recorded_data(config, run_dir.path)
        train_config = TrainConfig(**{**config["train"], **{k: new for k, (_, new) in changes.items()}})
        model_config = recorded_model_config(config, run_dir.path)
    _device(process, train_config.device)
    state = run_dir.load_checkpoint(checkpoint) if checkpoint != "last" or run_dir.has_checkpoint("last") else None
    return _Plan(config["model"], data_config, train_config, lambda _: model_from_config(model_config), record=config,
                 state=state, changes=changes, checkpoint=checkpoint)


def _fit(run_dir: RunDir, plan: _Plan, progress: bool, process: distributed.Process | None) -> Run:
    """Train ``plan`` in ``run_dir``: creates a new run's directory, records a resume, then fits."""
    writes = process is None or process.writes
    train_data = plan.data.load("train")
    test_data = plan.data.load("test") if writes else None
    if plan.record is not None:
        check_vocabularies(run_dir.path, train_data)
    judges = _monitor_judges(plan.training, plan.data, test_data.modalities) if writes else {}
    torch.manual_seed(plan.training.seed)
    network = plan.build(train_data)
    partial = sorted(" + ".join(p) for p in train_data.patterns() if len(p) < len(train_data.modalities))
    if partial and not network.learns_from_unpaired:
        raise ValueError(f"{plan.name} cannot learn from unpaired data (this scheme has {', '.join(partial)} items); "
                         f"use --paired-fraction 1, or add --paired-only to train on the paired subset")
    if process:  # e.g. BatchNorm on the CPU: refused before the run is created
        process.check_model(network, _device(process, plan.training.device))
    if plan.state is None:  # a new run, or one that stopped before its first checkpoint: the same start either way
        network.initialise(train_data, torch.Generator().manual_seed(plan.training.seed))
    config = plan.record
    if config is None:
        config = _new_record(plan, network, train_data, judges)
        if writes:
            run_dir.create(config)
            save_vocabularies(run_dir.path, train_data)
    callbacks = _writer_callbacks(run_dir, config, plan.training, test_data, judges, plan.name, progress) if writes else []
    with distributed.process_group(process, _device(process, plan.training.device)):
        trainer = Trainer(network, train_data, plan.training, test_data=test_data, callbacks=callbacks, process=process)
        if plan.record is not None:
            if plan.state is not None:
                trainer.load_state_dict(plan.state)
            config["train"] = dataclasses.asdict(plan.training)
            config.setdefault("resumes", []).append({
                "after_epoch": trainer.epoch, "checkpoint": plan.checkpoint if plan.state is not None else None,
                "changes": {k: {"from": old, "to": new} for k, (old, new) in plan.changes.items()},
                "at": datetime.datetime.now().isoformat(timespec="seconds"), "environment": environment()})
            if writes:
                io.write_json(run_dir.config_path, config)
        trainer.fit()
    return Run(run_dir.path, config, trainer.model, trainer.history)


def _new_record(plan: _Plan, network: MultimodalVAE, train_data: MultimodalDataset, judges: dict) -> dict:
    """The config.json of a new run: the model's whole config ("model_config", what the run is
    rebuilt from) and where its modality kinds from outside memevae come from, its data, training,
    the judges of its per-epoch coherence and the environment."""
    sources = kind_sources(network.config)
    return {
        "memevae_version": __version__,
        "model": plan.name,
        **({"preset": plan.preset} if plan.preset is not None else {}),
        "model_options": plan.options,
        "model_config": dataclasses.asdict(network.config),
        **({"modality_sources": sources} if sources else {}),
        "data": plan.data.record(),
        "data_variant": plan.data.variant,
        "train": dataclasses.asdict(plan.training),
        "train_summary": train_data.summary(),
        "monitor_judges": {m: judge.summary() for m, judge in judges.items()},
        "environment": environment(),
    }


def environment() -> dict:
    """What a run's numbers depend on beyond its config: torch's version, the number of CPU threads
    its reductions are split over (float sums round differently with another count, so a
    bit-identical rerun needs the same ``threads``) and the CPU, whose instruction set picks torch's
    and oneDNN's kernels (``cpu_capability``: AVX2 and AVX-512 kernels sum in different orders);
    recorded in ``config.json`` at creation and at each resume."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine(), "cpu": _cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _cpu_name() -> str:
    """The processor's model name as the system reports it ("AMD EPYC ..."), or the platform's
    processor string where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _writer_callbacks(run_dir: RunDir, config: dict, train_config: TrainConfig, test_data, judges: dict, name: str,
                      progress: bool) -> list:
    """The callbacks of the process that writes the run: checkpoints, metrics, figures, progress."""
    title = f"{name.upper()}, {run_dir.path.name}"
    callbacks = [Checkpointer(run_dir, config, train_config.checkpoint_every), MetricsLog(run_dir),
                 GenerationGrid(run_dir.figures, _fixed_examples(test_data), title=title, show=test_data.show),
                 LearningCurves(run_dir.figures, title=title)]
    if judges:  # first: the callbacks after it write the record it completes
        callbacks.insert(0, CoherenceMonitor(test_data, judges, items=train_config.coherence_items, seed=train_config.seed))
    if train_config.tensorboard:  # after GenerationGrid: it shows the grid written for the epoch
        callbacks.append(TensorBoard(run_dir.path / "tensorboard", run_dir.figures))
    if progress:
        callbacks.append(ProgressBar())
    return callbacks


__all__ = ["train", "resume", "checkpoint_status", "environment", "DataConfig", "TrainConfig",
           # the run as loaded (memevae.run), re-exported for the imports of earlier versions
           "Run", "RunError", "load_run", "build_model", "recorded_data", "run_name"]
