"""CCA coherence of image-caption data (paper Sec. 4.1, Table 5, Fig. 6, App. G), as MMVAE's analysis
code computes it (:mod:`memevae.evaluation.cca`): a sentence embedding (FastText word vectors
trained on the training captions, SIF-weighted, first principal component removed) and the image
features are projected by a 40-component CCA fitted on training pairs; the coherence of a set of
(image, caption) pairs is the mean cosine of their two projections.

- image -> caption: each test image is encoded, z ~ q(z | image) drawn, the caption decoded (the most
  likely word at each position) and scored against the image;
- caption -> image: each test caption is encoded and the image features decoded (the likelihood's
  location), scored against the caption;
- ground truth: the test pairs themselves (the paper's "GT" row, 0.106 on the full data).

The fitted measure depends only on the training data, so it is kept in
``~/.cache/memevae/cca/<data variant>/`` (named by its settings and the training captions'
checksum) and reused by every run on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .._common import batches, evaluation_mode, model_device, paired_rows, progress_bar
from ..judges import cache_root
from ..metric import Metric


@dataclass
class CCACoherenceOptions:
    components: int = 40
    """CCA components (App. G and MMVAE: 40)."""
    word_dim: int = 300
    """Size of the FastText word vectors (App. G and MMVAE: 300)."""
    sample: bool = True
    """Decode a sample z ~ q(z|source) as the paper does; off: the posterior mean."""
    batch_size: int = 500
    """Test pairs translated at once."""
    arithmetic: Literal["whitened", "mmvae"] = "whitened"
    """How the CCA is solved: whitened (textbook CCA, near-constant directions dropped) or mmvae (MMVAE's
    eigenproblem with 1e-12 on both diagonals, whose scores differ on CUB; docs/differences.md)."""


def _pair(formats: dict[str, str]) -> tuple[str, str] | None:
    """(image features modality, caption modality) of modalities {name: format name} with exactly
    one of each and nothing else, else None."""
    features = [m for m, f in formats.items() if f == "features"]
    tokens = [m for m, f in formats.items() if f == "tokens"]
    return (features[0], tokens[0]) if len(features) == 1 and len(tokens) == 1 and len(formats) == 2 else None


def _sentences(vocabulary, tokens: torch.Tensor) -> list[list[str]]:
    """Token id rows as word lists, up to and with the first end-of-sentence token."""
    words = vocabulary.words
    out = []
    for row in tokens.tolist():
        sentence = []
        for token in row:
            sentence.append(words[token])
            if token == vocabulary.eos:
                break
        out.append(sentence)
    return out


def fitted_measure(train, image: str, caption: str, options: CCACoherenceOptions, cache_dir: Path | None, seed: int = 0):
    """The CCA measure fitted on every training pair of ``train`` (loaded from ``cache_dir`` when it
    was fitted there on the same captions with the same settings)."""
    from ..cca import CCACoherence, captions_checksum

    rows = paired_rows(train)
    sentences = _sentences(train.vocabularies[caption], train.banks[caption][train.index[caption][rows]])
    features = train.banks[image][train.index[image][rows]].double().numpy()
    cache = None
    if cache_dir is not None:
        arithmetic = "" if options.arithmetic == "whitened" else f"-{options.arithmetic}"
        cache = Path(cache_dir) / (f"cca-{options.components}x{options.word_dim}-seed{seed}{arithmetic}-"
                                   f"{captions_checksum(sentences)[:12]}.npz")
        if cache.exists():
            return CCACoherence.load(cache, sentences)
    measure = CCACoherence.fit(features, sentences, components=options.components, dim=options.word_dim, seed=seed,
                               arithmetic=options.arithmetic)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        measure.save(cache)
    return measure


def cca_coherence(model, train, test, *, options: CCACoherenceOptions = CCACoherenceOptions(), cache_dir=None, seed: int = 0,
                  progress: bool = True) -> dict[str, float]:
    """``{"<image>-><caption>", "<caption>-><image>", "ground_truth", "items"}`` on the test pairs."""
    image, caption = _modalities_of(test)
    measure = fitted_measure(train, image, caption, options, cache_dir, seed)
    rows = paired_rows(test)
    vocabulary = test.vocabularies[caption]
    generator = torch.Generator().manual_seed(seed)
    device = model_device(model)
    pairs = {"gt": ([], []), "to_caption": ([], []), "to_image": ([], [])}
    bar = progress_bar((len(rows) + options.batch_size - 1) // options.batch_size, "CCA coherence", progress)
    with evaluation_mode(model):
        for part in batches(len(rows), options.batch_size):
            batch = test.batch(rows[part])
            features, tokens = batch.data[image], batch.data[caption]
            z = _latent(model, image, features.to(device), generator, options.sample)
            made_captions = model.decode(caption, z).cpu()
            z = _latent(model, caption, tokens.to(device), generator, options.sample)
            made_features = model.decode(image, z).cpu()
            for key, (f, t) in {"gt": (features, tokens), "to_caption": (features, made_captions),
                                "to_image": (made_features, tokens)}.items():
                pairs[key][0].append(f.double())
                pairs[key][1].extend(_sentences(vocabulary, t))
            bar.update(1)
    bar.close()
    score = {key: measure.score(torch.cat(f).numpy(), s) for key, (f, s) in pairs.items()}
    return {f"{image}->{caption}": score["to_caption"], f"{caption}->{image}": score["to_image"],
            "ground_truth": score["gt"], "items": float(len(rows))}


def _latent(model, source, x, generator, sample: bool):
    q = model.posterior({source: x})
    return q.rsample(generator=generator) if sample else q.loc


def _modalities_of(data) -> tuple[str, str]:
    pair = _pair({m: data.formats[m].name for m in data.modalities})
    if pair is None:
        raise ValueError(f"CCA coherence needs one image-features modality and one caption modality; {data.name} has "
                         f"{', '.join(data.modalities)}")
    return pair


class CCACoherenceMetric(Metric):
    name = "cca-coherence"
    description = "CCA coherence of image-caption pairs, both directions and ground truth (Table 5, App. G)"
    Options = CCACoherenceOptions
    needs = frozenset({"train"})
    order = 15

    @classmethod
    def unsupported(cls, dataset) -> str | None:
        if _pair({name: spec.format for name, spec in dataset.modalities.items()}) is None:
            return f"it needs one image-features and one caption modality, and {dataset.label} has other data"
        return None

    def compute(self, context, options: CCACoherenceOptions) -> dict:
        cache_dir = cache_root() / "cca" / context.data_config.variant
        return cca_coherence(context.model, context.train, context.test, options=options, cache_dir=cache_dir,
                             seed=context.seed, progress=context.progress)

    def report(self, part) -> list[str]:
        """Table 5's layout: a table per direction and the ground truth, the paper's CUB rows
        (ResNet-101 features) beside ours."""
        from ..paper.report import table
        from ..paper.reference import CCA

        if not any("cca-coherence" in r.metrics for r in part.members):
            return []
        lines = ["### CCA coherence (Table 5 layout)", "",
                 "Paper rows: CUB with ResNet-101 features; rows of other image features (e.g. colour-hog) "
                 "are set beside them for orientation only.", ""]
        for key in ("image->caption", "caption->image", "ground_truth"):
            title = "ground truth (test pairs)" if key == "ground_truth" else key.replace("->", " → ")
            lines += [f"**{title}**", "", table(part.records, part.dataset, "cca-coherence", key, CCA), ""]
        return lines
