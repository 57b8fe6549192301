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


def test_paired_rows_are_the_fully_observed_rows_or_none(toy):
    assert toy.paired_rows().tolist() == [0, 1, 2] and toy.paired_rows().dtype == torch.int64
    unpaired = toy.subset(torch.tensor([3, 5]))
    assert unpaired.paired_rows().tolist() == [] and unpaired.paired_rows().dtype == torch.int64


def test_summary(toy):
    assert toy.summary() == {"rows": 6, "paired": 3, "image only": 2, "vector only": 1}


def test_subset_shares_banks(toy):
    sub = toy.subset(torch.tensor([5, 0]))
    assert sub.summary() == {"rows": 2, "paired": 1, "image only": 0, "vector only": 1}
    assert sub.banks["image"].data_ptr() == toy.banks["image"].data_ptr()
    assert sub.labels.tolist() == [-1, 1]
    assert sub.formats == toy.formats


def formats_dataset(banks, formats=None):
    return MultimodalDataset(banks, {m: torch.tensor([0, 1]) for m in banks}, torch.tensor([3, 4]), "formats", formats)


def test_token_banks_are_int64_and_unchanged():
    tokens = torch.tensor([[5, 0, 9], [1, 2, 3]], dtype=torch.int32)
    data = formats_dataset({"words": tokens})
    assert data.formats["words"].name == "tokens"
    batch = data.batch(torch.tensor([1, 0]))
    assert batch.data["words"].dtype == torch.int64 and batch.data["words"].tolist() == [[1, 2, 3], [5, 0, 9]]
    assert data[0]["data"]["words"].dtype == torch.int64


def test_uint8_images_divided_by_255_and_float_banks_unchanged():
    image = torch.tensor([0, 51, 102, 255], dtype=torch.uint8).view(2, 1, 1, 2)
    features = torch.randn(2, 3, dtype=torch.float64)
    data = formats_dataset({"image": image, "features": features, "float image": torch.rand(2, 1, 2, 2)},
                           formats={"float image": "image"})
    batch = data.batch(torch.tensor([0, 1]))
    assert batch.data["image"].dtype == torch.float32
    assert torch.allclose(batch.data["image"].flatten(), torch.tensor([0.0, 0.2, 0.4, 1.0]))
    assert batch.data["features"].dtype == torch.float32 and torch.equal(batch.data["features"], features.float())
    assert torch.equal(batch.data["float image"], data.banks["float image"])


@pytest.mark.parametrize("banks, formats, message", [
    ({"a": torch.rand(2, 1, 2, 2)}, {"a": "tokens"}, r"bank 'a' has format 'tokens', which needs integer token ids; got torch.float32"),
    ({"a": torch.zeros(2, 3, dtype=torch.int64)}, {"a": "features"}, r"bank 'a' has format 'features', which needs floating"),
    ({"a": torch.zeros(2, 1, 2, 2, dtype=torch.int16)}, {"a": "image"}, r"bank 'a' has format 'image', which needs uint8 or float"),
    ({"a": torch.zeros(2, 3)}, {"a": "audio"}, r"unknown format 'audio'; choose one of image, tokens, features"),
    ({"a": torch.zeros(2, 3)}, {"b": "features"}, r"formats name modalities \['b'\] that have no bank"),
])
def test_a_bank_of_the_wrong_format_is_refused_in_one_line(banks, formats, message):
    with pytest.raises(ValueError, match=message) as info:
        formats_dataset(banks, formats)
    assert "\n" not in str(info.value)


def test_examples_are_the_used_bank_rows_with_their_first_label():
    bank = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1)
    data = MultimodalDataset({"a": bank, "b": torch.zeros(2, 1)}, {"a": torch.tensor([3, 1, 3, -1]), "b": torch.tensor([0, 1, 1, 0])},
                             torch.tensor([7, 8, 9, 6]), "toy")
    rows, labels = data.examples("a")
    assert rows.dtype == torch.uint8 and rows.flatten().tolist() == [1, 3]  # unconverted, in bank order; rows 0 and 2 unused
    assert labels.tolist() == [8, 7]
    rows, labels = data.examples("b")
    assert rows.shape == (2, 1) and labels.tolist() == [7, 8]
    with pytest.raises(ValueError, match="no modality 'c'; it has a, b"):
        data.examples("c")


def test_dataloader_collates_items(toy):
    loader = torch.utils.data.DataLoader(toy, batch_size=6)
    batch = next(iter(loader))
    assert batch["data"]["image"].shape == (6, 1, 2, 2)
    assert batch["mask"]["vector"].tolist() == [True, True, True, False, False, True]
    assert batch["label"].tolist() == [1, 2, 3, 4, 5, -1]


BANKS = {"a": torch.zeros(3, 1, 1, 2, dtype=torch.uint8), "b": torch.zeros(2, 2)}


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
        ({"a": torch.zeros(2, 2, dtype=torch.bool)}, {"a": torch.tensor([0])}, torch.tensor([0]), "format 'tokens', which needs integer"),
        ({"a": torch.zeros(2, 2, dtype=torch.uint8)}, {"a": torch.tensor([0])}, torch.tensor([0]), r"format 'image', which needs .*\(n, C, H, W\); got torch.uint8 \(2, 2\)"),
        ({}, {}, torch.tensor([]), "at least one modality"),
    ],
)
def test_constructor_validation(banks, index, labels, message):
    with pytest.raises(ValueError, match=message) as info:
        MultimodalDataset(banks, index, labels, "bad")
    assert "\n" not in str(info.value)
