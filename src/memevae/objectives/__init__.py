"""Objectives as free functions of log-densities, one module per model family, each citing its equation."""

from .meme import ESTIMATORS, DirectionalBound, meme_paired_bound, meme_unpaired_bound

__all__ = ["ESTIMATORS", "DirectionalBound", "meme_paired_bound", "meme_unpaired_bound"]
