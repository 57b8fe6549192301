#!/usr/bin/env bash
# The sweep behind docs/results.md, in three stages so that a complete table of one seed comes
# first: MEME and MVAE with seed 0, then MMVAE (both seeds), then MEME and MVAE with seed 1.
# Two runs at a time, one CPU thread each. Resumable: run the same command again and every stage
# skips its finished runs and continues the interrupted ones from their last checkpoint.
#
#   scripts/results_sweep.sh DIR_WITH_THE_FOUR_MNIST_FILES OUT
set -uo pipefail
data="$1"; out="$2"
sweeps="$(cd "$(dirname "$0")/../docs/results/sweeps" && pwd)"
seed0="$(mktemp --suffix .toml)"
trap 'rm -f "$seed0"' EXIT
sed 's/^seeds = .*/seeds = [0]/' "$sweeps/meme-mvae.toml" > "$seed0"
memevae sweep "$seed0" --data-dir "$data" --out "$out/meme-mvae" || echo "stage 1 (seed 0): some runs failed"
memevae sweep "$sweeps/mmvae.toml" --data-dir "$data" --out "$out/mmvae" || echo "stage 2 (MMVAE): some runs failed"
memevae sweep "$sweeps/meme-mvae.toml" --data-dir "$data" --out "$out/meme-mvae" || echo "stage 3 (seed 1): some runs failed"
