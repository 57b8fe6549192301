"""Data sets are declared one module each (memevae.data.registry); formats and default network kinds come from there."""

import pytest

from memevae.data import DATASETS, DataConfig, DataError, default_kinds, load_pairs, registry
from memevae.data.pairs import data_variant
from memevae.modalities import modality_kinds


def test_every_module_declaring_a_data_set_is_found():
    assert DATASETS == registry.names() == ("cub", "mnist-svhn", "mnist-textured", "polymnist", "polymnist-textured")
    assert {name: spec.label for name, spec in registry.datasets().items()} == {
        "cub": "CUB", "mnist-svhn": "MNIST-SVHN", "mnist-textured": "MNIST-Textured", "polymnist": "PolyMNIST",
        "polymnist-textured": "PolyMNIST-Textured"}
    assert registry.get("mnist-svhn").load.__module__ == "memevae.data.sets.mnist_svhn"


def test_default_kinds_and_variants_come_from_the_declarations():
    assert default_kinds("mnist-svhn") == {"mnist": "mnist-mlp", "svhn": "svhn-conv"}
    assert default_kinds("mnist-textured") == {"mnist": "mnist-mlp", "textured": "svhn-conv"}
    assert default_kinds("cub") == {"image": "features-mlp", "caption": "caption-conv"}
    assert data_variant("cub", "bright", features="colour-hog") == "cub/colour-hog"
    assert all(spec.default_kind in modality_kinds() for name in DATASETS for spec in registry.get(name).modalities.values())
    assert default_kinds("polymnist-textured") == {f"m{k}": "svhn-conv" for k in range(5)}  # the default choice, "5"
    assert default_kinds("polymnist") == {f"m{k}": "polymnist-mlp" for k in range(5)}
    assert data_variant("mnist-textured", "inverted") == "mnist-textured/inverted-v1"
    assert data_variant("mnist-svhn", "inverted") == "mnist-svhn"
    assert data_variant("?") == "?"  # a name no data set declares is filed as it is
    with pytest.raises(DataError, match="unknown dataset 'svhn'; choose from cub, mnist-svhn, mnist-textured"):
        default_kinds("svhn")


def test_loaded_data_match_the_declaration():
    spec = registry.get("mnist-textured")
    data = load_pairs("mnist-textured", "test")
    assert data.modalities == tuple(spec.modalities)
    for name, modality in spec.modalities.items():
        assert data.shape(name) == modality.shape and data.formats[name].name == modality.format
        assert modality_kinds()[modality.default_kind].shape == modality.shape


def test_data_config_lives_in_the_data_layer():
    import memevae
    import memevae.runs

    assert memevae.DataConfig is memevae.runs.DataConfig is DataConfig
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; choose one of cub, mnist-svhn, mnist-textured"):
        DataConfig(dataset="cifar")


def test_a_data_configs_pairs_are_load_pairs_with_its_settings_and_no_scheme():
    import torch

    config = DataConfig("polymnist-textured", modalities="mnist,m1", seed=3, pairs_per_image=2, paired_fraction=0.5,
                        unpaired="split", limit=10)
    pairs = config.pairs("train")
    same = load_pairs("polymnist-textured", "train", seed=3, pairs_per_image=2, modalities="mnist,m1")
    assert pairs.modalities == ("mnist", "m1") and len(pairs) == len(same) > 10 and pairs.summary()["paired"] == len(pairs)
    assert all(torch.equal(pairs.index[m], same.index[m]) for m in pairs.modalities)
    once = config.pairs("train", pairs_per_image=1, modalities="mnist,m0,m1")
    assert once.modalities == ("mnist", "m0", "m1") and len(once) < len(pairs)
    assert len(config.load("train")) == 10  # the scheme and the limit are load's
