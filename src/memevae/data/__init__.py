"""Data layer: one dataset type for complete and partial multimodal data, the official readers,
the textured-digits renderer, pairing and the partial-observation schemes (paper Sec. 4.1; docs/data.md).

>>> from memevae.data import load_pairs, apply_scheme
>>> train = apply_scheme(load_pairs("mnist-textured", "train"), 0.5, "split")
>>> train.summary()
{'rows': 3000, 'paired': 1500, 'mnist only': 750, 'textured only': 750}
"""

from .dataset import Batch, MultimodalDataset
from .errors import DataError
from .pairs import DATASETS, load_pairs
from .schemes import apply_scheme

__all__ = ["Batch", "MultimodalDataset", "load_pairs", "apply_scheme", "DATASETS", "DataError"]
