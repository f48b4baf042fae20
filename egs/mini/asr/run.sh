#!/usr/bin/env bash
# CTC ASR on the synthetic mini corpus: one language's transcribed speech (all of it, or a budget of
# minutes), an encoder (given, or pretrained here by ../ssl/run.sh on the languages you choose), and
# one model per training mode (recipes/asr/mini_<mode>.yaml), compared on the test split in RESULTS.md:
#   frozen_linear  the encoder frozen, a weighted sum of its layers, a linear CTC layer
#   frozen         the encoder frozen, a weighted sum of its layers, a 2-layer BiLSTM (SUPERB)
#   adapters       Houlsby bottleneck adapters in the frozen encoder, a linear CTC layer
#   lora           LoRA in the frozen encoder, a linear CTC layer
#   finetune       the whole encoder but its conv front end, a linear CTC layer
#   egs/mini/asr/run.sh                          # English, pretraining on the whole corpus first (about 25 minutes on 2 CPU cores)
#   egs/mini/asr/run.sh --encoder ../ssl/exp/pretrain/iter2/encoder.safetensors --stage 3
#   egs/mini/asr/run.sh --tiny true --data /tmp/mini_data --exp /tmp/asr_exp   # CI-sized: about a minute
# egs/mini/new_language/run.sh runs this recipe for a new language: pretraining on English only,
# 10 minutes of German transcripts, adapters against the frozen encoder and full fine-tuning.
# Relative paths (--data, --exp, --encoder) are relative to this folder.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  the ASR data: $lang's cuts, train cut to --budget_minutes   $exp/data/<lang>[_<budget>min]
#      and, to pretrain on, the --pretrain_languages cuts           $exp/data/pretrain_<languages>
#   2  the encoder: --encoder, or ../ssl/run.sh's iterations        $exp/ssl (encoder of its last iteration)
#   3  train one model per mode                                     $exp/asr/<mode>
#   4  decode the test split with each model                        $exp/asr/<mode>/decode_test
#   5  the table of CER, WER and trainable parameters, printed      $exp/RESULTS.md
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
data=../data                 # where the mini corpus goes, as $data/mini (egs/mini/run.sh's by default)
exp=exp                      # where data subsets, the encoder, models and RESULTS.md go
hours=1.0                    # size of the mini corpus in hours of audio
tiny=false                   # true: the CI-sized corpus, pretraining and --steps 20
seed=0                       # seed of the corpus, the budget's draw, pretraining and training
nj=$(nproc)                  # parallel jobs (corpus synthesis, pretraining's topic models)
lang=en                      # the language to recognise (en, de, es or fr)
budget_minutes=""            # minutes of $lang's train split to train on (empty: all of it)
encoder=""                   # a pretrained encoder (speechssl .safetensors, Hugging Face folder); empty: pretrain one (stage 2)
pretrain_languages=all       # the languages stage 2 pretrains on: all, or a list such as "en"
modes="frozen adapters finetune"  # training modes, one model each (recipes/asr/mini_<mode>.yaml)
steps=""                     # training steps of every mode (empty: the config's, 300; tiny: 20)
beam=1                       # CTC beam width for decoding (1: greedy)
lm_order=0                   # order of a word n-gram LM of the training transcripts for decoding (0: none)
title=""                     # heading of RESULTS.md (empty: made from the settings)
configs=../../../recipes/asr # folder of the mini_<mode>.yaml configs
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
if [ "$tiny" = true ] && [ -z "$steps" ]; then steps=20; fi
read -ra mode_list <<< "$modes"
read -ra pretrain_list <<< "$pretrain_languages"
[ "${#mode_list[@]}" -gt 0 ] || { echo "run.sh: --modes needs at least one mode" >&2; exit 2; }

cd "$(dirname "$0")"
. ./path.sh
for mode in "${mode_list[@]}"; do
  [ -f "$configs/mini_$mode.yaml" ] || { echo "run.sh: no config $configs/mini_$mode.yaml for mode '$mode' of --modes" >&2; exit 2; }
done
mkdir -p "$exp"
echo "$cmdline" > "$exp/run.command"   # the exact command line of this run

dry_run=false
. ../../lib/stages.sh  # selected STAGE, changed MARKER [INPUT...]

corpus=$data/mini
if [ -n "$budget_minutes" ]; then asr_data=$exp/data/${lang}_${budget_minutes}min; else asr_data=$exp/data/$lang; fi
pretrain_tag=${pretrain_languages// /_}
pretrain_data=$exp/data/pretrain_$pretrain_tag

if selected 0; then
  echo "stage 0: synthesise the mini corpus into $corpus"
  corpus_args=(--seed "$seed" --num-jobs "$nj")
  if [ "$tiny" = true ]; then corpus_args+=(--tiny); else corpus_args+=(--hours "$hours"); fi
  speechssl make-mini-corpus "$corpus" "${corpus_args[@]}"   # writes $corpus/.complete last
fi

if selected 1; then
  echo "stage 1: $lang transcripts${budget_minutes:+ ($budget_minutes minutes of train, seed $seed)} -> $asr_data"
  if changed "$asr_data/.done" "$corpus/.complete"; then
    rm -rf "$asr_data"
    budget_args=()
    if [ -n "$budget_minutes" ]; then budget_args=(--max-minutes "$budget_minutes" --seed "$seed"); fi
    speechssl subset "$corpus" "$asr_data" --languages "$lang" "${budget_args[@]}"
    touch "$asr_data/.done"
  else
    echo "  done before: $asr_data"
  fi
  if [ -z "$encoder" ] && [ "$pretrain_languages" != all ]; then
    echo "stage 1: the ${pretrain_languages} cuts to pretrain on -> $pretrain_data"
    if changed "$pretrain_data/.done" "$corpus/.complete"; then
      rm -rf "$pretrain_data"
      speechssl subset "$corpus" "$pretrain_data" --languages "${pretrain_list[@]}"
      touch "$pretrain_data/.done"
    else
      echo "  done before: $pretrain_data"
    fi
  fi
fi

ssl_exp=$exp/ssl
if [ -z "$encoder" ]; then encoder=$ssl_exp/pretrain/iter2/encoder.safetensors; fi
if selected 2; then
  if [ "$encoder" != "$ssl_exp/pretrain/iter2/encoder.safetensors" ]; then
    echo "stage 2: the encoder is --encoder $encoder"
    [ -e "$encoder" ] || { echo "run.sh: --encoder $encoder: no such file or folder (relative to $PWD)" >&2; exit 2; }
  else
    echo "stage 2: pretrain an encoder on ${pretrain_languages} of the mini corpus with ../ssl/run.sh -> $ssl_exp"
    ssl_args=(--stage 1 --exp "$(realpath -m "$ssl_exp")" --data "$(realpath -m "$data")" --tiny "$tiny" --seed "$seed" --nj "$nj")
    if [ "$pretrain_languages" != all ]; then ssl_args+=(--corpus "$(realpath -m "$pretrain_data")"); fi
    ../ssl/run.sh "${ssl_args[@]}"   # skips the stages it finished before
  fi
fi

step_args=()
if [ -n "$steps" ]; then step_args=("optim.max_steps=$steps"); fi
if selected 3; then
  for mode in "${mode_list[@]}"; do
    dir=$exp/asr/$mode
    echo "stage 3: train $mode ($configs/mini_$mode.yaml) on $asr_data -> $dir"
    if changed "$dir/.done" "$asr_data/.done" "$encoder"; then
      # an interrupted run resumes from its checkpoints unless its inputs were remade since it started
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "$asr_data/.done" "$encoder"; then rm -rf "$dir"; fi
      speechssl asr train --config "$configs/mini_$mode.yaml" --corpus "$asr_data" --encoder "$encoder" --exp "$dir" \
        "run.seed=$seed" run.progress=false "${step_args[@]}"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

results_args=()
for mode in "${mode_list[@]}"; do results_args+=("$mode=$exp/asr/$mode/decode_test"); done
if selected 4; then
  for mode in "${mode_list[@]}"; do
    dir=$exp/asr/$mode/decode_test
    echo "stage 4: decode the test split with $exp/asr/$mode -> $dir"
    if changed "$dir/.done" "$exp/asr/$mode/.done"; then
      rm -rf "$dir"
      speechssl asr decode "$exp/asr/$mode" --split test --out "$dir" --beam "$beam" --lm-order "$lm_order"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 5; then
  out=$exp/RESULTS.md
  echo "stage 5: CER, WER and trainable parameters of every model -> $out"
  markers=()
  for mode in "${mode_list[@]}"; do markers+=("$exp/asr/$mode/decode_test/.done"); done
  if changed "$out" "${markers[@]}"; then
    if [ -z "$encoder" ] || [ "$encoder" = "$ssl_exp/pretrain/iter2/encoder.safetensors" ]; then
      source_note="pretrained here by ../ssl/run.sh on ${pretrain_languages} of the mini corpus"
      if [ "$tiny" = true ]; then source_note+=" (tiny sizes)"; fi
    else
      source_note="$encoder"
    fi
    speechssl asr results --out "$out" \
      --title "${title:-Mini corpus ASR: $lang from ${budget_minutes:-all} minutes of transcribed speech, encoder pretrained on $pretrain_languages}" \
      --notes "Encoder: $source_note. Models: recipes/asr/mini_<mode>.yaml${steps:+ with $steps steps}; test: the mini corpus's held-out speakers. frozen_linear is the encoder as it is (before adapters), adapters and lora adapt it inside (after), finetune trains all of it. Command: $cmdline" \
      "${results_args[@]}"
  else
    echo "  done before: $out"
  fi
  cat "$out"
fi
