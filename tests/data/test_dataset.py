import pytest
import torch

from memevae.data import Batch, MultimodalDataset


@pytest.fixture
def toy():
    """Rows 0-2 paired, 3-4 image only, 5 vector only."""
    banks = {
        "image": torch.arange(5 * 1 * 2 * 2, dtype=torch.uint8).reshape(5, 1, 2, 2),
        "vector": torch.randn(4, 3),
    }
    index = {"image": torch.tensor([0, 1, 2, 3, 4, -1]), "vector": torch.tensor([3, 2, 1, -1, -1, 0])}
    return MultimodalDataset(banks, index, torch.tensor([1, 2, 3, 4, 5, -1]), "toy")


def test_basic_properties(toy):
    assert len(toy) == 6
    assert toy.name == "toy"
    assert toy.modalities == ("image", "vector")
    assert toy.shape("image") == (1, 2, 2) and toy.shape("vector") == (3,)
    expected = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    assert torch.equal(toy.mask(), expected)


def test_getitem_converts_uint8_and_zeros_missing(toy):
    item = toy[3]
    assert item["mask"] == {"image": True, "vector": False}
    assert item["label"] == 4
    assert item["data"]["image"].dtype == torch.float32
    assert torch.allclose(item["data"]["image"], toy.banks["image"][3].float() / 255)
    assert torch.equal(item["data"]["vector"], torch.zeros(3))
    assert torch.equal(toy[5]["data"]["vector"], toy.banks["vector"][0])  # float banks as they are
    assert toy[5]["data"]["image"].dtype == torch.float32 and not toy[5]["data"]["image"].any()


def test_batch_has_only_observed_modalities(toy):
    batch = toy.batch(torch.tensor([2, 0]))
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.observed == ("image", "vector")
    assert torch.allclose(batch.data["image"], toy.banks["image"][[2, 0]].float() / 255)
    assert torch.equal(batch.data["vector"], toy.banks["vector"][[1, 3]])
    assert batch.labels.tolist() == [3, 1] and batch.labels.dtype == torch.int64
    assert toy.batch(torch.tensor([5])).observed == ("vector",)
    assert toy.batch([3, 4]).observed == ("image",)


def test_batch_rejects_mixed_patterns_and_empty(toy):
    with pytest.raises(ValueError, match="mix observation patterns.*patterns\\(\\)"):
        toy.batch(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="non-empty"):
        toy.batch(torch.tensor([], dtype=torch.long))


def test_batch_to_device(toy):
    batch = toy.batch(torch.tensor([0, 1])).to("cpu")
    assert batch.observed == ("image", "vector") and len(batch) == 2


def test_patterns_partition_rows(toy):
    groups = toy.patterns()
    assert list(groups) == [("image", "vector"), ("image",), ("vector",)]
    assert groups[("image",)].tolist() == [3, 4]
    assert all(g.dtype == torch.int64 for g in groups.values())
    assert sorted(torch.cat(list(groups.values())).tolist()) == list(range(6))


def test_summary(toy):
    assert toy.summary() == {"rows": 6, "paired": 3, "image only": 2, "vector only": 1}


def test_subset_shares_banks(toy):
    sub = toy.subset(torch.tensor([5, 0]))
    assert sub.summary() == {"rows": 2, "paired": 1, "image only": 0, "vector only": 1}
    assert sub.banks["image"].data_ptr() == toy.banks["image"].data_ptr()
    assert sub.labels.tolist() == [-1, 1]


def test_dataloader_collates_items(toy):
    loader = torch.utils.data.DataLoader(toy, batch_size=6)
    batch = next(iter(loader))
    assert batch["data"]["image"].shape == (6, 1, 2, 2)
    assert batch["mask"]["vector"].tolist() == [True, True, True, False, False, True]
    assert batch["label"].tolist() == [1, 2, 3, 4, 5, -1]


BANKS = {"a": torch.zeros(3, 2, dtype=torch.uint8), "b": torch.zeros(2, 2)}


@pytest.mark.parametrize(
    "banks, index, labels, message",
    [
        (BANKS, {"a": torch.tensor([0, 1]), "b": torch.tensor([0])}, torch.tensor([0, 0]), "index 'b' has 1 rows but labels has 2"),
        (BANKS, {"a": torch.tensor([0, 3]), "b": torch.tensor([0, 1])}, torch.tensor([0, 0]), "index 'a' out of range"),
        (BANKS, {"a": torch.tensor([0, -2]), "b": torch.tensor([0, 1])}, torch.tensor([0, 0]), "index 'a' out of range"),
        (BANKS, {"a": torch.tensor([0, -1]), "b": torch.tensor([0, -1])}, torch.tensor([0, 0]), "1 rows observe no modality"),
        (BANKS, {"a": torch.tensor([0])}, torch.tensor([0]), "differ from bank modalities"),
        (BANKS, {"a": torch.tensor([0]), "b": torch.tensor([0])}, torch.tensor([0.5]), "labels must be a 1-d integer"),
        (BANKS, {"a": torch.tensor([0.0]), "b": torch.tensor([0])}, torch.tensor([0]), "index 'a' must be a 1-d integer"),
        ({"a": torch.zeros(2, 2, dtype=torch.int32)}, {"a": torch.tensor([0])}, torch.tensor([0]), "banks must be uint8"),
        ({}, {}, torch.tensor([]), "at least one modality"),
    ],
)
def test_constructor_validation(banks, index, labels, message):
    with pytest.raises(ValueError, match=message) as info:
        MultimodalDataset(banks, index, labels, "bad")
    assert "\n" not in str(info.value)
