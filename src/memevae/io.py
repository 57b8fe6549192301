"""Atomic file writes: everything memevae writes goes to a temporary name and is renamed, so a
killed process never leaves a half-written checkpoint, metrics or results file."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb",
                 before_replace: Callable[[], None] | None = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename onto ``path``;
    ``before_replace``, if given, runs once the new contents are safely on disk, just before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def json_ready(value, drop=()):
    """A copy of ``value`` that strict JSON can hold: tensors and numpy scalars as Python numbers
    (a tensor of several entries as a list), non-finite floats as the strings "inf", "-inf",
    "nan", dict keys as strings, tuples as lists, other objects as their ``str``; dict entries
    whose key is in ``drop`` are left out, at every depth.

    Example:
        >>> import torch
        >>> json_ready({"mi": torch.tensor(0.5), 3: (float("inf"), torch.tensor([1, 2])), "per_item": [0.1]},
        ...            drop=("per_item",))
        {'mi': 0.5, '3': ['inf', [1, 2]]}
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, drop) for v in value]
    torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")  # a value of either means it is imported
    if torch is not None and isinstance(value, torch.Tensor):
        return json_ready(value.item() if value.numel() == 1 else value.tolist(), drop)
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure(path, figure, **kwargs) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    return atomic_write(path, lambda f: figure.savefig(f, format="png", **kwargs))
