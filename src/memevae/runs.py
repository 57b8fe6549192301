"""Training runs from Python: :func:`train` writes a run directory, :func:`load_run` rebuilds
the model from it alone.

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
from pathlib import Path

import torch

from . import __version__, io
from .data import DataConfig, MultimodalDataset, registry
from .data.dataset import as_float_images
from .data.features.image_features import DEFAULT_FEATURES
from .data.pairs import recorded_variant
from .distributions import DiagonalGaussian
from .evaluation.judges import load_judges, shipped_judges_dir, train_command
from .evaluation.metrics.grids import one_per_class
from .evaluation.monitor import CoherenceMonitor, GenerationGrid, LearningCurves, TensorBoard
from .models import MultimodalVAE, build_config, model_class, preset_options
from .modalities import modality_kinds
from .training import distributed
from .training.callbacks import Checkpointer, MetricsLog, ProgressBar
from .training.rundir import MARKER, RunDir, RunError, check_path, check_writable, folder_kind, mark_folder
from .training.trainer import RESUMABLE, NonFiniteError, Trainer, TrainConfig, TrainingError, resolve_device


class Run:
    """A trained (or training) model with its config and history; what :func:`load_run` returns."""

    def __init__(self, path, config: dict, model: MultimodalVAE, history: list[dict]):
        self.path = Path(path)
        self.config = config
        self.model = model
        self.history = history

    @property
    def data_config(self) -> DataConfig:
        return recorded_data(self.config, self.path)

    def load_data(self, split: str) -> MultimodalDataset:
        """The run's data of ``split`` (the train split with its partial-observation scheme),
        checked against the vocabularies the run saved, so that its captions are always read and
        decoded with its own words."""
        data = self.data_config.load(split)
        check_vocabularies(self.path, data)
        return data

    def training_pairs(self) -> MultimodalDataset:
        """Every training pair of the run's data set, the partial-observation scheme not applied
        (what evaluation probes fit on), checked as :meth:`load_data` checks."""
        from .data import load_pairs

        c = self.data_config
        data = load_pairs(c.dataset, "train", c.data_dir, seed=c.seed, verify=c.verify, rendering=c.rendering, **c.options())
        check_vocabularies(self.path, data)
        return data

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, modality: str, x) -> DiagonalGaussian:
        """Posterior q(z | x) for a batch of one modality (float in [0, 1] or uint8)."""
        with torch.no_grad():
            return self.model.encode(modality, as_float_images(x).to(self.device))

    def translate(self, x, source: str, target: str, sample: bool = True) -> torch.Tensor:
        """Generate ``target`` from a batch of ``source`` (decoder means, in [0, 1])."""
        return self.model.translate(as_float_images(x).to(self.device), source, target, sample=sample)

    def reconstruct(self, x, modality: str, sample: bool = True) -> torch.Tensor:
        return self.model.reconstruct(as_float_images(x).to(self.device), modality, sample=sample)

    def __repr__(self):
        return f"Run({str(self.path)!r}, model={self.config['model']!r}, epochs={len(self.history)})"


def recorded_data(config: dict, path) -> DataConfig:
    """The data config of the run in ``path``; refused when this memevae would render its data
    differently than the run saw it (another rendering version)."""
    data = DataConfig.from_record(config["data"])
    if recorded_variant(config) != data.variant:
        raise RunError(f"{path} was trained on {recorded_variant(config)}, but this memevae renders {data.variant}; "
                       f"use the memevae version recorded in its config.json ({config.get('memevae_version')}) for this run")
    return data


def vocabulary_path(run_path, modality: str) -> Path:
    """Where a run keeps the vocabulary of a tokens modality: ``RUN/vocabulary-<modality>.json``."""
    return Path(run_path) / f"vocabulary-{modality}.json"


def save_vocabularies(run_path, data: MultimodalDataset) -> None:
    """Write the vocabulary of each tokens modality of ``data`` into the run (atomically)."""
    for modality, vocabulary in data.vocabularies.items():
        vocabulary.save(vocabulary_path(run_path, modality))


def check_vocabularies(run_path, data: MultimodalDataset) -> None:
    """Refuse data whose vocabulary differs from the one the run saved (its token ids would mean other
    words); runs written before vocabularies were saved have none to check."""
    from .data.captions import Vocabulary

    for modality, vocabulary in data.vocabularies.items():
        path = vocabulary_path(run_path, modality)
        if not path.exists():
            continue
        saved = Vocabulary.load(path)
        if saved != vocabulary:
            raise RunError(f"the {modality} vocabulary of the data in {data.name} ({len(vocabulary)} tokens) differs from the one "
                           f"{run_path} was trained with ({path}, {len(saved)} tokens): point --data-dir at the captions it "
                           f"was trained on")


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


def run_name(model: str, data: DataConfig) -> str:
    """The folder name of a run, e.g. "meme-mnist-textured-f0.25-split-seed0",
    "meme-cub-colourhog-f1-seed0" for image features other than the data set's default, or
    "meme-polymnist-textured-m3-f1-seed0" with the chosen modalities (:meth:`~memevae.data.DataSet.tag`)
    of a data set that offers a choice (``memevae train``'s default ``--out`` under ``runs/``, and a
    sweep's run folders)."""
    f = data.paired_fraction
    scheme = f"-f{f:g}" + (f"-{data.unpaired}" if data.unpaired else "") + ("-pairedonly" if data.paired_only else "")
    dataset, options = registry.get(data.dataset), data.options()
    features = options.get("features")
    named = f"-{features.replace('-', '')}" if features and features != DEFAULT_FEATURES else ""
    named += f"-{dataset.tag(options['modalities'])}" if "modalities" in options else ""
    return f"{model}-{data.dataset}{named}{scheme}-seed{data.seed}"


def build_model(name: str, kinds: dict[str, str], options: dict, shapes: dict | None = None) -> MultimodalVAE:
    """The model ``name`` with one modality per entry of ``kinds`` {modality: network kind} (a data
    config's :meth:`~memevae.data.DataConfig.kinds`, or a run's recorded ``model_config["modalities"]``);
    ``shapes``: the example shapes of modalities whose size the data decide (a caption modality's
    vocabulary, :meth:`~memevae.data.MultimodalDataset.model_shape`)."""
    return model_class(name)(build_config(name, **{"modalities": dict(kinds), "shapes": dict(shapes or {}), **options}))


def _data_shapes(kinds: dict[str, str], data: MultimodalDataset) -> dict[str, tuple[int, ...]]:
    """The shapes of the modalities whose kind leaves sizes to the data, as ``data`` gives them."""
    open_kinds = {name for name, kind in kinds.items() if None in modality_kinds()[kind].shape}
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
            return _train_locked(run_dir, model, data, training, model_options, resume, progress, checkpoint, process, preset)
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


def _train_locked(run_dir: RunDir, model, data, training, model_options, resume: bool, progress: bool, checkpoint: str,
                  process: distributed.Process | None, preset: str | None = None) -> Run:
    writes = process is None or process.writes
    state = None
    if resume:
        config = run_dir.read_config()
        with _recorded_config(run_dir):
            changes = _resume_changes(config, model, data, training, model_options, preset)
            data_config = recorded_data(config, run_dir.path)
            train_config = TrainConfig(**{**config["train"], **{k: new for k, (_, new) in changes.items()}})
        _device(process, train_config.device)
        if checkpoint != "last" or run_dir.has_checkpoint("last"):
            state = run_dir.load_checkpoint(checkpoint)
        name, options, kinds = config["model"], config["model_options"], config["model_config"]["modalities"]
        shapes = config["model_config"].get("shapes", {})
    else:
        data_config, train_config = data or DataConfig(), training or TrainConfig()
        name = model or "meme"
        model_class(name)  # fail early on an unknown model name
        options = {**preset_options(name, preset), **dict(model_options or {})}
        kinds, config = data_config.kinds(), None
        if writes:
            run_dir.check_free()  # before any data is loaded
    train_data = data_config.load("train")
    test_data = data_config.load("test") if writes else None
    if resume:
        check_vocabularies(run_dir.path, train_data)
    judges = _monitor_judges(train_config, data_config, test_data.modalities) if writes else {}
    torch.manual_seed(train_config.seed)
    if not resume:
        shapes = _data_shapes(kinds, train_data)
    network = build_model(name, kinds, options, shapes)
    partial = sorted(" + ".join(p) for p in train_data.patterns() if len(p) < len(train_data.modalities))
    if partial and not network.learns_from_unpaired:
        raise ValueError(f"{name} cannot learn from unpaired data (this scheme has {', '.join(partial)} items); "
                         f"use --paired-fraction 1, or add --paired-only to train on the paired subset")
    if process:  # e.g. BatchNorm on the CPU: refused before the run is created
        process.check_model(network, _device(process, train_config.device))
    if state is None:  # a new run, or one that stopped before its first checkpoint: the same start either way
        network.initialise(train_data, torch.Generator().manual_seed(train_config.seed))
    if config is None:
        config = {
            "memevae_version": __version__,
            "model": name,
            **({"preset": preset} if preset is not None else {}),
            "model_options": options,
            "model_config": dataclasses.asdict(network.config),
            "data": data_config.record(),
            "data_variant": data_config.variant,
            "train": dataclasses.asdict(train_config),
            "train_summary": train_data.summary(),
            "monitor_judges": {m: judge.summary() for m, judge in judges.items()},
            "environment": environment(),
        }
        if writes:
            run_dir.create(config)
            save_vocabularies(run_dir.path, train_data)
    callbacks = _writer_callbacks(run_dir, config, train_config, test_data, judges, name, progress) if writes else []
    with distributed.process_group(process, _device(process, train_config.device)):
        trainer = Trainer(network, train_data, train_config, test_data=test_data, callbacks=callbacks, process=process)
        if resume:
            if state is not None:
                trainer.load_state_dict(state)
            config["train"] = dataclasses.asdict(train_config)
            config.setdefault("resumes", []).append({
                "after_epoch": trainer.epoch, "checkpoint": checkpoint if state is not None else None,
                "changes": {k: {"from": old, "to": new} for k, (old, new) in changes.items()},
                "at": datetime.datetime.now().isoformat(timespec="seconds"), "environment": environment()})
            if writes:
                io.write_json(run_dir.config_path, config)
        trainer.fit()
    return Run(run_dir.path, config, trainer.model, trainer.history)


def environment() -> dict:
    """What a run's numbers depend on beyond its config: torch's version and the number of CPU
    threads its reductions are split over (float sums round differently with another count, so a
    bit-identical rerun needs the same ``threads``), recorded in ``config.json`` at creation and at
    each resume."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine()}


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


def load_run(path: str | os.PathLike, checkpoint: str = "last", device: str = "cpu") -> Run:
    """Rebuild a run's model from its directory alone (config.json + a checkpoint), in eval mode."""
    run_dir = RunDir(path)
    config = run_dir.read_config()
    state = run_dir.load_checkpoint(checkpoint, map_location=device)
    model_config = config["model_config"]
    network = build_model(config["model"], model_config["modalities"], config["model_options"], model_config.get("shapes"))
    network.load_state_dict(state["model"])
    network.to(device).eval()
    return Run(run_dir.path, config, network, state["history"])


__all__ = ["run_name", "DataConfig", "TrainConfig", "Run", "RunError", "train", "resume", "load_run", "build_model", "recorded_data",
           "checkpoint_status"]
