#!/usr/bin/env bash
# The results sweep (docs/results.md) as a queue: two workers take runs from QUEUE in order, one
# "model fraction scheme seed grid" per line (e.g. "meme 0.25 split 1 meme-mvae.toml"; grid names a
# file of docs/results/sweeps, which gives the epochs, or a labelled variant's, e.g.
# "../variants/clip-grad-norm/sweep.toml"; at f = 1 the scheme is ignored). Each run is
# its own one-run sweep in OUT/<run> (the file's jobs = 2 gives it 1 thread). Resumable: put the
# unfinished lines back in QUEUE and run it again. Collect with results_page.py --collect OUT/<run> ...
# as each run ends; "results_page.py --queue QUEUE" writes every run still to record.
#
#   python scripts/results_page.py --queue QUEUE
#   scripts/session_queue.sh QUEUE DIR_WITH_THE_FOUR_MNIST_FILES OUT
set -uo pipefail
queue="$1"; data="$2"; out="$3"
here="$(cd "$(dirname "$0")" && pwd)"; sweeps="$here/../docs/results/sweeps"
worker() {
  while true; do
    line="$(flock "$queue.lock" bash -c 'l=$(head -n1 "$0"); [ -n "$l" ] && sed -i 1d "$0"; echo "$l"' "$queue")"
    [ -z "$line" ] && break
    read -r model f scheme seed grid <<<"$line"
    if [ "$f" = "1.0" ]; then tag="$model-f1-seed$seed"; else tag="$model-f$f-$scheme-seed$seed"; fi
    case "$grid" in */sweep.toml) tag="$(basename "$(dirname "$grid")")-$tag";; esac  # a variant's run apart from the grid's
    file="$out/files/$tag.toml"; mkdir -p "$out/files"
    sed -e "s/^models = .*/models = [\"$model\"]/" -e "s/^fractions = .*/fractions = [$f]/" \
        -e "s/^schemes = .*/schemes = [\"$scheme\"]/" -e "s/^seeds = .*/seeds = [$seed]/" \
        "$sweeps/$grid" > "$file"
    echo "$(date -u +%FT%TZ) worker $1 start $tag"
    memevae sweep "$file" --data-dir "$data" --out "$out/$tag" --quiet < /dev/null || echo "$(date -u +%FT%TZ) $tag failed"
    echo "$(date -u +%FT%TZ) worker $1 end $tag"
  done
}
worker 1 & worker 2 & wait
