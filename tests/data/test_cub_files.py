"""Reading CUB with captions: the committed real sample, broken copies of it, and the real slice."""

import shutil
from pathlib import Path

import pytest

from memevae.data import DataError
from memevae.data.captions import Vocabulary
from memevae.data.files.cub import read_cub, read_mmvae_captions

SAMPLE = Path(__file__).parent / "cub_sample"
CUB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cub"
ALBATROSS = "001.Black_footed_Albatross"
FIRST_IMAGE = "Black_Footed_Albatross_0046_18"  # image id 1


@pytest.fixture
def copy(tmp_path):
    """A fresh copy of the sample to break."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "cub"))


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_sample_summary():
    records = read_cub(SAMPLE)
    assert records.summary() == {
        "images": 24, "classes": 4, "train": 12, "test": 12, "train classes": 2, "test classes": 2,
        "captions": 240, "classes not present": 196, "images not present": 0,
    }
    assert len(records.class_names) == 200 and records.class_names[0] == ALBATROSS
    assert records.image_ids[:3] == (1, 2, 3) and records.classes[:7] == (0,) * 6 + (1,)
    assert records.paths[0] == f"CUB_200_2011/images/{ALBATROSS}/{FIRST_IMAGE}.jpg"
    assert all((SAMPLE / p).is_file() for p in records.paths)
    assert all(len(c) == 10 and all(s and s == s.strip() for s in c) for c in records.captions)
    first = (SAMPLE / "text" / ALBATROSS / f"{FIRST_IMAGE}.txt").read_text().splitlines()
    assert records.captions[0] == tuple(line.strip() for line in first)


def test_select():
    records = read_cub(SAMPLE)
    train, test = records.select("train"), records.select("test")
    assert {records.class_names[c] for c in train.classes} == {"002.Laysan_Albatross", "003.Sooty_Albatross"}
    assert {records.class_names[c] for c in test.classes} == {ALBATROSS, "004.Groove_billed_Ani"}
    assert len(train) == len(test) == 12 and set(train.split) == {"train"} and set(test.split) == {"test"}
    assert train.image_ids == tuple(i for i, s in zip(records.image_ids, records.split) if s == "train")
    assert train.summary()["captions"] == 120 and train.summary()["test"] == 0
    assert train.select("train") == train
    with pytest.raises(ValueError):
        train.select("test")
    with pytest.raises(ValueError):
        records.select("val")


def test_captions_checksum_follows_the_captions(copy):
    records = read_cub(SAMPLE)
    assert read_cub(copy).captions_checksum() == records.captions_checksum()
    assert records.select("train").captions_checksum() != records.captions_checksum()
    path = copy / "text" / ALBATROSS / f"{FIRST_IMAGE}.txt"
    path.write_text(path.read_text().replace("bird", "birb", 1))
    assert read_cub(copy).captions_checksum() != records.captions_checksum()
    assert len(records.all_captions()) == 240


def test_split_files_directly_in_root(copy):
    for path in (copy / "split").iterdir():
        path.rename(copy / path.name)
    (copy / "split").rmdir()
    assert read_cub(copy).summary()["images"] == 24


def test_a_class_without_its_folder_is_left_out(copy):
    shutil.rmtree(copy / "CUB_200_2011" / "images" / ALBATROSS)
    summary = read_cub(copy).summary()
    assert (summary["images"], summary["classes"], summary["test"]) == (18, 3, 6)
    assert (summary["classes not present"], summary["images not present"]) == (197, 6)
    assert read_cub(copy).select("test").summary()["images not present"] == 6


def test_missing_images_txt(copy):
    (copy / "CUB_200_2011" / "images.txt").unlink()
    with pytest.raises(DataError, match="images.txt not found.*CUB-200-2011.*--data-dir") as error:
        read_cub(copy)
    one_line(error)


def test_pointing_at_cub_200_2011_itself(copy):
    with pytest.raises(DataError, match="looks like CUB_200_2011 itself"):
        read_cub(copy / "CUB_200_2011")


def test_missing_split_file(copy):
    (copy / "split" / "attngan_test_classes.txt").unlink()
    with pytest.raises(DataError, match="attngan_test_classes.txt not found.*MMVAE") as error:
        read_cub(copy)
    one_line(error)


def test_missing_text_folder(copy):
    shutil.rmtree(copy / "text")
    with pytest.raises(DataError, match="text not found.*Reed"):
        read_cub(copy)


def test_malformed_metadata_line(copy):
    path = copy / "CUB_200_2011" / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    lines[2] = "3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="image_class_labels.txt line 3") as error:
        read_cub(copy)
    one_line(error)


def test_caption_file_with_nine_lines(copy):
    path = copy / "text" / ALBATROSS / f"{FIRST_IMAGE}.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:9]) + "\n")
    with pytest.raises(DataError, match=f"{FIRST_IMAGE}.txt has 9 non-empty lines.*: 1 of 24") as error:
        read_cub(copy)
    one_line(error)


def test_blank_lines_in_a_caption_file_are_not_captions(copy):
    path = copy / "text" / ALBATROSS / f"{FIRST_IMAGE}.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5] + ["", "  "] + lines[5:]) + "\n\n")
    assert read_cub(copy).captions[0] == tuple(lines)


def test_missing_caption_files(copy):
    for path in sorted((copy / "text" / "004.Groove_billed_Ani").iterdir())[:2]:
        path.unlink()
    with pytest.raises(DataError, match=r"\.txt not found \(images of present classes without a caption file: 2 of 24\)") as error:
        read_cub(copy)
    one_line(error)


def test_missing_jpeg(copy):
    (copy / "CUB_200_2011" / "images" / ALBATROSS / f"{FIRST_IMAGE}.jpg").unlink()
    with pytest.raises(DataError, match=f"{FIRST_IMAGE}.jpg not found \\(images of present classes without a JPEG: 1 of 24\\)") as error:
        read_cub(copy)
    one_line(error)


def test_overlapping_split_files(copy):
    with open(copy / "split" / "attngan_train_classes.txt", "a") as f:
        f.write(f"{ALBATROSS}\n")
    with pytest.raises(DataError, match=f"both name {ALBATROSS}") as error:
        read_cub(copy)
    one_line(error)


def test_unknown_class_in_split_file(copy):
    with open(copy / "split" / "attngan_test_classes.txt", "a") as f:
        f.write("201.Dodo\n")
    with pytest.raises(DataError, match="attngan_test_classes.txt line 3: '201.Dodo' is not a class") as error:
        read_cub(copy)
    one_line(error)


def test_present_class_in_neither_split(copy):
    path = copy / "split" / "attngan_test_classes.txt"
    path.write_text(path.read_text().replace(f"{ALBATROSS}\n", ""))
    with pytest.raises(DataError, match=f"{ALBATROSS} is present but its class is in neither"):
        read_cub(copy)


def test_no_class_present(copy):
    for folder in (copy / "CUB_200_2011" / "images").iterdir():
        shutil.rmtree(folder)
    with pytest.raises(DataError, match="no image is present"):
        read_cub(copy)


def test_mmvae_caption_file(tmp_path):
    path = tmp_path / "text_testclasses.txt"
    path.write_bytes(b"\xef\xbb\xbfa bird.\r\nanother bird  \n\nthe last one.")
    assert read_mmvae_captions(path) == ["a bird.", "another bird", "the last one."]
    path.write_bytes(b"\n \n")
    with pytest.raises(DataError, match="holds no caption"):
        read_mmvae_captions(path)
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_mmvae_captions(path)
    with pytest.raises(DataError, match="not found"):
        read_mmvae_captions(tmp_path / "absent.txt")


@pytest.mark.realdata
@pytest.mark.skipif(not CUB_DIR.is_dir(), reason=f"real CUB slice not found at {CUB_DIR}")
def test_real_slice():
    records = read_cub(CUB_DIR)
    summary = records.summary()
    assert (summary["images"], summary["classes"], summary["captions"]) == (543, 10, 5430)
    assert (summary["train classes"], summary["test classes"]) == (5, 5)
    assert (summary["classes not present"], summary["images not present"]) == (190, 11788 - 543)
    assert sum(s == "train" for s in records.class_split) == 150
    assert sum(s == "test" for s in records.class_split) == 50
    # the sample is these files' first images, captions unchanged
    sample = read_cub(SAMPLE)
    row = {image_id: i for i, image_id in enumerate(records.image_ids)}
    assert all(records.captions[row[i]] == c for i, c in zip(sample.image_ids, sample.captions))
    train = records.select("train").all_captions()
    assert (len(Vocabulary.build(train, min_count=3)), len(Vocabulary.build(train, min_count=4))) == (407, 337)
    mmvae = read_mmvae_captions(CUB_DIR / "mmvae_text_testclasses.txt")
    assert len(mmvae) == 29330 and all(c.endswith(".") for c in mmvae)
