"""Judges (digit classifiers): saved with a sha256, refused when altered or trained on test data."""

import json

import pytest
import torch

from memevae.evaluation.judges import (JudgeCNN, JudgeError, default_judges_dir, info_path, load_judge,
                                       load_judges, save_judge, train_command, weights_path)

TRAIN_INFO = {"test_accuracy": 0.5, "trained_on": {"dataset": "mnist-textured", "variant": "mnist-textured/bright-v1",
                                                   "data_dir": None, "split": "train", "seed": 0}}


def _saved(tmp_path, modality="mnist", shape=(1, 28, 28), info=TRAIN_INFO, seed=0):
    torch.manual_seed(seed)
    net = JudgeCNN(shape).eval()
    save_judge(net, tmp_path, modality, info)
    return net


def test_round_trip_gives_the_same_predictions(tmp_path):
    net = _saved(tmp_path, "textured", (3, 32, 32))
    judge = load_judge(tmp_path, "textured")
    x = torch.rand(5, 3, 32, 32)
    assert torch.allclose(judge(x), net(x))
    assert judge.info["sha256"] == json.loads(info_path(tmp_path, "textured").read_text())["sha256"]
    assert judge.summary()["trained_on"]["split"] == "train"


def test_altered_weights_are_refused(tmp_path):
    _saved(tmp_path)
    record = info_path(tmp_path, "mnist").read_text()
    _saved(tmp_path, seed=1)  # new weights ...
    info_path(tmp_path, "mnist").write_text(record)  # ... under the old record
    with pytest.raises(JudgeError, match="does not match its record"):
        load_judge(tmp_path, "mnist", dataset="mnist-textured")


def test_a_flipped_byte_is_refused(tmp_path):
    _saved(tmp_path)
    path = weights_path(tmp_path, "mnist")
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(JudgeError, match="sha256"):
        load_judge(tmp_path, "mnist")


def test_a_judge_trained_on_test_data_is_refused(tmp_path):
    info = {**TRAIN_INFO, "trained_on": {**TRAIN_INFO["trained_on"], "split": "test"}}
    _saved(tmp_path, info=info)  # hash is right; the recorded data is not
    with pytest.raises(JudgeError, match="'test' split"):
        load_judge(tmp_path, "mnist")


def test_a_judge_of_another_rendering_is_refused(tmp_path):
    _saved(tmp_path)
    assert load_judge(tmp_path, "mnist", dataset="mnist-textured", rendering="bright")
    with pytest.raises(JudgeError, match="trained on mnist-textured/bright-v1, not on mnist-textured/inverted-v1; "
                                              "train judges for it: memevae judges train --dataset mnist-textured --rendering inverted"):
        load_judge(tmp_path, "mnist", dataset="mnist-textured", rendering="inverted")
    legacy = {**TRAIN_INFO, "trained_on": {k: v for k, v in TRAIN_INFO["trained_on"].items() if k != "variant"}}
    _saved(tmp_path, info=legacy)  # judges of early memevae 0.1.0 recorded no variant: they saw the inverted rendering
    assert load_judge(tmp_path, "mnist", dataset="mnist-textured", rendering="inverted")
    with pytest.raises(JudgeError, match="inverted-v1, not on mnist-textured/bright-v1"):
        load_judge(tmp_path, "mnist", dataset="mnist-textured")


def test_a_missing_judge_names_the_command(tmp_path):
    with pytest.raises(JudgeError) as error:
        load_judges(tmp_path / "nowhere", ["mnist", "textured"], dataset="mnist-textured", data_dir="/data")
    assert "memevae judges train --dataset mnist-textured --data-dir /data --out" in str(error.value)
    assert "mnist.json" in str(error.value)


def test_default_folder_and_command(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_judges_dir("mnist-textured") == tmp_path / "memevae" / "classifiers" / "mnist-textured"
    assert default_judges_dir("mnist-svhn", "/d") == default_judges_dir("mnist-svhn", "/d").__class__("/d/classifiers/mnist-svhn")
    assert train_command("mnist-svhn", "/d", default_judges_dir("mnist-svhn", "/d")) == \
        "memevae judges train --dataset mnist-svhn --data-dir /d"


def test_modality_examples_are_distinct_bank_entries(fakes):
    data = fakes.pairs(40)
    images, labels = data.examples("b")
    assert len(images) == 40
    assert torch.equal(fakes.read(images.float() / 255), labels)


def test_the_former_cli_names_still_work():
    from memevae.cli import build_parser

    parser = build_parser()
    new, old = parser.parse_args(["judges", "train"]), parser.parse_args(["classifiers", "train"])
    assert new.func is old.func and new.func.__name__ == "_judges_train"
    assert parser.parse_args(["evaluate", "RUN", "--classifiers", "D"]).judges == parser.parse_args(["evaluate", "RUN", "--judges", "D"]).judges


def test_evaluate_refuses_both_judges_and_classifiers(tmp_path):
    from memevae.evaluation import evaluate

    with pytest.raises(ValueError, match="not both"):
        evaluate(tmp_path, judges=tmp_path, classifiers=tmp_path)


def test_the_shipped_judges_load_unchanged():
    from memevae.evaluation.judges import SHIPPED_JUDGES, shipped_judges_dir

    folder = shipped_judges_dir("mnist-textured/bright-v1")
    assert folder is not None and folder.parent.parent == SHIPPED_JUDGES
    judges = load_judges(folder, ["mnist", "textured"], dataset="mnist-textured")
    assert {m: j.info["architecture"] for m, j in judges.items()} == {"mnist": "digit-cnn", "textured": "digit-cnn"}


def test_judges_of_a_data_set_with_a_choice_of_modalities_serve_every_choice(tmp_path):
    """polymnist-textured: one judge per modality of the data set (mnist and m0..m4), filed under
    the variant without the choice, and found by runs of any choice."""
    from memevae.data import DataConfig
    from memevae.evaluation.judges import train_judges
    from memevae.evaluation.judges import resolve_judges

    records = train_judges(DataConfig("polymnist-textured", modalities="2"), tmp_path, epochs=1, max_items=64,
                           progress=False, log=None)
    assert sorted(records) == ["m0", "m1", "m2", "m3", "m4", "mnist"]
    assert {r["trained_on"]["variant"] for r in records.values()} == {"polymnist-textured/bright-v1"}
    judges = resolve_judges(tmp_path, DataConfig("polymnist-textured", modalities="mnist,m2"), ["mnist", "m2"])
    assert sorted(judges) == ["m2", "mnist"]
