"""Write the small real CUB sample the tests read: tests/data/cub_sample/.

Four classes of CUB-200-2011 (the first two training-split and the first two test-split classes of
classes 001-010 that the source holds), the first six images of each in images.txt order, in the
layout :func:`memevae.data.files.cub.read_cub` reads:

- CUB_200_2011/classes.txt whole; images.txt, image_class_labels.txt, train_test_split.txt and
  bounding_boxes.txt cut to the sample's images (their lines unchanged, original ids kept);
- CUB_200_2011/images/: each JPEG downscaled so that its longer side is 64 px (JPEG, quality 85);
- text/: the images' caption files, unchanged;
- split/: the official class split files' lines of the four classes, unchanged, in their order;
- README.md: where it all comes from.

    python scripts/make_cub_sample.py --cub ../shared/data/cub
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from memevae.data.files.cub import SPLIT_FILES, read_cub

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "cub_sample"
CANDIDATES = 10  # classes 001-010
CLASSES_PER_SPLIT = 2
IMAGES_PER_CLASS = 6
LONGER_SIDE = 64
QUALITY = 85
METADATA = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
MARKER = "# CUB sample for memevae's tests"


def _lines_of_ids(path: Path, ids: set[int]) -> str:
    """The lines of a "<image_id> ..." file whose id is in ``ids``, unchanged."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if line.split() and int(line.split()[0]) in ids)


def _downscale(source: Path, dest: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    with Image.open(source) as image:
        image.load()
        size = image.size
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        scale = LONGER_SIDE / max(size)
        small = image.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), Image.LANCZOS)
        small.info.clear()  # no EXIF or comment carried over from the original
        small.save(dest, "JPEG", quality=QUALITY)
        return size, small.size


def build(cub: Path, out: Path) -> list[tuple[Path, str]]:
    """Write the sample into ``out`` (a new folder); return (file, what) for each file written."""
    records = read_cub(cub)
    candidates = [c for c in range(CANDIDATES) if records.present[c]]
    chosen = {split: [c for c in candidates if records.class_split[c] == split][:CLASSES_PER_SPLIT] for split in SPLIT_FILES}
    classes = sorted(c for cs in chosen.values() for c in cs)
    if any(len(cs) < CLASSES_PER_SPLIT for cs in chosen.values()):
        raise SystemExit(f"{cub} holds too few classes of 001-{CANDIDATES:03d} in each split: {chosen}")
    picks = {c: [i for i, k in enumerate(records.classes) if k == c][:IMAGES_PER_CLASS] for c in classes}
    rows = sorted(i for rs in picks.values() for i in rs)  # images.txt order
    ids = {records.image_ids[i] for i in rows}
    written = []

    def note(path: Path, what: str) -> None:
        written.append((path, what))

    meta_in, meta_out = cub / "CUB_200_2011", out / "CUB_200_2011"
    meta_out.mkdir(parents=True)
    shutil.copyfile(meta_in / "classes.txt", meta_out / "classes.txt")
    note(meta_out / "classes.txt", "whole")
    for name in METADATA:
        if (meta_in / name).is_file():
            (meta_out / name).write_text(_lines_of_ids(meta_in / name, ids), encoding="utf-8")
            note(meta_out / name, f"the {len(ids)} sample images' lines")

    split_out = out / "split"
    split_out.mkdir()
    names = {records.class_names[c] for c in classes}
    for split, name in SPLIT_FILES.items():
        source = next(p for p in (cub / "split" / name, cub / name) if p.is_file())
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        (split_out / name).write_text("".join(line for line in lines if line.strip() in names), encoding="utf-8")
        note(split_out / name, f"the official lines of {', '.join(records.class_names[c] for c in chosen[split])}")

    sizes = []
    for i in rows:
        relative = Path(records.paths[i])
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        before, after = _downscale(cub / relative, out / relative)
        sizes.append(before)
        note(out / relative, f"{before[0]}x{before[1]} -> {after[0]}x{after[1]}")
        caption = Path("text") / relative.parent.name / (relative.stem + ".txt")
        (out / caption).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cub / caption, out / caption)
        note(out / caption, "unchanged")

    readme = out / "README.md"
    readme.write_text(
        f"{MARKER}\n\n"
        f"Written by scripts/make_cub_sample.py from a copy of CUB-200-2011 with the Reed et al. (2016)\n"
        f"captions; read it with memevae.data.files.cub.read_cub.\n\n"
        f"- Classes: {', '.join(records.class_names[c] for c in classes)} (train split: "
        f"{', '.join(records.class_names[c] for c in chosen['train'])}; test split: "
        f"{', '.join(records.class_names[c] for c in chosen['test'])}).\n"
        f"- Images: the first {IMAGES_PER_CLASS} of each class in images.txt order "
        f"(ids {', '.join(str(records.image_ids[i]) for i in rows)}), {len(rows)} in all.\n"
        f"- CUB_200_2011/classes.txt is the official file; images.txt, image_class_labels.txt,\n"
        f"  train_test_split.txt and bounding_boxes.txt are the official files' lines of these images,\n"
        f"  unchanged (bounding boxes are in the original images' pixels).\n"
        f"- CUB_200_2011/images/: each JPEG downscaled (Lanczos) so that its longer side is {LONGER_SIDE} px,\n"
        f"  saved as JPEG at quality {QUALITY}; the originals are up to {max(max(s) for s in sizes)} px.\n"
        f"- text/: the images' caption files, unchanged (ten captions each).\n"
        f"- split/: the official class split files' lines (MMVAE / AttnGAN) of these classes, unchanged.\n",
        encoding="utf-8",
    )
    note(readme, "provenance")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cub", required=True, type=Path,
                        help="folder holding CUB_200_2011/, text/ and split/ (classes 001-010 at least)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    out = args.out.resolve()
    if out.exists():
        readme = out / "README.md"
        if not readme.is_file() or not readme.read_text(encoding="utf-8").startswith(MARKER):
            raise SystemExit(f"{out} exists and is not a sample this script wrote; pass another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        written = build(args.cub, staging / "sample")
        if out.exists():
            shutil.rmtree(out)
        (staging / "sample").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    total = 0
    for path, what in written:
        final = out / path.relative_to(staging / "sample")
        size = final.stat().st_size
        total += size
        print(f"{final.relative_to(out)}  {size:,} bytes  {what}")
    print(f"wrote {len(written)} files, {total:,} bytes ({total / 1024:.1f} KiB) to {out}")


if __name__ == "__main__":
    main()
