"""Locating, verifying and downloading the official data files (md5s of the official files).

Every file is checked against its official md5 when read (``verify=True``); the digest is cached
per process, keyed by path, size and modification time, so repeated loads are cheap. Downloads
stream to a temporary file in the destination folder, are checked, then renamed into place: an
interrupted or corrupt download never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_md5_cache: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name, md5 and download URLs (mirrors, tried in order).

    A ``.gz`` file with ``plain_md5`` set may also be present uncompressed (its name without
    ``.gz``), in which case it is verified against ``plain_md5``.
    """

    name: str
    md5: str
    urls: tuple[str, ...]
    plain_md5: str | None = None


def md5sum(path: str | os.PathLike) -> str:
    """Hex md5 of a file, cached per process by (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _md5_cache:
        digest = hashlib.md5()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        _md5_cache[key] = digest.hexdigest()
    return _md5_cache[key]


def check_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise DataError unless the file's md5 is ``expected``."""
    actual = md5sum(path)
    if actual != expected:
        raise DataError(
            f"{path}: md5 {actual} does not match the official {expected}; the file is corrupt or "
            "re-packed: delete it and re-download it (download=True / --download), or skip the "
            "check with verify=False (--no-verify)"
        )


def download(url: str, dest: str | os.PathLike, md5: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, checking its md5; return ``dest``.

    Streams to a temporary file beside ``dest`` and renames it into place only once the md5
    matches. Any failure (HTTP error, no network, bad checksum) removes the temporary file and
    raises DataError.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(
                f"download of {url} has md5 {digest.hexdigest()}, expected {md5}: the server sent "
                f"a different file; place the official {dest.name} in {dest.parent} by hand"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a data file is for everyone to read
        os.replace(tmp, dest)
    except urllib.error.HTTPError as e:
        raise DataError(
            f"download of {url} failed: HTTP {e.code} {e.reason}; place {dest.name} in "
            f"{dest.parent} by hand"
        ) from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(
            f"could not download {url} ({reason}); without network, place {dest.name} in "
            f"{dest.parent} by hand"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _candidates(folder: Path, entry: RemoteFile) -> list[tuple[Path, str]]:
    found = [(folder / entry.name, entry.md5)]
    if entry.plain_md5 is not None and entry.name.endswith(".gz"):
        found.append((folder / entry.name[:-3], entry.plain_md5))
    return found


def ensure_files(
    data_dir: str | os.PathLike,
    table: Sequence[RemoteFile],
    download: bool,
    *,
    verify: bool = True,
    subdirs: Sequence[str] = ("",),
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Find every file of ``table`` in ``data_dir`` (or one of its ``subdirs``); return name -> path.

    Missing files are downloaded into ``data_dir`` when ``download`` is true, else DataError
    lists them. With ``verify``, each file's md5 is checked against the official one.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir() and not download:
        raise DataError(
            f"data directory {root} does not exist; pass the folder holding the data files, "
            "or download=True to fetch them into it"
        )
    folders = [root / s for s in subdirs]
    paths: dict[str, Path] = {}
    missing = []
    for entry in table:
        hit = next(
            ((p, md5) for folder in folders for p, md5 in _candidates(folder, entry) if p.is_file()),
            None,
        )
        if hit is None and download:
            paths[entry.name] = _download_any(entry, root / entry.name, timeout)
        elif hit is None:
            missing.append(entry.name)
        else:
            if verify:
                check_md5(hit[0], hit[1])
            paths[entry.name] = hit[0]
    if missing:
        where = ", ".join(str(f) for f in folders)
        raise DataError(
            f"missing {', '.join(missing)} in {where}; place the official files there, or pass "
            "download=True (--download) to fetch them"
        )
    return paths


def _download_any(entry: RemoteFile, dest: Path, timeout: float) -> Path:
    errors = []
    for url in entry.urls:
        log.info("downloading %s to %s", url, dest)
        try:
            return download(url, dest, entry.md5, timeout=timeout)
        except DataError as e:
            errors.append(str(e))
    raise DataError(
        f"could not download {entry.name} from any mirror ({' | '.join(errors)}); place the "
        f"official {entry.name} (md5 {entry.md5}) in {dest.parent} by hand"
    )
