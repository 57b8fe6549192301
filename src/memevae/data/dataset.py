"""One dataset type for complete and partially observed multimodal data (paper Sec. 4.1; docs/data.md).

Each modality has a *bank* of examples and each row holds an index into every bank, or -1 where
that modality is missing. Rows sharing a bank example share its memory, so pairing an image with
many partners (MMVAE's protocol) or dropping a modality (the partial schemes) never copies images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .formats import Format, as_float_images, get_format, infer_format

__all__ = ["Batch", "MultimodalDataset", "as_float_images"]


@dataclass
class Batch:
    """A batch of rows sharing one observation pattern.

    ``data`` holds only the observed modalities, as their formats prepare them (images float in
    [0, 1], shape (B, C, H, W); tokens int64);
    ``labels`` the class of each row (-1 if unknown).
    """

    data: dict[str, torch.Tensor]
    labels: torch.Tensor

    @property
    def observed(self) -> tuple[str, ...]:
        """Names of the observed modalities, in dataset modality order."""
        return tuple(self.data)

    def to(self, device) -> "Batch":
        return Batch({m: x.to(device) for m, x in self.data.items()}, self.labels.to(device))

    def __len__(self) -> int:
        return self.labels.shape[0]


class MultimodalDataset(torch.utils.data.Dataset):
    """Rows of multimodal data, each modality observed or missing per row.

    Each modality has a *bank* of examples and a format (:mod:`memevae.data.formats`) that checks
    the bank and prepares its rows on access: "image" (uint8 (n,C,H,W) divided by 255, float as
    float32), "tokens" (integers as int64) or "features" (float32). ``formats`` names them per
    modality; by default uint8 banks are images, other integer banks tokens, float banks features.
    Each row holds an index into every bank, or -1 where that modality is missing for the row.

    >>> banks = {"a": torch.zeros(3, 1, 2, 2, dtype=torch.uint8), "b": torch.randn(2, 4)}
    >>> ds = MultimodalDataset(banks, {"a": torch.tensor([0, 1, 2]), "b": torch.tensor([1, 0, -1])},
    ...                        torch.tensor([7, 7, 3]), "toy")
    >>> ds.summary()
    {'rows': 3, 'paired': 2, 'a only': 1, 'b only': 0}
    >>> ds.batch(torch.tensor([0, 1])).observed
    ('a', 'b')
    >>> ds.formats
    {'a': Format('image'), 'b': Format('features')}
    """

    def __init__(self, banks: dict[str, torch.Tensor], index: dict[str, torch.Tensor], labels: torch.Tensor, name: str,
                 formats: dict[str, str | Format] | None = None, vocabularies: dict | None = None,
                 views: dict | None = None):
        if not banks:
            raise ValueError("banks is empty: a dataset needs at least one modality")
        if set(index) != set(banks):
            raise ValueError(f"index modalities {sorted(index)} differ from bank modalities {sorted(banks)}")
        unknown = sorted(set(formats or {}) - set(banks))
        if unknown:
            raise ValueError(f"formats name modalities {unknown} that have no bank; banks: {sorted(banks)}")
        self.formats = {}
        for m, bank in banks.items():
            if not isinstance(bank, torch.Tensor) or bank.ndim < 2:
                raise ValueError(f"bank {m!r} must be a tensor (n, ...) of examples")
            declared = (formats or {}).get(m)
            fmt = infer_format(bank) if declared is None else declared if isinstance(declared, Format) else get_format(declared)
            fmt.check(m, bank)
            self.formats[m] = fmt
        self.views = dict(views or {})
        self.vocabularies = dict(vocabularies or {})
        for m, vocabulary in self.vocabularies.items():
            if m not in banks or self.formats[m].name != "tokens":
                raise ValueError(f"vocabularies name {m!r}, which is not a tokens modality of this dataset")
            if len(banks[m]) and int(banks[m].max()) >= len(vocabulary):
                raise ValueError(f"bank {m!r} has token id {int(banks[m].max())} but its vocabulary has {len(vocabulary)} words")
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be a 1-d integer tensor, got {labels.dtype} {tuple(labels.shape)}")
        self.name = name
        self.modalities = tuple(banks)
        self.banks = dict(banks)
        self.labels = labels.long()
        self.index = {}
        for m in self.modalities:
            idx = torch.as_tensor(index[m])
            if idx.ndim != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
                raise ValueError(f"index {m!r} must be a 1-d integer tensor, got {idx.dtype} {tuple(idx.shape)}")
            if len(idx) != len(self.labels):
                raise ValueError(f"index {m!r} has {len(idx)} rows but labels has {len(self.labels)}")
            if len(idx) and (idx.min() < -1 or idx.max() >= len(banks[m])):
                raise ValueError(f"index {m!r} out of range: values must be -1 or in [0, {len(banks[m])})")
            self.index[m] = idx.long()
        unobserved = (~self.mask().any(1)).sum().item()
        if unobserved:
            raise ValueError(f"{unobserved} rows observe no modality; every row needs at least one")

    def __len__(self) -> int:
        return len(self.labels)

    def mask(self) -> torch.Tensor:
        """(N, M) bool, True where observed; columns in modality order."""
        return torch.stack([self.index[m] >= 0 for m in self.modalities], 1)

    def shape(self, modality: str) -> tuple[int, ...]:
        """Shape of one example of ``modality``, e.g. (1, 28, 28)."""
        return tuple(self.banks[modality].shape[1:])

    def model_shape(self, modality: str) -> tuple[int, ...]:
        """The example shape a model of this data gives ``modality``: :meth:`shape`, with a tokens
        modality's vocabulary size appended (its decoder scores every word at each position).

        >>> banks = {"words": torch.tensor([[3, 1, 0]]), "x": torch.zeros(1, 5)}
        >>> ds = MultimodalDataset(banks, {"words": torch.tensor([0]), "x": torch.tensor([0])}, torch.tensor([0]),
        ...                        "toy", vocabularies={"words": ["<pad>", "<eos>", "<unk>", "bird"]})
        >>> ds.model_shape("words"), ds.model_shape("x")
        ((3, 4), (5,))
        """
        vocabulary = self.vocabularies.get(modality)
        return self.shape(modality) + ((len(vocabulary),) if vocabulary is not None else ())

    def with_rows(self, index: dict[str, torch.Tensor], labels: torch.Tensor) -> "MultimodalDataset":
        """New rows (an index into every bank, and labels) over this dataset's banks, formats,
        vocabularies and views (no copies)."""
        return MultimodalDataset(self.banks, index, labels, self.name, self.formats, self.vocabularies, self.views)

    def show(self, modality: str, x: torch.Tensor) -> list:
        """What a person sees of examples or generations ``x`` (B, ...) of ``modality``: a list of
        float images (C, H, W) in [0, 1], or of strings. A data set's own view comes first (CUB's
        image features: the nearest real image); then a tokens modality's words; then the
        format's picture (a one-line ValueError for a format without one).

        >>> from memevae.data.captions import Vocabulary
        >>> words = Vocabulary(["<pad>", "<eos>", "<unk>", "bird"], min_count=1)
        >>> ds = MultimodalDataset({"w": torch.tensor([[3, 1, 0]])}, {"w": torch.tensor([0])}, torch.tensor([0]),
        ...                        "toy", vocabularies={"w": words})
        >>> ds.show("w", ds.banks["w"])
        ['bird']
        """
        if modality in self.views:
            return self.views[modality](x)
        if modality in self.vocabularies:
            return [self.vocabularies[modality].decode(row) for row in x]
        shown = [self.formats[modality].show(row) for row in x]
        if any(picture is None for picture in shown):
            raise ValueError(f"{self.name}: {modality!r} examples ({self.formats[modality].name}) have no picture and no view")
        return shown

    def __getitem__(self, i: int) -> dict:
        """``{"data": {m: prepared example, zeros when missing}, "mask": {m: bool}, "label": int}``."""
        data, mask = {}, {}
        for m in self.modalities:
            j = int(self.index[m][i])
            mask[m] = j >= 0
            prepare = self.formats[m].prepare
            data[m] = prepare(self.banks[m][j]) if j >= 0 else torch.zeros(self.shape(m), dtype=prepare(self.banks[m][:0]).dtype)
        return {"data": data, "mask": mask, "label": int(self.labels[i])}

    def batch(self, rows: torch.Tensor) -> Batch:
        """The rows as a Batch of their observed modalities; all rows must share one pattern."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        if rows.ndim != 1 or len(rows) == 0:
            raise ValueError(f"batch needs a non-empty 1-d tensor of row numbers, got shape {tuple(rows.shape)}")
        mask = torch.stack([self.index[m][rows] >= 0 for m in self.modalities], 1)
        if not (mask == mask[0]).all():
            kinds = sorted({self._describe(row) for row in mask.unique(dim=0).tolist()})
            raise ValueError(
                f"batch rows mix observation patterns ({', '.join(kinds)}); group rows with patterns() first"
            )
        data = {m: self.formats[m].prepare(self.banks[m][self.index[m][rows]]) for m, seen in zip(self.modalities, mask[0]) if seen}
        return Batch(data, self.labels[rows])

    def subset(self, rows: torch.Tensor) -> "MultimodalDataset":
        """The given rows as a new dataset sharing this one's banks (no copies)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return self.with_rows({m: self.index[m][rows] for m in self.modalities}, self.labels[rows])

    def examples(self, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Every distinct bank example of ``modality`` that some row uses, in bank order, with its
        label (that of the first row using it): (bank rows, unconverted; int64 labels).

        >>> banks = {"a": torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1), "b": torch.zeros(2, 1)}
        >>> ds = MultimodalDataset(banks, {"a": torch.tensor([2, 0, 2, -1]), "b": torch.tensor([0, 1, -1, 1])},
        ...                        torch.tensor([5, 6, 7, 8]), "toy")
        >>> rows, labels = ds.examples("a")
        >>> rows.flatten().tolist(), labels.tolist()
        ([0, 2], [6, 5])
        """
        if modality not in self.index:
            raise ValueError(f"the data has no modality {modality!r}; it has {', '.join(self.modalities)}")
        index = self.index[modality]
        seen = torch.nonzero(index >= 0).flatten()
        used, inverse = torch.unique(index[seen], return_inverse=True)
        first = torch.full((len(used),), len(seen), dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(len(seen)), "amin")
        return self.banks[modality][used], self.labels[seen[first]]

    def patterns(self) -> dict[tuple[str, ...], torch.Tensor]:
        """Row numbers (int64, ascending) grouped by the tuple of observed modalities.

        Patterns come with more modalities first, ties in modality order.
        """
        weights = 2 ** torch.arange(len(self.modalities) - 1, -1, -1)
        codes = (self.mask().long() * weights).sum(1)
        groups = {}
        for code in sorted(codes.unique().tolist(), key=lambda c: (-bin(c).count("1"), -c)):
            observed = tuple(m for m, w in zip(self.modalities, weights.tolist()) if code & w)
            groups[observed] = torch.nonzero(codes == code).flatten()
        return groups

    def paired_rows(self) -> torch.Tensor:
        """Row numbers (int64, ascending) of the fully observed ("paired") rows, which evaluation and
        the test loss use; empty when there are none."""
        return self.patterns().get(tuple(self.modalities), torch.zeros(0, dtype=torch.long))

    def summary(self) -> dict:
        """Row counts: all rows, fully observed ("paired"), each modality alone, other patterns."""
        counts = {"rows": len(self), "paired": 0, **{f"{m} only": 0 for m in self.modalities}}
        for observed, rows in self.patterns().items():
            counts[self._describe([m in observed for m in self.modalities])] = len(rows)
        return counts

    def _describe(self, seen: list[bool]) -> str:
        observed = [m for m, s in zip(self.modalities, seen) if s]
        if len(observed) == len(self.modalities):
            return "paired"
        return f"{observed[0]} only" if len(observed) == 1 else " + ".join(observed)

    def __repr__(self) -> str:
        return f"MultimodalDataset({self.name!r}, {self.summary()})"
