import numpy as np
import pytest
import torch

from memevae.data import DataError, MultimodalDataset, apply_scheme

FRACTIONS = [0.5, 0.25, 0.125, 0.0625, 0.3]


def rows(data, pattern):
    return data.patterns().get(pattern, torch.zeros(0, dtype=torch.long))


def examples(data, pattern, modality):
    return set(data.index[modality][rows(data, pattern)].tolist())


def assert_no_leak(data):
    """No bank example of an unpaired row occurs in any paired row, and none repeats."""
    for m in data.modalities:
        alone = data.index[m][rows(data, (m,))].tolist()
        assert not set(alone) & examples(data, data.modalities, m)
        assert len(alone) == len(set(alone))


def assert_labels_kept(data, original):
    """Every row keeps the class of its examples in the original data."""
    for m in data.modalities:
        label_of = dict(zip(original.index[m].tolist(), original.labels.tolist()))
        seen = data.index[m] >= 0
        assert [label_of[i] for i in data.index[m][seen].tolist()] == data.labels[seen].tolist()


@pytest.mark.parametrize("f", FRACTIONS)
@pytest.mark.parametrize("unpaired", ["mnist", "textured"])
def test_single_modality_rest_counts(pair_dataset, f, unpaired):
    full = pair_dataset(n=203)
    data = apply_scheme(full, f, unpaired, seed=3)
    paired = int(np.floor(f * 203 + 0.5))
    other = "textured" if unpaired == "mnist" else "mnist"
    assert data.summary() == {"rows": 203, "paired": paired, f"{unpaired} only": 203 - paired, f"{other} only": 0}
    assert_no_leak(data)
    assert_labels_kept(data, full)


@pytest.mark.parametrize("f", FRACTIONS)
def test_split_counts_and_halves_never_seen_together(pair_dataset, f):
    full = pair_dataset(n=203)
    data = apply_scheme(full, f, "split", seed=3)
    paired = int(np.floor(f * 203 + 0.5))
    rest = 203 - paired
    assert data.summary() == {"rows": 203, "paired": paired, "mnist only": (rest + 1) // 2, "textured only": rest // 2}
    assert_no_leak(data)
    assert_labels_kept(data, full)
    # one-to-one data: row i of the original holds example i of each bank
    assert torch.equal(full.index["mnist"].sort().values, torch.arange(203))
    partner = dict(zip(full.index["mnist"].tolist(), full.index["textured"].tolist()))
    mnist_alone = examples(data, ("mnist",), "mnist")
    assert not {partner[i] for i in mnist_alone} & examples(data, ("textured",), "textured")


def test_paired_only(pair_dataset):
    data = apply_scheme(pair_dataset(n=200), 0.25, paired_only=True, seed=1)
    assert data.summary() == {"rows": 50, "paired": 50, "mnist only": 0, "textured only": 0}


def test_full_pairs_unchanged(pair_dataset):
    full = pair_dataset()
    assert apply_scheme(full).summary() == full.summary()
    assert apply_scheme(full, 1.0, "split").summary()["paired"] == len(full)


def test_deterministic_by_seed(pair_dataset):
    full = pair_dataset()
    a, b = (apply_scheme(full, 0.25, "split", seed=7) for _ in range(2))
    assert all(torch.equal(a.index[m], b.index[m]) for m in full.modalities)
    c = apply_scheme(full, 0.25, "split", seed=8)
    assert examples(a, full.modalities, "mnist") != examples(c, full.modalities, "mnist")


@pytest.mark.parametrize("unpaired", ["mnist", "textured", "split"])
def test_no_leak_with_many_partners(pair_dataset, unpaired):
    full = pair_dataset(n=400, per_image=3)
    data = apply_scheme(full, 0.0625, unpaired, seed=0)
    assert data.summary()["paired"] == round(0.0625 * 1200)
    assert_no_leak(data)
    assert_labels_kept(data, full)
    assert sum(len(r) for p, r in data.patterns().items() if len(p) == 1) > 0


def test_scheme_on_loaded_sample():
    from memevae.data import load_pairs

    data = apply_scheme(load_pairs("mnist-textured", "test"), 0.5, "split", seed=0)
    assert data.summary() == {"rows": 500, "paired": 250, "mnist only": 125, "textured only": 125}
    assert_no_leak(data)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"paired_fraction": 0.5}, "needs unpaired= one of mnist, textured, split, or paired_only=True"),
        ({"paired_fraction": 0.5, "unpaired": "svhn"}, "unknown unpaired choice 'svhn'; choose from mnist, textured, split"),
        ({"paired_fraction": 0.0, "unpaired": "split"}, r"paired_fraction must be in \(0, 1\]"),
        ({"paired_fraction": 1.5, "unpaired": "split"}, r"paired_fraction must be in \(0, 1\]"),
        ({"paired_fraction": 0.5, "unpaired": "split", "paired_only": True}, "not both"),
    ],
)
def test_bad_arguments(pair_dataset, kwargs, message):
    with pytest.raises(DataError, match=message):
        apply_scheme(pair_dataset(), **kwargs)


def test_needs_fully_paired_input(pair_dataset):
    partial = apply_scheme(pair_dataset(), 0.5, "mnist")
    with pytest.raises(DataError, match="needs a fully paired dataset; toy-pairs has 100 partial rows"):
        apply_scheme(partial, 0.5, "split")


def test_rows_sharing_their_first_modalitys_example_stay_on_one_side():
    """CUB: an image pairs with each of its ten captions; f and the schemes draw images, so an
    image's rows are all paired or all unpaired, and split gives an image's captions to one side."""
    images, per_image = 40, 10
    banks = {"image": torch.randn(images, 3), "caption": torch.arange(images * per_image).view(-1, 1)}
    index = {"image": torch.arange(images).repeat_interleave(per_image), "caption": torch.arange(images * per_image)}
    data = MultimodalDataset(banks, index, torch.arange(images).repeat_interleave(per_image), "toy")
    for unpaired in ("split", "image", "caption"):
        out = apply_scheme(data, 0.25, unpaired, seed=2)
        paired_images = set(out.index["image"][out.mask().all(1)].tolist())
        assert len(paired_images) == 10 and (out.mask().all(1)).sum() == 10 * per_image
        alone = out.index["image"][(out.index["caption"] < 0)]
        assert not set(alone.tolist()) & paired_images and len(alone) == len(set(alone.tolist()))
        caption_rows = out.index["caption"][out.index["image"] < 0]
        owners = set((caption_rows // per_image).tolist())
        assert not owners & paired_images and not owners & set(alone.tolist())
        if unpaired == "split":
            assert (len(alone), len(caption_rows)) == (15, 15 * per_image)
