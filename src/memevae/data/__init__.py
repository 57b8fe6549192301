"""Data layer: one dataset type for complete and partial multimodal data, bank formats, the data
sets (one module each in :mod:`memevae.data.sets`, found by :mod:`~memevae.data.registry`), the
readers of their files (:mod:`memevae.data.files`), image features (:mod:`memevae.data.features`),
the textured-digits renderer, pairing and the partial-observation schemes (paper Sec. 4.1; docs/data.md).

>>> from memevae.data import load_pairs, apply_scheme
>>> train = apply_scheme(load_pairs("mnist-textured", "train"), 0.5, "split")
>>> train.summary()
{'rows': 3000, 'paired': 1500, 'mnist only': 750, 'textured only': 750}
"""

from .config import DataConfig
from .dataset import Batch, MultimodalDataset
from .errors import DataError
from .formats import FORMATS, Format
from .pairs import load_pairs
from . import registry
from .registry import DataSet, ModalitySpec, default_kinds
from .schemes import apply_scheme


def __getattr__(name):
    if name == "DATASETS":  # found on first use, not at import
        return registry.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "MultimodalDataset", "load_pairs", "apply_scheme", "DATASETS", "DataError", "DataConfig", "DataSet",
           "ModalitySpec", "default_kinds", "Format", "FORMATS"]
