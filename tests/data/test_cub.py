"""The CUB data set (paper Sec. 4, Table 5): images as cached features paired with each of their
ten captions, the class split, the vocabulary travelling with the data, the partial schemes by
image, and the command line from features to a trained and evaluated run (on the committed
sample of real CUB files, with the weight-free colour-hog features)."""

import shutil
from pathlib import Path

import pytest

from memevae.cli import main
from memevae.data import DataConfig, DataError, load_pairs
from memevae.data.sets.cub import features_cache
from memevae.data.features.image_features import compute_features

SAMPLE = Path(__file__).parent / "cub_sample"


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    """A copy of the sample with its colour-hog features computed."""
    from memevae.data.files.cub import read_cub

    root = tmp_path_factory.mktemp("cub") / "cub"
    shutil.copytree(SAMPLE, root)
    compute_features(root, list(read_cub(root).paths), "colour-hog", features_cache(root, "colour-hog"), progress=False)
    return root


def config(root, **changes):
    return DataConfig(**{"dataset": "cub", "data_dir": str(root), "features": "colour-hog", **changes})


def test_each_image_pairs_with_its_ten_captions_in_its_split(cub):
    train, test = config(cub).load("train"), config(cub).load("test")
    assert train.summary() == {"rows": 120, "paired": 120, "image only": 0, "caption only": 0}
    assert len(test) == 120 and not set(train.labels.tolist()) & set(test.labels.tolist())  # split by class
    assert train.index["image"].tolist() == [i for i in range(12) for _ in range(10)]
    assert train.model_shape("image") == (2276,) and train.model_shape("caption") == (32, len(train.vocabularies["caption"]))
    assert test.vocabularies["caption"] == train.vocabularies["caption"]  # built from the training captions
    assert config(cub).variant == "cub/colour-hog" and DataConfig(dataset="cub", data_dir=str(cub)).variant == "cub/resnet101"
    words = train.show("caption", train.banks["caption"][:1])[0].split()
    assert words[-1] == "." and len(words) > 3
    pictures = train.show("image", train.banks["image"][:2])  # a feature vector shows as its nearest real image
    assert [tuple(p.shape) for p in pictures] == [(3, 64, 64)] * 2


def test_partial_schemes_draw_images_with_all_their_captions(cub):
    data = config(cub, paired_fraction=0.5, unpaired="split").load("train")
    paired = set(data.index["image"][data.mask().all(1)].tolist())
    assert len(paired) == 6 and data.summary()["paired"] == 60
    assert data.summary()["image only"] == 3 and data.summary()["caption only"] == 30


def test_bad_requests_are_one_line_errors(cub, tmp_path):
    with pytest.raises(DataError, match="cub needs --data-dir"):
        load_pairs("cub", "train")
    with pytest.raises(DataError, match="pairs-per-image does not apply"):
        load_pairs("cub", "train", str(cub), pairs_per_image=2, features="colour-hog")
    with pytest.raises(ValueError, match="features applies to data sets with image features"):
        DataConfig(dataset="mnist-textured", features="colour-hog")
    with pytest.raises(DataError, match="mnist-textured takes no option"):
        load_pairs("mnist-textured", "train", features="colour-hog")
    with pytest.raises(DataError) as missing:
        config(cub, features="resnet101").load("train")
    assert "\n" not in str(missing.value) and "memevae features cub" in str(missing.value)
    assert "--features colour-hog` and train with --features colour-hog" in str(missing.value)
    elsewhere = tmp_path / "my-features"
    with pytest.raises(DataError) as missing:  # a features folder of the user's: the command writes there
        config(cub, features_dir=str(elsewhere)).load("train")
    assert f"compute it with `memevae features cub --data-dir {cub} --features colour-hog --out {elsewhere}`" in str(missing.value)


@pytest.mark.slow
def test_features_train_and_evaluate_from_the_command_line(cub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the fitted CCA measure is cached there
    assert main(["features", "cub", "--data-dir", str(cub), "--features", "colour-hog", "--no-progress"]) == 0
    assert "24 x 2276 colour-hog features (not the paper's" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "--dataset", "cub", "--data-dir", str(cub), "--features", "colour-hog", "--out", str(run),
                 "--epochs", "1", "--batch-size", "20", "--limit", "40", "--classifier-samples", "1",
                 "--pseudo-samples", "4", "--paired-fraction", "0.5", "--unpaired", "split", "--quiet"]) == 0
    assert (run / "figures" / "generation-epoch-0001.png").exists()
    assert (run / "vocabulary-caption.json").exists()  # the run's own words
    assert main(["evaluate", str(run), "--quiet", "--cca-coherence-components", "8"]) == 0  # 12 training images
    import json

    results = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert "coherence" not in results["metrics"] and "latent" not in results["metrics"]  # they cannot measure CUB
    values = results["metrics"]["cca-coherence"]["values"]
    assert set(values) == {"image->caption", "caption->image", "ground_truth", "items"} and values["items"] == 120
    assert all(-1 <= values[k] <= 1 for k in ("image->caption", "caption->image", "ground_truth"))
    assert len(list((tmp_path / "cache" / "memevae" / "cca" / "cub" / "colour-hog").glob("cca-8x300-seed0-*.npz"))) == 1
    config_json = json.loads((run / "config.json").read_text())
    assert config_json["model_config"]["shapes"]["caption"][1] == len(config(cub).load("train").vocabularies["caption"])


def test_runs_record_an_absolute_data_folder_and_read_a_moved_one(cub, tmp_path, monkeypatch, capsys):
    """A run trained with a relative --data-dir is evaluated and translated from another folder,
    and after its data moved, with --data-dir (CLI) or data_dir= (Python)."""
    import json

    from memevae import load_run
    from memevae.runs import RunError

    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(cub, first / "cub")
    monkeypatch.chdir(first)
    assert main(["train", "--dataset", "cub", "--data-dir", "cub", "--features", "colour-hog", "--out", "run",
                 "--epochs", "1", "--batch-size", "20", "--limit", "40", "--classifier-samples", "1",
                 "--pseudo-samples", "4", "--quiet"]) == 0
    assert json.loads((first / "run" / "config.json").read_text())["data"]["data_dir"] == str(first / "cub")
    monkeypatch.chdir(tmp_path)  # the recorded folder still reads from elsewhere
    translate = ["translate", "first/run", "--from", "caption", "--to", "image", "--count", "2", "--samples", "1"]
    assert main([*translate, "--out", "a.png"]) == 0 and (tmp_path / "a.png").exists()

    second.mkdir()
    (first / "cub").rename(second / "cub")
    capsys.readouterr()
    assert main([*translate, "--out", "b.png"]) == 1
    assert str(first / "cub") in capsys.readouterr().err
    assert main([*translate, "--out", "b.png", "--data-dir", "second/cub"]) == 0 and (tmp_path / "b.png").exists()
    assert main(["evaluate", "first/run", "--metrics", "grids,tsne,relatedness", "--tsne-points", "60", "--quiet",
                 "--data-dir", "second/cub"]) == 0
    results = json.loads((first / "run" / "evaluation" / "metrics.json").read_text())
    # CUB's labels are bird classes, and its reference is the paper's Table 5 (f = 1, MEME)
    assert "knn_same_class" in results["metrics"]["tsne"]["values"]
    assert "unpaired_same_class_mean" in results["metrics"]["relatedness"]["values"]
    assert not any("digit" in key for entry in results["metrics"].values() for key in entry["values"])
    reference = results["reference"]
    assert reference["dataset"] == "CUB" and set(reference) == {"source", "dataset", "cca-coherence", "note"}
    assert {k: v["mean"] for k, v in reference["cca-coherence"].items()} == {
        "image->caption": 0.064, "caption->image": 0.074, "ground_truth": 0.106}
    run = load_run("first/run", data_dir="second/cub")
    assert run.data_config.data_dir == str(second / "cub") and len(run.load_data("test")) == 120

    run = load_run("first/run", data_dir="second/cub")
    run.config["train_summary"] = {**run.config["train_summary"], "rows": 41}  # as if the folder held other files
    with pytest.raises(RunError, match=r"second/cub holds other cub files than .*\(40 training rows there, 41 recorded\)"):
        run.load_data("test")
