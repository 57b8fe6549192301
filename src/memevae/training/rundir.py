"""A run directory: ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``figures/``.

Nothing here deletes earlier outputs except the temporary files of writes that a killed process
left behind; every file is written atomically (:mod:`memevae.io`).

Checkpoints (``checkpoints/last.pt``, ``previous.pt``, ``epoch-NNNN.pt``; the names keep their
suffix across formats) hold tensors and JSON only, so loading one never runs code. Format 3 is a
:mod:`memevae.tensorfile` file of kind "checkpoint": a header line ``memevae checkpoint 3
sha256=<hex>`` whose digest of the rest is checked on every load before anything is parsed, then
a safetensors payload holding the trainer's state (``epoch``, ``model`` and ``optimizer`` state
dicts, ``torch_rng``, ``cuda_rng``, ``history``) and the run's ``config``: its tensors by name, the
rest as a JSON skeleton that rebuilds it exactly (tuples, integer keys, non-finite floats, tensor
layouts). Older checkpoints are torch pickles, read only with torch's allow-listed loader
(``weights_only=True``, :func:`memevae.tensorfile.load_legacy`) at both layers: format 2
``{"format", "sha256", "payload"}``, the state serialised by ``torch.save`` into ``payload`` (a
uint8 tensor) and ``sha256`` its digest; format 1 (memevae 0.1, no digest) the state itself. A
pickle that loader refuses is named as unsafe and never loaded. Writing ``last.pt`` first keeps
the checkpoint it replaces as ``previous.pt``, so a checkpoint damaged on disk always has an
intact fallback. A training process holds an exclusive lock on its run directory (``.lock``,
released by the operating system when the process ends, however it ends).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import math
import os
import socket
from pathlib import Path

import torch

from .. import io, tensorfile
from ..tensorfile import FileFormatError, UnsafeFileError

CHECKPOINT_FORMAT = 3
"""The format :meth:`RunDir.save_checkpoint` writes (see the module docstring; 2 and 1 are read too)."""
FALLBACK = "previous"


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
        self.check_free()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        io.write_json(self.config_path, config)
        return self

    def check_free(self) -> None:
        """Refuse, saying what to do instead, when this folder already holds a run."""
        if self.exists():
            if self.has_checkpoint():
                raise RunError(f"{self.path} already holds a run; continue it with --resume or choose another --out")
            raise RunError(f"{self.path} holds a run that stopped before its first checkpoint; start it again with "
                           f"--resume (it restarts from epoch 1 with its recorded settings), or choose another --out")

    def read_config(self) -> dict:
        if not self.exists():
            raise RunError(f"{self.path} is not a memevae run (no config.json); pass the folder given to 'memevae train --out'")
        try:
            config = json.loads(self.config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunError(f"{self.config_path} is not valid JSON ({error}); restore it (each checkpoint holds a copy "
                           f"under 'config')") from error
        if not isinstance(config, dict) or not {"model", "data", "train"} <= set(config):
            raise RunError(f"{self.config_path} is not a memevae run config (needs 'model', 'data' and 'train'); restore it "
                           f"(each checkpoint holds a copy under 'config')")
        return config

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_path(self, name: str = "last") -> Path:
        return self.checkpoints / f"{name}.pt"

    def has_checkpoint(self, name: str = "last") -> bool:
        return self.checkpoint_path(name).exists()

    def save_checkpoint(self, state: dict, *names: str) -> None:
        """Write ``state`` as each of ``names`` (default ``last``; serialised once) atomically, in
        format :data:`CHECKPOINT_FORMAT` (tensors, JSON and a sha256 of them); writing ``last`` first keeps the checkpoint it replaces as ``previous``."""
        data = tensorfile.dumps(state, "checkpoint", CHECKPOINT_FORMAT)
        for name in names or ("last",):
            path = self.checkpoint_path(name)
            keep = self._keep_as_fallback if name == "last" and path.exists() else None
            io.atomic_write(path, lambda f: f.write(data), before_replace=keep)

    def _keep_as_fallback(self) -> None:
        """``last.pt``, about to be replaced, becomes ``previous.pt`` (a hard link: no copy, and at
        every moment both names hold a complete checkpoint)."""
        spare = self.checkpoints / f".{FALLBACK}.pt.link"
        spare.unlink(missing_ok=True)
        os.link(self.checkpoint_path("last"), spare)
        os.replace(spare, self.checkpoint_path(FALLBACK))

    def _read_checkpoint(self, path: Path, map_location) -> dict:
        """The state in ``path``; raises FileFormatError saying what is wrong with the file
        (UnsafeFileError for a pickle that torch's allow-listed loader refuses)."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise FileFormatError(f"it cannot be read: {error.strerror or error}") from error
        if tensorfile.is_tensor_file(data):
            state = tensorfile.loads(data, "checkpoint", CHECKPOINT_FORMAT, map_location)
        else:
            state = self._read_legacy_checkpoint(data, map_location)
        if not isinstance(state, dict) or "epoch" not in state:
            raise FileFormatError("it does not hold a memevae checkpoint")
        return state

    @staticmethod
    def _read_legacy_checkpoint(data: bytes, map_location) -> dict:
        """The state in a checkpoint of format 1 or 2 (torch pickles; both layers read with
        torch's allow-listed loader)."""
        outer = tensorfile.load_legacy(data, map_location)
        if not isinstance(outer, dict):
            raise FileFormatError("it does not hold a memevae checkpoint")
        if outer.get("format") == 1:  # memevae 0.1: no digest to check
            return outer
        if outer.get("format") != 2:
            raise FileFormatError(f"it has format {outer.get('format')!r}; this memevae reads {CHECKPOINT_FORMAT} (and 2, 1)")
        payload = outer.get("payload")
        if isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8:
            payload = payload.cpu().numpy().tobytes()
        elif not isinstance(payload, bytes):  # (bytes: how the first writers of format 2 stored it)
            raise FileFormatError(f"its payload is a {type(payload).__name__}, not serialised bytes")
        if hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
            raise FileFormatError("its contents do not match their sha256: the file was damaged after it was written")
        return tensorfile.load_legacy(payload, map_location)

    def load_checkpoint(self, name: str = "last", map_location="cpu") -> dict:
        """Load and verify a checkpoint; a missing or damaged one gets one line naming the file and
        an intact fallback (``previous`` or the newest ``epoch-NNNN``) when there is one."""
        path = self.checkpoint_path(name)
        if not path.exists():
            available = self.available_checkpoints()
            raise RunError(f"no checkpoint {path}; available: {', '.join(available) or 'none (the run ended before its first epoch)'}")
        try:
            return self._read_checkpoint(path, map_location)
        except UnsafeFileError as problem:
            raise RunError(f"checkpoint {path} is not a checkpoint memevae can load safely ({problem}; memevae never "
                           f"writes such a file, so it was not loaded); {self._fallback_advice(exclude=name)}") from None
        except FileFormatError as problem:
            raise RunError(f"checkpoint {path} is damaged ({problem}); {self._fallback_advice(exclude=name)}") from None

    def available_checkpoints(self) -> list[str]:
        return sorted(p.stem for p in self.checkpoints.glob("*.pt")) if self.checkpoints.exists() else []

    def _fallback_advice(self, exclude: str) -> str:
        candidates = ["last", FALLBACK] + sorted((n for n in self.available_checkpoints() if n.startswith("epoch-")), reverse=True)
        for name in candidates:
            if name == exclude or not self.has_checkpoint(name):
                continue
            try:
                state = self._read_checkpoint(self.checkpoint_path(name), "cpu")
            except FileFormatError:
                continue
            return (f"the checkpoint {self.checkpoint_path(name)} (end of epoch {state.get('epoch')}) is intact: "
                    f"use it with --checkpoint {name}")
        return "no intact checkpoint is left to fall back on"

    # -- the lock and leftovers ----------------------------------------------------------------
    def lock(self) -> "RunLock":
        """An exclusive lock on this run directory for a training process (see :class:`RunLock`)."""
        return RunLock(self.path)

    def remove_leftovers(self) -> list[Path]:
        """Delete the temporary files of writes that a killed process left (``.name.*.tmp``); only
        call this while holding the lock. Returns what was removed."""
        removed = []
        for folder in (self.path, self.checkpoints, self.figures, self.path / "evaluation"):
            for leftover in folder.glob(".*.tmp") if folder.is_dir() else []:
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
        return removed

    def write_metrics(self, history: list[dict]) -> Path:
        """One JSON object per epoch; a non-finite value is written as null (strict JSON)."""
        def strict(record: dict) -> dict:
            return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}

        return io.write_text(self.metrics_path, "".join(json.dumps(strict(record), allow_nan=False) + "\n" for record in history))

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock``, held from :meth:`acquire` to :meth:`release` (or
    the end of the process). The file names the holder (pid, host, start time) so that a refused
    process can say who holds it; a lock whose process died is released by the operating system,
    so it never blocks a later run.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     RunLock(folder).acquire()
    Traceback (most recent call last):
    ...
    memevae.training.rundir.RunError: ... is in use by process ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.file = None

    def acquire(self) -> "RunLock":
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                handle.close()
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunError(f"{self.path} is in use by {holder}; wait for it to finish or stop it, then try again") from None
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        handle.write(f"process {os.getpid()} on {socket.gethostname()} (memevae, since {started})\n")
        handle.flush()
        self.file = handle
        return self

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the descriptor releases the flock
            self.file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
