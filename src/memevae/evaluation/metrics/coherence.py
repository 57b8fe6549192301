"""Cross coherence (paper Sec. 4.1 "Cross Coherence", Fig. 5, Table 3).

For every paired test item (s, t) and each direction s -> t: encode s, draw z ~ q(z | s), decode
t's likelihood mean at z, and ask t's judge (a digit classifier) for its digit. Coherence s -> t is the
fraction of test items whose predicted digit equals the label of s (Shi et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._common import batches, evaluation_mode, model_device, paired_rows, progress_bar
from ..metric import Metric


@dataclass
class CoherenceOptions:
    directions: str | None = None
    """Comma-separated directions such as "mnist->textured"; default every ordered pair of modalities."""
    sample: bool = True
    """Decode a sample z ~ q(z|s) as the paper does; off: the posterior mean."""
    batch_size: int = 500
    """Test pairs translated at once."""


def cross_coherence(model, data, judges, *, directions=None, batch_size: int = CoherenceOptions.batch_size, seed: int = 0,
                    sample: bool = CoherenceOptions.sample, progress: bool = True) -> dict[str, float]:
    """Cross coherence in every direction between the modalities of ``data`` (a MultimodalDataset of
    test pairs), over all its fully observed rows.

    Args:
        model: any memevae model (``encode``, ``decode``, ``modality_names``).
        judges: ``{modality: callable}`` mapping float images (B, C, H, W) in [0, 1] to
            logits (B, 10); see :mod:`memevae.evaluation.judges`.
        directions: (source, target) pairs; default every ordered pair of distinct modalities.
        sample: draw z from the posterior (default, as the paper); False uses its mean.
        seed: seeds the latent samples (a CPU generator), so results are reproducible.

    Returns:
        ``{"<source>-><target>": coherence, ..., "items": number of test items}``.
    """
    names = tuple(data.modalities)
    if directions is None:
        directions = [(s, t) for s in names for t in names if s != t]
    missing = sorted({t for _, t in directions if t not in judges})
    if missing:
        raise ValueError(f"no judge for {', '.join(missing)}; coherence needs one per target modality")
    rows = paired_rows(data)
    generator = torch.Generator().manual_seed(seed)
    device = model_device(model)
    correct = {d: 0 for d in directions}
    bar = progress_bar(len(directions) * ((len(rows) + batch_size - 1) // batch_size), "coherence", progress)
    with evaluation_mode(model):
        for part in batches(len(rows), batch_size):
            batch = data.batch(rows[part])
            for source, target in directions:
                q = model.posterior({source: batch.data[source].to(device)})  # prepared by the data's format
                z = q.rsample(generator=generator) if sample else q.loc  # in the posterior's own family
                generated = model.decode(target, z)
                predicted = judges[target](generated).argmax(-1).cpu()
                correct[source, target] += (predicted == batch.labels).sum().item()
                bar.update(1)
    bar.close()
    result = {f"{s}->{t}": correct[s, t] / len(rows) for s, t in directions}
    result["items"] = float(len(rows))
    return result


class Coherence(Metric):
    name = "coherence"
    description = "cross coherence, both directions (Fig. 5, Table 3)"
    Options = CoherenceOptions
    needs = frozenset({"judges"})
    order = 10

    def compute(self, context, options: CoherenceOptions) -> dict:
        directions = None if options.directions is None else [tuple(d.strip().split("->")) for d in options.directions.split(",")]
        return cross_coherence(context.model, context.test, context.judges, directions=directions, batch_size=options.batch_size,
                               seed=context.seed, sample=options.sample, progress=context.progress)
