import gzip

import numpy as np
import pytest
import scipy.io

from memevae.data import DataError
from memevae.data.files.mnist import read_idx, read_mnist
from memevae.data.files.svhn import read_svhn, read_svhn_mat

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (12, 28, 28), dtype=np.uint8)
LABELS = np.arange(12, dtype=np.uint8) % 10


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_read_idx_gz_and_plain(tmp_path, fmt, name):
    path = fmt.write_idx(tmp_path / name, IMAGES)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (12, 28, 28)
    np.testing.assert_array_equal(out, IMAGES)
    out[0, 0, 0] = 1  # a writable copy, safe for torch.from_numpy


def test_read_idx_other_types(tmp_path, fmt):
    values = np.array([[-5, 70000], [3, 4]], dtype=np.int32)
    out = read_idx(fmt.write_idx(tmp_path / "ints.idx", values, type_byte=0x0C))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, values)


def test_read_idx_rejects_bad_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("cut, message", [(-100, "truncated"), (5, "trailing bytes"), (None, "header")])
def test_read_idx_rejects_bad_lengths(tmp_path, fmt, cut, message):
    raw = fmt.write_idx(tmp_path / "x", IMAGES).read_bytes()
    raw = raw[:10] if cut is None else (raw[:cut] if cut < 0 else raw + b"\x00" * cut)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=message) as info:
        read_idx(tmp_path / "x.gz")
    assert "x.gz" in str(info.value)


def test_read_idx_corrupt_gzip_and_missing_file(tmp_path, fmt):
    raw = fmt.write_idx(tmp_path / "x.gz", IMAGES).read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "x.gz")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent.gz")


@pytest.mark.parametrize("gz, subdir", [(True, ""), (False, ""), (True, "mnist"), (False, "MNIST/raw")])
def test_read_mnist_layouts(tmp_path, fmt, gz, subdir):
    folder = tmp_path / subdir
    folder.mkdir(parents=True, exist_ok=True)
    fmt.write_mnist(folder, "test", IMAGES, LABELS, gz=gz)
    images, labels = read_mnist(tmp_path, "test", verify=False)
    np.testing.assert_array_equal(images, IMAGES)
    assert labels.dtype == np.int64 and labels.tolist() == LABELS.tolist()


def test_read_mnist_verifies_md5(tmp_path, fmt):
    fmt.write_mnist(tmp_path, "test", IMAGES, LABELS)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: md5 .* does not match the official 9fb629c4189551a2d022fa330f9573f3.*verify=False"):
        read_mnist(tmp_path, "test")


def test_read_mnist_missing_files(tmp_path, fmt):
    fmt.write_mnist(tmp_path, "train", IMAGES, LABELS)
    with pytest.raises(DataError, match="missing t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz.*download=True"):
        read_mnist(tmp_path, "test", verify=False)
    with pytest.raises(DataError, match="does not exist"):
        read_mnist(tmp_path / "nowhere", "test")
    with pytest.raises(DataError, match="unknown split 'val'"):
        read_mnist(tmp_path, "val")


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (IMAGES[:, :, :27], LABELS, r"expected uint8 \(N, 28, 28\)"),
        (IMAGES, LABELS[:11], "do not belong together"),
        (IMAGES, LABELS + 1, "labels must be integers 0..9"),
    ],
)
def test_read_mnist_checks_content(tmp_path, fmt, images, labels, message):
    fmt.write_mnist(tmp_path, "test", images, labels)
    with pytest.raises(DataError, match=message):
        read_mnist(tmp_path, "test", verify=False)


SVHN_IMAGES = RNG.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
SVHN_LABELS = np.array([0, 1, 2, 9, 0, 5, 3])


def test_read_svhn_mat(tmp_path, fmt):
    images, labels = read_svhn_mat(fmt.write_svhn_mat(tmp_path / "test_32x32.mat", SVHN_IMAGES, SVHN_LABELS))
    assert images.dtype == np.uint8 and images.shape == (7, 3, 32, 32) and images.flags.c_contiguous
    np.testing.assert_array_equal(images, SVHN_IMAGES)
    assert labels.dtype == np.int64 and labels.tolist() == SVHN_LABELS.tolist()  # 10 -> 0


def test_read_svhn_from_dir(tmp_path, fmt):
    (tmp_path / "svhn").mkdir()
    fmt.write_svhn_mat(tmp_path / "svhn" / "train_32x32.mat", SVHN_IMAGES, SVHN_LABELS)
    images, _ = read_svhn(tmp_path, "train", verify=False)
    np.testing.assert_array_equal(images, SVHN_IMAGES)
    with pytest.raises(DataError, match="md5 .* does not match the official e26dedcc434d2e4c54c9b2d4a06d8373"):
        read_svhn(tmp_path, "train")


X = SVHN_IMAGES.transpose(2, 3, 1, 0)
Y = np.array([[10], [1], [2], [9], [10], [5], [3]], np.uint8)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"X": X.astype(np.float64), "y": Y}, r"X is float64 .* expected uint8 \(32, 32, 3, N\)"),
        ({"X": X[:, :, :1], "y": Y}, r"X is uint8 \(32, 32, 1, 7\)"),
        ({"X": X}, "no variable y"),
        ({"images": X, "y": Y}, "no variable X"),
        ({"X": X, "y": Y[:, 0]}, r"y has shape \(1, 7\), expected \(7, 1\)"),
        ({"X": X, "y": Y[:5]}, r"y has shape \(5, 1\)"),
        ({"X": X, "y": Y - 1}, "labels 1..10"),
        ({"X": X, "y": Y + 1}, "labels 1..10"),
    ],
)
def test_read_svhn_mat_rejects_bad_content(tmp_path, content, message):
    scipy.io.savemat(tmp_path / "bad.mat", content)
    with pytest.raises(DataError, match=message) as info:
        read_svhn_mat(tmp_path / "bad.mat")
    assert "bad.mat" in str(info.value)


def test_read_svhn_mat_rejects_non_mat(tmp_path):
    (tmp_path / "train_32x32.mat").write_text("<html>404 not found</html>")
    with pytest.raises(DataError, match="not a readable .mat file"):
        read_svhn_mat(tmp_path / "train_32x32.mat")
    with pytest.raises(DataError, match="not a readable .mat file"):
        read_svhn_mat(tmp_path / "absent.mat")


def test_empty_and_itemless_files_are_named(tmp_path, fmt):
    (tmp_path / "x-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match=r"x-idx3-ubyte: empty file \(0 bytes\); re-download the file"):
        read_idx(tmp_path / "x-idx3-ubyte")
    fmt.write_mnist(tmp_path, "test", IMAGES[:0], LABELS[:0])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.* the files hold no images \(0 items\)"):
        read_mnist(tmp_path, "test", verify=False)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": X[..., :0], "y": Y[:0]})
    with pytest.raises(DataError, match=r"test_32x32.mat: holds no images \(0 items\)"):
        read_svhn_mat(tmp_path / "test_32x32.mat")
