"""Judge classifiers: saved with a sha256, refused when altered or trained on test data."""

import json

import pytest
import torch

from memevae.evaluation.classifiers import (ClassifierError, DigitCNN, default_classifier_dir, info_path, load_classifier,
                                            load_classifiers, modality_examples, save_classifier, train_command, weights_path)

TRAIN_INFO = {"test_accuracy": 0.5, "trained_on": {"dataset": "mnist-textured", "variant": "mnist-textured/bright-v1",
                                                   "data_dir": None, "split": "train", "seed": 0}}


def _saved(tmp_path, modality="mnist", shape=(1, 28, 28), info=TRAIN_INFO, seed=0):
    torch.manual_seed(seed)
    net = DigitCNN(shape).eval()
    save_classifier(net, tmp_path, modality, info)
    return net


def test_round_trip_gives_the_same_predictions(tmp_path):
    net = _saved(tmp_path, "textured", (3, 32, 32))
    judge = load_classifier(tmp_path, "textured")
    x = torch.rand(5, 3, 32, 32)
    assert torch.allclose(judge(x), net(x))
    assert judge.info["sha256"] == json.loads(info_path(tmp_path, "textured").read_text())["sha256"]
    assert judge.summary()["trained_on"]["split"] == "train"


def test_altered_weights_are_refused(tmp_path):
    _saved(tmp_path)
    record = info_path(tmp_path, "mnist").read_text()
    _saved(tmp_path, seed=1)  # new weights ...
    info_path(tmp_path, "mnist").write_text(record)  # ... under the old record
    with pytest.raises(ClassifierError, match="does not match its record"):
        load_classifier(tmp_path, "mnist", dataset="mnist-textured")


def test_a_flipped_byte_is_refused(tmp_path):
    _saved(tmp_path)
    path = weights_path(tmp_path, "mnist")
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ClassifierError, match="sha256"):
        load_classifier(tmp_path, "mnist")


def test_a_classifier_trained_on_test_data_is_refused(tmp_path):
    info = {**TRAIN_INFO, "trained_on": {**TRAIN_INFO["trained_on"], "split": "test"}}
    _saved(tmp_path, info=info)  # hash is right; the recorded data is not
    with pytest.raises(ClassifierError, match="'test' split"):
        load_classifier(tmp_path, "mnist")


def test_a_judge_of_another_rendering_is_refused(tmp_path):
    _saved(tmp_path)
    assert load_classifier(tmp_path, "mnist", dataset="mnist-textured", rendering="bright")
    with pytest.raises(ClassifierError, match="trained on mnist-textured/bright-v1, not on mnist-textured/inverted-v1; "
                                              "train judges for it: memevae classifiers train --dataset mnist-textured --rendering inverted"):
        load_classifier(tmp_path, "mnist", dataset="mnist-textured", rendering="inverted")
    legacy = {**TRAIN_INFO, "trained_on": {k: v for k, v in TRAIN_INFO["trained_on"].items() if k != "variant"}}
    _saved(tmp_path, info=legacy)  # judges of memevae 0.1 recorded no variant: they saw the inverted rendering
    assert load_classifier(tmp_path, "mnist", dataset="mnist-textured", rendering="inverted")
    with pytest.raises(ClassifierError, match="inverted-v1, not on mnist-textured/bright-v1"):
        load_classifier(tmp_path, "mnist", dataset="mnist-textured")


def test_a_missing_classifier_names_the_command(tmp_path):
    with pytest.raises(ClassifierError) as error:
        load_classifiers(tmp_path / "nowhere", ["mnist", "textured"], dataset="mnist-textured", data_dir="/data")
    assert "memevae classifiers train --dataset mnist-textured --data-dir /data --out" in str(error.value)
    assert "mnist.json" in str(error.value)


def test_default_folder_and_command(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_classifier_dir("mnist-textured") == tmp_path / "memevae" / "classifiers" / "mnist-textured"
    assert default_classifier_dir("mnist-svhn", "/d") == default_classifier_dir("mnist-svhn", "/d").__class__("/d/classifiers/mnist-svhn")
    assert train_command("mnist-svhn", "/d", default_classifier_dir("mnist-svhn", "/d")) == \
        "memevae classifiers train --dataset mnist-svhn --data-dir /d"


def test_modality_examples_are_distinct_bank_entries(fakes):
    data = fakes.pairs(40)
    images, labels = modality_examples(data, "b")
    assert len(images) == 40
    assert torch.equal(fakes.read(images.float() / 255), labels)
