#!/usr/bin/env bash
# Speaker verification on the synthetic mini corpus: x-vector heads (recipes/sv/mini_xvector.yaml,
# AAM-softmax over the 24 training speakers) on each system, scored on the trials of the 8 held-out
# test speakers (cosine, and AS-norm against the training utterances), compared in RESULTS.md:
#   fbank       80 log-mel filterbanks (no encoder)
#   mfcc        39 MFCC + deltas (no encoder)
#   random      the encoder's architecture with random weights (what the architecture alone gives)
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers
#   adapters    (optional) Houlsby adapters trained inside the frozen pretrained encoder
#   egs/mini/sv/run.sh                                  # pretraining on the whole corpus first (../ssl/run.sh)
#   egs/mini/sv/run.sh --encoder ../ssl/exp/pretrain/iter2/encoder.safetensors --stage 2
#   egs/mini/sv/run.sh --tiny true --data /tmp/mini_data --exp /tmp/sv_exp   # CI-sized
# Relative paths (--data, --exp, --encoder) are relative to this folder.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  the encoder: --encoder, or ../ssl/run.sh's iterations       $exp/ssl (encoder of its last iteration)
#   2  train one model per system                                    $exp/sv/<system>
#   3  score the test trials with each model (EER, minDCF, DET)      $exp/sv/<system>/eval_test
#   4  the table of EER and minDCF of every system, printed          $exp/RESULTS.md
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
asnorm=true                  # also score with AS-norm (cohort: the training utterances)
config=../../../recipes/sv/mini_xvector.yaml  # the training config
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$asnorm" in true|false) ;; *) echo "run.sh: --asnorm must be true or false, found '$asnorm'" >&2; exit 2 ;; esac
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
    dir=$exp/sv/$s
    inputs=("$corpus/.complete")
    if uses_encoder "$s"; then inputs+=("$encoder"); fi
    echo "stage 2: train $s ($config) -> $dir"
    if changed "$dir/.done" "${inputs[@]}"; then
      # an interrupted run resumes from its checkpoints unless its inputs were remade since it started
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "${inputs[@]}"; then rm -rf "$dir"; fi
      system_args "$s"
      speechssl sv train --config "$config" --corpus "$corpus" --exp "$dir" "${sys_args[@]}" \
        "data.valid_trials=$corpus/trials_dev.txt" "run.seed=$seed" run.progress=false "${step_args[@]}"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 3; then
  for s in "${system_list[@]}"; do
    dir=$exp/sv/$s/eval_test
    echo "stage 3: score $corpus/trials_test.txt with $exp/sv/$s -> $dir"
    if changed "$dir/.done" "$exp/sv/$s/.done"; then
      rm -rf "$dir"
      speechssl sv evaluate "$exp/sv/$s" --trials "$corpus/trials_test.txt" --split test --asnorm "$asnorm" --out "$dir"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 4; then
  out=$exp/RESULTS.md
  echo "stage 4: EER and minDCF of every system -> $out"
  rows=() markers=()
  for s in "${system_list[@]}"; do rows+=("$s=$exp/sv/$s/eval_test"); markers+=("$exp/sv/$s/eval_test/.done"); done
  if changed "$out" "${markers[@]}"; then
    speechssl sv results --out "$out" --title "Mini corpus speaker verification: MFCC / fbank vs a random and a pretrained encoder" \
      --notes "Trained on the training speakers (recipes/sv/mini_xvector.yaml${steps:+ with $steps steps}), scored on $corpus/trials_test.txt (held-out speakers). Encoder: $encoder. Each row's DET curve: <folder>/det.png. Command: $cmdline" \
      "${rows[@]}"
  else
    echo "  done before: $out"
  fi
  cat "$out"
fi
