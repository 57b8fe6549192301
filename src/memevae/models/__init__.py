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


def preset_options(name: str, preset: str | None) -> dict:
    """The options of model ``name``'s preset ``preset`` (a copy; {} for None); an unknown preset is a
    one-line error naming the model's presets."""
    if preset is None:
        return {}
    presets = model_class(name).config_class.presets
    if preset not in presets:
        offered = f"its presets are {', '.join(presets)}" if presets else "it has no presets"
        raise ValueError(f"{name} has no preset {preset!r}; {offered}")
    return dict(presets[preset])


def model_from_config(config: ModelConfig) -> MultimodalVAE:
    """The model whose config class ``config`` is, built from it (e.g. ``MEMEConfig`` -> MEME)."""
    for cls in MODELS.values():
        if type(config) is cls.config_class:
            return cls(config)
    raise ValueError(f"no memevae model takes a {type(config).__name__}; the models take "
                     f"{', '.join(cls.config_class.__name__ for cls in MODELS.values())}")


__all__ = ["MODELS", "ModelConfig", "ModelOutput", "MultimodalVAE", "MEME", "MEMEConfig", "MVAE", "MVAEConfig", "MMVAE", "MMVAEConfig",
           "model_class", "build_config", "model_from_config", "preset_options"]
