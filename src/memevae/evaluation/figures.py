"""Figures a person would put in a paper: generation grids (Fig. 3, 11-17)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .plotting import save, subplots


def to_display(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, 3, size, size): grey images as RGB, smaller ones padded."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    pad_h, pad_w = size - images.shape[2], size - images.shape[3]
    if pad_h > 0 or pad_w > 0:
        images = F.pad(images, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return images


def image_row(images: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """Concatenate (B, 3, H, W) images left to right with white gaps -> (H, W_total, 3)."""
    padded = F.pad(images, (0, gap, 0, 0), value=1.0)
    return padded.permute(2, 0, 3, 1).reshape(images.shape[2], -1, 3)[:, :-gap]


@torch.no_grad()
def generation_rows(model, examples: dict[str, torch.Tensor], sample: bool = False) -> list[tuple[str, torch.Tensor]]:
    """Labelled rows: each source's inputs, then its translation to every modality (itself included)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for source, x in examples.items():
        rows.append((f"{source} (input)", to_display(x)))
        for target in model.modality_names:
            rows.append((f"{source} \u2192 {target}", to_display(model.translate(x.to(device), source, target, sample=sample))))
    model.train(was_training)
    return rows


def save_generation_grid(model, examples: dict[str, torch.Tensor], path, title: str = "", sample: bool = False):
    """A labelled PNG of :func:`generation_rows`; returns the path."""
    rows = generation_rows(model, examples, sample=sample)
    return save_image_rows(rows, path, title or "cross- and self-generation (decoder means)")


def save_image_rows(rows: list[tuple[str, torch.Tensor]], path, title: str):
    """A PNG with one labelled row of images per (label, (B, 3, H, W)) entry; returns the path."""
    fig, axes = subplots(len(rows), 1, figsize=(0.42 * rows[0][1].shape[0] + 1.6, 0.5 * len(rows) + 0.6), squeeze=False)
    for axis, (label, images) in zip(axes[:, 0], rows):
        axis.imshow(image_row(images).numpy(), interpolation="nearest")
        axis.set_xticks([]); axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    save(fig, path, dpi=120)
    return path


@torch.no_grad()
def save_translation_grid(model, x: torch.Tensor, source: str, target: str, path, samples: int = 3, title: str = "",
                          generator: torch.Generator | None = None):
    """Inputs of ``source`` in the top row, then ``samples`` rows of generated ``target`` images,
    one latent sample per row (Fig. 3 style); the noise from ``generator`` when given."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = [(f"{source} (input)", to_display(x))]
    for k in range(samples):
        rows.append((f"\u2192 {target} #{k + 1}", to_display(model.translate(x.to(device), source, target, sample=True, generator=generator))))
    model.train(was_training)
    return save_image_rows(rows, path, (title + "\n" if title else "")
                           + f"{source} \u2192 {target}: decoder means of {samples} latent samples per input")
