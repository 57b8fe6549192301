"""Atomic file writes: everything memevae writes goes to a temporary name and is renamed, so a
killed process never leaves a half-written checkpoint, metrics or results file."""

from __future__ import annotations

import json
import os
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


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path, obj) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def save_figure(path, figure, **kwargs) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    return atomic_write(path, lambda f: figure.savefig(f, format="png", **kwargs))
