#!/usr/bin/env bash
# Emotion recognition on the synthetic mini corpus: its four prosody styles (neutral, happy, sad,
# angry) stand in for emotions. A pooling + MLP classifier (recipes/er/mini_mlp.yaml, class-balanced)
# on each system, trained on the training speakers and scored on the held-out test speakers (WA, UA,
# macro-F1, confusion matrix), compared in RESULTS.md:
#   fbank       80 log-mel filterbanks (no encoder)
#   mfcc        39 MFCC + deltas (no encoder)
#   random      the encoder's architecture with random weights (what the architecture alone gives)
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers
#   adapters    (optional) Houlsby adapters trained inside the frozen pretrained encoder
#   egs/mini/er/run.sh                                  # pretraining on the whole corpus first (../ssl/run.sh)
#   egs/mini/er/run.sh --encoder ../ssl/exp/pretrain/iter2/encoder.safetensors --stage 2
#   egs/mini/er/run.sh --tiny true --data /tmp/mini_data --exp /tmp/er_exp   # CI-sized
# Relative paths (--data, --exp, --encoder) are relative to this folder.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  the encoder: --encoder, or ../ssl/run.sh's iterations       $exp/ssl (encoder of its last iteration)
#   2  train one model per system                                    $exp/er/<system>
#   3  classify the test split with each model (WA, UA, F1, confusion)  $exp/er/<system>/eval_test
#   4  the table of WA, UA and macro-F1 of every system, printed     $exp/RESULTS.md
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
data=../data                 # where the mini corpus goes, as $data/mini (egs/mini/run.sh's by default)
exp=exp                      # where the encoder, models and RESULTS.md go
hours=1.0                    # size of the mini corpus in hours of audio
tiny=false                   # true: the CI-sized corpus, pretraining and --steps 20
seed=0                       # seed of the corpus, pretraining and training
nj=$(nproc)                  # parallel jobs (corpus synthesis, pretraining's topic models)
encoder=""                   # a pretrained encoder (speechssl .safetensors, Hugging Face folder); empty: pretrain one (stage 1)
systems="fbank mfcc random pretrained"  # one model each (see above)
steps=""                     # training steps of every system (empty: the config's, 300; tiny: 20)
config=../../../recipes/er/mini_mlp.yaml  # the training config
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
if [ "$tiny" = true ] && [ -z "$steps" ]; then steps=20; fi

cd "$(dirname "$0")"
. ../path.sh
dry_run=false
. ../../lib/stages.sh
parse_systems
[ -f "$config" ] || { echo "run.sh: no config $config (--config)" >&2; exit 2; }
mkdir -p "$exp"
echo "$cmdline" > "$exp/run.command"   # the exact command line of this run

corpus=$data/mini
if selected 0; then
  echo "stage 0: synthesise the mini corpus into $corpus"
  corpus_args=(--seed "$seed" --num-jobs "$nj")
  if [ "$tiny" = true ]; then corpus_args+=(--tiny); else corpus_args+=(--hours "$hours"); fi
  speechssl make-mini-corpus "$corpus" "${corpus_args[@]}"   # writes $corpus/.complete last
fi

ssl_encoder=$exp/ssl/pretrain/iter2/encoder.safetensors
if [ -z "$encoder" ]; then encoder=$ssl_encoder; fi
if selected 1 && [ "${#encoder_systems[@]}" -gt 0 ]; then
  if [ "$encoder" != "$ssl_encoder" ]; then
    echo "stage 1: the encoder is --encoder $encoder"
    [ -e "$encoder" ] || { echo "run.sh: --encoder $encoder: no such file or folder (relative to $PWD)" >&2; exit 2; }
  else
    echo "stage 1: pretrain an encoder on the mini corpus with ../ssl/run.sh -> $exp/ssl"
    ../ssl/run.sh --stage 1 --exp "$(realpath -m "$exp/ssl")" --data "$(realpath -m "$data")" --tiny "$tiny" --seed "$seed" --nj "$nj"
  fi
fi

step_args=()
if [ -n "$steps" ]; then step_args=("optim.max_steps=$steps"); fi
if selected 2; then
  for s in "${system_list[@]}"; do
    dir=$exp/er/$s
    inputs=("$corpus/.complete")
    if uses_encoder "$s"; then inputs+=("$encoder"); fi
    echo "stage 2: train $s ($config) -> $dir"
    if changed "$dir/.done" "${inputs[@]}"; then
      # an interrupted run resumes from its checkpoints unless its inputs were remade since it started
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "${inputs[@]}"; then rm -rf "$dir"; fi
      system_args "$s"
      speechssl er train --config "$config" --corpus "$corpus" --exp "$dir" "${sys_args[@]}" \
        "run.seed=$seed" run.progress=false "${step_args[@]}"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 3; then
  for s in "${system_list[@]}"; do
    dir=$exp/er/$s/eval_test
    echo "stage 3: classify the test split with $exp/er/$s -> $dir"
    if changed "$dir/.done" "$exp/er/$s/.done"; then
      rm -rf "$dir"
      speechssl er evaluate "$exp/er/$s" --split test --out "$dir"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 4; then
  out=$exp/RESULTS.md
  echo "stage 4: WA, UA and macro-F1 of every system -> $out"
  rows=() markers=()
  for s in "${system_list[@]}"; do rows+=("$s=$exp/er/$s/eval_test"); markers+=("$exp/er/$s/eval_test/.done"); done
  if changed "$out" "${markers[@]}"; then
    speechssl er results --out "$out" --title "Mini corpus emotion (prosody style) recognition: MFCC / fbank vs a random and a pretrained encoder" \
      --notes "Trained on the training speakers (recipes/er/mini_mlp.yaml${steps:+ with $steps steps}), scored on the test split (held-out speakers). Encoder: $encoder. Each row's confusion matrix: <folder>/confusion.md and confusion.png. Command: $cmdline" \
      "${rows[@]}"
  else
    echo "  done before: $out"
  fi
  cat "$out"
fi
