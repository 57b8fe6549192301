"""The many-modality data sets: polymnist-textured (the offline PolyMNIST-style stand-in) and
polymnist (MoPoE's PolyMNIST files), the modalities option, and the k-way pairing they use."""

import numpy as np
import pytest
import torch
from PIL import Image

from memevae.data import DataConfig, DataError, load_pairs, registry
from memevae.data.files.mnist import read_mnist_sample
from memevae.data.pairs import match_by_class, match_sets_by_class, split_halves, split_parts, stream
from memevae.data.sets.polymnist_textured import DATASET, PHOTO_OF
from memevae.data.textured import render_textured
from memevae.runs import run_name


def sources(data, digits, classes, seed):
    """{modality: the MNIST image (position in ``digits``) of each row's example}, traced by
    re-rendering each modality's part of the split (KeyError if an example came from elsewhere)."""
    names = data.modalities
    parts = split_parts(classes, len(names), stream(seed, "halves"))
    found = {}
    for name, part in zip(names, parts):
        if name in PHOTO_OF:
            where = list(DATASET.modalities).index(name)
            pool = render_textured(digits[part], stream(seed, "render", where), photos=[PHOTO_OF[name]])
        else:
            pool = digits[part][:, None]
        table = {x.tobytes(): part[i] for i, x in enumerate(pool)}
        bank = data.banks[name].numpy()
        found[name] = np.array([table[bank[j].tobytes()] for j in data.index[name].numpy()])
    return found


def test_five_textured_modalities_by_default_from_disjoint_images_of_one_class():
    data = load_pairs("polymnist-textured", "test", seed=2)
    assert data.modalities == ("m0", "m1", "m2", "m3", "m4") and data.name == "polymnist-textured"
    assert all(data.shape(m) == (3, 32, 32) and data.formats[m].name == "image" for m in data.modalities)
    assert data.summary()["paired"] == len(data) == 10 * 20  # 100 test images a class in five parts
    digits, classes = read_mnist_sample("test")
    found = sources(data, digits, classes, seed=2)
    for name, images in found.items():
        assert classes[images].tolist() == data.labels.tolist()  # every modality of a row: the row's class
        assert len(set(images)) == len(images)  # one-to-one
    used = [set(images) for images in found.values()]
    assert sum(map(len, used)) == len(set().union(*used))  # no MNIST image in two modalities
    # each modality has its own photograph: the mean backgrounds differ between modalities
    corners = {m: data.banks[m][:, :, :4, :4].float().mean((0, 2, 3)) for m in data.modalities}
    assert min((corners[a] - corners[b]).abs().max() for a in corners for b in corners if a < b) > 3


def test_plain_mnist_by_name_and_many_partners():
    data = load_pairs("polymnist-textured", "test", modalities="m1,mnist", pairs_per_image=2)
    assert data.modalities == ("mnist", "m1") and data.shape("mnist") == (1, 28, 28)
    assert len(data) == 2 * 10 * 50
    assert set(torch.bincount(data.index["mnist"]).tolist()) == {2}  # every used image in exactly two rows
    digits, classes = read_mnist_sample("test")
    found = sources(data, digits, classes, seed=0)
    assert classes[found["mnist"]].tolist() == classes[found["m1"]].tolist() == data.labels.tolist()
    assert not set(found["mnist"]) & set(found["m1"])


def test_reads_official_mnist_files(synthetic):
    folder, originals = synthetic
    digits, classes = originals["mnist", "train"]
    data = load_pairs("polymnist-textured", "train", folder, verify=False, modalities=3)
    assert data.modalities == ("m0", "m1", "m2")
    assert len(data) == sum((classes == c).sum() // 3 for c in range(10))
    found = sources(data, digits, classes, seed=0)
    assert all(classes[images].tolist() == data.labels.tolist() for images in found.values())


def test_deterministic_by_seed():
    one, again = (load_pairs("polymnist-textured", "test", modalities=3, seed=4) for _ in range(2))
    for m in one.modalities:
        assert torch.equal(one.banks[m], again.banks[m]) and torch.equal(one.index[m], again.index[m])
    other = load_pairs("polymnist-textured", "test", modalities=3, seed=5)
    assert not torch.equal(one.banks["m0"], other.banks["m0"])


@pytest.mark.parametrize("given", [3, "3", " 3 ", "m0,m1,m2", "m2, m0,m1", ["m1", "m2", "m0"], np.int64(3)])
def test_modalities_option_forms(given):
    config = DataConfig("polymnist-textured", modalities=given)
    assert config.kinds() == {"m0": "svhn-conv", "m1": "svhn-conv", "m2": "svhn-conv"}
    assert config.modalities == ("m0", "m1", "m2") and config.record()["modalities"] == "m0,m1,m2"  # parsed once
    assert config.variant == "polymnist-textured/bright-v1/m0-m1-m2"
    assert run_name("meme", config) == "meme-polymnist-textured-m3-f1-seed0"


def test_modalities_name_the_variant_and_the_run():
    default = DataConfig("polymnist-textured")
    assert default.modalities == ("m0", "m1", "m2", "m3", "m4") and default.variant == "polymnist-textured/bright-v1/m0-m1-m2-m3-m4"
    assert run_name("mvae", default) == "mvae-polymnist-textured-m5-f1-seed0"
    config = DataConfig("polymnist-textured", modalities="mnist,m0", rendering="inverted", paired_fraction=0.5,
                        unpaired="random")
    assert config.kinds() == {"mnist": "mnist-mlp", "m0": "svhn-conv"}
    assert config.variant == "polymnist-textured/inverted-v1/mnist-m0"
    assert run_name("meme", config) == "meme-polymnist-textured-mnist-m0-f0.5-random-seed0"
    assert run_name("meme", DataConfig("polymnist-textured", modalities="m0,m2")).endswith("-m0-m2-f1-seed0")
    assert DataConfig("polymnist").variant == "polymnist/m0-m1-m2-m3-m4"
    assert DataConfig.from_record(config.record()) == config
    # data sets without the option keep their names, variants and kinds
    assert DataConfig().kinds() == {"mnist": "mnist-mlp", "textured": "svhn-conv"} and DataConfig().dataset_options is None
    assert run_name("meme", DataConfig()) == "meme-mnist-textured-f1-seed0"


@pytest.mark.parametrize("dataset, given, message", [
    ("polymnist-textured", 1, r"modalities 1 of polymnist-textured: give N, 2 to 5 \(the first N of m0, m1, m2, m3, m4\)"),
    ("polymnist-textured", "6", "give N, 2 to 5"),
    ("polymnist-textured", "m0", "fewer than two modalities"),
    ("polymnist-textured", "m0,m7", "no modality 'm7'; give N"),
    ("polymnist-textured", "m0,m0,m1", "m0 named twice"),
    ("polymnist-textured", True, "give N"),
    ("polymnist", "mnist,m0", "no modality 'mnist'; .* names from m0, m1, m2, m3, m4"),
])
def test_bad_modalities_are_one_line_errors(dataset, given, message):
    with pytest.raises(DataError, match=message) as raised:
        DataConfig(dataset, modalities=given)
    assert "\n" not in str(raised.value)
    with pytest.raises(DataError, match=message):
        load_pairs(dataset, "test", "/nonexistent", modalities=given)


def test_only_data_sets_with_a_choice_take_modalities():
    with pytest.raises(ValueError, match=r"modalities applies to data sets with a choice of modalities \(polymnist, "
                                         r"polymnist-textured\), not mnist-textured"):
        DataConfig(modalities="3")
    with pytest.raises(DataError, match="mnist-svhn takes no option"):
        load_pairs("mnist-svhn", "test", "/nonexistent", modalities="2")
    with pytest.raises(DataError, match="has the fixed modalities mnist, textured; give no modalities option"):
        registry.get("mnist-textured").chosen("mnist,textured")


def test_k_way_split_and_match_keep_the_two_way_results():
    """mnist-textured's pairing is the two-set case: the same results and random draws as memevae's
    split_halves / match_by_class before they were generalised (digests of the old code's output)."""
    import hashlib

    def digest(*arrays):
        h = hashlib.sha256()
        for a in arrays:
            h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    la, lb = np.random.default_rng(0).integers(0, 10, 300), np.repeat(np.arange(11), 20)
    for per_image, expected, next_draw in ((1, "9e94b8ba13840e30", 761727520), (4, "d2c5b6455b046b0f", 904252240)):
        rng = np.random.default_rng(1)
        assert digest(*match_by_class(la, lb, rng, per_image)) == expected and rng.integers(1 << 30) == next_draw
        rng = np.random.default_rng(1)
        assert digest(*match_sets_by_class((la, lb), rng, per_image)) == expected and rng.integers(1 << 30) == next_draw
    labels = np.repeat(np.arange(10), np.arange(20, 30))
    for split in (split_halves, lambda labels, rng: split_parts(labels, 2, rng)):
        rng = np.random.default_rng(5)
        assert digest(*split(labels, rng)) == "bc684137f1db9169" and rng.integers(1 << 30) == 21606496


def test_mnist_textured_unchanged():
    """Digests and first rows of mnist-textured on the shipped sample, computed with the code before
    the k-way pairing: the data of existing runs do not change."""
    def digest(data):
        import hashlib

        h = hashlib.sha256()
        for a in [x for m in data.modalities for x in (data.banks[m], data.index[m])] + [data.labels]:
            a = a.numpy()
            h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    test = load_pairs("mnist-textured", "test", seed=3)
    assert digest(test) == "97c244afae0ca35d"
    assert test.index["mnist"][:5].tolist() == [76, 320, 171, 55, 157] and test.labels[:5].tolist() == [7, 5, 3, 5, 2]
    many = load_pairs("mnist-textured", "test", seed=1, pairs_per_image=3)
    assert digest(many) == "7f492f918c3d82a7" and many.index["textured"][:5].tolist() == [204, 133, 16, 481, 63]


def test_substreams_are_independent():
    assert stream(0, "render", 0).integers(1 << 30) != stream(0, "render").integers(1 << 30)
    assert stream(0, "render", 0).integers(1 << 30) != stream(0, "render", 1).integers(1 << 30)


# --- the real PolyMNIST files ---------------------------------------------------------------------


def write_polymnist(root, split="test", modalities=("m0", "m1", "m2"), per_class=2, classes=(0, 3, 7), seed=0):
    """MoPoE's layout: <root>/<split>/<m>/<index>.<label>.png, the index counting from 0 in each class;
    returns {file name: {modality: (28, 28, 3) pixels}}."""
    rng = np.random.default_rng(seed)
    written = {}
    for m in modalities:
        (root / split / m).mkdir(parents=True, exist_ok=True)
        for label in classes:
            for index in range(per_class):
                pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / m / f"{index}.{label}.png")
                written.setdefault(f"{index}.{label}.png", {})[m] = pixels
    return written


def test_reads_mopoes_layout(tmp_path):
    written = write_polymnist(tmp_path, modalities=("m0", "m1", "m2", "m3", "m4"))
    (tmp_path / "test" / "m0" / "notes.txt").write_text("not an image")  # other files are left alone
    data = load_pairs("polymnist", "test", tmp_path)
    assert data.modalities == ("m0", "m1", "m2", "m3", "m4") and data.summary()["paired"] == len(data) == 6
    names = ["0.0.png", "0.3.png", "0.7.png", "1.0.png", "1.3.png", "1.7.png"]  # by (index, label)
    assert data.labels.tolist() == [int(name.split(".")[1]) for name in names]
    for m in data.modalities:
        assert data.shape(m) == (3, 28, 28) and data.banks[m].dtype == torch.uint8
        for row, name in enumerate(names):
            shown = data.banks[m][data.index[m][row]].permute(1, 2, 0).numpy()
            assert np.array_equal(shown, written[name][m])  # tuple = one file name in every folder
    assert registry.get("polymnist").modalities["m0"].default_kind == "polymnist-mlp"


def test_modalities_option_and_the_mmnist_folder(tmp_path):
    write_polymnist(tmp_path / "MMNIST", modalities=("m0", "m1", "m2"))
    config = DataConfig("polymnist", data_dir=tmp_path, modalities="m2,m0")
    data = config.load("test")
    assert data.modalities == ("m0", "m2") and config.kinds() == {"m0": "polymnist-mlp", "m2": "polymnist-mlp"}
    assert config.variant == "polymnist/m0-m2"
    write_polymnist(tmp_path / "MMNIST", split="train", modalities=("m0", "m1"))
    half = DataConfig("polymnist", data_dir=tmp_path, modalities=2, paired_fraction=0.5, unpaired="split").load("train")
    assert half.summary() == {"rows": 6, "paired": 3, "m0 only": 2, "m1 only": 1}


def assert_one_line(error, *parts):
    text = str(error.value)
    assert "\n" not in text and all(part in text for part in parts), text


def test_missing_folders_and_arguments(tmp_path):
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test")
    assert_one_line(error, "polymnist needs --data-dir DIR", "train/m0 .. m4 and test/m0 .. m4", "polymnist-textured")
    write_polymnist(tmp_path, modalities=("m0", "m1"))
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=3)
    assert_one_line(error, f"{tmp_path / 'test' / 'm2'}: no such folder", "--data-dir must hold")
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "train", tmp_path, modalities=2)
    assert_one_line(error, f"{tmp_path / 'train' / 'm0'}: no such folder")
    (tmp_path / "empty" / "test" / "m0").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path / "empty", modalities=2)
    assert_one_line(error, "m0: no <index>.<label>.png images")
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=2, download=True)
    assert_one_line(error, "cannot download PolyMNIST")
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=2, pairs_per_image=2)
    assert_one_line(error, "--pairs-per-image does not apply")


def test_folders_that_disagree(tmp_path):
    write_polymnist(tmp_path, modalities=("m0", "m1", "m2"))
    (tmp_path / "test" / "m1" / "1.3.png").unlink()
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=3)
    assert_one_line(error, f"{tmp_path / 'test' / 'm1' / '1.3.png'} is missing", "1 missing, 0 extra in test/m1",
                    "same <index>.<label>.png names")
    write_polymnist(tmp_path, modalities=("m1",))  # m1 complete again
    (tmp_path / "test" / "m2" / "1.3.png").rename(tmp_path / "test" / "m2" / "1.5.png")  # a label that differs
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=3)
    assert_one_line(error, "1.3.png is missing (1 missing, 1 extra in test/m2)")
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities="m0,m2")
    assert "m2" in str(error.value)
    (tmp_path / "test" / "m2" / "1.5.png").unlink()
    (tmp_path / "test" / "m2" / "9.9.png").write_bytes(b"")
    write_polymnist(tmp_path, modalities=("m2",))
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities="m0,m2")
    assert_one_line(error, f"{tmp_path / 'test' / 'm2' / '9.9.png'} has no counterpart in test/m0")


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(b"not a png"), "cannot read it as a PNG"),
    (lambda path: path.write_bytes(path.read_bytes()[:60]), "cannot read it as a PNG"),
    (lambda path: Image.new("RGB", (32, 32)).save(path), "a RGB image of 32x32 pixels, but PolyMNIST's are 28x28 RGB"),
    (lambda path: Image.new("L", (28, 28)).save(path), "a L image of 28x28 pixels"),
    (lambda path: path.rename(path.with_name("x.3.png")), "x.3.png: not named <index>.<label>.png"),
])
def test_unreadable_files_are_named(tmp_path, damage, message):
    write_polymnist(tmp_path, modalities=("m0", "m1"))
    damage(tmp_path / "test" / "m1" / "1.3.png")
    with pytest.raises(DataError) as error:
        load_pairs("polymnist", "test", tmp_path, modalities=2)
    assert_one_line(error, message, str(tmp_path / "test" / "m1"))
