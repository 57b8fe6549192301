"""Bank formats: how a modality's examples are stored and what a model receives from them.

A format checks a bank (its dtype and shape), turns bank rows into what a model consumes
(:meth:`Format.prepare`) and, where it can, shows one example as an image (:meth:`Format.show`).
Each modality of a :class:`~memevae.data.MultimodalDataset` has one.

>>> FORMATS["tokens"].prepare(torch.tensor([[3, 1, 2]], dtype=torch.int16))
tensor([[3, 1, 2]])
>>> FORMATS["tokens"].check("words", torch.zeros(2, 3))
Traceback (most recent call last):
...
ValueError: bank 'words' has format 'tokens', which needs integer token ids; got torch.float32 (2, 3)
"""

from __future__ import annotations

import torch


def as_float_images(x) -> torch.Tensor:
    """Images as float in [0, 1]: uint8 (0..255) divided by 255, anything else as float32
    (what the image format prepares).

    >>> as_float_images(torch.tensor([0, 51, 255], dtype=torch.uint8))
    tensor([0.0000, 0.2000, 1.0000])
    """
    x = torch.as_tensor(x)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class Format:
    """A named bank format; subclasses say which banks they accept and how rows are prepared."""

    name: str
    needs: str
    """What the format accepts, for error messages."""

    def accepts(self, bank: torch.Tensor) -> bool:
        raise NotImplementedError

    def check(self, modality: str, bank: torch.Tensor) -> None:
        """Raise a one-line ValueError unless ``bank`` (n, *example shape) has this format."""
        if not self.accepts(bank):
            raise ValueError(f"bank {modality!r} has format {self.name!r}, which needs {self.needs}; "
                             f"got {bank.dtype} {tuple(bank.shape)}")

    def prepare(self, rows) -> torch.Tensor:
        """Bank rows as a model consumes them."""
        raise NotImplementedError

    def show(self, x: torch.Tensor) -> torch.Tensor | None:
        """One example (or decoder mean) as a float image (C, H, W) in [0, 1], or None if it has no picture."""
        return None

    def data_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one prepared example of a modality whose model-side shape is ``shape`` (the
        shape its decoder produces and its pseudo-samples have): the same by default."""
        return tuple(shape)

    def relax(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Prepared examples (n, *data_shape) in the continuous form (n, *shape) a model's encoder
        also accepts and MEME's learnable pseudo-samples live in (paper Eq. 4): float, unchanged
        by default."""
        return x.float()

    def __repr__(self) -> str:
        return f"Format({self.name!r})"


class ImageFormat(Format):
    """Images (n, C, H, W): uint8 (0..255) divided by 255, floating point passed as float32."""

    name, needs = "image", "uint8 or floating point images (n, C, H, W)"

    def accepts(self, bank):
        return (bank.dtype == torch.uint8 or bank.dtype.is_floating_point) and bank.ndim == 4

    def prepare(self, rows):
        return as_float_images(rows)

    def show(self, x):
        return self.prepare(x).clamp(0, 1)


class TokensFormat(Format):
    """Integer token ids, returned as int64 and otherwise unchanged."""

    name, needs = "tokens", "integer token ids"

    def accepts(self, bank):
        return not bank.dtype.is_floating_point and not bank.dtype.is_complex and bank.dtype != torch.bool

    def prepare(self, rows):
        return torch.as_tensor(rows).long()

    def data_shape(self, shape):
        """A modality of tokens has model-side shape (length, vocabulary size): a score per word at
        each position; its examples are (length,) token ids."""
        return tuple(shape[:-1])

    def relax(self, x, shape):
        """Token ids as one-hot vectors over the vocabulary (n, length, vocabulary size), the point of
        the relaxed space that stands for the caption.

        >>> FORMATS["tokens"].relax(torch.tensor([[2, 0]]), (2, 3))
        tensor([[[0., 0., 1.],
                 [1., 0., 0.]]])
        """
        return torch.nn.functional.one_hot(torch.as_tensor(x).long(), shape[-1]).float()


class FeaturesFormat(Format):
    """Real-valued feature vectors (or any floating point array), as float32."""

    name, needs = "features", "floating point values"

    def accepts(self, bank):
        return bank.dtype.is_floating_point

    def prepare(self, rows):
        return torch.as_tensor(rows).float()


FORMATS = {f.name: f for f in (ImageFormat(), TokensFormat(), FeaturesFormat())}


def get_format(name: str) -> Format:
    """The format called ``name``; a one-line ValueError naming the known ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def infer_format(bank: torch.Tensor) -> Format:
    """The format of a bank that declares none: uint8 -> image, other integers -> tokens,
    floating point -> features."""
    if bank.dtype == torch.uint8:
        return FORMATS["image"]
    return FORMATS["features" if bank.dtype.is_floating_point else "tokens"]
