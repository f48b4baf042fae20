#!/usr/bin/env bash
# The main job: the whole toolkit on the synthetic mini corpus (espeak-ng speech in 4 languages,
# 4 prosody styles, 40 voices), from audio to a report of what each step learned.
#   egs/mini/run.sh                                   # default sizes: within an hour on 2 CPU cores
#   egs/mini/run.sh --tiny true --data /tmp/mini_data --exp /tmp/mini_exp   # CI-sized: a few minutes
#   egs/mini/run.sh --stage 9                         # only the report, from what the stages made
# German is held out of pretraining: the encoder is pretrained on English, Spanish and French, and
# stage 6 learns German ASR from 10 minutes of it, before and after adapters.
# Relative paths (--data, --exp) are relative to this folder. Every stage skips the work it finished
# before (its .done marker) unless its inputs were remade; an interrupted stage resumes.
# Stages:
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  check that every recording decodes; corpus statistics                $exp/stats
#   2  the pretraining languages (all but --new_lang) and --new_lang's ASR data     $exp/data
#   3  pretraining (ssl/run.sh): iteration 1 on MFCC units, iteration 2 on units of iteration
#      1's layer, both with HuBERTopic's topic loss; iteration 2 again without it (the ablation);
#      label quality of each iteration's units and the topic-label analysis        $exp/ssl
#   4  tokens: k-means of iteration 2's layer, units of every utterance, unit BPE   $exp/tokens
#   5  interfaces: emotion from iteration 2 through its last layer, a learned weighted sum of all
#      layers, and a convolution over them                                          $exp/interfaces/<interface>
#   6  ASR of --new_lang (CTC, recipes/asr/mini_frozen_linear.yaml): each system frozen, and iteration
#      2 with adapters (recipes/asr/mini_adapters.yaml): CER before and after adapters   $exp/asr/<system>
#   7  speaker verification (recipes/sv/mini_xvector.yaml) on each system, held-out speakers' trials   $exp/sv/<system>
#   8  emotion (prosody style) recognition (recipes/er/mini_mlp.yaml) on each system    $exp/er/<system>
#   9  the report: Markdown + PNG figures ('speechssl report')                      $exp/report/report.md
# The systems compared in stages 6-8: mfcc (39 MFCC + deltas, no encoder), random (iteration 2's
# architecture with random weights), iter1, iter2, iter2_notopic (the pretrained encoders, frozen,
# a learned weighted sum of their layers).
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0              # first stage to run
stop_stage=100       # last stage to run
data=data            # where corpora go, as $data/mini (relative to this folder)
exp=exp              # where everything else goes (relative to this folder)
hours=1.0            # size of the mini corpus in hours of audio
seed=0               # seed of the corpus, k-means, topic models, pretraining and training
tiny=false           # true: the CI-sized corpus, pretraining and training steps (a few minutes in all)
nj=$(nproc)          # parallel jobs (corpus synthesis, checks, topic models)
new_lang=de          # the language held out of pretraining, learnt by ASR with adapters
budget_minutes=10    # minutes of --new_lang's transcribed speech that ASR trains on
systems="mfcc random iter1 iter2 iter2_notopic"  # what stages 6-8 compare (see above)
asr_steps=""         # ASR training steps (empty: the configs', 300; tiny: 20)
sv_steps=200         # speaker-verification training steps (tiny: 20)
er_steps=""          # emotion training steps (empty: the config's, 300; tiny: 20)
token_layer=3        # the layer of iteration 2 that tokens come from (tiny: 1)
token_clusters=100   # k-means clusters of the tokens (tiny: 20)
bpe_vocab=300        # unit BPE vocabulary (tiny: 40)
# ----

. "$(dirname "$0")/../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
if [ "$tiny" = true ]; then  # the CI-sized defaults, for the options the command line left alone
  for setting in asr_steps=20 sv_steps=20 er_steps=20 token_layer=1 token_clusters=20 bpe_vocab=40; do
    [ -n "${given[${setting%%=*}]:-}" ] || printf -v "${setting%%=*}" '%s' "${setting#*=}"
  done
fi
read -ra system_list <<< "$systems"
for s in "${system_list[@]}"; do
  case "$s" in
    mfcc|random|iter1|iter2|iter2_notopic) ;;
    *) echo "run.sh: unknown system '$s' in --systems (valid: mfcc random iter1 iter2 iter2_notopic)" >&2; exit 2 ;;
  esac
done
asr_systems=("${system_list[@]}")  # iteration 2 frozen is the "before" of the adapters, always trained
if [[ " $systems " != *" iter2 "* ]]; then asr_systems+=(iter2); fi
case "$new_lang" in de|en|es|fr) ;; *) echo "run.sh: --new_lang must be one of de en es fr, found '$new_lang'" >&2; exit 2 ;; esac

cd "$(dirname "$0")"
. ./path.sh
dry_run=false
. ../lib/stages.sh
mkdir -p "$exp"
echo "$cmdline" > "$exp/run.command"   # the exact command line of this run

corpus=$data/mini
pretrain_langs=$(echo de en es fr | tr ' ' '\n' | grep -vx "$new_lang" | paste -sd ' ')
pretrain_data=$exp/data/pretrain
asr_data=$exp/data/${new_lang}_${budget_minutes}min
ssl=$exp/ssl
iter2=$ssl/pretrain/iter2/encoder.safetensors
configs=../../recipes

if selected 0; then
  echo "stage 0: synthesise the mini corpus into $corpus"
  corpus_args=(--seed "$seed" --num-jobs "$nj")
  if [ "$tiny" = true ]; then corpus_args+=(--tiny); else corpus_args+=(--hours "$hours"); fi
  # make-mini-corpus writes $corpus/.complete last and skips a corpus that is already complete
  speechssl make-mini-corpus "$corpus" "${corpus_args[@]}"
fi

if selected 1; then
  echo "stage 1: check the audio and the statistics of $corpus"
  out=$exp/stats
  if changed "$out/.done" "$corpus/.complete"; then
    rm -rf "$out"; mkdir -p "$out"
    for split in train dev test; do
      speechssl validate "$corpus/cuts_$split.jsonl.gz" --strict --num-jobs "$nj" --skipped "$out/skipped_$split.tsv" -q
    done
    speechssl stats "$corpus" > "$out/stats.txt"
    speechssl stats "$corpus" --json > "$out/stats.json"
    touch "$out/.done"
  fi
  cat "$out/stats.txt"
fi

if selected 2; then
  echo "stage 2: the pretraining languages ($pretrain_langs) -> $pretrain_data; $budget_minutes minutes of $new_lang -> $asr_data"
  if changed "$pretrain_data/.done" "$corpus/.complete"; then
    rm -rf "$pretrain_data"
    read -ra langs <<< "$pretrain_langs"
    speechssl subset "$corpus" "$pretrain_data" --languages "${langs[@]}"
    touch "$pretrain_data/.done"
  else
    echo "  done before: $pretrain_data"
  fi
  if changed "$asr_data/.done" "$corpus/.complete"; then
    rm -rf "$asr_data"
    speechssl subset "$corpus" "$asr_data" --languages "$new_lang" --max-minutes "$budget_minutes" --seed "$seed"
    touch "$asr_data/.done"
  else
    echo "  done before: $asr_data"
  fi
fi

if selected 3; then
  echo "stage 3: pretrain on $pretrain_data with ssl/run.sh -> $ssl"
  # its stages 1-9: features, k-means, units and topics, pretraining, per iteration; the report
  ./ssl/run.sh --stage 1 --corpus "$(realpath -m "$pretrain_data")" --exp "$(realpath -m "$ssl")" \
    --tiny "$tiny" --seed "$seed" --nj "$nj" --ablation true
fi

tokens=$exp/tokens
if selected 4; then
  echo "stage 4: tokens of $corpus from layer $token_layer of $iter2 ($token_clusters units, BPE $bpe_vocab) -> $tokens"
  if changed "$tokens/.done" "$ssl/pretrain/iter2/.done" "$corpus/.complete"; then
    rm -rf "$tokens"
    speechssl features --kind layer --encoder "$iter2" --layer "$token_layer" "$corpus" "$tokens/feats"
    speechssl kmeans fit "$tokens/feats" "$tokens/kmeans.safetensors" --clusters "$token_clusters" --seed "$seed"
    speechssl kmeans label --model "$tokens/kmeans.safetensors" "$tokens/feats" "$tokens/units"  # frame units, for label quality
    rm -rf "$tokens/feats"  # no longer needed; tokens extract computes its own
    speechssl tokens extract --encoder "$iter2" --kmeans "$tokens/kmeans.safetensors" "$corpus" "$tokens/extract" --dedup
    speechssl tokens bpe-train --vocab-size "$bpe_vocab" "$tokens/extract/tokens.jsonl" "$tokens/bpe$bpe_vocab" --seed "$seed"
    speechssl tokens bpe-encode --model "$tokens/bpe$bpe_vocab.model" "$tokens/extract/tokens.jsonl" "$tokens/bpe$bpe_vocab.jsonl"
    touch "$tokens/.done"
  else
    echo "  done before: $tokens"
  fi
fi

# upstream_args SYSTEM: the training options of SYSTEM's upstream, in the array up_args
upstream_args() {
  case "$1" in
    mfcc) up_args=(encoder.kind=mfcc) ;;
    random) up_args=(--encoder "$iter2" encoder.init=random) ;;
    *) up_args=(--encoder "$ssl/pretrain/$1/encoder.safetensors") ;;
  esac
}
# downstream TASK DIR CORPUS_DIR CONFIG STEPS [ARG...]: 'speechssl TASK train' into DIR (skipped when
# done and its corpus and encoder unchanged; an interrupted run resumes), then its test ('asr
# decode' -> DIR/decode_test, 'sv evaluate' / 'er evaluate' -> DIR/eval_test)
downstream() {
  local task=$1 dir=$2 data_dir=$3 config=$4 steps=$5
  shift 5
  local inputs=() args=("$@") i
  if [ "$data_dir" = "$corpus" ]; then inputs=("$corpus/.complete"); else inputs=("$data_dir/.done"); fi
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = --encoder ]; then inputs+=("${args[i+1]}"); fi
  done
  if [ -n "$steps" ]; then args+=("optim.max_steps=$steps"); fi
  echo "  $task: $config ${args[*]} -> $dir"
  if changed "$dir/.done" "${inputs[@]}"; then
    if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "${inputs[@]}"; then rm -rf "$dir"; fi
    speechssl "$task" train --config "$config" --corpus "$data_dir" --exp "$dir" "${args[@]}" "run.seed=$seed" run.progress=false
    case "$task" in
      asr) speechssl asr decode "$dir" --split test --out "$dir/decode_test" ;;
      sv) speechssl sv evaluate "$dir" --trials "$corpus/trials_test.txt" --split test --asnorm true --out "$dir/eval_test" ;;
      er) speechssl er evaluate "$dir" --split test --out "$dir/eval_test" ;;
    esac
    touch "$dir/.done"
  else
    echo "  done before: $dir"
  fi
}

if selected 5; then
  echo "stage 5: emotion from $iter2 through each interface -> $exp/interfaces"
  for interface in last weighted_sum conv; do
    downstream er "$exp/interfaces/$interface" "$corpus" "$configs/er/mini_mlp.yaml" "$er_steps" \
      --encoder "$iter2" "head.interface=$interface"
  done
fi

if selected 6; then
  echo "stage 6: ASR of $new_lang from $asr_data: each system frozen; iteration 2 with adapters -> $exp/asr"
  for s in "${asr_systems[@]}"; do
    upstream_args "$s"
    downstream asr "$exp/asr/$s" "$asr_data" "$configs/asr/mini_frozen_linear.yaml" "$asr_steps" "${up_args[@]}"
  done
  downstream asr "$exp/asr/iter2_adapters" "$asr_data" "$configs/asr/mini_adapters.yaml" "$asr_steps" --encoder "$iter2"
fi

if selected 7; then
  echo "stage 7: speaker verification on each system -> $exp/sv"
  for s in "${system_list[@]}"; do
    upstream_args "$s"
    downstream sv "$exp/sv/$s" "$corpus" "$configs/sv/mini_xvector.yaml" "$sv_steps" "${up_args[@]}" \
      "data.valid_trials=$corpus/trials_dev.txt"
  done
fi

if selected 8; then
  echo "stage 8: emotion recognition on each system -> $exp/er"
  for s in "${system_list[@]}"; do
    upstream_args "$s"
    downstream er "$exp/er/$s" "$corpus" "$configs/er/mini_mlp.yaml" "$er_steps" "${up_args[@]}"
  done
fi

if selected 9; then
  out=$exp/report
  echo "stage 9: the report -> $out/report.md"
  named() {  # named PREFIX SUFFIX NAME...: NAME=PREFIX/NAME/SUFFIX for each NAME
    local prefix=$1 suffix=$2 n
    shift 2
    for n in "$@"; do echo "$n=$prefix/$n$suffix"; done
  }
  mapfile -t asr_args < <(named "$exp/asr" /decode_test "${asr_systems[@]}" iter2_adapters)
  mapfile -t sv_args < <(named "$exp/sv" /eval_test "${system_list[@]}")
  mapfile -t er_args < <(named "$exp/er" /eval_test "${system_list[@]}")
  mapfile -t interface_args < <(named "$exp/interfaces" /eval_test last weighted_sum conv)
  rm -rf "$out"
  # the pretraining runs, their units and topics: ssl/run.sh's runs.tsv
  speechssl report --out "$out" --title "speechssl on the mini corpus" --stats "$exp/stats/stats.json" \
    --runs "$ssl/report/runs.tsv" --units "tokens=$tokens/units" --tokens "$tokens/extract" --bpe "$tokens/bpe$bpe_vocab.jsonl" \
    --interfaces "${interface_args[@]}" --asr "${asr_args[@]}" --sv "${sv_args[@]}" --er "${er_args[@]}" \
    --compare "${system_list[@]}" --focus iter2 --before-after iter2 iter2_adapters \
    --notes "Pretrained on $pretrain_langs; ASR of $new_lang from $budget_minutes minutes of it. Command: $cmdline"
  echo "report: $out/report.md"
fi
