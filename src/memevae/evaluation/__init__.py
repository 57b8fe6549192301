"""Evaluation of trained runs (paper Sec. 4 and App. F-I). Each metric (cross coherence, latent
accuracy, relatedness, t-SNE, generation grids, marginal likelihood, gradient SNR, generative
quality) is one module of :mod:`memevae.evaluation.metrics` following the protocol of
:mod:`memevae.evaluation.metric`; :func:`evaluate` runs any of them by name and writes
``RUN/evaluation/metrics.json``; :func:`memevae.evaluation.paper.report.write_report` tabulates many runs
beside the paper's numbers.

Names are imported on first use, so importing this package (as the CLI and the training
callbacks do) does not load matplotlib or scikit-learn.

Example:
    >>> from memevae.evaluation import evaluate
    >>> results = evaluate("runs/meme-mnist-textured-f1-seed0")  # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "evaluate": "pipeline", "Metric": "metric", "metrics": "metric", "default_metrics": "metric",
    "JudgeError": "judges", "default_judges_dir": "judges", "load_judges": "judges", "train_judges": "judges",
    "cross_coherence": "metrics.coherence",
    "latent_accuracy": "metrics.latent",
    "w2_distance": "metrics.relatedness", "w2_pairwise": "metrics.relatedness",
    "tsne": "metrics.tsne",
    "generation_grids": "metrics.grids",
    "marginal_log_likelihood": "metrics.likelihood",
    "write_report": "paper.report",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
