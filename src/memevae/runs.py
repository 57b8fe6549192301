"""Training runs from Python: :func:`train` writes a run directory, :func:`load_run` rebuilds
the model from it alone.

Example:
    >>> run = train("runs/demo", data=DataConfig(), training=TrainConfig(epochs=1))  # doctest: +SKIP
    >>> run = load_run("runs/demo")                                                   # doctest: +SKIP
    >>> images = run.translate(mnist_batch, source="mnist", target="textured")          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__, io
from .data import DATASETS, MultimodalDataset, apply_scheme, load_pairs
from .data.pairs import LEGACY_RENDERING, data_variant, recorded_variant
from .data.textured import DEFAULT_RENDERING, check_rendering
from .distributions import DiagonalGaussian
from .evaluation.classifiers import load_classifiers, shipped_judges_dir, train_command
from .evaluation.monitor import CoherenceMonitor, GenerationGrid, LearningCurves
from .modalities import DEFAULT_KINDS
from .models import MultimodalVAE, build_config, model_class
from .training.callbacks import Checkpointer, MetricsLog, ProgressBar
from .training.rundir import RunDir, RunError
from .training.trainer import Trainer, TrainConfig


@dataclass
class DataConfig:
    """Which data a run trains on (paper Sec. 4; the data sets and schemes are in ``docs/data.md``)."""

    dataset: str = "mnist-textured"
    """"mnist-textured" (the offline stand-in for SVHN) or "mnist-svhn"."""
    rendering: str = DEFAULT_RENDERING
    """How textured digits are drawn (mnist-textured only): "bright" (default) or the hard
    "inverted" of memevae 0.1; see :mod:`memevae.data.textured`."""
    data_dir: str | None = None
    """Folder with the official files; None: the real MNIST sample shipped in the package."""
    paired_fraction: float = 1.0
    """f, the fraction of training pairs kept paired (Sec. 4.1: 1, 0.5, 0.25, 0.125, 0.0625)."""
    unpaired: str | None = None
    """What the other pairs keep: a modality name (only that half is kept) or "split"."""
    paired_only: bool = False
    """Drop the unpaired remainder entirely (ablation J.2)."""
    pairs_per_image: int = 1
    """1: one-to-one pairs per class (release). N: up to N partners per image (MMVAE protocol)."""
    seed: int = 0
    """Seeds the pairing, the textured rendering and the partial-observation split."""
    limit: int | None = None
    """Keep only a seeded random ``limit`` training rows (after the scheme), for quick checks."""
    download: bool = False
    """Fetch missing official files into ``data_dir`` (md5-verified, never a partial file)."""
    verify: bool = True
    """Check the official files' md5s (off: only shapes and dtypes are checked)."""

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        check_rendering(self.rendering)
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)

    @classmethod
    def from_record(cls, record: dict) -> "DataConfig":
        """The DataConfig a run's ``config.json`` recorded; runs written before renderings had
        names (memevae 0.1) used the "inverted" one."""
        return cls(**{"rendering": LEGACY_RENDERING, **record})

    @property
    def variant(self) -> str:
        """The data a result was measured on, with the rendering's version where it matters:
        "mnist-textured/bright-v1", "mnist-svhn". Runs and reports record it so that results of
        different renderings are never mixed."""
        return data_variant(self.dataset, self.rendering)

    def load(self, split: str) -> MultimodalDataset:
        """The train split with the partial-observation scheme applied, or the full test split."""
        data = load_pairs(self.dataset, split, self.data_dir, pairs_per_image=self.pairs_per_image, seed=self.seed,
                          download=self.download, verify=self.verify, rendering=self.rendering)
        if split == "train":
            data = apply_scheme(data, self.paired_fraction, self.unpaired, self.paired_only, seed=self.seed)
            if self.limit is not None and self.limit < len(data):
                rows = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))[: self.limit]
                data = data.subset(rows.sort().values)
        return data


def _as_float_images(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, modality: str, x) -> DiagonalGaussian:
        """Posterior q(z | x) for a batch of one modality (float in [0, 1] or uint8)."""
        with torch.no_grad():
            return self.model.encode(modality, _as_float_images(x).to(self.device))

    def translate(self, x, source: str, target: str, sample: bool = True) -> torch.Tensor:
        """Generate ``target`` from a batch of ``source`` (decoder means, in [0, 1])."""
        return self.model.translate(_as_float_images(x).to(self.device), source, target, sample=sample)

    def reconstruct(self, x, modality: str, sample: bool = True) -> torch.Tensor:
        return self.model.reconstruct(_as_float_images(x).to(self.device), modality, sample=sample)

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


def _monitor_judges(train_config: TrainConfig, data_config: DataConfig, modalities) -> dict:
    """The judges of the per-epoch coherence: ``train_config.judges``, else those shipped for the
    data variant; {} when it is off or no judges exist (said in one line)."""
    if not train_config.coherence_items:
        return {}
    folder = train_config.judges or shipped_judges_dir(data_config.variant)
    if folder is None:
        print(f"note: no judges ship for {data_config.variant}, so the per-epoch coherence is off; train them with "
              f"'{train_command(data_config.dataset, data_config.data_dir, rendering=data_config.rendering)}' "
              f"and pass --judges DIR", file=sys.stderr)
        return {}
    return load_classifiers(folder, modalities, dataset=data_config.dataset, data_dir=data_config.data_dir,
                            rendering=data_config.rendering)


def build_model(name: str, modalities: tuple[str, ...], options: dict) -> MultimodalVAE:
    fields = {"modalities": {m: DEFAULT_KINDS[m] for m in modalities}, **options}
    return model_class(name)(build_config(name, **fields))


def _fixed_examples(data: MultimodalDataset, count: int = 10) -> dict[str, torch.Tensor]:
    """The first ``count`` paired test rows, one per class where possible, per modality."""
    paired = data.patterns()[tuple(data.modalities)]
    labels = data.labels[paired]
    order = []
    for digit in labels.unique().tolist():
        order.append(paired[labels == digit][0])
    rows = torch.stack(order[:count]) if len(order) >= count else paired[:count]
    return data.batch(rows).data


def train(out: str | os.PathLike, model: str = "meme", data: DataConfig | None = None, training: TrainConfig | None = None,
          model_options: dict | None = None, resume: bool = False, progress: bool = True) -> Run:
    """Train ``model`` and write the run directory ``out``; with ``resume=True`` continue the run
    saved there from its last checkpoint (``training.epochs``, if given, may extend it)."""
    run_dir = RunDir(out)
    if resume:
        config = run_dir.read_config()
        state = run_dir.load_checkpoint("last")
        if training is not None and training.epochs != config["train"]["epochs"]:
            config["train"]["epochs"] = training.epochs
        data_config = recorded_data(config, run_dir.path)
        train_config = TrainConfig(**config["train"])
        name, options = config["model"], config["model_options"]
    else:
        data_config, train_config = data or DataConfig(), training or TrainConfig()
        name, options = model, dict(model_options or {})
        model_class(name)  # fail early on an unknown model name
        config = None
    train_data, test_data = data_config.load("train"), data_config.load("test")
    judges = _monitor_judges(train_config, data_config, test_data.modalities)
    torch.manual_seed(train_config.seed)
    network = build_model(name, train_data.modalities, options)
    partial = sorted(" + ".join(p) for p in train_data.patterns() if len(p) < len(train_data.modalities))
    if partial and not network.learns_from_unpaired:
        raise ValueError(f"{name} cannot learn from unpaired data (this scheme has {', '.join(partial)} items); "
                         f"use --paired-fraction 1, or add --paired-only to train on the paired subset")
    if config is None:
        network.initialise(train_data, torch.Generator().manual_seed(train_config.seed))
        config = {
            "memevae_version": __version__,
            "model": name,
            "model_options": options,
            "model_config": dataclasses.asdict(network.config),
            "data": dataclasses.asdict(data_config),
            "data_variant": data_config.variant,
            "train": dataclasses.asdict(train_config),
            "train_summary": train_data.summary(),
            "monitor_judges": {m: judge.summary() for m, judge in judges.items()},
        }
        run_dir.create(config)
    title = f"{name.upper()}, {run_dir.path.name}"
    callbacks = [Checkpointer(run_dir, config, train_config.checkpoint_every), MetricsLog(run_dir),
                 GenerationGrid(run_dir.figures, _fixed_examples(test_data), title=title),
                 LearningCurves(run_dir.figures, title=title)]
    if judges:  # first: the callbacks after it write the record it completes
        callbacks.insert(0, CoherenceMonitor(test_data, judges, items=train_config.coherence_items, seed=train_config.seed))
    if progress:
        callbacks.append(ProgressBar())
    trainer = Trainer(network, train_data, train_config, test_data=test_data, callbacks=callbacks)
    if resume:
        trainer.load_state_dict(state)
        io.write_json(run_dir.config_path, config)
    trainer.fit()
    return Run(run_dir.path, config, trainer.model, trainer.history)


def load_run(path: str | os.PathLike, checkpoint: str = "last", device: str = "cpu") -> Run:
    """Rebuild a run's model from its directory alone (config.json + a checkpoint), in eval mode."""
    run_dir = RunDir(path)
    config = run_dir.read_config()
    state = run_dir.load_checkpoint(checkpoint, map_location=device)
    network = build_model(config["model"], tuple(config["model_config"]["modalities"]), config["model_options"])
    network.load_state_dict(state["model"])
    network.to(device).eval()
    return Run(run_dir.path, config, network, state["history"])


__all__ = ["DataConfig", "TrainConfig", "Run", "RunError", "train", "load_run", "build_model", "recorded_data"]
