"""Cross coherence (paper Sec. 4.1 "Cross Coherence", Fig. 5, Table 3).

For every paired test item (s, t) and each direction s -> t: encode s, draw z ~ q(z | s), decode
t's likelihood mean at z, and ask t's judge (a digit classifier) for its digit. Coherence s -> t is the
fraction of test items whose predicted digit equals the label of s (Shi et al. 2019).

With more than two modalities the source may be a subset S of them ("m0+m1->m2"): z is drawn from
the model's posterior given S (:meth:`~memevae.models.MultimodalVAE.posterior`: MVAE's product,
MMVAE's mixture, MEME's ``combine`` rule), as MoPoE's coherence from every subset to each missing
modality (Sutter et al. 2021) measures it; ``mean/<k>`` averages the directions from k modalities.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .._common import batches, evaluation_mode, model_device, paired_rows, progress_bar
from ..metric import Metric


@dataclass
class CoherenceOptions:
    directions: str | None = None
    """Comma-separated directions such as "mnist->textured" or "m0+m1->m2"; default from every
    proper subset of the modalities to each modality outside it (with two: both directions)."""
    sample: bool = True
    """Decode a sample z ~ q(z|s) as the paper does; off: the posterior mean."""
    batch_size: int = 500
    """Test pairs translated at once."""


def default_directions(names) -> list[tuple[tuple[str, ...], str]]:
    """(source subset, target) from every non-empty proper subset of ``names`` (smaller subsets
    first, each in modality order) to each modality outside it.

    >>> default_directions(("a", "b"))
    [(('a',), 'b'), (('b',), 'a')]
    >>> len(default_directions(("m0", "m1", "m2", "m3", "m4")))
    75
    """
    names = tuple(names)
    return [(sources, target) for size in range(1, len(names)) for sources in itertools.combinations(names, size)
            for target in names if target not in sources]


def direction_name(sources: tuple[str, ...], target: str) -> str:
    return f"{'+'.join(sources)}->{target}"


def parse_directions(text: str, names) -> list[tuple[tuple[str, ...], str]]:
    """Directions written "s->t" or "s1+s2->t", comma-separated; a one-line error for unknown or
    repeated modalities."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        sources, arrow, target = item.partition("->")
        sources = tuple(s.strip() for s in sources.split("+"))
        target = target.strip()
        unknown = [m for m in (*sources, target) if m not in names]
        if not arrow or unknown or target in sources or len(set(sources)) != len(sources):
            raise ValueError(f"bad coherence direction {item!r}: write source->target or s1+s2->target with modalities "
                             f"of {', '.join(names)} (the target not among the sources)")
        out.append((sources, target))
    return out


def cross_coherence(model, data, judges, *, directions=None, batch_size: int = CoherenceOptions.batch_size, seed: int = 0,
                    sample: bool = CoherenceOptions.sample, progress: bool = True) -> dict[str, float]:
    """Cross coherence in every direction between the modalities of ``data`` (a MultimodalDataset of
    test pairs), over all its fully observed rows.

    Args:
        model: any memevae model (``posterior``, ``decode``, ``modality_names``).
        judges: ``{modality: callable}`` mapping float images (B, C, H, W) in [0, 1] to
            logits (B, 10); see :mod:`memevae.evaluation.judges`.
        directions: (sources, target) pairs, sources a modality or a tuple of them; default
            :func:`default_directions` (with two modalities: both directions).
        sample: draw z from the posterior (default, as the paper); False uses its mean.
        seed: seeds the latent samples (a CPU generator), so results are reproducible.

    Returns:
        ``{"<source>-><target>": coherence, ..., "items": number of test items}``; sources of
        several modalities are joined by "+", and with such directions ``"mean/<k>"`` is the mean
        coherence over the directions from k modalities.
    """
    names = tuple(data.modalities)
    directions = default_directions(names) if directions is None else [
        ((s,) if isinstance(s, str) else tuple(s), t) for s, t in directions]
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
            for sources, target in directions:
                q = model.posterior({s: batch.data[s].to(device) for s in sources})  # prepared by the data's format
                z = q.rsample(generator=generator) if sample else q.loc  # in the posterior's own family
                generated = model.decode(target, z)
                predicted = judges[target](generated).argmax(-1).cpu()
                correct[sources, target] += (predicted == batch.labels).sum().item()
                bar.update(1)
    bar.close()
    result = {direction_name(s, t): correct[s, t] / len(rows) for s, t in directions}
    sizes = sorted({len(s) for s, _ in directions})
    if sizes != [1]:
        for k in sizes:
            values = [correct[s, t] / len(rows) for s, t in directions if len(s) == k]
            result[f"mean/{k}"] = sum(values) / len(values)
    result["items"] = float(len(rows))
    return result


class Coherence(Metric):
    name = "coherence"
    description = "cross coherence, both directions (Fig. 5, Table 3); with more modalities from every subset to each missing one"
    Options = CoherenceOptions
    needs = frozenset({"judges"})
    order = 10

    def compute(self, context, options: CoherenceOptions) -> dict:
        directions = None if options.directions is None else parse_directions(options.directions, context.test.modalities)
        return cross_coherence(context.model, context.test, context.judges, directions=directions, batch_size=options.batch_size,
                               seed=context.seed, sample=options.sample, progress=context.progress)
