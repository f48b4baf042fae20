#!/usr/bin/env bash
# HuBERT's pretraining iterations on the synthetic mini corpus: iteration 1 predicts k-means units of
# MFCC frames, iteration 2 k-means units of a layer of iteration 1's encoder, each with HuBERTopic's
# topic loss when topic_weight > 0; the report compares the units of both with the phone alignments.
#   egs/mini/ssl/run.sh                        # everything, default sizes (about 15 minutes on 2 CPU cores)
#   egs/mini/ssl/run.sh --stage 5 --stop_stage 8
#   egs/mini/ssl/run.sh --tiny true --data /tmp/mini_data --exp /tmp/ssl_exp   # CI-sized: 1-2 minutes
#   egs/mini/ssl/run.sh --corpus ../new_language/exp/data/en --exp exp_en --stage 1  # pretrain on a subset (speechssl subset)
# Stages (iteration i of the lists below takes stages 4i-3 .. 4i; the default names are shown):
#   0  synthesise the mini corpus into $data/mini (resumable; skipped once complete)
#   1  MFCC features of every split                  $exp/feats/mfcc
#   2  k-means on the train split                     $exp/kmeans/mfcc_km100
#   3  units of every split, and topic labels         $exp/labels/mfcc_km100, $exp/topics/mfcc_km100_t8
#   4  pretrain iteration 1                           $exp/pretrain/iter1
#   5  layer features of iteration 1's encoder        $exp/feats/hubert_iter1_l3
#   6  k-means on the train split                     $exp/kmeans/hubert_iter1_l3_km500
#   7  units of every split, and topic labels         $exp/labels/hubert_iter1_l3_km500, $exp/topics/...
#   8  pretrain iteration 2                           $exp/pretrain/iter2
#      (--ablation true: and again without the topic loss, on the same units   $exp/pretrain/iter2_notopic)
#   9  report: PNMI and purity of each iteration's units, each run's losses    $exp/report
#      (runs.tsv: each pretraining run's folder, units and topics, for egs/mini/run.sh's report)
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
data=../data                 # where the mini corpus goes, as $data/mini (relative to this folder; egs/mini/run.sh's by default)
exp=exp                      # where experiments go (relative to this folder)
hours=1.0                    # size of the mini corpus in hours of audio
corpus=""                    # pretrain on this corpus folder (cuts_<split>.jsonl.gz, e.g. from 'speechssl subset') instead of $data/mini
tiny=false                   # true: the CI-sized corpus, model and sizes below (1-2 minutes in all)
seed=0                       # seed of the corpus, k-means, topic models and pretraining
nj=$(nproc)                  # parallel jobs (corpus synthesis, topic models)
feature_types="mfcc hubert"  # what each iteration clusters: mfcc, or hubert (a layer of the previous iteration's encoder)
layers="0 3"                 # that layer, per iteration (0 = input of the first transformer layer; unused for mfcc; tiny: "0 1")
clusters="100 500"           # k-means clusters, per iteration (tiny: "20 30")
steps="1200 1200"            # pretraining steps, per iteration (tiny: "30 30")
topics=8                     # topics of each iteration's topic model (tiny: 4)
topic_weight=0.1             # weight of HuBERTopic's topic loss (0: plain HuBERT, and no topic models)
ablation=false               # true: also pretrain the last iteration without the topic loss (same units, steps, seed)
config=../../../recipes/pretrain/mini.yaml  # pretraining config, relative to this folder (tiny: recipes/pretrain/tiny.yaml)
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline

if [ "$tiny" = true ]; then  # the CI-sized defaults, for the options the command line left alone
  for setting in "layers=0 1" "clusters=20 30" "steps=30 30" "topics=4" "config=../../../recipes/pretrain/tiny.yaml"; do
    [ -n "${given[${setting%%=*}]:-}" ] || printf -v "${setting%%=*}" '%s' "${setting#*=}"
  done
fi
read -ra type_list <<< "$feature_types"
read -ra layer_list <<< "$layers"
read -ra cluster_list <<< "$clusters"
read -ra step_list <<< "$steps"
num_iters=${#type_list[@]}
if [ "$num_iters" -lt 1 ] || [ "${#layer_list[@]}" -ne "$num_iters" ] || [ "${#cluster_list[@]}" -ne "$num_iters" ] ||
   [ "${#step_list[@]}" -ne "$num_iters" ]; then
  echo "run.sh: --feature_types, --layers, --clusters and --steps need one value per iteration;" \
       "found '$feature_types', '$layers', '$clusters', '$steps'" >&2
  exit 2
fi
use_topics=true
if [[ "$topic_weight" =~ ^[0.]+$ ]]; then use_topics=false; fi
case "$ablation" in true|false) ;; *) echo "run.sh: --ablation must be true or false, found '$ablation'" >&2; exit 2 ;; esac
if [ "$ablation" = true ] && ! $use_topics; then
  echo "run.sh: --ablation true compares with the topic loss, but --topic_weight is $topic_weight" >&2
  exit 2
fi

cd "$(dirname "$0")"
. ./path.sh
mkdir -p "$exp"
echo "$cmdline" > "$exp/run.command"   # the exact command line of this run

dry_run=false
. ../../lib/stages.sh  # selected STAGE, changed MARKER [INPUT...]

corpus_marker=$corpus/cuts_train.jsonl.gz  # rewritten whenever a subset is remade
if [ -z "$corpus" ]; then
  corpus="$data/mini"
  corpus_marker=$corpus/.complete
elif selected 0; then
  echo "stage 0: --corpus $corpus given: nothing to synthesise"
fi
if [ "$corpus" = "$data/mini" ] && selected 0; then
  echo "stage 0: synthesise the mini corpus into $corpus"
  corpus_args=(--seed "$seed" --num-jobs "$nj")
  if [ "$tiny" = true ]; then corpus_args+=(--tiny); else corpus_args+=(--hours "$hours"); fi
  # make-mini-corpus writes $corpus/.complete last and skips a corpus that is already complete
  speechssl make-mini-corpus "$corpus" "${corpus_args[@]}"
fi

# pretrain DIR STEPS LABEL_DIR [--topics TOPIC_DIR topic.weight=W]: one pretraining run, skipped when
# done and its inputs unchanged
pretrain() {
  local dir=$1 steps=$2 labels=$3
  shift 3
  local inputs=("$labels/.done")
  if [ $# -gt 0 ]; then inputs+=("$2/.done"); fi
  if changed "$dir/.done" "${inputs[@]}"; then
    # an interrupted run resumes from its checkpoints, unless its labels were remade since it started
    # (config.yaml is written at every start); a finished run whose labels were remade starts over
    if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "${inputs[@]}"; then
      rm -rf "$dir"
    fi
    speechssl pretrain --config "$config" --labels "$labels" "$@" --exp "$dir" --max-steps "$steps" "run.seed=$seed"
    touch "$dir/.done"
  else
    echo "  done before: $dir"
  fi
}

label_dirs=() topic_dirs=()  # the units and topics of each iteration, for the report
for ((i = 1; i <= num_iters; i++)); do
  type=${type_list[i-1]}
  layer=${layer_list[i-1]}
  k=${cluster_list[i-1]}
  case "$type" in
    mfcc)
      feats=mfcc
      feature_args=(--kind mfcc)
      feature_inputs=("$corpus_marker") ;;
    hubert)
      if [ "$i" -eq 1 ]; then echo "run.sh: iteration 1 has no encoder to take hubert features from; start with mfcc" >&2; exit 2; fi
      prev=$exp/pretrain/iter$((i - 1))
      feats=hubert_iter$((i - 1))_l$layer
      feature_args=(--kind layer --encoder "$prev/encoder.safetensors" --layer "$layer")
      feature_inputs=("$corpus_marker" "$prev/.done") ;;
    *) echo "run.sh: unknown feature type '$type' in --feature_types (valid: mfcc, hubert)" >&2; exit 2 ;;
  esac
  units=${feats}_km$k
  feat_dir=$exp/feats/$feats
  km_dir=$exp/kmeans/$units
  label_dir=$exp/labels/$units
  topic_dir=$exp/topics/${units}_t$topics
  pretrain_dir=$exp/pretrain/iter$i
  label_dirs+=("$label_dir")
  if $use_topics; then topic_dirs+=("$topic_dir"); else topic_dirs+=(-); fi

  s=$((4 * i - 3))
  if selected $s; then
    echo "stage $s: $type features of every split of $corpus -> $feat_dir"
    if changed "$feat_dir/.done" "${feature_inputs[@]}"; then
      rm -rf "$feat_dir"
      speechssl features "${feature_args[@]}" "$corpus" "$feat_dir"
      touch "$feat_dir/.done"
    else
      echo "  done before: $feat_dir"
    fi
  fi

  s=$((4 * i - 2))
  if selected $s; then
    echo "stage $s: k-means with $k clusters on the train split of $feat_dir -> $km_dir"
    if changed "$km_dir/.done" "$feat_dir/.done"; then
      rm -rf "$km_dir"
      mkdir -p "$km_dir"
      speechssl kmeans fit "$feat_dir" "$km_dir/kmeans.safetensors" --clusters "$k" --seed "$seed"
      touch "$km_dir/.done"
    else
      echo "  done before: $km_dir"
    fi
  fi

  s=$((4 * i - 1))
  if selected $s; then
    echo "stage $s: units of every split -> $label_dir"
    if changed "$label_dir/.done" "$km_dir/.done"; then
      rm -rf "$label_dir"
      speechssl kmeans label --model "$km_dir/kmeans.safetensors" "$feat_dir" "$label_dir"
      touch "$label_dir/.done"
    else
      echo "  done before: $label_dir"
    fi
    if $use_topics; then
      echo "stage $s: a topic model with $topics topics of the train split's units, and topic labels -> $topic_dir"
      if changed "$topic_dir/.done" "$label_dir/.done"; then
        rm -rf "$topic_dir"
        mkdir -p "$topic_dir"
        speechssl topics fit "$label_dir" "$topic_dir/model.safetensors" --topics "$topics" --seed "$seed" --num-jobs "$nj"
        speechssl topics label --model "$topic_dir/model.safetensors" "$label_dir" "$topic_dir" --num-jobs "$nj"
        speechssl topics analyze "$topic_dir" > "$topic_dir/analysis.txt"
        touch "$topic_dir/.done"
      else
        echo "  done before: $topic_dir"
      fi
      cat "$topic_dir/analysis.txt"
    fi
  fi

  s=$((4 * i))
  if selected $s; then
    echo "stage $s: pretrain iteration $i on $label_dir -> $pretrain_dir"
    topic_args=()
    if $use_topics; then topic_args=(--topics "$topic_dir" "topic.weight=$topic_weight"); fi
    pretrain "$pretrain_dir" "${step_list[i-1]}" "$label_dir" "${topic_args[@]}"
    if [ "$ablation" = true ] && [ "$i" -eq "$num_iters" ]; then
      echo "stage $s: the ablation: pretrain iteration $i on $label_dir without the topic loss -> ${pretrain_dir}_notopic"
      pretrain "${pretrain_dir}_notopic" "${step_list[i-1]}" "$label_dir"
    fi
  fi
done

s=$((4 * num_iters + 1))
if selected $s; then
  out=$exp/report
  echo "stage $s: report on the units and the pretraining of every iteration -> $out"
  report_inputs=()
  runs=()  # the pretraining runs: iter1 .. iterN (and iterN_notopic)
  for ((i = 1; i <= num_iters; i++)); do runs+=("iter$i"); done
  if [ "$ablation" = true ]; then runs+=("iter${num_iters}_notopic"); fi
  for ((i = 1; i <= num_iters; i++)); do report_inputs+=("${label_dirs[i-1]}/.done"); done
  for run in "${runs[@]}"; do report_inputs+=("$exp/pretrain/$run/.done"); done
  if changed "$out/.done" "${report_inputs[@]}"; then
    rm -rf "$out"
    mkdir -p "$out"
    # phone purity, cluster purity and PNMI of each iteration's units against the phone alignments
    speechssl label-quality "${label_dirs[@]}" --cuts "$corpus" > "$out/label_quality.txt"
    speechssl label-quality "${label_dirs[@]}" --cuts "$corpus" --json > "$out/label_quality.json"
    # the first and last training records and the last validation of each run (its whole curve is
    # log.jsonl, and tensorboard/); runs.tsv: each run's folder, units and topics (- for none)
    printf 'run\tpretrain\tunits\ttopics\n' > "$out/runs.tsv"
    for run in "${runs[@]}"; do
      log=$exp/pretrain/$run/log.jsonl
      i=${run#iter}; i=${i%_notopic}
      name="iteration $i" topics=${topic_dirs[i-1]}
      if [ "$run" != "iter$i" ]; then name+=" without the topic loss" topics=-; fi
      printf '%s\t%s\t%s\t%s\n' "$run" "$exp/pretrain/$run" "${label_dirs[i-1]}" "$topics" >> "$out/runs.tsv"
      {
        echo "$name: units ${label_dirs[i-1]}, log $log"
        echo "  first train: $(grep -m 1 '"split": "train"' "$log")"
        echo "  last train:  $(grep '"split": "train"' "$log" | tail -n 1)"
        echo "  last valid:  $(grep '"split": "valid"' "$log" | tail -n 1)"
      } >> "$out/losses.txt"
    done
    touch "$out/.done"
  fi
  echo "label quality (the units of iteration i are the targets of pretraining iteration i):"
  cat "$out/label_quality.txt"
  echo "losses:"
  cat "$out/losses.txt"
fi
