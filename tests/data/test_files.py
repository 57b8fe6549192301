import hashlib
import socket

import pytest

from memevae.data import DataError
from memevae.data.files.remote import RemoteFile, check_md5, download, ensure_files, md5sum

PAYLOAD = b"official bytes " * 1000
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_md5sum_tracks_changes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert md5sum(path) == MD5 == md5sum(path)
    path.write_bytes(PAYLOAD + b"!")
    assert md5sum(path) == hashlib.md5(PAYLOAD + b"!").hexdigest()


def test_check_md5_message(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    check_md5(path, MD5)
    with pytest.raises(DataError, match=f"md5 {MD5} does not match the official 0+; .*--download.*verify=False") as info:
        check_md5(path, "0" * 32)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_download_ok(tmp_path, http_dir):
    served, base = http_dir
    (served / "f.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "f.bin"
    assert download(base + "f.bin", dest, MD5, timeout=5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert dest.stat().st_mode & 0o777 == 0o644
    assert leftovers(dest.parent) == []


def test_download_bad_checksum_leaves_nothing(tmp_path, http_dir):
    served, base = http_dir
    (served / "f.bin").write_bytes(PAYLOAD[:-1])
    with pytest.raises(DataError, match=f"has md5 .*, expected {MD5}.*by hand"):
        download(base + "f.bin", tmp_path / "f.bin", MD5, timeout=5)
    assert list(tmp_path.iterdir()) == [served.parent / "served"]


def test_download_404(tmp_path, http_dir):
    _, base = http_dir
    with pytest.raises(DataError, match="HTTP 404.*place f.bin in .* by hand"):
        download(base + "f.bin", tmp_path / "f.bin", MD5, timeout=5)
    assert not (tmp_path / "f.bin").exists() and leftovers(tmp_path) == []


def test_download_without_network(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="could not download .*without network, place f.bin in .* by hand"):
        download(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", MD5, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_ensure_files_downloads_missing_with_mirror_fallback(tmp_path, http_dir):
    served, base = http_dir
    (served / "good").mkdir()
    (served / "good" / "f.bin").write_bytes(PAYLOAD)
    table = [RemoteFile("f.bin", MD5, (base + "missing/f.bin", base + "good/f.bin"))]
    with pytest.raises(DataError, match="data directory .* does not exist"):
        ensure_files(tmp_path / "data", table, download=False)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="missing f.bin in .*download=True"):
        ensure_files(tmp_path / "data", table, download=False)
    paths = ensure_files(tmp_path / "data", table, download=True, timeout=5)
    assert paths["f.bin"].read_bytes() == PAYLOAD
    assert ensure_files(tmp_path / "data", table, download=False) == paths  # now present, verified


def test_ensure_files_all_mirrors_fail(tmp_path, http_dir):
    _, base = http_dir
    table = [RemoteFile("f.bin", MD5, (base + "a/f.bin", base + "b/f.bin"))]
    with pytest.raises(DataError, match=f"could not download f.bin from any mirror .*404.*404.*\\(md5 {MD5}\\) in .* by hand"):
        ensure_files(tmp_path, table, download=True, timeout=5)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_ensure_files_accepts_uncompressed_with_its_own_md5(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.bin").write_bytes(PAYLOAD)
    table = [RemoteFile("f.bin.gz", "0" * 32, (), plain_md5=MD5)]
    paths = ensure_files(tmp_path, table, download=False, subdirs=("", "sub"))
    assert paths == {"f.bin.gz": tmp_path / "sub" / "f.bin"}
    bad = [RemoteFile("f.bin.gz", "0" * 32, (), plain_md5="1" * 32)]
    with pytest.raises(DataError, match="official 1{32}"):
        ensure_files(tmp_path, bad, download=False, subdirs=("sub",))
    assert ensure_files(tmp_path, bad, download=False, subdirs=("sub",), verify=False) == paths
