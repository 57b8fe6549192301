import numpy as np
import pytest
import torch

from memevae.data import DATASETS, DataError, load_pairs
from memevae.data.files.mnist import _MD5, read_mnist_sample, sample_provenance
from memevae.data.pairs import match_by_class, split_halves, stream
from memevae.data.textured import render_textured


def test_datasets():
    assert DATASETS == ("cub", "mnist-svhn", "mnist-textured", "polymnist", "polymnist-textured")


def test_match_by_class_one_to_one():
    rng = np.random.default_rng(0)
    la, lb = rng.integers(0, 10, 300), np.repeat(np.arange(11), 20)  # class 10 only in b
    a, b = match_by_class(la, lb, np.random.default_rng(1))
    np.testing.assert_array_equal(la[a], lb[b])
    assert len(set(a)) == len(a) and len(set(b)) == len(b)
    assert len(a) == sum(min((la == c).sum(), 20) for c in range(10))
    again = match_by_class(la, lb, np.random.default_rng(1))
    assert np.array_equal(a, again[0]) and np.array_equal(b, again[1])


def test_match_by_class_many_partners():
    labels_a, labels_b = np.repeat(np.arange(10), 8), np.repeat(np.arange(10), 12)
    a, b = match_by_class(labels_a, labels_b, np.random.default_rng(0), pairs_per_image=5)
    assert len(a) == 5 * 80
    np.testing.assert_array_equal(labels_a[a], labels_b[b])
    assert set(np.bincount(a)) == {5}  # every image of a in exactly 5 rows
    assert set(np.bincount(b)[np.unique(b)]) == {5}  # and 8 images of b per class, each in 5 rows
    assert len(np.unique(b)) == 80


def test_split_halves_disjoint_and_balanced():
    labels = np.repeat(np.arange(10), np.arange(20, 30))
    first, second = split_halves(labels, np.random.default_rng(0))
    assert not set(first) & set(second) and len(first) + len(second) == len(labels)
    for c in range(10):
        n = (labels == c).sum()
        assert (labels[first] == c).sum() == n // 2 and (labels[second] == c).sum() == n - n // 2


def trace(dataset, modality, originals):
    """Position in ``originals`` of each row's example of ``modality``."""
    table = {x.tobytes(): i for i, x in enumerate(originals)}
    bank = dataset.banks[modality].numpy()
    if modality == "mnist":
        bank = bank[:, 0]
    return np.array([table[bank[i].tobytes()] for i in dataset.index[modality].numpy()])


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_svhn_pairs(synthetic, split):
    folder, originals = synthetic
    data = load_pairs("mnist-svhn", split, folder, verify=False)
    assert data.name == "mnist-svhn" and data.modalities == ("mnist", "svhn")
    assert data.shape("mnist") == (1, 28, 28) and data.shape("svhn") == (3, 32, 32)
    (mx, my), (sx, sy) = originals["mnist", split], originals["svhn", split]
    assert len(data) == sum(min((my == c).sum(), (sy == c).sum()) for c in range(10))
    m, s = trace(data, "mnist", mx), trace(data, "svhn", sx)  # KeyError if from another split
    assert my[m].tolist() == sy[s].tolist() == data.labels.tolist()
    assert len(set(m)) == len(m) and len(set(s)) == len(s)
    assert len(data.banks["mnist"]) == len(data)  # banks hold only used examples


def test_mnist_svhn_many_partners_and_seed(synthetic):
    folder, _ = synthetic
    one = load_pairs("mnist-svhn", "train", folder, verify=False)
    many = load_pairs("mnist-svhn", "train", folder, verify=False, pairs_per_image=4)
    assert len(many) == 4 * len(one)
    assert set(torch.bincount(many.index["mnist"]).tolist()) == {4}
    same = load_pairs("mnist-svhn", "train", folder, verify=False)
    assert all(torch.equal(one.index[m], same.index[m]) and torch.equal(one.banks[m], same.banks[m]) for m in one.modalities)
    assert torch.equal(load_pairs("mnist-svhn", "train", folder, verify=False, seed=np.int64(0)).labels, one.labels)
    other = load_pairs("mnist-svhn", "train", folder, verify=False, seed=1)
    assert not torch.equal(one.labels, other.labels)


def test_mnist_svhn_checks_md5_and_needs_data_dir(synthetic):
    folder, _ = synthetic
    with pytest.raises(DataError, match="md5"):
        load_pairs("mnist-svhn", "test", folder)
    with pytest.raises(DataError, match="mnist-svhn needs the real files train_32x32.mat / test_32x32.mat .*--data-dir"):
        load_pairs("mnist-svhn", "train")


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("svhn", "train"), {}, "unknown dataset 'svhn'; choose from cub, mnist-svhn, mnist-textured"),
        (("mnist-textured", "valid"), {}, "unknown split 'valid'"),
        (("mnist-textured", "train"), {"pairs_per_image": 0}, "pairs_per_image must be an integer >= 1"),
        (("mnist-textured", "train"), {"seed": -1}, "seed must be an integer >= 0"),
        (("mnist-textured", "train"), {"seed": 0.5}, "seed must be an integer >= 0"),
        (("mnist-textured", "train"), {"pairs_per_image": True}, "pairs_per_image must be an integer >= 1"),
        (("mnist-textured", "train"), {"download": True}, "download=True needs a folder"),
    ],
)
def test_load_pairs_bad_arguments(args, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_pairs(*args, **kwargs)


def check_textured(data, digits, classes, seed):
    """Plain digits from one half, textured ones rendered from the other, partners of one class."""
    plain, textured = split_halves(classes, stream(seed, "halves"))
    m = trace(data, "mnist", digits)
    rendered = render_textured(digits[textured], stream(seed, "render"))
    k = trace(data, "textured", rendered)
    source = textured[k]
    assert set(m) <= set(plain) and set(source) <= set(textured)
    assert classes[m].tolist() == classes[source].tolist() == data.labels.tolist()
    assert (m != source).all()
    # the textured image is not its partner's strokes: re-render with the partner swapped in
    # (same photo and crop), keeping rows whose textured example has this one partner
    swapped = digits[textured].copy()
    swapped[k] = digits[m]
    as_partner = render_textured(swapped, stream(seed, "render"))[k]
    own = (swapped[k] == digits[m]).all((1, 2))
    difference = np.abs(rendered[k].astype(int) - as_partner.astype(int)).mean((1, 2, 3))
    assert own.sum() >= len(set(k)) and (difference[own] > 1).all()


def test_mnist_textured_from_data_dir(synthetic):
    folder, originals = synthetic
    digits, classes = originals["mnist", "train"]
    data = load_pairs("mnist-textured", "train", folder, seed=5, verify=False)
    assert data.modalities == ("mnist", "textured") and data.shape("textured") == (3, 32, 32)
    assert len(data) == sum((classes == c).sum() // 2 for c in range(10))
    check_textured(data, digits, classes, seed=5)
    again = load_pairs("mnist-textured", "train", folder, seed=5, verify=False)
    for m in data.modalities:  # byte-identical banks and index
        assert torch.equal(data.banks[m], again.banks[m]) and torch.equal(data.index[m], again.index[m])


def test_mnist_textured_many_partners(synthetic):
    folder, originals = synthetic
    data = load_pairs("mnist-textured", "test", folder, pairs_per_image=3, verify=False)
    assert len(data) == 3 * 50
    check_textured(data, *originals["mnist", "test"], seed=0)


def test_sample_is_class_balanced_real_mnist():
    for split, per_class in (("train", 600), ("test", 100)):
        images, labels = read_mnist_sample(split)
        assert images.shape == (10 * per_class, 28, 28) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == [per_class] * 10
    provenance = sample_provenance()
    assert provenance["sources"] == {name: md5s[0] for name, md5s in _MD5.items()}
    assert provenance["seed"] == 0


def test_sample_loads_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the sample must load without network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    data = load_pairs("mnist-textured", "test")
    assert data.summary() == {"rows": 500, "paired": 500, "mnist only": 0, "textured only": 0}
    assert torch.bincount(data.labels).tolist() == [50] * 10
    check_textured(data, *read_mnist_sample("test"), seed=0)
    batch = data.batch(torch.arange(8))
    assert batch.data["textured"].dtype == torch.float32 and 0 <= batch.data["textured"].min() <= batch.data["textured"].max() <= 1
