import torch

from memevae.data import MultimodalDataset
from memevae.training.schedule import epoch_batches


def partial_dataset(paired=10, first_only=25, second_only=0):
    n = paired + first_only + second_only
    banks = {"a": torch.zeros(n, 1, 2, 2, dtype=torch.uint8), "b": torch.zeros(n, 1, 2, 2, dtype=torch.uint8)}
    rows = torch.arange(n)
    index = {"a": torch.where(rows < paired + first_only, rows, -1), "b": torch.where((rows < paired) | (rows >= paired + first_only), rows, -1)}
    return MultimodalDataset(banks, index, rows % 10, name="toy")


def test_every_row_once_and_batches_homogeneous():
    data = partial_dataset(10, 25, 7)
    batches = epoch_batches(data, 4, seed=0, epoch=1)
    assert sorted(torch.cat(batches).tolist()) == list(range(42))
    mask = data.mask()
    for rows in batches:
        assert (mask[rows] == mask[rows[0]]).all()


def test_paired_batches_are_spread_evenly():
    """The release walks the unpaired data and inserts paired batches evenly."""
    data = partial_dataset(paired=8, first_only=32)
    kinds = ["P" if len(data.batch(rows).observed) == 2 else "U" for rows in epoch_batches(data, 4, seed=0, epoch=1)]
    assert kinds.count("P") == 2 and kinds.count("U") == 8
    positions = [i for i, k in enumerate(kinds) if k == "P"]
    assert positions[0] >= 1 and positions[1] - positions[0] >= 4


def test_order_depends_only_on_seed_and_epoch():
    data = partial_dataset()
    same = [torch.cat(epoch_batches(data, 4, seed=3, epoch=2)) for _ in range(2)]
    assert torch.equal(*same)
    assert not torch.equal(same[0], torch.cat(epoch_batches(data, 4, seed=3, epoch=3)))


def test_a_leftover_single_row_is_folded_into_the_previous_batch():
    batches = epoch_batches(partial_dataset(paired=9, first_only=0), 4, seed=0, epoch=1)
    assert sorted(len(b) for b in batches) == [4, 5]
