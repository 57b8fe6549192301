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


# --- many modalities: unpaired="random" and "+"-joined subsets -------------------------------------

MANY = ("m0", "m1", "m2", "m3")


@pytest.fixture
def many_dataset():
    """An in-memory paired dataset of four modalities matched by class (``per_image`` partners)."""

    def make(n=203, per_image=1, seed=0):
        from memevae.data.pairs import match_sets_by_class

        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 10
        rows = match_sets_by_class([labels] * len(MANY), rng, per_image)
        banks = {m: torch.from_numpy(rng.integers(0, 256, (n, 1, 2, 2), dtype=np.uint8)) for m in MANY}
        return MultimodalDataset(banks, {m: torch.from_numpy(r) for m, r in zip(MANY, rows)},
                                 torch.from_numpy(labels[rows[0]]), "toy-many")

    return make


def assert_no_partial_leak(data):
    """No bank example of a partial row occurs in a paired row; no two rows of one pattern keep the same examples."""
    complete = data.mask().all(1)
    for pattern, found in data.patterns().items():
        if len(pattern) == len(data.modalities):
            continue
        for m in pattern:
            assert not set(data.index[m][found].tolist()) & set(data.index[m][complete].tolist())
        kept = torch.stack([data.index[m][found] for m in pattern], 1)
        assert len(kept.unique(dim=0)) == len(kept)


@pytest.mark.parametrize("f", [0.5, 0.25, 0.0625])
def test_random_keeps_a_proper_subset_per_unpaired_row(many_dataset, f):
    full = many_dataset()
    data = apply_scheme(full, f, "random", seed=3)
    paired = int(np.floor(f * 203 + 0.5))
    summary = data.summary()
    assert summary["rows"] == 203 and summary["paired"] == paired  # no unpaired row is complete
    patterns = [p for p in data.patterns() if len(p) < len(MANY)]
    assert all(1 <= len(p) < len(MANY) for p in patterns)
    assert len(patterns) >= 10  # of the 14 proper subsets, most occur among ~100-190 rows
    assert_no_partial_leak(data)
    assert_labels_kept(data, full)


def test_random_is_seeded(many_dataset):
    full = many_dataset()
    a, b = (apply_scheme(full, 0.25, "random", seed=7) for _ in range(2))
    assert all(torch.equal(a.index[m], b.index[m]) for m in MANY)
    c = apply_scheme(full, 0.25, "random", seed=8)
    assert not all(torch.equal(a.index[m], c.index[m]) for m in MANY)
    # the paired rows are those of every other scheme with the same seed
    subset = apply_scheme(full, 0.25, "m0+m1", seed=7)
    assert examples(a, MANY, "m0") == examples(subset, MANY, "m0")


def test_random_with_two_modalities_keeps_one_each(pair_dataset):
    data = apply_scheme(pair_dataset(n=400), 0.25, "random", seed=0)
    summary = data.summary()
    assert summary["paired"] == 100 and summary["mnist only"] + summary["textured only"] == 300
    assert 100 < summary["mnist only"] < 200  # uniform over the two modalities
    assert_no_leak(data)


def test_named_subset(many_dataset):
    full = many_dataset()
    data = apply_scheme(full, 0.25, "m2+m0", seed=1)
    assert data.summary() == {"rows": 203, "paired": 51, "m0 only": 0, "m1 only": 0, "m2 only": 0, "m3 only": 0,
                              "m0 + m2": 152}
    same = apply_scheme(full, 0.25, "m0+m2", seed=1)
    assert all(torch.equal(data.index[m], same.index[m]) for m in MANY)
    assert_no_partial_leak(data)
    assert_labels_kept(data, full)


@pytest.mark.parametrize("unpaired", ["random", "m1+m3", "m0+m1+m2"])
def test_subsets_with_many_partners_never_leak(many_dataset, unpaired):
    full = many_dataset(n=300, per_image=3)
    data = apply_scheme(full, 0.0625, unpaired, seed=0)
    assert data.summary()["paired"] == 3 * 19  # 19 of the 300 images (groups), each with its three partners
    assert_no_partial_leak(data)
    assert_labels_kept(data, full)
    assert sum(len(r) for p, r in data.patterns().items() if len(p) < len(MANY)) > 0


def test_random_draws_by_group():
    """CUB: an image's ten captions are one group, so all its rows keep the same modalities."""
    images, per_image = 60, 10
    banks = {"image": torch.randn(images, 3), "caption": torch.arange(images * per_image).view(-1, 1)}
    index = {"image": torch.arange(images).repeat_interleave(per_image), "caption": torch.arange(images * per_image)}
    data = apply_scheme(MultimodalDataset(banks, index, torch.arange(images).repeat_interleave(per_image), "toy"),
                        0.25, "random", seed=2)
    alone = data.index["image"][data.index["caption"] < 0]
    caption_rows = data.index["caption"][data.index["image"] < 0]
    assert len(alone) + len(caption_rows) // per_image == 45 and len(caption_rows) % per_image == 0
    assert not set(alone.tolist()) & set((caption_rows // per_image).tolist())


def test_scheme_on_loaded_polymnist_textured():
    from memevae.data import load_pairs

    data = apply_scheme(load_pairs("polymnist-textured", "test", modalities=3), 0.5, "random", seed=0)
    assert data.summary()["paired"] == 165 and len(data) == 330
    assert_no_partial_leak(data)


@pytest.mark.parametrize("unpaired, message", [
    ("m0+m1+m2+m3", r"unpaired='m0\+m1\+m2\+m3' keeps every modality, so the unpaired rows would be paired"),
    ("m0+m9", r"unknown unpaired choice 'm0\+m9'; choose from m0, m1, m2, m3, split, random, or modalities joined by '\+'"),
    ("m0+m0", r"unknown unpaired choice 'm0\+m0'"),
    ("m0+", r"unknown unpaired choice 'm0\+'"),
])
def test_bad_subsets(many_dataset, unpaired, message):
    with pytest.raises(DataError, match=message) as raised:
        apply_scheme(many_dataset(), 0.5, unpaired)
    assert "\n" not in str(raised.value)


def test_missing_choice_names_the_new_schemes(many_dataset, pair_dataset):
    with pytest.raises(DataError, match=r"or paired_only=True; unpaired= may also be random, or modalities joined by '\+'"):
        apply_scheme(many_dataset(), 0.5)
    with pytest.raises(DataError, match="mnist, textured, split, or paired_only=True; unpaired= may also be random$"):
        apply_scheme(pair_dataset(), 0.5)
    with pytest.raises(DataError, match="unknown unpaired choice 'mnist\\+textured'|keeps every modality"):
        apply_scheme(pair_dataset(), 0.5, "mnist+textured")
