#!/usr/bin/env bash
# The main job on the synthetic mini corpus (espeak-ng speech in 4 languages, 4 styles, 40+ voices).
#   egs/mini/run.sh                         # everything, default sizes
#   egs/mini/run.sh --stage 1 --stop_stage 1
#   egs/mini/run.sh --tiny true --data /tmp/mini_data
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  check that every recording decodes, and write and print the corpus statistics ($exp/stats)
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0              # first stage to run
stop_stage=100       # last stage to run
data=data            # where corpora and manifests go (relative to this folder)
exp=exp              # where experiments go (relative to this folder)
hours=1.0            # size of the mini corpus in hours of audio
seed=0               # seed of the mini corpus (same seed -> identical corpus)
tiny=false           # true: the CI-sized corpus (seconds to make) instead of --hours
nj=$(nproc)          # parallel jobs

. "$(dirname "$0")/../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
# ----

cd "$(dirname "$0")"
. ./path.sh
mkdir -p "$exp"
echo "$cmdline" > "$exp/run.command"   # the exact command line of this run

corpus_args=(--seed "$seed" --num-jobs "$nj")
if [ "$tiny" = true ]; then corpus_args+=(--tiny); else corpus_args+=(--hours "$hours"); fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: synthesise the mini corpus into $data/mini"
  # make-mini-corpus writes $data/mini/.complete last and skips a corpus that is already complete
  speechssl make-mini-corpus "$data/mini" "${corpus_args[@]}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: check the audio and the statistics of $data/mini"
  out="$exp/stats"
  if [ ! -f "$out/.done" ] || [ "$data/mini/.complete" -nt "$out/.done" ]; then
    rm -rf "$out"; mkdir -p "$out"
    for split in train dev test; do
      speechssl validate "$data/mini/cuts_$split.jsonl.gz" --strict --num-jobs "$nj" --skipped "$out/skipped_$split.tsv" -q
    done
    speechssl stats "$data/mini" > "$out/stats.txt"
    speechssl stats "$data/mini" --json > "$out/stats.json"
    touch "$out/.done"
  fi
  cat "$out/stats.txt"
fi
