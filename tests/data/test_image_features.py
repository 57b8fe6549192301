"""CUB image features (paper Table 8c, App. K): the ResNet-101 definition and its weight loading, the
colour-hog descriptor, the resumable checksummed cache, nearest-image lookup and the CLI hook.

At most two images go through ResNet-101 in the default tests (~1 s each on a 2-core CPU); the
cache logic is exercised with colour-hog."""

from __future__ import annotations

import argparse
import json
import socket
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from memevae.data import DataError
from memevae.data.features import image_features as features
from memevae.data.features import resnet
from memevae.data.features.image_features import (BACKBONES, COLOUR_HOG_DIM, ResNet101Features, compute_features,
                                         load_features, mmvae_transform, nearest_images)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def images(tmp_path):
    """A data folder with five small JPEGs of different sizes and contents; (root, relative paths)."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    paths = []
    sizes = [(40, 30), (32, 48), (36, 36), (50, 20), (24, 24)]
    for i, (w, h) in enumerate(sizes):
        relative = f"images/{i % 2:03d}.Bird/img_{i}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[: h // 2] = (pixels[: h // 2] // 4 + np.array([180 * (i % 2), 40 * i, 200 - 30 * i])).clip(0, 255)
        Image.fromarray(pixels).save(root / relative, quality=90)
        paths.append(relative)
    return root, paths


def counting(monkeypatch, backbone, fail_after_calls=None):
    """Wrap ``backbone.compute`` to count the images it sees; raise after ``fail_after_calls`` calls."""
    seen = {"rows": 0, "calls": 0}
    original = type(backbone).compute

    def compute(images):
        if fail_after_calls is not None and seen["calls"] >= fail_after_calls:
            raise RuntimeError("simulated interruption")
        seen["calls"] += 1
        seen["rows"] += len(images)
        return original(backbone, images)

    monkeypatch.setattr(backbone, "compute", compute)
    return seen


# ------------------------------------------------------------------ ResNet-101


def test_resnet101_parameter_count_and_torchvision_names():
    with torch.device("meta"):
        model = resnet.ResNet((3, 4, 23, 3))
    assert sum(p.numel() for p in model.parameters()) == resnet.PARAMETERS == 44_549_160
    state = model.state_dict()
    assert len(state) == 626
    assert "layer3.22.bn3.running_var" in state and "layer3.23.conv1.weight" not in state
    assert state["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)
    assert state["layer4.0.downsample.1.running_mean"].shape == (2048,)
    assert state["conv1.weight"].shape == (64, 3, 7, 7) and state["fc.weight"].shape == (1000, 2048)
    assert {k.split(".")[0] for k in state} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    # v1.5: the stride sits on the 3x3 conv of a stage's first block
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)
    assert model.layer2[0].downsample[0].stride == (2, 2) and model.layer1[0].downsample[0].stride == (1, 1)


@pytest.fixture(scope="module")
def saved_resnet(tmp_path_factory):
    """An untrained ResNet-101 (seed 1) and its state dict saved as a file."""
    model = resnet.resnet101(seed=1)
    path = tmp_path_factory.mktemp("weights") / "resnet101-test.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_strict_load_round_trips(saved_resnet, one_thread):
    model, path = saved_resnet
    loaded, info = resnet.build_resnet101(path)
    assert info.file == "resnet101-test.pth" and info.sha256 == resnet.sha256_file(path) and not info.untrained
    assert not loaded.training
    original, again = model.state_dict(), loaded.state_dict()
    assert list(original) == list(again) and all(torch.equal(original[k], again[k]) for k in original)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(model.features(x), loaded.features(x))
        assert loaded.features(x).shape == (1, 2048)


def test_wrapped_and_old_state_dicts_are_accepted():
    with torch.device("meta"):
        state = resnet.ResNet((3, 4, 23, 3)).state_dict()
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # torchvision's 2017 files
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in old.items()}}
    checked = resnet.check_state_dict(wrapped, "wrapped.pth")
    assert list(checked) == list(state)
    assert int(checked["bn1.num_batches_tracked"]) == 0


def test_wrong_weights_file_gives_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(DataError, match=r"notes\.txt: not a readable torch state dict .*--weights") as error:
        resnet.read_weights_file(text)
    one_line(error)

    other = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(DataError, match=r"linear\.pth: not a ResNet-101 state dict: 522 missing keys \(e\.g\. 'conv1\.weight'\) and 2 unexpected keys") as error:
        resnet.read_weights_file(other)
    one_line(error)

    with pytest.raises(DataError, match=r"absent\.pth: no such weights file") as error:
        resnet.read_weights_file(tmp_path / "absent.pth")
    one_line(error)

    with torch.device("meta"):
        state = resnet.ResNet((3, 4, 23, 3), classes=10).state_dict()
    with pytest.raises(DataError, match=r"ten\.pth: 'fc.weight' has shape \(10, 2048\), ResNet-101 needs \(1000, 2048\)") as error:
        resnet.check_state_dict(state, "ten.pth")
    one_line(error)


def test_offline_download_fails_at_once_with_one_line(monkeypatch, tmp_path, images):
    calls = []

    def offline(url, **kwargs):
        calls.append((url, kwargs, socket.getdefaulttimeout()))
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError) as error:
        resnet.build_resnet101(None)
    message = one_line(error)
    assert "could not download the ImageNet weights" in message and "no internet?" in message
    assert "--weights FILE" in message and "resnet101-63fe2227.pth" in message
    assert len(calls) == 1 and calls[0][0] == resnet.IMAGENET_V1_URL and calls[0][1]["check_hash"] is True
    assert calls[0][2] == resnet.DOWNLOAD_TIMEOUT and socket.getdefaulttimeout() == before

    root, paths = images  # through compute_features: the same line, and nothing written
    cache = tmp_path / "features" / "cub-resnet101.npy"
    with pytest.raises(DataError, match="could not download the ImageNet weights"):
        compute_features(root, paths, "resnet101", cache, progress=False)
    assert len(calls) == 2 and not list(cache.parent.iterdir())


# ------------------------------------------------------------------ preprocessing and backbones


def test_mmvae_transform_resizes_the_shorter_side_to_224():
    wide = mmvae_transform(Image.new("RGB", (300, 200), (255, 0, 128)))
    assert wide.shape == (3, 224, 336) and wide.dtype == torch.float32
    assert torch.allclose(wide[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]))
    assert mmvae_transform(Image.new("L", (250, 301))).shape == (3, 269, 224)  # int(224 * 301 / 250)
    assert mmvae_transform(Image.new("RGB", (224, 230))).shape == (3, 230, 224)


def test_resnet_backbone_keeps_order_across_image_sizes():
    """Images of different shapes are grouped for the forward pass; rows still follow the input order."""

    class MeanColour(torch.nn.Module):
        def features(self, x):
            return torch.nn.functional.pad(x.mean(dim=(2, 3)), (0, 2045))

    backbone = ResNet101Features(weights="untrained", _model=MeanColour(), _record="untrained")
    shots = [Image.new("RGB", size, colour) for size, colour in
             [((30, 20), (255, 0, 0)), ((20, 30), (0, 255, 0)), ((30, 20), (0, 0, 255)), ((10, 10), (255, 255, 255))]]
    out = backbone.compute(shots)
    assert out.shape == (4, 2048) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :3], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], atol=1e-6)


def test_colour_hog_length_and_determinism(images):
    root, paths = images
    hog = BACKBONES["colour-hog"]
    assert hog.dim == COLOUR_HOG_DIM == 2276 == features.HOG_LENGTH + 512 and features.HOG_LENGTH == 1764
    shots = [Image.open(root / p) for p in paths]
    first, second = hog.compute(shots), hog.compute([Image.open(root / p) for p in paths])
    assert first.shape == (5, 2276) and first.dtype == np.float32 and np.isfinite(first).all()
    assert np.array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:, :1764], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(first[:, 1764:], axis=1), 1, atol=1e-5)
    assert len({row.tobytes() for row in first}) == 5
    grey = hog.compute([Image.open(root / paths[0]).convert("L"), Image.new("RGBA", (8, 8))])
    assert grey.shape == (2, 2276) and np.isfinite(grey).all()
    with pytest.raises(DataError, match="colour-hog backbone takes no weights") as error:
        hog.bind("resnet101-63fe2227.pth")
    one_line(error)


# ------------------------------------------------------------------ the cache


def test_cache_round_trip(images, tmp_path, monkeypatch):
    root, paths = images
    cache = compute_features(root, paths, "colour-hog", tmp_path / "out" / "cub-colour-hog", batch_size=2, progress=False)
    assert cache == tmp_path / "out" / "cub-colour-hog.npy"
    assert sorted(p.name for p in cache.parent.iterdir()) == ["cub-colour-hog.json", "cub-colour-hog.npy"]
    meta = json.loads(cache.with_suffix(".json").read_text())
    assert meta["format"] == "memevae-image-features" and meta["version"] == 1 and meta["backbone"] == "colour-hog"
    assert meta["dim"] == 2276 and meta["count"] == 5 and meta["image_paths"] == paths
    assert meta["weights"] is None and meta["untrained"] is False and "NOT the paper" in meta["describe"]
    assert meta["npy_sha256"] == resnet.sha256_file(cache)
    loaded = load_features(cache, paths)
    assert loaded.dtype == torch.float32 and loaded.shape == (5, 2276)
    direct = BACKBONES["colour-hog"].compute([Image.open(root / p) for p in paths])
    assert np.array_equal(loaded.numpy(), direct)

    seen = counting(monkeypatch, BACKBONES["colour-hog"])  # the same settings again: nothing recomputed
    assert compute_features(root, paths, "colour-hog", cache, batch_size=3, progress=False) == cache
    assert seen["rows"] == 0

    with pytest.raises(DataError, match=r"another image list \(image 1 is .* there") as error:
        load_features(cache, [paths[0], paths[2], paths[1], *paths[3:]])
    assert "rerun `memevae features cub" in one_line(error)
    with pytest.raises(DataError, match="holds other features"):  # never overwritten with other settings
        compute_features(root, paths[:3], "colour-hog", cache, progress=False)


def test_resume_after_an_interruption(images, tmp_path, monkeypatch):
    root, paths = images
    reference = load_features(compute_features(root, paths, "colour-hog", tmp_path / "a.npy", batch_size=2,
                                               progress=False), paths)
    cache = tmp_path / "b.npy"
    hog = BACKBONES["colour-hog"]
    seen = counting(monkeypatch, hog, fail_after_calls=1)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        compute_features(root, paths, "colour-hog", cache, batch_size=2, progress=False)
    assert seen["rows"] == 2 and not cache.exists()
    state = json.loads((tmp_path / "b.partial.json").read_text())
    assert state["done"] == 2 and (tmp_path / "b.partial.npy").is_file()

    with pytest.raises(DataError, match=r"other settings .*delete b\.partial\.npy and b\.partial\.json") as error:
        compute_features(root, paths[::-1], "colour-hog", cache, batch_size=2, progress=False)
    one_line(error)

    monkeypatch.undo()
    seen = counting(monkeypatch, hog)
    assert compute_features(root, paths, "colour-hog", cache, batch_size=2, progress=False) == cache
    assert seen["rows"] == 3  # only the rows not yet done
    assert torch.equal(load_features(cache, paths), reference)
    assert sorted(p.name for p in tmp_path.glob("b.*")) == ["b.json", "b.npy"]


def test_corrupted_npy_is_detected(images, tmp_path):
    root, paths = images
    cache = compute_features(root, paths, "colour-hog", tmp_path / "c.npy", progress=False)
    raw = bytearray(cache.read_bytes())
    raw[-5] ^= 0xFF
    cache.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"c\.npy: sha256 .* does not match its record .*delete it and rerun") as error:
        load_features(cache, paths)
    one_line(error)
    with pytest.raises(DataError, match=r"holds other features \(its checksum"):
        compute_features(root, paths, "colour-hog", cache, progress=False)
    with pytest.raises(DataError, match=r"nothing\.npy: no image feature cache there"):
        load_features(tmp_path / "nothing.npy", paths)


def test_non_finite_features_with_a_matching_digest_are_refused(images, tmp_path):
    """NaN in a cache whose sidecar digest matches (features computed badly, or the file rewritten
    with its digest) is named when the data are loaded, not as a diverged loss later."""
    root, paths = images
    cache = compute_features(root, paths, "colour-hog", tmp_path / "d.npy", progress=False)
    array = np.load(cache)
    array[3, 7] = np.nan
    array[4, 0] = np.inf
    np.save(cache, array)
    meta = json.loads(cache.with_suffix(".json").read_text())
    cache.with_suffix(".json").write_text(json.dumps({**meta, "npy_sha256": resnet.sha256_file(cache)}))
    with pytest.raises(DataError, match=rf"d\.npy: 2 rows hold NaN or inf, the first for {paths[3]}; delete it") as error:
        load_features(cache, paths)
    one_line(error)


def test_untrained_resnet_cache_is_refused_by_default(images, tmp_path, one_thread):
    root, paths = images
    paths = [paths[2], paths[4]]  # two square images: one forward pass of two 224 x 224 images
    threads = torch.get_num_threads()
    cache = compute_features(root, paths, "resnet101", tmp_path / "features" / "cub-resnet101.npy",
                             weights="untrained", batch_size=2, progress=False)
    assert torch.get_num_threads() == threads
    meta = json.loads(cache.with_suffix(".json").read_text())
    assert meta["untrained"] is True and meta["weights"] == "untrained" and meta["dim"] == 2048
    with pytest.raises(DataError, match=r"cub-resnet101\.npy holds features of an UNTRAINED network") as error:
        load_features(cache, paths)
    assert "--features resnet101" in one_line(error)
    loaded = load_features(cache, paths, allow_untrained=True)
    assert loaded.shape == (2, 2048) and torch.isfinite(loaded).all() and (loaded >= 0).all()
    assert not torch.equal(loaded[0], loaded[1])


# ------------------------------------------------------------------ nearest images and the CLI hook


def test_nearest_images_is_euclidean_argmin():
    generator = torch.Generator().manual_seed(0)
    bank, query = torch.randn(50, 16, generator=generator), torch.randn(7, 16, generator=generator)
    brute = ((query[:, None] - bank[None]) ** 2).sum(-1)
    assert torch.equal(nearest_images(query, bank)[:, 0], brute.argmin(1))
    top = nearest_images(query, bank, k=3)
    assert top.shape == (7, 3) and torch.equal(top, brute.argsort(1)[:, :3])
    assert torch.equal(nearest_images(bank[[4, 9]], bank)[:, 0], torch.tensor([4, 9]))
    with pytest.raises(ValueError):
        nearest_images(query[:, :3], bank)


from memevae.data.sets.cub import features_cache  # noqa: E402  the CUB data set's cache location


def parse(*argv):
    return features.add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_cli_main_writes_the_default_cache(images, capsys, monkeypatch, tmp_path):
    root, paths = images
    args = parse("--data-dir", str(root), "--backbone", "colour-hog", "--batch-size", "2", "--no-progress")
    assert args.weights is None and args.out is None and not args.progress
    assert features.main(args, lambda data_dir: paths, features_cache) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(root / "features" / "cub-colour-hog.npy")) and "not the paper's" in line
    assert load_features(root / "features" / "cub-colour-hog.npy", paths).shape == (5, 2276)

    monkeypatch.setattr(features.os, "access", lambda path, mode: False)  # a read-only data folder
    with pytest.raises(DataError, match=r"cannot write image features in .*read-only data folder\?\); pass --out DIR") as error:
        features.main(parse("--data-dir", str(root), "--backbone", "colour-hog"), lambda data_dir: paths, features_cache)
    one_line(error)


@pytest.mark.slow
def test_untrained_resnet_resume_matches_an_uninterrupted_run(images, tmp_path, monkeypatch, one_thread):
    """The resume test through ResNet-101 itself (about ten forward passes)."""
    root, paths = images
    paths = paths[:3]
    whole = load_features(compute_features(root, paths, "resnet101", tmp_path / "a.npy", weights="untrained",
                                           batch_size=1, progress=False), paths, allow_untrained=True)
    original = ResNet101Features.compute
    calls = []

    def compute(self, images):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(ResNet101Features, "compute", compute)
    with pytest.raises(KeyboardInterrupt):
        compute_features(root, paths, "resnet101", tmp_path / "b.npy", weights="untrained", batch_size=1, progress=False)
    calls.append("resumed")
    monkeypatch.setattr(ResNet101Features, "compute", lambda self, images: calls.append(len(images)) or original(self, images))
    compute_features(root, paths, "resnet101", tmp_path / "b.npy", weights="untrained", batch_size=1, progress=False)
    assert calls == [1, "resumed", 1, 1]
    assert torch.equal(load_features(tmp_path / "b.npy", paths, allow_untrained=True), whole)
