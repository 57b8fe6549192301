"""One place for each option: ``memevae train``'s data and training options, a sweep's train
commands and ``memevae features`` come from the dataclasses and the data set registry; recorded
runs still read into a DataConfig."""

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from memevae import cli, sweeps
from memevae.data import DataConfig, DataSet, ModalitySpec, registry
from memevae.data.pairs import recorded_variant
from memevae.data.registry import ImageFeatures
from memevae.options import field_help, given
from memevae.training.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[name]


def _settings():
    """(dataclass, field) of every data and training setting, and of every data set's own options."""
    own = [spec.options for spec in registry.datasets().values() if dataclasses.is_dataclass(spec.options)]
    classes = [DataConfig, TrainConfig, *dict.fromkeys(own)]
    return [(cls, f) for cls in classes for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls, field", _settings(), ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_setting_has_one_train_option_documented_by_its_field(cls, field):
    train = _subparser("train")
    options = [a for a in train._actions if a.dest == field.name]
    if field.metadata.get("flag", "") is None:  # declared without a command-line option
        assert not options
        return
    if cls is DataConfig and field.name == "seed":  # --seed is the training option's, and seeds the data too
        assert [a.option_strings for a in options] == [["--seed"]]
        return
    assert len(options) == 1, f"{field.name}: {[a.option_strings for a in options]}"
    assert field_help(cls)[field.name] in options[0].help


def test_the_sweeps_flags_are_the_train_options():
    train = _subparser("train")
    by_flag = {flag: action.dest for action in train._actions for flag in action.option_strings}
    for field, flag in {**sweeps.DATA_FLAGS, **sweeps.TRAIN_FLAGS}.items():
        assert isinstance(flag, str) and by_flag[flag] == field


def test_a_sweeps_command_parses_back_into_its_settings(tmp_path):
    data = DataConfig("cub", data_dir=str(tmp_path), features="colour-hog", paired_fraction=0.5, unpaired="caption",
                      verify=False, paired_only=True)
    spec = sweeps.RunSpec("meme", data, {"epochs": 3, "learning_rate": 1e-3, "tensorboard": True}, {}, tmp_path / "run")
    args = cli.build_parser().parse_args(spec.train_command(resume=False))
    assert DataConfig(**{**given(args, args.data_options), "seed": args.seed}) == data
    assert given(args, args.train_options) == {"epochs": 3, "learning_rate": 1e-3, "tensorboard": True, "seed": 0}


def test_features_are_checked_against_the_backbones_when_given(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^unknown features 'resnet50'; choose one of resnet101, colour-hog$"):
        DataConfig("cub", data_dir=str(tmp_path), features="resnet50")
    with pytest.raises(SystemExit):
        cli.main(["train", "--dataset", "cub", "--data-dir", str(tmp_path), "--features", "resnet50"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("argument --features: invalid choice: 'resnet50' (choose from 'resnet101', 'colour-hog')")


def test_the_features_command_takes_the_data_sets_with_image_features(tmp_path, monkeypatch):
    known, seen = registry.datasets(), []
    pictures = DataSet("pictures", "Pictures", {"a": ModalitySpec("features", (None,), "features-mlp"),
                                                "b": ModalitySpec("features", (None,), "features-mlp")}, load=None,
                       image_features=ImageFeatures(images=lambda data_dir: ["x.png"],
                                                    cache=lambda data_dir, features, out: tmp_path / f"{features}.npy"))
    monkeypatch.setattr(registry, "datasets", lambda: {**known, "pictures": pictures})
    monkeypatch.setattr("memevae.data.features.image_features.main",
                        lambda args, images, cache: seen.append((args.dataset, images(None), cache(None, args.backbone, None))))
    choices = [a for a in _subparser("features")._actions if a.dest == "dataset"][0].choices
    assert choices == ["cub", "pictures"]
    assert cli.main(["features", "pictures", "--data-dir", str(tmp_path), "--features", "colour-hog"]) == 0
    assert seen == [("pictures", ["x.png"], tmp_path / "colour-hog.npy")]


RECORDS = sorted(ROOT.glob("docs/**/config.json"))


def test_there_are_recorded_runs():
    assert len(RECORDS) >= 20


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recorded_run_reads_into_a_data_config_of_its_variant(path):
    config = json.loads(path.read_text())
    data = DataConfig.from_record(config["data"])
    assert data.variant == recorded_variant(config)
    assert DataConfig.from_record(data.record()) == data


def test_each_data_set_is_one_module_of_data_sets():
    import importlib
    import pkgutil

    import memevae.data as package

    declared = {}
    for module in pkgutil.walk_packages(package.__path__, "memevae.data."):
        found = getattr(importlib.import_module(module.name), "DATASET", None)
        if isinstance(found, DataSet):
            declared[found.name] = module.name
    assert declared == {name: f"memevae.data.sets.{name.replace('-', '_')}" for name in registry.names()}
