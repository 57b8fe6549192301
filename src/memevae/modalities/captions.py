"""The caption modality kind "caption-conv" of the paper's Table 8d (App. K): captions of 32 token ids
embedded word by word, read as a one-channel 32 x 128 picture by a convolution stack with
BatchNorm, and decoded by the mirrored stack followed by the transposed word embedding, which gives
each position a score for every word of the vocabulary (a categorical likelihood per word,
:class:`~memevae.modalities.likelihoods.CategoricalLikelihood`).

The vocabulary size is the data's (``shape = (32, None)``): the paper's 1,590 words on the full
CUB training captions, fewer on a part of it.

Two choices the paper leaves open, stated in ``docs/differences.md``:

- Table 8d prints a word embedding of 256, but its stack reduces a 32 x E picture to 1 x 1 only for
  E = 128 (three stride-2 and two width-stride-2 convolutions, then a 4 x 4 one), the embedding
  size of the official MMVAE code that the stack comes from; memevae embeds words in 128
  dimensions and keeps Table 8d's channel widths (32, 64, 128, 256, 512).
- MEME's pseudo-samples for a caption modality (paper Eq. 4) must be learnable, so they live in a
  continuous space: a *relaxed one-hot*, a real vector over the vocabulary at each position
  (shape (32, vocabulary size)), initialised to the one-hot vectors of real training captions and
  trained without constraint. The encoder accepts such vectors as well as token ids: it embeds a
  relaxed caption as its vectors times the embedding matrix, which for a one-hot vector is exactly
  the embedding lookup of that word.
"""

from __future__ import annotations

import torch
from torch import nn

from .modality import ModalityKind

LENGTH = 32
"""Tokens per caption: words, then the end-of-sentence token, then padding (paper App. K)."""
EMBEDDING = 128
"""Word embedding size (see the module docstring for why not Table 8d's 256)."""
PAD = 0
"""The padding token's id (memevae's vocabulary puts ``<pad>`` first)."""


def _block(conv: nn.Module, channels: int, batch_norm: bool = True) -> list[nn.Module]:
    return [conv, *([nn.BatchNorm2d(channels)] if batch_norm else []), nn.ReLU()]


class CaptionEncoder(nn.Module):
    """Table 8d's encoder: token ids (B, 32) or relaxed one-hot captions (B, 32, V) -> word
    embeddings (B, 1, 32, 128) -> 4x4 convs 32-64-128 (stride 2) and 1x4 convs 256-512 (stride
    1x2), each with BatchNorm and ReLU -> two 4x4 convs to (loc, raw_scale), each (B, L)."""

    def __init__(self, vocabulary_size: int, latent_dim: int, channels=(32, 64, 128, 256, 512)):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, EMBEDDING, padding_idx=PAD)
        c1, c2, c3, c4, c5 = channels
        self.body = nn.Sequential(
            *_block(nn.Conv2d(1, c1, 4, 2, 1, bias=False), c1),
            *_block(nn.Conv2d(c1, c2, 4, 2, 1, bias=False), c2),
            *_block(nn.Conv2d(c2, c3, 4, 2, 1, bias=False), c3),
            *_block(nn.Conv2d(c3, c4, (1, 4), (1, 2), (0, 1), bias=False), c4),
            *_block(nn.Conv2d(c4, c5, (1, 4), (1, 2), (0, 1), bias=False), c5),
        )
        self.loc = nn.Conv2d(c5, latent_dim, 4, 1, 0, bias=False)
        self.raw_scale = nn.Conv2d(c5, latent_dim, 4, 1, 0, bias=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Word vectors (B, 32, 128) of token ids, or of relaxed one-hot captions (their weighted sums)."""
        return x @ self.embedding.weight if x.is_floating_point() else self.embedding(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(self.embed(x).unsqueeze(1))
        return self.loc(hidden).flatten(1), self.raw_scale(hidden).flatten(1)


class CaptionDecoder(nn.Module):
    """Table 8d's decoder: (n, L) -> a 4x4 transposed conv to 512 (ReLU), 1x4 transposed convs 256-128
    (stride 1x2) and 4x4 ones 64-32 (stride 2), each with BatchNorm and ReLU, a 4x4 one to one
    channel (ReLU) -> (n, 32, 128) -> times the transposed word embedding of the encoder ("Word
    Emb.[T]", the same matrix) -> logits (n, 32, V)."""

    def __init__(self, embedding: nn.Embedding, latent_dim: int, channels=(512, 256, 128, 64, 32)):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.body = nn.Sequential(
            *_block(nn.ConvTranspose2d(latent_dim, c1, 4, 1, 0, bias=False), c1, batch_norm=False),
            *_block(nn.ConvTranspose2d(c1, c2, (1, 4), (1, 2), (0, 1), bias=False), c2),
            *_block(nn.ConvTranspose2d(c2, c3, (1, 4), (1, 2), (0, 1), bias=False), c3),
            *_block(nn.ConvTranspose2d(c3, c4, 4, 2, 1, bias=False), c4),
            *_block(nn.ConvTranspose2d(c4, c5, 4, 2, 1, bias=False), c5),
            *_block(nn.ConvTranspose2d(c5, 1, 4, 2, 1, bias=False), 1, batch_norm=False),
        )
        self.embedding = embedding

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        words = self.body(z[:, :, None, None]).squeeze(1)  # (n, 32, 128)
        return words @ self.embedding.weight.t()


def caption_networks(shape, latent_dim, architecture, hidden_dims=None):
    """Table 8d for captions of ``shape`` = (32, vocabulary size); ``architecture`` and
    ``hidden_dims`` do not apply (the paper has one caption network; the release has none)."""
    encoder = CaptionEncoder(shape[-1], latent_dim)
    return encoder, CaptionDecoder(encoder.embedding, latent_dim)


KINDS = (
    ModalityKind("caption-conv", "tokens", (LENGTH, None), caption_networks, "categorical", {"pad": PAD},
                 min_scale=1e-4),
)
