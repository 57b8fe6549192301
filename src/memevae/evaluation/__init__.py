"""Evaluation of trained runs (paper Sec. 4 and App. F-I): judges (digit classifiers), cross coherence, latent
accuracy, relatedness, t-SNE, generation grids, and (in their own modules) marginal likelihood,
gradient SNR and generative quality. :func:`evaluate` runs any of them by name and writes
``RUN/evaluation/metrics.json``; :func:`memevae.evaluation.report.write_report` tabulates many runs.

Names are imported on first use, so importing this package (as the CLI and the training
callbacks do) does not load matplotlib or scikit-learn.

Example:
    >>> from memevae.evaluation import evaluate
    >>> results = evaluate("runs/meme-mnist-textured-f1-seed0")  # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "evaluate": "pipeline", "METRICS": "pipeline", "DEFAULT_METRICS": "pipeline",
    "JudgeError": "judges", "default_judges_dir": "judges", "load_judges": "judges", "train_judges": "judges",
    "cross_coherence": "coherence",
    "latent_accuracy": "latent",
    "w2_distance": "relatedness", "w2_pairwise": "relatedness",
    "tsne": "embeddings",
    "generation_grids": "grids",
    "write_report": "report",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
