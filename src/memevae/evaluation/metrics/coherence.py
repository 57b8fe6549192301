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

    def report(self, part) -> list[str]:
        """Table 3's layout (a table per direction, the paper's MNIST-SVHN rows beside ours), Fig. 5
        (coherence against f) and the per-epoch coherence of training; with more than two modalities,
        MoPoE's summaries instead (:func:`subset_report`)."""
        from ..paper.report import epoch_means, plot_epoch_curves
        from ..paper.reference import COHERENCE

        if part.many:
            return subset_report(part)
        directions = part.keys("coherence", lambda key: "->" in key)
        if not directions:
            return []
        lines = part.tables_against_f("coherence", directions, COHERENCE, "Cross coherence (Table 3 layout)",
                                      "coherence-vs-f", "cross coherence", "Cross coherence against f (Fig. 5)",
                                      "coherence against f")
        name, path = part.figure("coherence-per-epoch")
        if any(epoch_means([r], f"coherence/{directions[0]}")[0] for r in part.members):
            plot_epoch_curves(part.records, part.dataset, directions, path)
            lines += ["Along training (each run's per-epoch coherence on its first test pairs, `metrics.jsonl`):", "",
                      f"![coherence per epoch]({name})", ""]
        return lines


def _keys_from(modalities, k: int) -> list[str]:
    """The coherence directions from k given modalities to one missing modality."""
    return [direction_name(s, t) for s, t in default_directions(modalities) if len(s) == k]


def subset_report(part) -> list[str]:
    """With more than two modalities, MoPoE-style summaries (Sutter et al. 2021) instead of a table
    per direction: coherence averaged over the directions from k given modalities, and leave-one-out
    coherence (every other modality -> one); one row per (model, scheme, f), mean ± std over seeds.
    Figures: coherence against the number of given modalities, and along training (the monitor's
    means by subset size)."""
    from ..paper.report import epoch_means, plot_epoch_curves, subset_table

    members, modalities = part.members, part.modalities
    sizes = range(1, len(modalities))
    lines = ["### Coherence from subsets of modalities (MoPoE's table)", "",
             f"{len(modalities)} modalities ({', '.join(modalities)}). \"from k\": the mean coherence over every "
             "direction from k given modalities to one missing modality; \"→ m\": from all the others to m.", ""]
    lines += subset_table(part, "mean coherence from k given modalities", "coherence",
                          [(f"from {k}", _keys_from(modalities, k)) for k in sizes])
    others = [(f"→ {t}", [direction_name(tuple(m for m in modalities if m != t), t)]) for t in modalities]
    lines += subset_table(part, "leave-one-out coherence", "coherence", others)
    if any("coherence" in r.metrics for r in members):
        name, path = part.figure("coherence-by-subset-size")
        plot_against_subset_size(members, path)
        lines += [f"![coherence against the number of given modalities]({name})", ""]
    means = [f"mean/{k}" for k in sizes]
    if any(epoch_means([r], f"coherence/{means[0]}")[0] for r in members):
        name, path = part.figure("coherence-per-epoch")
        plot_epoch_curves(members, part.dataset, means, path)
        lines += ["Along training (each run's per-epoch mean coherence from k given modalities on its first test "
                  "items, `metrics.jsonl`):", "", f"![coherence per epoch]({name})", ""]
    return lines


def plot_against_subset_size(members, path):
    """Mean coherence from k given modalities against k for the runs ``members`` (report records of
    one data set), one line per (model, scheme, f) with one-std shading over seeds (MoPoE's view:
    more given modalities should generate more coherently); chance (0.1) dashed; the legend below the panel."""
    import numpy as np

    from .._common import dataset_label
    from ..curves import CHANCE
    from ..paper.report import Cell, row_label, subset_mean
    from ..plotting import colour_map, legend_below, save, subplots, suptitle

    modalities = members[0].modalities
    sizes = list(range(1, len(modalities)))
    groups = sorted({r.group for r in members if "coherence" in r.metrics}, key=lambda g: (g[0], g[2], -g[3]))
    models = sorted({g[0] for g in groups})
    fig, axes = subplots(1, 1, figsize=(5.6, 4.0), squeeze=False)
    ax, colours, styles = axes[0, 0], colour_map("tab10"), {}
    for group in groups:
        runs = [r for r in members if r.group == group]
        cells = [Cell([v for v in (subset_mean(r, "coherence", _keys_from(modalities, k)) for r in runs) if v is not None])
                 for k in sizes]
        points = [(k, c) for k, c in zip(sizes, cells) if c.values]
        if not points:
            continue
        k = np.array([p[0] for p in points])
        mean = np.array([p[1].mean for p in points])
        std = np.array([p[1].std or 0.0 for p in points])
        colour = colours(models.index(group[0]) % 10)
        style = styles.setdefault(group[3], ("-", "--", ":", "-.")[len(styles) % 4])
        ax.plot(k, mean, style, marker="o", color=colour, label=f"{row_label(group[0], group[2])}, f = {group[3]:g} (n={len(runs)})")
        ax.fill_between(k, mean - std, mean + std, color=colour, alpha=0.15)
    ax.axhline(CHANCE, color="grey", lw=1, ls="--")
    ax.set_xticks(sizes)
    ax.set_ylim(0, 1)
    ax.set_xlabel("given modalities k")
    ax.set_ylabel("mean coherence to a missing modality")
    ax.grid(alpha=0.3)
    legend_below(fig, [ax])
    suptitle(fig, f"Coherence from k of {len(modalities)} modalities, {dataset_label(members[0].dataset)}: mean \u00b1 1 std over seeds", 9)
    return save(fig, path)
