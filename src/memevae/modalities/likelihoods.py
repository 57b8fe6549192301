"""Likelihoods p(x | z) of the modalities (paper Sec. 4: Laplace likelihoods for images and image
features, a categorical distribution per word for captions)."""

from __future__ import annotations

import torch

from ..distributions import laplace_log_prob


class LaplaceLikelihood:
    """Laplace(x; loc = decoder output, scale), summed over the example's dimensions.

    The release fixes scale = 1.0 for MNIST and SVHN images and for CUB image features. With
    ``clamp`` c > 0 the location is clamped to [c, 1 - c] first (as the official MMVAE code's MNIST
    decoder does with c = 1e-6); 0 (default): no clamping.
    """

    def __init__(self, event_dims: int, scale: float = 1.0, clamp: float = 0.0):
        if not 0.0 <= clamp < 0.5:
            raise ValueError(f"clamp must be in [0, 0.5), got {clamp}")
        self.event_dims = event_dims
        self.scale = scale
        self.clamp = clamp

    def location(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded.clamp(self.clamp, 1.0 - self.clamp) if self.clamp else decoded

    def log_prob(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (B, *shape) under each decoded location (*S, B, *shape) -> (*S, B)."""
        return laplace_log_prob(x, self.location(decoded), self.scale, self.event_dims)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return self.location(decoded)


class CategoricalLikelihood:
    """A categorical distribution over the vocabulary at each position of a caption, the decoder
    giving its logits; log p(x | z) sums log softmax(logits)[x_i] over the positions whose word is
    not padding (token ``pad``), so captions of any length are scored on their own words and their
    end-of-sentence token (paper Sec. 4: "a categorical distribution for caption data").

    The official MMVAE code's caption likelihood skips token 0 instead, which in its vocabulary is
    the unknown-word token, not padding (``ignore_index=0`` with ``<exc>`` = 0): it scores pads and
    ignores unknown words. memevae masks the padding, as the paper's description implies.

    >>> like = CategoricalLikelihood(event_dims=2, pad=0)
    >>> logits = torch.zeros(1, 3, 4)   # uniform over 4 words at each of 3 positions
    >>> round(like.log_prob(torch.tensor([[2, 1, 0]]), logits).item(), 4)   # two words, one pad
    -2.7726
    >>> like.mean(logits).tolist()   # what a generation shows: the most likely word at each position
    [[0, 0, 0]]
    """

    def __init__(self, event_dims: int, pad: int = 0):
        self.event_dims = event_dims
        self.pad = pad

    def log_prob(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Log-probability of token ids ``x`` (B, length) under logits (*S, B, length, vocabulary) -> (*S, B)."""
        x = x.long()
        chosen = decoded.gather(-1, x.expand(*decoded.shape[:-1]).unsqueeze(-1)).squeeze(-1)
        log_probs = chosen - torch.logsumexp(decoded, dim=-1)
        return log_probs.masked_fill(x == self.pad, 0.0).sum(-1)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """The most likely token at each position (the mode; a categorical has no mean in word space)."""
        return decoded.argmax(-1)


LIKELIHOODS = {"laplace": LaplaceLikelihood, "categorical": CategoricalLikelihood}
"""Likelihood families by name, as a :class:`~memevae.modalities.ModalityKind` declares them."""


def build_likelihood(family: str, event_dims: int, **params):
    """The likelihood ``family`` over examples of ``event_dims`` dimensions, with ``params``."""
    if family not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {family!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[family](event_dims=event_dims, **params)
