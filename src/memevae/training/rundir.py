"""A run directory: ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``figures/``.

Nothing here deletes earlier outputs; every file is written atomically (:mod:`memevae.io`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .. import io

CHECKPOINT_FORMAT = 1


class RunError(ValueError):
    """A run directory is missing, incomplete or would be overwritten; the message says the fix."""


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def exists(self) -> bool:
        return self.config_path.exists()

    def create(self, config: dict) -> "RunDir":
        """Start a new run here; refuses a folder that already holds one."""
        if self.exists():
            raise RunError(f"{self.path} already holds a run; continue it with --resume or choose another --out")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        io.write_json(self.config_path, config)
        return self

    def read_config(self) -> dict:
        if not self.exists():
            raise RunError(f"{self.path} is not a memevae run (no config.json); pass the folder given to 'memevae train --out'")
        return json.loads(self.config_path.read_text())

    def checkpoint_path(self, name: str = "last") -> Path:
        return self.checkpoints / f"{name}.pt"

    def save_checkpoint(self, state: dict, name: str = "last") -> Path:
        return io.save_torch(self.checkpoint_path(name), {"format": CHECKPOINT_FORMAT, **state})

    def load_checkpoint(self, name: str = "last", map_location="cpu") -> dict:
        path = self.checkpoint_path(name)
        if not path.exists():
            available = sorted(p.stem for p in self.checkpoints.glob("*.pt")) if self.checkpoints.exists() else []
            raise RunError(f"no checkpoint {path}; available: {', '.join(available) or 'none (the run ended before its first epoch)'}")
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as error:  # a corrupt file: say which, never a deep traceback
            raise RunError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); use another checkpoint") from error
        if state.get("format") != CHECKPOINT_FORMAT:
            raise RunError(f"checkpoint {path} has format {state.get('format')!r}, this memevae reads {CHECKPOINT_FORMAT}")
        return state

    def write_metrics(self, history: list[dict]) -> Path:
        return io.write_text(self.metrics_path, "".join(json.dumps(record) + "\n" for record in history))

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]
