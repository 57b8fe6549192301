"""Figures a person would put in a paper: generation grids (Fig. 3, 11-17)."""

from __future__ import annotations

import textwrap

import torch
import torch.nn.functional as F

from ._common import evaluation_mode, model_device
from .plotting import save, subplots, suptitle, wrap_title


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


def pictures(x: torch.Tensor) -> list[torch.Tensor]:
    """A batch of images (B, C, H, W) as the list of pictures a row shows (the default ``show``)."""
    return list(x.detach().float().cpu().clamp(0, 1))


def generation_rows(model, examples: dict[str, torch.Tensor], sample: bool = False, show=None) -> list[tuple[str, list]]:
    """Labelled rows: each source's inputs, then its translation to every modality (itself included).
    ``show(modality, x)`` says what a person sees of examples or generations (pictures or strings;
    :meth:`memevae.data.MultimodalDataset.show`); default: the images themselves."""
    show = show or (lambda modality, x: pictures(x))
    device = model_device(model)
    rows = []
    with evaluation_mode(model):
        for source, x in examples.items():
            rows.append((f"{source} (input)", show(source, x)))
            for target in model.modality_names:
                rows.append((f"{source} \u2192 {target}", show(target, model.translate(x.to(device), source, target, sample=sample).cpu())))
    return rows


def subset_generation_rows(model, examples: dict[str, torch.Tensor], show=None) -> list[tuple[str, list]]:
    """Labelled rows for more than two modalities: every modality's inputs, then each modality
    generated from all the others together (MoPoE's leave-one-out view), decoded at the mean of
    the model's posterior given that subset (:meth:`~memevae.models.MultimodalVAE.posterior`)."""
    show = show or (lambda modality, x: pictures(x))
    device = model_device(model)
    rows = [(f"{name} (input)", show(name, x)) for name, x in examples.items()]
    with evaluation_mode(model):
        for target in examples:
            sources = {name: x.to(device) for name, x in examples.items() if name != target}
            generated = model.decode(target, model.posterior(sources).loc).cpu()
            rows.append((f"{'+'.join(sources)} \u2192 {target}", show(target, generated)))
    return rows


def save_generation_grid(model, examples: dict[str, torch.Tensor], path, title: str = "", sample: bool = False, show=None):
    """A labelled PNG of :func:`generation_rows`; returns the path."""
    rows = generation_rows(model, examples, sample=sample, show=show)
    return save_image_rows(rows, path, title or "cross- and self-generation (decoder means)")


def save_image_rows(rows: list[tuple[str, list]], path, title: str):
    """A PNG with one labelled row per (label, items) entry, the items pictures (C, H, W) in [0, 1]
    (shown side by side) or strings (written one under the other, numbered by column); returns the path."""
    columns = max(len(items) for _, items in rows)
    texts = [items for _, items in rows if items and isinstance(items[0], str)]
    lines = max((len(items) for items in texts), default=0)
    heights = [0.13 * lines + 0.2 if items and isinstance(items[0], str) else 0.5 for _, items in rows]
    width = 0.42 * columns + 1.6 if not texts else max(0.42 * columns + 1.6, 9.0)
    title_lines = wrap_title(title, width, 9).count("\n") + 1
    fig, axes = subplots(len(rows), 1, figsize=(width, sum(heights) + 0.45 + 0.15 * title_lines), squeeze=False,
                         gridspec_kw={"height_ratios": heights})
    for axis, (label, items) in zip(axes[:, 0], rows):
        axis.set_xticks([]); axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        if items and isinstance(items[0], str):
            text = "\n".join(f"{k + 1}. {line}" for k, line in enumerate(items))
            axis.text(0.01, 0.5, text, transform=axis.transAxes, ha="left", va="center", fontsize=6, family="monospace")
            for side in axis.spines.values():
                side.set_visible(False)
        else:
            size = max(32, *(max(p.shape[-2:]) for p in items))
            axis.imshow(image_row(to_display(torch.stack([_square(p, size) for p in items]), size)).numpy(), interpolation="nearest")
    suptitle(fig, title, 9)
    save(fig, path, dpi=120)
    return path


def _square(picture: torch.Tensor, size: int) -> torch.Tensor:
    """A picture (C, H, W) padded to (C, size, size), grey as RGB."""
    picture = picture.expand(3, -1, -1) if picture.shape[0] == 1 else picture
    pad_h, pad_w = size - picture.shape[1], size - picture.shape[2]
    return F.pad(picture, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


@torch.no_grad()
def save_translation_grid(model, x: torch.Tensor, source: str, target: str, path, samples: int = 3, title: str = "",
                          generator: torch.Generator | None = None, show=None):
    """Inputs of ``source`` in the top row, then ``samples`` rows of generated ``target`` examples,
    one latent sample per row (Fig. 3 style; Fig. 4 and 18 for captions); the noise from
    ``generator`` when given; ``show`` as in :func:`generation_rows`."""
    show = show or (lambda modality, x: pictures(x))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = [(f"{source} (input)", show(source, x))]
    for k in range(samples):
        made = model.translate(x.to(device), source, target, sample=True, generator=generator).cpu()
        rows.append((f"\u2192 {target} #{k + 1}", show(target, made)))
    model.train(was_training)
    heading = (title + "\n" if title else "") + f"{source} \u2192 {target}: decoder means of {samples} latent samples per input"
    if any(items and isinstance(items[0], str) for _, items in rows):
        return save_example_table(rows[0][1], [list(made) for made in zip(*(items for _, items in rows[1:]))], path, heading,
                                  (source, target))
    return save_image_rows(rows, path, heading)


def save_example_table(inputs: list, outputs: list[list], path, title: str, headers: tuple[str, str]):
    """A PNG with one row per example: its input on the left and its generations on the right (the
    layout of the paper's Fig. 4 and 18 for captions), each a picture (C, H, W) in [0, 1] or a
    string (pictures side by side; strings one under the other, wrapped to their column); returns
    the path."""
    widths = (52, 118)  # characters of 6.5 pt monospace that fit the input and the output column

    def text_of(items, width):
        if not isinstance(items[0], str):
            return None
        numbered = items if len(items) == 1 else [f"{k + 1}. {line}" for k, line in enumerate(items)]
        return "\n".join(textwrap.fill(line, width, subsequent_indent="   ") for line in numbered)

    cells = [(text_of([given], widths[0]), text_of(made, widths[1])) for given, made in zip(inputs, outputs)]
    heights = [max(0.55, 0.12 * max((t.count("\n") + 1 if t else 0) for t in pair) + 0.15) for pair in cells]
    fig, axes = subplots(len(inputs), 2, figsize=(10.5, sum(heights) + 0.8), squeeze=False,
                         gridspec_kw={"height_ratios": heights, "width_ratios": [1.0, 2.4]})
    for row, (given, made) in enumerate(zip(inputs, outputs)):
        for axis, items, text in zip(axes[row], ([given], made), cells[row]):
            axis.set_xticks([]); axis.set_yticks([])
            if text is not None:
                axis.text(0.01, 0.5, text, transform=axis.transAxes, ha="left", va="center", fontsize=6.5, family="monospace")
                for side in axis.spines.values():
                    side.set_visible(False)
            else:
                size = max(32, *(max(p.shape[-2:]) for p in items))
                axis.imshow(image_row(to_display(torch.stack([_square(p, size) for p in items]), size)).numpy(),
                            interpolation="nearest")
                axis.set_anchor("W")
    for axis, header in zip(axes[0], headers):
        axis.set_title(header, fontsize=8, loc="left")
    suptitle(fig, title, 9)
    save(fig, path, dpi=120)
    return path
