"""A run directory: ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``figures/``.

memevae writes only into folders it made: each one holds a marker file ``.memevae`` naming what
it is (:func:`check_folder`, :func:`mark_folder`); a folder that exists, is not empty and is not
memevae's is refused before anything in it is touched. Nothing here deletes earlier outputs except
the temporary files of writes that a killed process left behind in a run memevae made; every file
is written atomically (:mod:`memevae.io`).

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
uint8 tensor) and ``sha256`` its digest; format 1 (early memevae 0.1.0, no digest) the state itself. A
pickle that loader refuses is named as unsafe and never loaded. Writing ``last.pt`` first keeps
the checkpoint it replaces as ``previous.pt``, so a checkpoint damaged on disk always has an
intact fallback. A training process holds an exclusive lock on its run directory (``.lock``,
released by the operating system when the process ends, however it ends).
"""

from __future__ import annotations

import contextlib
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
from ..version import __version__
from ..tensorfile import FileFormatError, UnsafeFileError

CHECKPOINT_FORMAT = 3
"""The format :meth:`RunDir.save_checkpoint` writes (see the module docstring; 2 and 1 are read too)."""
FALLBACK = "previous"


class RunError(ValueError):
    """A run directory is missing, incomplete or would be overwritten; the message says the fix."""


MARKER = ".memevae"
"""The marker file memevae writes into every folder it makes for its outputs (JSON: ``kind``,
``memevae_version``, ``created``)."""
_ROOM = 64
"""Bytes left for the longest name memevae writes below an output path (``checkpoints/.previous.pt.link``,
a temporary file's random suffix)."""


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-30:]} ({len(os.fsencode(text))} bytes)"


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder a write would start from)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_path(path: str | os.PathLike, *, option: str = "--out", folder: bool = True) -> Path:
    """``path`` as memevae may write it: a folder (``folder``) or a file, not yet there or already
    one; refused in one line (:class:`RunError`) when it is a dangling symbolic link, the other kind
    of thing (a file where a folder is wanted, or the reverse), below a file, or a name too long for
    its file system."""
    path = Path(path)
    name_max, path_max = 255, 4096
    with contextlib.suppress(OSError, ValueError):
        anchor = _nearest_existing(path)
        name_max = os.pathconf(anchor if anchor.is_dir() else anchor.parent, "PC_NAME_MAX")
        path_max = os.pathconf(anchor if anchor.is_dir() else anchor.parent, "PC_PATH_MAX")
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    room = _ROOM if folder else len(".") + len(".XXXXXXXX.tmp")  # a file's temporary name beside it
    name_limit, path_limit = name_max - (0 if folder else room), path_max - room
    if longest > name_limit or len(os.fsencode(str(path))) > path_limit:
        raise RunError(f"{option} {_shown(path)} is too long for its file system (at most {name_limit} bytes per name and "
                       f"{path_limit} for the whole path, leaving room for the files memevae writes there); choose a "
                       f"shorter {option}")
    if path.is_symlink() and not path.exists():
        raise RunError(f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist; create its target or "
                       f"choose another {option}")
    anchor = _nearest_existing(path)
    if anchor != path and not anchor.is_dir():
        raise RunError(f"{option} {path} lies inside {anchor}, which is a file, not a folder; choose another {option}")
    if path.exists() and folder and not path.is_dir():
        raise RunError(f"{option} {path} is a file, not a folder; choose another {option} (a folder that does not exist yet)")
    if path.exists() and not folder and path.is_dir():
        raise RunError(f"{option} {path} is a folder; give a file name, e.g. {path / 'grid.png'}")
    return path


def check_writable(path: str | os.PathLike, advice: str) -> None:
    """Refuse in one line, ending with ``advice``, when this process may not write into ``path``
    (a folder, or where it would be created): no write permission or a read-only file system."""
    anchor = _nearest_existing(Path(path))
    if not os.access(anchor, os.W_OK | os.X_OK):
        why = "it is on a read-only file system" if _read_only_mount(anchor) else "this user may not write into it"
        raise RunError(f"cannot write into {anchor} ({why}); {advice}")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def folder_kind(path: str | os.PathLike) -> str | None:
    """What memevae made ``path`` for, from its marker ("run", "sweep", "evaluation"), or None when
    it holds no readable marker."""
    try:
        kind = json.loads((Path(path) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def check_folder(path: str | os.PathLike, kind: str = "run", *, option: str = "--out", recognise=None, foreign=None) -> bool:
    """Whether memevae may write its ``kind`` outputs ("run", "sweep", "evaluation") into folder
    ``path``: False when it does not exist or is empty (free: create it and :func:`mark_folder` it),
    True when memevae made it for ``kind`` (its marker says so, or ``recognise(path)`` finds a
    ``kind`` written before markers existed, e.g. a run's config.json or a sweep's sweep.json).
    Anything else is refused in one line (:class:`RunError`) before anything is touched: a folder
    that holds files memevae did not write (``foreign(path)``, when given, says so in the words of
    its kind), one memevae made for another kind of output, or a path :func:`check_path` refuses.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_folder(folder / "new"), check_folder(folder)
    (False, False)
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> check_folder(folder)
    Traceback (most recent call last):
    ...
    memevae.training.rundir.RunError: --out ... holds files memevae did not write (notes.txt); ...
    """
    path = check_path(path, option=option)
    if not path.is_dir() or not any(path.iterdir()):
        return False
    made = folder_kind(path)
    if made == kind or (made is None and recognise is not None and recognise(path)):
        return True
    if made is not None:
        raise RunError(f"{option} {path} is the {made} folder memevae made there, so it cannot hold {kind} outputs; choose "
                       f"another {option}")
    if foreign is not None:
        raise RunError(foreign(path))
    found = sorted(entry.name for entry in path.iterdir())
    listed = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    raise RunError(f"{option} {path} holds files memevae did not write ({listed}); memevae writes only into a new or empty "
                   f"folder or one it made: choose another {option}")


def mark_folder(path: str | os.PathLike, kind: str = "run") -> Path:
    """Create folder ``path`` (with its parents) and write its marker, once: from now on
    :func:`check_folder` knows it as memevae's ``kind`` folder. Returns the marker's path."""
    marker = Path(path) / MARKER
    if not marker.exists():
        io.write_json(marker, {"kind": kind, "memevae_version": __version__,
                               "created": datetime.datetime.now().isoformat(timespec="seconds")})
    return marker


def earlier_run(path: str | os.PathLike) -> bool:
    """Whether folder ``path`` is a run of a memevae that wrote no marker: its ``config.json``
    parses as a run config, or it holds only the lock of a run stopped before its config was
    written (and that run's empty ``checkpoints/`` and ``figures/``)."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
        return isinstance(config, dict) and {"model", "data", "train"} <= set(config)
    except (OSError, ValueError):
        pass
    try:
        entries = {entry.name: entry for entry in path.iterdir()}
        return (".lock" in entries and "(memevae, since" in entries[".lock"].read_text()
                and all(name in (".lock", "checkpoints", "figures") for name in entries)
                and not any(any(entries[name].iterdir()) for name in ("checkpoints", "figures") if name in entries))
    except (OSError, ValueError):
        return False


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

    def made_by_memevae(self) -> bool:
        """Whether memevae made this folder for a run (its marker, or :func:`earlier_run`)."""
        return folder_kind(self.path) == "run" or (folder_kind(self.path) is None and earlier_run(self.path))

    def create(self, config: dict) -> "RunDir":
        """Start a new run here; refuses a folder that already holds one."""
        self.check_free()
        mark_folder(self.path, "run")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(parents=True, exist_ok=True)
        io.write_json(self.config_path, config)
        return self

    def check_free(self) -> None:
        """Refuse, saying what to do instead, when this folder already holds a run or holds files
        memevae did not write (:func:`check_folder`)."""
        check_folder(self.path, "run", recognise=earlier_run)
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
        if outer.get("format") == 1:  # early memevae 0.1.0: no digest to check
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
        """Delete the temporary files of writes that a killed process left (``.name.*.tmp``) in a
        run folder memevae made (:meth:`made_by_memevae`; nothing elsewhere); only call this while
        holding the lock. Returns what was removed."""
        removed = []
        if not self.made_by_memevae():
            return removed
        for folder in (self.path, self.checkpoints, self.figures, self.path / "evaluation"):
            with results_lock(folder, wait=False) if folder.name == "evaluation" else contextlib.nullcontext(True) as free:
                for leftover in folder.glob(".*.tmp") if folder.is_dir() and free else []:  # not while an evaluation writes
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


@contextlib.contextmanager
def results_lock(folder: str | os.PathLike, wait: bool = True):
    """An exclusive ``flock`` on ``folder/.results.lock``, held by each read-merge-write of an
    evaluation's results file (separate from the run's :class:`RunLock`, so a run can be evaluated
    while it trains). Waits for another holder, or with ``wait=False`` yields False at once when
    there is one (True when held)."""
    folder = Path(folder)
    if not wait and not folder.is_dir():
        yield True  # nothing there to protect
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".results.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # released when the file is closed


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
