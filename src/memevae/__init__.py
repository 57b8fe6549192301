"""memevae: MEME multimodal VAEs trained by mutual supervision (Joy et al., ICLR 2022).

Example:
    >>> import memevae
    >>> run = memevae.train("runs/demo", training=memevae.TrainConfig(epochs=1))  # doctest: +SKIP
    >>> run = memevae.load_run("runs/demo")                                       # doctest: +SKIP
"""

__version__ = "0.1.0"

from .runs import DataConfig, Run, RunError, TrainConfig, load_run, resume, train  # noqa: E402

__all__ = ["__version__", "DataConfig", "Run", "RunError", "TrainConfig", "load_run", "resume", "train"]
