"""The models memevae trains, chosen by name: each a config dataclass and a model class."""

from __future__ import annotations

import dataclasses

from .base import ModelConfig, ModelOutput, MultimodalVAE
from .meme import MEME, MEMEConfig
from .mmvae import MMVAE, MMVAEConfig
from .mvae import MVAE, MVAEConfig

MODELS: dict[str, type[MultimodalVAE]] = {"meme": MEME, "mvae": MVAE, "mmvae": MMVAE}


def model_class(name: str) -> type[MultimodalVAE]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_config(name: str, **fields) -> ModelConfig:
    """The config of model ``name`` from keyword fields; an unknown field is a one-line error."""
    config_class = model_class(name).config_class
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{name} has no option(s) {', '.join(unknown)}; its options are {', '.join(sorted(known))}")
    return config_class(**fields)


__all__ = ["MODELS", "ModelConfig", "ModelOutput", "MultimodalVAE", "MEME", "MEMEConfig", "MVAE", "MVAEConfig", "MMVAE", "MMVAEConfig",
           "model_class", "build_config"]
