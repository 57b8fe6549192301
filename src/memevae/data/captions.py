"""Caption tokens and the caption vocabulary of the CUB image-caption experiment.

A caption becomes ``length`` (32, paper App. K) token ids: its words, then ``<eos>``, then
``<pad>`` up to the length; a caption of more than ``length - 1`` words keeps its first
``length - 1``. The vocabulary is built on the training captions only.

>>> vocabulary = Vocabulary.build(["a small bird.", "a small red bird.", "a bird, small."], min_count=3)
>>> vocabulary.words
['<pad>', '<eos>', '<unk>', 'a', 'small', 'bird', '.']
>>> vocabulary.encode("A small, red bird.", length=8)
[3, 4, 2, 2, 5, 6, 1, 0]
>>> vocabulary.decode([3, 4, 2, 2, 5, 6, 1, 0])
'a small <unk> <unk> bird .'
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ..io import write_json
from .errors import DataError

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIALS = (PAD, EOS, UNK)
"""The special tokens, at ids 0, 1 and 2, before the words."""
LENGTH = 32
"""Token ids per encoded caption (paper App. K): at most 31 words, ``<eos>``, then padding."""
FORMAT, VERSION = "memevae-vocabulary", 1

# A word: letters and digits, with apostrophes inside it ("it's"); any other non-space character
# is a token of its own. U+FFFD (the replacement character) separates tokens like a space: a few
# of the Reed et al. caption files have "\ufffd\ufffd" where a space belongs.
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\s\ufffd]")


def tokenize(text: str) -> list[str]:
    """The tokens of a caption: lower-cased words, and each punctuation mark as a token.

    A word is a run of letters and digits, apostrophes included when inside it (``it's``,
    ``bird's``); every other character that is not a space is a token of its own (``,`` ``.``
    ``-`` ``(``, and an apostrophe used as a quote mark or after a plural). The replacement
    character U+FFFD counts as a space (some Reed et al. caption files have two of them where a
    space belongs).

    MMVAE's code tokenizes with NLTK's ``word_tokenize`` on the text as it is (not lower-cased:
    the captions are nearly all lower case already, a few name a species in capitals) and so
    splits ``it's`` into ``it`` ``'s`` and keeps ``white-fronted`` whole; memevae's regular
    expression needs no extra dependency and gives one vocabulary entry per spelling whatever the
    case.

    >>> tokenize("This bird's wings are BLACK-tipped, and it has a (short) bill.")
    ['this', "bird's", 'wings', 'are', 'black', '-', 'tipped', ',', 'and', 'it', 'has', 'a', '(', 'short', ')', 'bill', '.']
    >>> tokenize("birds' 'tarsus'  4x\\ufffd\\ufffdlong")
    ['birds', "'", "'", 'tarsus', "'", '4x', 'long']
    """
    return _TOKEN.findall(text.lower())


def truncated_count(captions: Iterable[str], length: int = LENGTH) -> int:
    """How many captions have more than ``length - 1`` tokens, so that :meth:`Vocabulary.encode`
    keeps only their first ``length - 1``.

    >>> truncated_count(["a b c", "a b c d"], length=4)
    1
    """
    return sum(len(tokenize(caption)) > length - 1 for caption in captions)


class Vocabulary:
    """The token ids of captions: ``<pad>`` = 0, ``<eos>`` = 1, ``<unk>`` = 2, then the words.

    :meth:`build` keeps the words seen at least ``min_count`` times in the training captions, in
    order of first occurrence, so the same captions always give the same ids. The paper keeps
    words seen "at least 3 times" (1,590 words on the full CUB training captions), which memevae
    follows; MMVAE's code keeps words seen *more* than 3 times (``occ > min_occ``) and numbers its
    special tokens differently (``<exc>``, its unknown-word token, = 0, ``<pad>`` = 1,
    ``<eos>`` = 2).

    ``words`` is the list of all tokens in id order, special tokens first; ``len`` is its length
    (the vocabulary size a caption model needs). Two vocabularies are equal when they have the
    same tokens and ``min_count``.
    """

    pad = 0
    eos = 1
    unk = 2

    def __init__(self, words: Sequence[str], min_count: int):
        """``words``: all tokens in id order, starting with ``<pad>``, ``<eos>``, ``<unk>``."""
        words = list(words)
        if tuple(words[:3]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(SPECIALS)}, not {words[:3]}")
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary's tokens must be distinct")
        self._words = words
        self._ids = {word: i for i, word in enumerate(words)}
        self.min_count = int(min_count)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 3) -> "Vocabulary":
        """The vocabulary of the words seen at least ``min_count`` times in ``captions`` (the
        training captions), in order of first occurrence.

        >>> Vocabulary.build(["b a a", "b c a b"], min_count=3).words[3:]
        ['b', 'a']
        """
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, not {min_count}")
        counts = Counter()
        for caption in captions:
            counts.update(tokenize(caption))  # a Counter keeps first-insertion order
        kept = [word for word, count in counts.items() if count >= min_count and word not in SPECIALS]
        return cls([*SPECIALS, *kept], min_count)

    @property
    def words(self) -> list[str]:
        """All tokens in id order: ``<pad>``, ``<eos>``, ``<unk>``, then the words."""
        return list(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._words == other._words and self.min_count == other.min_count

    __hash__ = None

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"

    def index(self, word: str) -> int:
        """The id of a token, ``unk`` for a word not in the vocabulary."""
        return self._ids.get(word, self.unk)

    def encode(self, caption: str, length: int = LENGTH) -> list[int]:
        """``length`` ids: the caption's first ``length - 1`` tokens (``unk`` for unknown words),
        ``eos``, then ``pad`` up to ``length``.

        >>> Vocabulary.build(["a b"], min_count=1).encode("a b c a b", length=4)
        [3, 4, 2, 1]
        """
        if length < 1:
            raise ValueError(f"length must be at least 1, not {length}")
        ids = [self.index(token) for token in tokenize(caption)[: length - 1]]
        ids.append(self.eos)
        return ids + [self.pad] * (length - len(ids))

    def encode_all(self, captions: Iterable[str], length: int = LENGTH) -> torch.Tensor:
        """The captions encoded (:meth:`encode`), as an int16 tensor of shape (n, length).
        :func:`truncated_count` tells how many were cut to ``length - 1`` words.

        >>> Vocabulary.build(["a b"], min_count=1).encode_all(["a", "b a"], length=3)
        tensor([[3, 1, 0],
                [4, 3, 1]], dtype=torch.int16)
        """
        if len(self) > torch.iinfo(torch.int16).max + 1:
            raise ValueError(f"{len(self)} tokens do not fit int16 ids")
        rows = [self.encode(caption, length) for caption in captions]
        return torch.tensor(rows, dtype=torch.int16).reshape(len(rows), length)

    def decode(self, ids: Iterable[int]) -> str:
        """The tokens of ``ids`` up to the first ``eos``, padding skipped, joined by spaces.

        >>> vocabulary = Vocabulary.build(["a b"], min_count=1)
        >>> vocabulary.decode([3, 0, 4, 2, 1, 3])
        'a b <unk>'
        """
        tokens = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i == self.pad:
                continue
            if not 0 <= i < len(self._words):
                raise ValueError(f"token id {i} is outside the vocabulary of {len(self)} tokens")
            tokens.append(self._words[i])
        return " ".join(tokens)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (atomically): format, version, ``min_count``, words."""
        return write_json(path, {"format": FORMAT, "version": VERSION, "min_count": self.min_count,
                                 "words": self._words})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`; DataError (one line naming the file) if it is
        missing or malformed."""
        path = Path(path)
        fix = "rebuild it from the training captions (Vocabulary.build(...).save(path))"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: no such vocabulary file; {fix}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            reason = " ".join(str(e).split())
            raise DataError(f"{path}: not a readable JSON vocabulary ({reason}); {fix}") from None

        def bad(problem: str) -> DataError:
            return DataError(f"{path}: {problem}; {fix}")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"not a memevae vocabulary (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise bad(f"vocabulary version {data.get('version')!r}, this memevae reads version {VERSION}")
        min_count = data.get("min_count")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise bad(f"min_count must be a positive integer, not {min_count!r}")
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise bad("\"words\" must be a list of strings")
        if tuple(words[:3]) != SPECIALS:
            raise bad(f"the words must start with {list(SPECIALS)}")
        for i, word in enumerate(words):
            if not word or any(c.isspace() for c in word):
                raise bad(f"word {i} ({word!r}) is empty or holds a space")
        if len(set(words)) != len(words):
            duplicate = next(w for w, n in Counter(words).items() if n > 1)
            raise bad(f"the word {duplicate!r} appears more than once")
        return cls(words, min_count)
