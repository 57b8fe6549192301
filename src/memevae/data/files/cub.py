"""Reading CUB-200-2011 with the Reed et al. (2016) captions, in the layout users download.

The data folder (``--data-dir``) holds::

    CUB_200_2011/   the official archive, unpacked: images.txt, image_class_labels.txt,
                    classes.txt, images/<class folder>/<image>.jpg
    text/           the Reed et al. captions: text/<class folder>/<image>.txt, ten per image
    split/          attngan_train_classes.txt, attngan_test_classes.txt (or these two files
                    directly in the data folder)

The split files give the class split of MMVAE, AttnGAN and the paper: 150 training and 50 test
classes (class folder names, one a line), so the train and test images are of different species.
It is not CUB's own per-image ``train_test_split.txt``, which memevae does not read.

A copy may hold only some classes: a class is *present* when its folder exists under
``CUB_200_2011/images/``; the images of the other classes are left out and counted in
:meth:`CubRecords.summary`. A present class must be complete (every image listed in
``images.txt`` has its JPEG and a caption file of ten captions): anything missing is an error,
never silently skipped.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError

SPLITS = ("train", "test")
SPLIT_FILES = {"train": "attngan_train_classes.txt", "test": "attngan_test_classes.txt"}
CAPTIONS_PER_IMAGE = 10

_FIX = "pass --data-dir the folder holding CUB_200_2011/, text/ and split/"
_WHAT = {
    "CUB_200_2011": "CUB_200_2011.tgz (CUB-200-2011, from Caltech)",
    "text": "the Reed et al. (2016) CUB captions, ten per image (text_c10/ of their cvpr2016_cub archive "
            "or text/ of AttnGAN's birds data, placed as text/)",
    "split": "the class split files attngan_train_classes.txt and attngan_test_classes.txt, as MMVAE "
             "and AttnGAN distribute them",
}


@dataclass(frozen=True)
class CubRecords:
    """The images of a CUB copy that are present, in ``images.txt`` order, with their captions.

    Per image: ``image_ids`` (the official 1-based ids), ``paths`` (of the JPEG, relative to
    ``root``, as str), ``classes`` (0-based class index, 0..199), ``split`` ("train" or "test", by
    the class split files) and ``captions`` (its ten captions, stripped, in file order).
    Per class (all of ``classes.txt``): ``class_names`` (the folder names, e.g.
    ``001.Black_footed_Albatross``), ``class_split`` ("train", "test", or "" for a class in
    neither split file), ``class_listed`` (images listed in ``images.txt``) and ``present``
    (whether its image folder exists). ``scope`` is "all", or the split :meth:`select` kept.
    """

    root: Path
    image_ids: tuple[int, ...]
    paths: tuple[str, ...]
    classes: tuple[int, ...]
    split: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]
    class_names: tuple[str, ...]
    class_split: tuple[str, ...]
    class_listed: tuple[int, ...]
    present: tuple[bool, ...]
    scope: str = "all"

    def __len__(self) -> int:
        return len(self.image_ids)

    def select(self, split: str) -> "CubRecords":
        """The images of one split ("train" or "test"), in the same order."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if self.scope not in ("all", split):
            raise ValueError(f"these records hold the {self.scope} split only, not {split}")
        keep = [i for i, s in enumerate(self.split) if s == split]

        def pick(values):
            return tuple(values[i] for i in keep)

        return replace(self, image_ids=pick(self.image_ids), paths=pick(self.paths),
                       classes=pick(self.classes), split=pick(self.split),
                       captions=pick(self.captions), scope=split)

    def _in_scope(self, c: int) -> bool:
        return self.scope == "all" or self.class_split[c] == self.scope

    def summary(self) -> dict:
        """Counts: images, classes present, per split images and classes, captions, and the
        classes (of this scope) not present with the images listed for them."""
        absent = [c for c in range(len(self.class_names)) if self._in_scope(c) and not self.present[c]]
        per_split = Counter(self.split)
        classes_per_split = Counter(self.class_split[c] for c in set(self.classes))
        return {
            "images": len(self),
            "classes": len(set(self.classes)),
            "train": per_split["train"],
            "test": per_split["test"],
            "train classes": classes_per_split["train"],
            "test classes": classes_per_split["test"],
            "captions": sum(len(c) for c in self.captions),
            "classes not present": len(absent),
            "images not present": sum(self.class_listed[c] for c in absent),
        }

    def all_captions(self) -> list[str]:
        """Every caption, image by image in order, ten per image."""
        return [caption for captions in self.captions for caption in captions]

    def captions_checksum(self) -> str:
        """Hex sha256 of all captions in order (UTF-8, each followed by a newline): to check that
        a saved vocabulary or caption tensor was made from these captions."""
        digest = hashlib.sha256()
        for caption in self.all_captions():
            digest.update(caption.encode("utf-8") + b"\n")
        return digest.hexdigest()


def _missing(path: Path, part: str, root: Path) -> DataError:
    hint = ""
    if (root / "images.txt").is_file() and (root / "images").is_dir():
        hint = f" ({root} looks like CUB_200_2011 itself: pass the folder holding it)"
    return DataError(f"{path} not found{hint}: it comes with {_WHAT[part]}; {_FIX}")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a UTF-8 text file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); "
                        "replace it with the original file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check the file and its permissions") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _read_table(path: Path, columns: str) -> list[tuple[int, int, str]]:
    """(line number, id, value) of a metadata file whose lines are "<id> <value>"."""
    rows, seen = [], {}
    for n, line in _read_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1:
            raise DataError(f"{path} line {n}: expected \"{columns}\", got {line[:60]!r}; "
                            "the file is damaged: replace it with the original from CUB_200_2011.tgz")
        key = int(parts[0])
        if key in seen:
            raise DataError(f"{path} line {n}: id {key} already on line {seen[key]}; "
                            "replace the file with the original from CUB_200_2011.tgz")
        seen[key] = n
        rows.append((n, key, parts[1]))
    return rows


def _read_split(path: Path, class_index: dict[str, int]) -> dict[int, int]:
    """class index -> line number of the classes a split file names."""
    named = {}
    for n, name in _read_lines(path):
        if name not in class_index:
            raise DataError(f"{path} line {n}: {name[:60]!r} is not a class of classes.txt; "
                            "use the split files as MMVAE and AttnGAN distribute them (class folder names)")
        if class_index[name] in named:
            raise DataError(f"{path} line {n}: {name} is already on line {named[class_index[name]]}; "
                            "use the split files as MMVAE and AttnGAN distribute them")
        named[class_index[name]] = n
    return named


def _find_split_files(root: Path) -> dict[str, Path]:
    found = {}
    for split, name in SPLIT_FILES.items():
        candidates = (root / "split" / name, root / name)
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataError(f"{candidates[0]} not found (nor {candidates[1]}): it comes with {_WHAT['split']}; {_FIX}")
        found[split] = path
    return found


def read_cub(root: str | os.PathLike) -> CubRecords:
    """The present images of the CUB copy in ``root`` with their captions and class split.

    ``root`` holds ``CUB_200_2011/``, ``text/`` and the two class split files (in ``split/`` or
    in ``root`` itself). DataError, one line naming the file and the fix, when a file is missing
    or malformed, when a present class is incomplete, when the split files overlap or name an
    unknown class, or when no class is present.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist; {_FIX}")
    cub = root / "CUB_200_2011"
    files = {name: cub / name for name in ("classes.txt", "images.txt", "image_class_labels.txt")}
    for path in files.values():
        if not path.is_file():
            raise _missing(path, "CUB_200_2011", root)
    split_paths = _find_split_files(root)

    classes = _read_table(files["classes.txt"], "<class_id> <class_name>")
    for position, (n, key, _) in enumerate(classes, 1):
        if key != position:
            raise DataError(f"{files['classes.txt']} line {n}: class id {key} where {position} belongs; "
                            "the ids must run 1, 2, 3, ...: replace the file with the original from CUB_200_2011.tgz")
    class_names = tuple(name for _, _, name in classes)
    class_index = {name: i for i, name in enumerate(class_names)}

    named = {split: _read_split(path, class_index) for split, path in split_paths.items()}
    shared = [c for c in named["train"] if c in named["test"]]
    if shared:
        raise DataError(f"{split_paths['train']} and {split_paths['test']} both name {class_names[shared[0]]} "
                        f"(classes in both: {len(shared)}); use the split files as MMVAE and AttnGAN distribute them")
    class_split = tuple("train" if c in named["train"] else "test" if c in named["test"] else ""
                        for c in range(len(class_names)))

    labels_path = files["image_class_labels.txt"]
    labels = {}
    for n, key, value in _read_table(labels_path, "<image_id> <class_id>"):
        if not value.isdigit() or not 1 <= int(value) <= len(class_names):
            raise DataError(f"{labels_path} line {n}: class id {value[:20]!r} is not one of classes.txt's "
                            f"1..{len(class_names)}; replace the file with the original from CUB_200_2011.tgz")
        labels[key] = int(value) - 1

    images_path = files["images.txt"]
    listed = []  # (line, image id, relative path, class)
    for n, key, name in _read_table(images_path, "<image_id> <image_name>"):
        if key not in labels:
            raise DataError(f"{images_path} line {n}: image {key} has no class in {labels_path}; "
                            "use the metadata files of one CUB_200_2011.tgz")
        c = labels[key]
        folder, _, file = name.partition("/")
        if folder != class_names[c] or not file:
            raise DataError(f"{images_path} line {n}: {name[:80]!r} is not in the folder of its class "
                            f"{class_names[c]}; use the metadata files of one CUB_200_2011.tgz")
        listed.append((n, key, name, c))
    class_listed = Counter(c for *_, c in listed)

    images_dir, text_dir = cub / "images", root / "text"
    present = tuple((images_dir / name).is_dir() for name in class_names)
    if not any(present):
        raise DataError(f"no class folder of classes.txt under {images_dir}: no image is present; {_FIX} "
                        f"(the images come with {_WHAT['CUB_200_2011']})")
    unassigned = [c for c in range(len(class_names)) if present[c] and not class_split[c]]
    if unassigned:
        raise DataError(f"{images_dir / class_names[unassigned[0]]} is present but its class is in neither "
                        f"{split_paths['train'].name} nor {split_paths['test'].name} (present classes in neither: "
                        f"{len(unassigned)}); use the split files as MMVAE and AttnGAN distribute them")
    if not text_dir.is_dir():
        raise _missing(text_dir, "text", root)

    keep = [row for row in listed if present[row[3]]]
    jpegs, texts = {}, {}
    for c in sorted({row[3] for row in keep}):
        jpegs[c] = set(os.listdir(images_dir / class_names[c]))
        folder = text_dir / class_names[c]
        texts[c] = set(os.listdir(folder)) if folder.is_dir() else set()

    problems: dict[str, list[Path]] = {"a JPEG": [], "a caption file": []}
    for _, _, name, c in keep:
        file = name.partition("/")[2]
        if file not in jpegs[c]:
            problems["a JPEG"].append(images_dir / name)
        if Path(file).stem + ".txt" not in texts[c]:
            problems["a caption file"].append(text_dir / class_names[c] / (Path(file).stem + ".txt"))
    fixes = {
        "a JPEG": f"copy the class's images from {_WHAT['CUB_200_2011']}",
        "a caption file": f"copy the class's caption files from {_WHAT['text']}",
    }
    for problem, paths in problems.items():
        if paths:
            raise DataError(f"{paths[0]} not found (images of present classes without {problem}: "
                            f"{len(paths)} of {len(keep)}); "
                            f"a class whose image folder exists must be complete: {fixes[problem]}, "
                            "or remove the class folder to leave the class out")

    captions, wrong = [], []
    for _, _, name, c in keep:
        path = text_dir / class_names[c] / (Path(name).stem + ".txt")
        lines = tuple(line for _, line in _read_lines(path))
        if len(lines) != CAPTIONS_PER_IMAGE:
            wrong.append((path, len(lines)))
        captions.append(lines)
    if wrong:
        path, count = wrong[0]
        raise DataError(f"{path} has {count} non-empty lines, not {CAPTIONS_PER_IMAGE} captions (caption files not of "
                        f"{CAPTIONS_PER_IMAGE} lines: {len(wrong)} of {len(keep)}); copy the class's caption files "
                        f"again from {_WHAT['text']}")

    return CubRecords(
        root=root,
        image_ids=tuple(key for _, key, _, _ in keep),
        paths=tuple(f"CUB_200_2011/images/{name}" for _, _, name, _ in keep),
        classes=tuple(c for *_, c in keep),
        split=tuple(class_split[c] for *_, c in keep),
        captions=tuple(captions),
        class_names=class_names,
        class_split=class_split,
        class_listed=tuple(class_listed[c] for c in range(len(class_names))),
        present=present,
    )


def read_mmvae_captions(path: str | os.PathLike) -> list[str]:
    """The captions of one of MMVAE's caption files (``text_trainvalclasses.txt``,
    ``text_testclasses.txt``), in file order.

    Such a file is UTF-8 text with one caption per line, ten lines per image, the images in order
    of class folder then file name. Its captions are a cleaned version of the Reed et al. ones:
    typos corrected, hyphens as spaces, a final period added, and a caption of several sentences
    cut to its first. MMVAE's loader splits the whole text into sentences with NLTK's
    ``sent_tokenize``; memevae reads lines, which gives the same captions on these files (one
    sentence per line, each ending with a period) and never joins a caption that lacks a final
    period to the next line. Lines are stripped; blank lines are skipped. DataError if the file
    is missing, not UTF-8 text, or holds no caption.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} not found: pass MMVAE's caption file (text_trainvalclasses.txt or "
                        "text_testclasses.txt, from its CUB data archive)")
    captions = [line for _, line in _read_lines(path)]
    if not captions:
        raise DataError(f"{path} holds no caption: pass MMVAE's caption file (one caption a line)")
    return captions
