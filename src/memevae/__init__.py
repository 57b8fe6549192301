"""memevae: MEME multimodal VAEs trained by mutual supervision (Joy et al., ICLR 2022).

Example:
    >>> import memevae
    >>> run = memevae.train("runs/demo", training=memevae.TrainConfig(epochs=1))  # doctest: +SKIP
    >>> run = memevae.load_run("runs/demo")                                       # doctest: +SKIP
"""

from .run import Run, RunError, load_run
from .runs import DataConfig, TrainConfig, resume, train
from .version import __version__

__all__ = ["__version__", "DataConfig", "Run", "RunError", "TrainConfig", "load_run", "resume", "train"]
