"""Tiny fake models, judges and data with known answers for the evaluation tests.

A fake image stores its digit d in every pixel as the byte 20 * d, so encoders, decoders and
judges can read and write digits exactly; the fake model implements the interface every memevae
model has (``encode`` -> DiagonalGaussian, ``decode`` -> mean image, ``modality_names``).
"""

import pytest
import torch
from torch import nn

from memevae.data import MultimodalDataset
from memevae.distributions import DiagonalGaussian

SHAPES = {"a": (1, 4, 4), "b": (3, 4, 4)}


def digit_images(digits: torch.Tensor, shape) -> torch.Tensor:
    """uint8 images whose every pixel is 20 * digit."""
    return (digits.view(-1, *[1] * len(shape)) * 20).expand(-1, *shape).to(torch.uint8).contiguous()


def read_digits(x: torch.Tensor) -> torch.Tensor:
    """The digit of float images in [0, 1] written by digit_images (or by a fake decoder)."""
    return (x.flatten(1)[:, 0] * 255 / 20).round().long().clamp(0, 9)


class FakeModel(nn.Module):
    """Encodes a digit d as loc = 5 * onehot(d) (+ optional per-item noise), scale ``scale``.

    ``translator``: "perfect" decodes argmax(z) back to an image of that digit; "random" decodes a
    uniformly random digit whatever z is.
    """

    def __init__(self, translator: str = "perfect", noise: float = 0.0, scale: float = 0.5, names=("a", "b"), seed: int = 12345):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # so the model has a device
        self.translator, self.noise, self.scale, self.names = translator, noise, scale, tuple(names)
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = []

    @property
    def modality_names(self):
        return self.names

    def encode(self, modality, x):
        self.calls.append(("encode", modality, self.training))
        digits = read_digits(x)
        loc = 5.0 * nn.functional.one_hot(digits, 10).float()
        if self.noise:
            loc = loc + self.noise * torch.randn(loc.shape, generator=self.generator)
        return DiagonalGaussian(loc, torch.full_like(loc, self.scale))

    def posterior(self, data):
        (modality, x), = data.items()
        return self.encode(modality, x)

    def decode(self, modality, z):
        digits = z.argmax(-1) if self.translator == "perfect" else torch.randint(0, 10, z.shape[:1], generator=self.generator)
        return digit_images(digits, SHAPES[modality]).float() / 255

    def translate(self, x, source, target, sample=True, generator=None):
        return self.decode(target, self.encode(source, x).loc)


class FakeJudge:
    """A perfect classifier of fake images: logits = onehot(digit)."""

    def __call__(self, x):
        return nn.functional.one_hot(read_digits(x), 10).float()


def fake_pairs(n: int = 200, seed: int = 0) -> MultimodalDataset:
    """n fully paired rows; row i shows digit labels[i] in both modalities (different bank order)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    order = torch.randperm(n, generator=generator)
    banks = {"a": digit_images(labels, SHAPES["a"]), "b": digit_images(labels[order], SHAPES["b"])}
    index = {"a": torch.arange(n), "b": torch.argsort(order)}
    return MultimodalDataset(banks, index, labels, "fake-pairs")


@pytest.fixture
def fakes():
    from types import SimpleNamespace

    return SimpleNamespace(Model=FakeModel, Judge=FakeJudge, pairs=fake_pairs, images=digit_images, read=read_digits)


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures memevae writes during a test (every PNG goes through
    ``memevae.io.save_figure``), in the order written; the files are written as usual."""
    from memevae import io

    figures, write = [], io.save_figure

    def capture(path, figure, **kwargs):
        figures.append(figure)
        return write(path, figure, **kwargs)

    monkeypatch.setattr(io, "save_figure", capture)
    return figures
