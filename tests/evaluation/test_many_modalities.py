"""Coherence and latent accuracy with more than two modalities: from every subset of modalities
to each missing one (MoPoE's table), and the latent probe per subset."""

import pytest
import torch

from memevae.data import MultimodalDataset
from memevae.distributions import DiagonalGaussian
from memevae.evaluation.metrics.coherence import cross_coherence, default_directions, parse_directions
from memevae.evaluation.metrics.latent import latent_accuracy

SHAPES_3 = {"a": (1, 4, 4), "b": (3, 4, 4), "c": (1, 4, 4)}


@pytest.fixture
def three(fakes):
    """A model over a, b, c and a perfect judge per modality, built on the fakes of conftest."""

    class ThreeModalities(fakes.Model):
        """Modality c alone carries nothing (its code is noise); a subset's posterior is the sum of
        its members' codes (a stand-in for a product), so any subset holding a or b gives the digit."""

        def __init__(self, **kwargs):
            super().__init__(names=("a", "b", "c"), **kwargs)

        def encode(self, modality, x):
            q = super().encode(modality, x)
            if modality == "c":
                q.loc = 0.1 * torch.randn(q.loc.shape, generator=self.generator)
            return q

        def posterior(self, data):
            self.calls.append(("posterior", tuple(data), self.training))
            codes = [self.encode(m, x) for m, x in data.items()]
            return DiagonalGaussian(sum(q.loc for q in codes), codes[0].scale)

        def decode(self, modality, z):
            return fakes.images(z.argmax(-1), SHAPES_3[modality]).float() / 255

    return ThreeModalities, {m: fakes.Judge() for m in "abc"}


def three_way(images, n=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    banks = {m: images(labels, SHAPES_3[m]) for m in "abc"}
    return MultimodalDataset(banks, {m: torch.arange(n) for m in "abc"}, labels, "three")


def test_default_directions_go_from_every_subset_to_each_missing_modality():
    assert default_directions(("a", "b", "c")) == [
        (("a",), "b"), (("a",), "c"), (("b",), "a"), (("b",), "c"), (("c",), "a"), (("c",), "b"),
        (("a", "b"), "c"), (("a", "c"), "b"), (("b", "c"), "a")]


def test_coherence_from_a_subset_uses_every_source_modality(three, fakes):
    Model, judges = three
    model = Model(scale=1e-3)
    result = cross_coherence(model, three_way(fakes.images), judges, progress=False)
    assert {k for k in result if "->" in k} == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b", "a+b->c", "a+c->b", "b+c->a"}
    assert result["a->b"] == 1.0 and result["a+c->b"] == 1.0 and result["b+c->a"] == 1.0
    assert result["c->a"] < 0.3 and result["c->b"] < 0.3  # c alone carries nothing
    assert result["mean/2"] == 1.0
    assert result["mean/1"] == pytest.approx(sum(result[k] for k in ("a->b", "a->c", "b->a", "b->c", "c->a", "c->b")) / 6)
    assert ("posterior", ("a", "c"), False) in model.calls


def test_two_modalities_keep_their_two_directions_and_no_means(fakes):
    result = cross_coherence(fakes.Model(), fakes.pairs(50), {"a": fakes.Judge(), "b": fakes.Judge()}, progress=False)
    assert set(result) == {"a->b", "b->a", "items"}


@pytest.mark.parametrize("text,match", [("a+b", "bad coherence direction"), ("a+z->b", "bad coherence direction"),
                                        ("a+b->a", "bad coherence direction")])
def test_bad_directions_are_one_line_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_directions(text, ("a", "b", "c"))
    assert parse_directions("a+b->c, b->a", ("a", "b", "c")) == [(("a", "b"), "c"), (("b",), "a")]


def test_latent_accuracy_per_subset(three, fakes):
    model = three[0](noise=0.5)
    result = latent_accuracy(model, three_way(fakes.images, 400, seed=1), three_way(fakes.images, 200, seed=2), train_items=300, progress=False)
    keys = {k for k in result if "/" not in k}
    assert keys == {"a", "b", "c", "a+b", "a+c", "b+c", "a+b+c"}
    assert result["a"] == pytest.approx(1.0) and result["a+c"] == pytest.approx(1.0)
    assert result["c"] < 0.3
    assert result["train_items/a+b+c"] == 300 and result["test_items/a+b"] == 200


def test_latent_subsets_take_training_rows_that_observe_the_whole_subset(three, fakes):
    model = three[0](noise=0.5)
    train = three_way(fakes.images, 400, seed=1)
    index = {m: train.index[m].clone() for m in "abc"}
    index["c"][:250] = -1  # 150 rows observe a, b and c
    partial = train.with_rows(index, train.labels)
    result = latent_accuracy(model, partial, three_way(fakes.images, 100, seed=2), subsets=[("a", "c")], progress=False)
    assert result["train_items/a+c"] == 150


def test_grids_generate_each_modality_from_all_the_others(three, fakes, tmp_path):
    """With three modalities the grids add each modality generated from the other two, through the
    model's posterior given both (in eval mode); two modalities keep the bimodal grids alone."""
    from memevae.evaluation.figures import subset_generation_rows
    from memevae.evaluation.metrics.grids import generation_grids

    model = three[0]()
    data = three_way(fakes.images, 40)
    examples = data.batch(torch.arange(10)).data
    rows = subset_generation_rows(model, examples)
    assert [label for label, _ in rows] == ["a (input)", "b (input)", "c (input)", "b+c \u2192 a", "a+c \u2192 b", "a+b \u2192 c"]
    assert [call for call in model.calls if call[0] == "posterior"] == [("posterior", s, False) for s in (("b", "c"), ("a", "c"), ("a", "b"))]
    generated = torch.stack(rows[-1][1])  # a + b -> c: the fake posterior sums codes, so the digit survives
    assert torch.equal(fakes.read(generated), data.labels[:10])
    generation_grids(model, data, tmp_path / "three", samples=1)
    generation_grids(fakes.Model(), fakes.pairs(40), tmp_path / "two", samples=1)
    assert (tmp_path / "three" / "generation-from-subsets.png").stat().st_size > 0
    assert not (tmp_path / "two" / "generation-from-subsets.png").exists() and (tmp_path / "two" / "generation.png").exists()
