#!/usr/bin/env bash
# The sweep behind docs/results.md, in stages so that a complete table of one seed comes first:
# MMVAE (both seeds), MEME and MVAE with seed 0, then MEME and MVAE with seed 1, and last a third
# seed (2) for each group whose two seeds disagree about one of the page's comparisons
# (scripts/results_page.py --third-seed-sweeps). Two runs at a time, one CPU thread each.
# Resumable: run the same command again and every stage skips its finished runs and continues the
# interrupted ones from their last checkpoint; raising a sweep file's epochs continues its runs.
#
#   scripts/results_sweep.sh DIR_WITH_THE_FOUR_MNIST_FILES OUT
set -uo pipefail
data="$1"; out="$2"
here="$(cd "$(dirname "$0")" && pwd)"
sweeps="$here/../docs/results/sweeps"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# MEME and MVAE: f = 1 and 1/4 for 60 epochs (meme-mvae.toml), f = 1/16 for 100 (meme-mvae-f0.0625.toml),
# both grids in one folder (they name different runs)
grids=("$sweeps/meme-mvae.toml" "$sweeps/meme-mvae-f0.0625.toml")
memevae sweep "$sweeps/mmvae.toml" --data-dir "$data" --out "$out/mmvae" || echo "stage 1 (MMVAE): some runs failed"
for grid in "${grids[@]}"; do
    sed 's/^seeds = .*/seeds = [0]/' "$grid" > "$scratch/seed0-$(basename "$grid")"
    memevae sweep "$scratch/seed0-$(basename "$grid")" --data-dir "$data" --out "$out/meme-mvae" || echo "stage 2 (seed 0, $(basename "$grid")): some runs failed"
done
for grid in "${grids[@]}"; do
    memevae sweep "$grid" --data-dir "$data" --out "$out/meme-mvae" || echo "stage 3 (seed 1, $(basename "$grid")): some runs failed"
done
shopt -s nullglob
python "$here/results_page.py" --third-seed-sweeps "$scratch/seed2" --runs "$out/meme-mvae" "$out/mmvae" "$out"/seed2/* |
while read -r file; do
    name="$(basename "$file" .toml)"
    memevae sweep "$file" --data-dir "$data" --out "$out/seed2/$name" < /dev/null || echo "stage 4 ($name): some runs failed"
done
