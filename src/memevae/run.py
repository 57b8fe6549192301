"""A run as its directory records it: :func:`load_run` rebuilds the model from ``config.json`` and a
checkpoint alone, and :class:`Run` is what evaluation and the Python API read of it.

This module knows run directories, data, modalities and models, and nothing of evaluation or of
how a run is trained (:mod:`memevae.runs`, above evaluation, trains and resumes runs).

Example:
    >>> run = load_run("runs/demo")                                                   # doctest: +SKIP
    >>> images = run.translate(mnist_batch, source="mnist", target="textured")          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from .data import DataConfig, MultimodalDataset, registry
from .data.dataset import as_float_images
from .data.features.image_features import DEFAULT_FEATURES
from .data.pairs import recorded_variant
from .distributions import DiagonalGaussian
from .modalities import kind_source, register
from .models import ModelConfig, MultimodalVAE, build_config, model_class, model_from_config
from .options import as_hinted, build, hints
from .training.rundir import RunDir, RunError
from .version import __version__


class Run:
    """A trained (or training) model with its config and history; what :func:`load_run` returns."""

    def __init__(self, path, config: dict, model: MultimodalVAE, history: list[dict], data_dir=None):
        self.path = Path(path)
        self.config = config
        self.model = model
        self.history = history
        self.data_dir = data_dir  # a folder replacing the recorded data folder (the same files, moved); None: the recorded one
        self._moved_data_checked = False

    @property
    def data_config(self) -> DataConfig:
        return recorded_data(self.config, self.path, self.data_dir)

    def _check_moved_data(self) -> None:
        """With :attr:`data_dir` given, refuse (once checked, for good) a folder whose training data
        differ in size from those the run recorded in ``train_summary``."""
        recorded = self.config.get("train_summary")
        if self.data_dir is None or self._moved_data_checked or recorded is None:
            return
        rows = self.data_config.load("train").summary()["rows"]
        if rows != recorded.get("rows"):
            raise RunError(f"{self.data_dir} holds other {self.config['data']['dataset']} files than {self.path} was trained "
                           f"on ({rows} training rows there, {recorded.get('rows')} recorded); pass the folder it was trained on")
        self._moved_data_checked = True

    def load_data(self, split: str) -> MultimodalDataset:
        """The run's data of ``split`` (the train split with its partial-observation scheme),
        checked against the vocabularies the run saved, so that its captions are always read and
        decoded with its own words."""
        self._check_moved_data()
        data = self.data_config.load(split)
        check_vocabularies(self.path, data)
        return data

    def training_pairs(self) -> MultimodalDataset:
        """Every training pair of the run's data set, the partial-observation scheme not applied
        (what evaluation probes fit on), checked as :meth:`load_data` checks."""
        self._check_moved_data()
        data = self.data_config.pairs("train", pairs_per_image=1)
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


def recorded_data(config: dict, path, data_dir=None) -> DataConfig:
    """The data config of the run in ``path``, its data folder replaced by ``data_dir`` when given;
    refused when this memevae would render its data differently than the run saw it (another
    rendering version)."""
    data = DataConfig.from_record(config["data"] if data_dir is None else {**config["data"], "data_dir": data_dir})
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
    config's :meth:`~memevae.data.DataConfig.kinds`) and ``options`` over the model's defaults
    (what a new run is built from; a recorded run is rebuilt by :func:`recorded_model`);
    ``shapes``: the example shapes of modalities whose size the data decide (a caption modality's
    vocabulary, :meth:`~memevae.data.MultimodalDataset.model_shape`)."""
    return model_class(name)(build_config(name, **{"modalities": dict(kinds), "shapes": dict(shapes or {}), **options}))


def kind_sources(config: ModelConfig) -> dict[str, str]:
    """{kind: "module:attribute"} of the modality kinds of ``config`` defined outside memevae (what a
    run records under "modality_sources" to import them again when it is loaded)."""
    return {kind: kind_source(kind) for kind in config.modalities.values() if kind_source(kind) is not None}


def recorded_model_config(config: dict, path) -> ModelConfig:
    """The model config a run recorded (``config.json``'s "model_config", the whole config as the
    run was built), whatever this memevae's defaults are now: its lists back to tuples where the
    field is a tuple, the modality kinds it names from outside memevae imported again. A field this
    memevae does not know, or a kind that cannot be imported, is a one-line RunError."""
    for kind, source in config.get("modality_sources", {}).items():
        try:
            register(source)
        except ValueError as error:
            raise RunError(f"{path} uses the modality kind {kind!r}: {error}") from None
    config_class = model_class(config["model"]).config_class
    record, fields = config["model_config"], hints(config_class)
    unknown = sorted(set(record) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise RunError(f"{path} records model_config field(s) {', '.join(unknown)} that memevae {__version__} does not know; "
                       f"use the memevae version that wrote it ({config.get('memevae_version')})")
    try:
        return build(config_class, {key: as_hinted(value, fields[key]) for key, value in record.items()}, f"{path} model_config")
    except ValueError as error:
        raise RunError(str(error)) from None


def recorded_model(config: dict, path) -> MultimodalVAE:
    """A new model of the config a run recorded (:func:`recorded_model_config`), untrained."""
    return model_from_config(recorded_model_config(config, path))


def load_run(path: str | os.PathLike, checkpoint: str = "last", device: str = "cpu", data_dir=None) -> Run:
    """Rebuild a run's model from its directory alone (config.json + a checkpoint), in eval mode;
    ``data_dir`` replaces the data folder recorded there (the same files, moved or seen from elsewhere)."""
    run_dir = RunDir(path)
    config = run_dir.read_config()
    state = run_dir.load_checkpoint(checkpoint, map_location=device)
    network = recorded_model(config, run_dir.path)
    network.load_state_dict(state["model"])
    network.to(device).eval()
    return Run(run_dir.path, config, network, state["history"], data_dir=data_dir)


def load_history(path) -> list[dict]:
    """A run's per-epoch records from its ``metrics.jsonl``."""
    run = RunDir(path)
    if not run.metrics_path.exists():
        raise RunError(f"{path} has no metrics.jsonl: not a memevae run, or one that has not finished an epoch")
    return run.read_metrics()


__all__ = ["Run", "RunError", "load_run", "load_history", "recorded_data", "recorded_model", "recorded_model_config", "run_name",
           "build_model", "kind_sources", "vocabulary_path", "save_vocabularies", "check_vocabularies"]
