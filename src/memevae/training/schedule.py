"""The order of batches within an epoch (as the authors' release orders them; docs/data.md).

Rows are grouped by which modalities they observe (paired, s-only, t-only); every batch is drawn
from one group, so a model computes one objective per batch. Each group is shuffled and cut into
batches, and the groups' batches are interleaved evenly across the epoch: the release's rule
(walk the unpaired data and insert the paired batches evenly) generalised to any number of groups.
"""

from __future__ import annotations

import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch ``epoch``'s data order, so a resumed run replays exactly the same order."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**63 - 1)


def epoch_batches(dataset, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The row indices of each batch of ``epoch``, deterministic in (seed, epoch); each batch
    holds rows of one observation pattern, and a trailing batch of one row is folded into the
    batch before it (a batch of one breaks BatchNorm)."""
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2, got {batch_size}")
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    keyed = []
    for group_order, (_, rows) in enumerate(sorted(dataset.patterns().items())):
        shuffled = rows[torch.randperm(len(rows), generator=generator)]
        chunks = list(shuffled.split(batch_size))
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            tail = chunks.pop()
            chunks[-1] = torch.cat([chunks[-1], tail])
        for i, chunk in enumerate(chunks):
            keyed.append(((i + 0.5) / len(chunks), group_order, chunk))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [chunk for _, _, chunk in keyed]
