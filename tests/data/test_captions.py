"""The caption tokenizer and vocabulary."""

import json

import pytest
import torch

from memevae.data import DataError
from memevae.data.captions import Vocabulary, tokenize, truncated_count


@pytest.mark.parametrize("text, tokens", [
    ("a small bird.", ["a", "small", "bird", "."]),
    ("This Bird is BLACK", ["this", "bird", "is", "black"]),
    ("wings, tail; and (beak)!", ["wings", ",", "tail", ";", "and", "(", "beak", ")", "!"]),
    ("white-fronted & 4x longer", ["white", "-", "fronted", "&", "4x", "longer"]),
    ("on it's head, the bird's eye", ["on", "it's", "head", ",", "the", "bird's", "eye"]),
    ("the birds' 'tarsus'.", ["the", "birds", "'", "'", "tarsus", "'", "."]),
    ("head.the feathers", ["head", ".", "the", "feathers"]),
    ("  spaced \t out\n", ["spaced", "out"]),
    ("this\ufffd\ufffdbird\ufffd\ufffdhas", ["this", "bird", "has"]),  # as in a few Reed et al. files
    ("", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_min_count_is_at_least_not_more_than():
    captions = ["three two", "three two", "three one"]  # three: 3 times, two: 2, one: 1
    assert Vocabulary.build(captions, min_count=3).words[3:] == ["three"]
    assert Vocabulary.build(captions, min_count=2).words[3:] == ["three", "two"]
    assert Vocabulary.build(captions, min_count=1).words[3:] == ["three", "two", "one"]


def test_words_in_order_of_first_occurrence_and_deterministic():
    captions = ["c b a", "a b c", "z c"]
    vocabulary = Vocabulary.build(captions, min_count=1)
    assert vocabulary.words == ["<pad>", "<eos>", "<unk>", "c", "b", "a", "z"]
    assert vocabulary == Vocabulary.build(list(captions), min_count=1)
    assert vocabulary != Vocabulary.build(captions[::-1], min_count=1)
    assert vocabulary != Vocabulary.build(captions, min_count=2)


def test_special_tokens():
    vocabulary = Vocabulary.build(["a b"], min_count=1)
    assert (vocabulary.pad, vocabulary.eos, vocabulary.unk) == (0, 1, 2)
    assert len(vocabulary) == 5 and "a" in vocabulary and "c" not in vocabulary
    assert vocabulary.index("c") == vocabulary.unk
    # a caption that spells a special token gets no special meaning from it
    assert Vocabulary.build(["<eos> a"] * 3, min_count=1).words == ["<pad>", "<eos>", "<unk>", "<", "eos", ">", "a"]


def test_encode_pads_and_maps_unknown_words():
    vocabulary = Vocabulary.build(["a small bird ."], min_count=1)
    assert vocabulary.encode("A tiny bird.", length=8) == [3, 2, 5, 6, 1, 0, 0, 0]


def test_encode_truncates_with_eos_last():
    vocabulary = Vocabulary.build(["w"], min_count=1)
    ids = vocabulary.encode("w " * 40, length=32)
    assert len(ids) == 32 and ids[-1] == vocabulary.eos and ids[:31] == [3] * 31
    exact = vocabulary.encode("w " * 31, length=32)  # 31 words: kept whole, no padding
    assert exact == [3] * 31 + [1]
    assert vocabulary.encode("", length=3) == [1, 0, 0]
    assert truncated_count(["w " * 31, "w " * 32, "w"], length=32) == 1


def test_encode_all():
    vocabulary = Vocabulary.build(["a b c"], min_count=1)
    ids = vocabulary.encode_all(["a b c d", "c"], length=4)
    assert ids.dtype == torch.int16 and ids.shape == (2, 4)
    assert ids.tolist() == [[3, 4, 5, 1], [5, 1, 0, 0]]
    assert vocabulary.encode_all([], length=4).shape == (0, 4)


def test_decode_round_trip():
    captions = ["this bird has a red crown, and a short bill.", "it's small; white-bellied!"]
    vocabulary = Vocabulary.build(captions, min_count=1)
    for caption in captions:
        assert vocabulary.decode(vocabulary.encode(caption)) == " ".join(tokenize(caption))
    ids = vocabulary.encode_all(captions)
    assert vocabulary.decode(ids[0]) == " ".join(tokenize(captions[0]))  # a tensor row works too
    assert vocabulary.decode([3, 0, 2, 1, 4]) == "this <unk>"  # stops at eos, skips pads
    with pytest.raises(ValueError, match="outside"):
        vocabulary.decode([len(vocabulary)])


def test_save_load_round_trip(tmp_path):
    vocabulary = Vocabulary.build(["a b b", "b a c"], min_count=2)
    path = vocabulary.save(tmp_path / "vocabulary.json")
    data = json.loads(path.read_text())
    assert data == {"format": "memevae-vocabulary", "version": 1, "min_count": 2,
                    "words": ["<pad>", "<eos>", "<unk>", "a", "b"]}
    assert Vocabulary.load(path) == vocabulary
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not a readable JSON"),
    ('["<pad>"]', "not a memevae vocabulary"),
    ('{"format": "other", "version": 1, "min_count": 3, "words": []}', "not a memevae vocabulary"),
    ('{"format": "memevae-vocabulary", "version": 2, "min_count": 3, "words": []}', "version 2"),
    ('{"format": "memevae-vocabulary", "version": 1, "min_count": 0, "words": ["<pad>", "<eos>", "<unk>"]}', "min_count"),
    ('{"format": "memevae-vocabulary", "version": 1, "min_count": 3, "words": "abc"}', "list of strings"),
    ('{"format": "memevae-vocabulary", "version": 1, "min_count": 3, "words": ["<eos>", "<pad>", "<unk>"]}', "start with"),
    ('{"format": "memevae-vocabulary", "version": 1, "min_count": 3, "words": ["<pad>", "<eos>", "<unk>", "a", "a"]}', "more than once"),
    ('{"format": "memevae-vocabulary", "version": 1, "min_count": 3, "words": ["<pad>", "<eos>", "<unk>", "a b"]}', "space"),
])
def test_load_malformed_is_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "vocabulary.json"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as error:
        Vocabulary.load(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such vocabulary file"):
        Vocabulary.load(tmp_path / "absent.json")
