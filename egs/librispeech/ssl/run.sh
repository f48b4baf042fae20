#!/usr/bin/env bash
# HuBERT Base or HuBERTopic Base pretrained on LibriSpeech 960 h, in HuBERT's two iterations:
# iteration 1 predicts k-means units (100) of MFCC frames, iteration 2 k-means units (500) of layer 6
# of iteration 1's encoder. --model picks one model per run (recipes/pretrain/<model>_base.yaml):
# hubert, or hubertopic (HuBERT + the topic loss on LDA topics of each utterance's units; it adds a
# topic model per iteration). Iteration 1's MFCC units do not depend on the model: a second run with
# the other --model reuses them. LibriSpeech is not downloaded: unpack it from https://www.openslr.org/12
# (the three train parts are 59 GB of FLAC) and pass --corpus_dir.
#   egs/librispeech/ssl/run.sh --corpus_dir /data/LibriSpeech --ngpu 8
#   egs/librispeech/ssl/run.sh --corpus_dir /data/LibriSpeech --ngpu 8 --model hubertopic
#   egs/librispeech/ssl/run.sh ... --dry-run true      # print the commands of the selected stages, run nothing
# The train split is the train parts together: the CLI prepares one split per LibriSpeech part and
# pretraining reads one split, so stage 0 links the parts into one folder and prepares that folder
# as the split 'train' (cut id = <part>/<speaker>/<chapter>/<utterance>, speaker from the path).
# Cost. Not measured here: this project has had no GPU so far; these are published figures.
#   GPU-hours, per model (HuBERTopic's topic head is a pooled linear layer: count it as HuBERT):
#     iteration 1 (250k steps): ~690 V100 GPU-hours, ~100 H100 GPU-hours
#     iteration 2 (400k steps): ~1100 V100 GPU-hours, ~160 H100 GPU-hours
#   The HuBERT paper (Hsu et al. 2021, arXiv 2106.07447) and fairseq's hubert_base_librispeech
#   config train Base on 32 GPUs, 87.5 s of audio per GPU per step, 250k steps in iteration 1 and
#   400k in iteration 2, without a wall-clock time. Fast-HuBERT (Yang et al. 2023, arXiv 2309.13860)
#   trains Base on 960 h in 1.1 days on 8 V100s, 5.2x faster than the original implementation: about
#   5.7 days x 8 V100s = ~1100 V100 GPU-hours (its abstract does not say for which iteration; read here
#   as one 400k-step run). minimal_hubert (github.com/mxmpl/minimal_hubert)
#   reports one 400k-step iteration in ~10 h on 16 H100s = ~160 H100 GPU-hours. Iteration 1 is
#   scaled from these by 250k/400k steps. Layer-6 features (stage 5) and the k-means stages are a
#   forward pass and CPU work: small next to training.
#   Disk for features (--feature_dtype float16 halves the float32 figures; the audio stays where it is):
#     MFCC, 39 dims at 100 frames/s:       960 h x 3600 x 100 x 39 x 4 B  =  54 GB float32,  27 GB float16
#     layer 6, 768 dims at 50 frames/s:    960 h x 3600 x 50 x 768 x 4 B  = 531 GB float32, 265 GB float16
#   ($exp/feats/<name> can be deleted once its labels ($exp/labels/<name>_km<k>) are done.)
# Check first: the disk above under --exp; that LibriSpeech unpacked whole (stage 0 prints hours and
# cuts per split: 281,241 cuts and 960.9 h for the three train parts); then run stage 4 for a few
# hundred steps and read the step time from $exp/pretrain/<model>_iter1/log.jsonl: steps x step time
# x --ngpu is the real GPU-hour figure. --batch_gpus keeps fairseq's batch (32 GPUs x 87.5 s) on
# fewer GPUs by accumulating gradients.
# Stages (iteration i of the lists below takes stages 4i-3 .. 4i; the default names are shown):
#   0  manifests: the valid part, and the train parts as one split  $data/librispeech, $data/librispeech/train
#   1  MFCC features of train and the valid part (sharded, --nj)     $exp/feats/mfcc
#   2  k-means, 100 clusters, on a sample of train (--kmeans_percent) $exp/kmeans/mfcc_km100
#   3  units of every split (and for hubertopic topic labels)        $exp/labels/mfcc_km100, $exp/topics/mfcc_km100_t100
#   4  pretrain iteration 1 (torchrun on --ngpu GPUs)                 $exp/pretrain/<model>_iter1
#   5  layer-6 features of iteration 1's encoder (a shard per GPU)    $exp/feats/<model>_iter1_l6
#   6  k-means, 500 clusters                                          $exp/kmeans/<model>_iter1_l6_km500
#   7  units of every split (and topic labels)                        $exp/labels/<model>_iter1_l6_km500, $exp/topics/...
#   8  pretrain iteration 2                                           $exp/pretrain/<model>_iter2
#   9  report: unit usage and entropy of each iteration's units on the valid part   $exp/report/<model>
#      (LibriSpeech's manifests have no phone alignments: no PNMI or purity)
# --corpus_dir is needed by stage 0 when it has work to do (a dry run checks it too, so that it prints
# the real commands, but not that the path exists). Relative paths are relative to this folder.
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus_dir=""                # LibriSpeech as unpacked (the LibriSpeech/ folder or the one holding it); required for stage 0
data=data                    # where manifests go, as $data/librispeech
exp=exp                      # where features, k-means models, labels, topics and models go
model=hubert                 # hubert (recipes/pretrain/hubert_base.yaml) or hubertopic (hubertopic_base.yaml, with topic models)
config=""                    # pretraining config of both iterations (empty: ../../../recipes/pretrain/<model>_base.yaml)
train_parts="train-clean-100 train-clean-360 train-other-500"  # LibriSpeech parts pretrained on, as one split 'train'
valid_part=dev-clean         # LibriSpeech part to validate on
ngpu=8                       # GPUs: torchrun processes of pretraining, and shards of the layer features
batch_gpus=32                # GPUs the config's per-GPU batch is meant for: a step accumulates batch_gpus/ngpu batches per GPU (fairseq's update_freq)
feature_types="mfcc hubert"  # what each iteration clusters: mfcc, or hubert (a layer of the previous iteration's encoder)
layers="0 6"                 # that layer, per iteration (0 = input of the first transformer layer; unused for mfcc)
clusters="100 500"           # k-means clusters, per iteration
steps="250000 400000"        # pretraining steps, per iteration (HuBERT Base's)
topics=100                   # topics of each iteration's topic model (hubertopic)
topic_weight=0.5             # weight of HuBERTopic's topic loss (hubertopic)
kmeans_percent=10            # % of the train frames k-means is fitted on (fairseq's 10%), at most --kmeans_max_frames
kmeans_max_frames=10000000   # the memory bound of the k-means sample (10M frames: 1.6 GB of MFCC, 31 GB of layer features)
feature_dtype=float16        # dtype of the feature dumps on disk (float32 doubles the disk)
nj=$(nproc)                  # CPU jobs: manifest preparation, MFCC feature shards, topic models
seed=0                       # seed of k-means, topic models and pretraining
dry_run=false                # true: print the commands of the selected stages, run and write nothing
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$dry_run" in true|false) ;; *) echo "run.sh: --dry_run must be true or false, found '$dry_run'" >&2; exit 2 ;; esac
case "$model" in hubert|hubertopic) ;; *) echo "run.sh: --model must be hubert or hubertopic, found '$model'" >&2; exit 2 ;; esac
case "$feature_dtype" in float16|float32) ;; *) echo "run.sh: --feature_dtype must be float16 or float32, found '$feature_dtype'" >&2; exit 2 ;; esac
for name in stage stop_stage ngpu batch_gpus topics kmeans_percent kmeans_max_frames nj seed; do
  if ! [[ "${!name}" =~ ^[0-9]+$ ]]; then echo "run.sh: --$name must be a whole number, found '${!name}'" >&2; exit 2; fi
done
for name in ngpu nj topics kmeans_percent kmeans_max_frames; do
  if [ "${!name}" -lt 1 ]; then echo "run.sh: --$name must be at least 1, found '${!name}'" >&2; exit 2; fi
done
if [ "$batch_gpus" -lt "$ngpu" ] || [ $((batch_gpus % ngpu)) -ne 0 ]; then
  echo "run.sh: --batch_gpus ($batch_gpus) must be a multiple of --ngpu ($ngpu): each GPU accumulates batch_gpus/ngpu batches per step" >&2
  exit 2
fi
accum_steps=$((batch_gpus / ngpu))
read -ra train_list <<< "$train_parts"
read -ra type_list <<< "$feature_types"
read -ra layer_list <<< "$layers"
read -ra cluster_list <<< "$clusters"
read -ra step_list <<< "$steps"
if [ "${#train_list[@]}" -eq 0 ] || [ -z "$valid_part" ]; then
  echo "run.sh: --train_parts and --valid_part need at least one part each" >&2
  exit 2
fi
num_iters=${#type_list[@]}
if [ "$num_iters" -lt 1 ] || [ "${#layer_list[@]}" -ne "$num_iters" ] || [ "${#cluster_list[@]}" -ne "$num_iters" ] ||
   [ "${#step_list[@]}" -ne "$num_iters" ]; then
  echo "run.sh: --feature_types, --layers, --clusters and --steps need one value per iteration;" \
       "found '$feature_types', '$layers', '$clusters', '$steps'" >&2
  exit 2
fi
for ((i = 0; i < num_iters; i++)); do
  case "${type_list[i]}" in
    mfcc) ;;
    hubert) if [ "$i" -eq 0 ]; then echo "run.sh: iteration 1 has no encoder to take hubert features from; start with mfcc" >&2; exit 2; fi ;;
    *) echo "run.sh: unknown feature type '${type_list[i]}' in --feature_types (valid: mfcc, hubert)" >&2; exit 2 ;;
  esac
  for v in "${layer_list[i]}" "${cluster_list[i]}" "${step_list[i]}"; do
    if ! [[ "$v" =~ ^[0-9]+$ ]]; then echo "run.sh: --layers, --clusters and --steps take whole numbers, found '$v'" >&2; exit 2; fi
  done
done
use_topics=false
if [ "$model" = hubertopic ]; then use_topics=true; fi
config=${config:-../../../recipes/pretrain/${model}_base.yaml}

cd "$(dirname "$0")"
. ./path.sh

# the stage helpers (selected, changed, run, mark_done, clear_dir, require, require_path; the touched map)
. ../../lib/stages.sh

# run a command with its standard output into a file, or in a dry run print it ("+", the words, "> FILE")
run_to() {
  local out=$1
  shift
  if [ "$dry_run" = true ]; then
    printf '+'; printf ' %q' "$@"; printf ' > %q\n' "$out"
  else
    "$@" > "$out"
  fi
}
# run_shards N LOG_DIR DEVICE CMD...: CMD --device D --shard i/N for i = 1..N at once, each logging to
# LOG_DIR/shard-i.log; DEVICE cpu gives every shard the CPU (one thread each), gpu gives shard i
# GPU (i-1) mod --ngpu. Fails when a shard failed; a re-run skips the shards that finished.
run_shards() {
  local n=$1 log_dir=$2 device=$3 i dev failed=0 pids=()
  shift 3
  local env_args=()
  if [ "$device" = cpu ]; then env_args=(env OMP_NUM_THREADS=1); fi
  if [ "$dry_run" = false ]; then mkdir -p "$log_dir"; fi
  for ((i = 1; i <= n; i++)); do
    dev=cpu
    if [ "$device" = gpu ]; then dev=cuda:$(((i - 1) % ngpu)); fi
    if [ "$dry_run" = true ]; then
      run "${env_args[@]}" "$@" --device "$dev" --shard "$i/$n"
    else
      "${env_args[@]}" "$@" --device "$dev" --shard "$i/$n" > "$log_dir/shard-$i.log" 2>&1 &
      pids+=($!)
    fi
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if ! wait "${pids[i]}"; then
      echo "run.sh: feature shard $((i + 1))/$n failed; its log: $log_dir/shard-$((i + 1)).log" >&2
      failed=1
    fi
  done
  return $failed
}

manifests=$data/librispeech          # cuts_<valid_part>.jsonl.gz (speechssl prepare librispeech)
train_manifests=$manifests/train     # audio/<part> (links to the train parts) and cuts_train.jsonl.gz
valid_cuts=$manifests/cuts_$valid_part.jsonl.gz
train_cuts=$train_manifests/cuts_train.jsonl.gz
corpus_root=""                       # the LibriSpeech/ folder, absolute (the links point into it)
if [ -n "$corpus_dir" ]; then
  corpus_root=$corpus_dir
  if [ -d "$corpus_dir/LibriSpeech" ]; then corpus_root=$corpus_dir/LibriSpeech; fi
  corpus_root=$(realpath -m "$corpus_root")
fi
# true when stage 0 has work to do: not done, a manifest is missing, or the train parts changed
prepare_needed() {
  changed "$manifests/.done" && return 0
  [ -e "$valid_cuts" ] && [ -e "$train_cuts" ] || return 0
  local p links=("$train_manifests"/audio/*)
  [ "${#links[@]}" -eq "${#train_list[@]}" ] || return 0
  for p in "${train_list[@]}"; do [ -L "$train_manifests/audio/$p" ] || return 0; done
  return 1
}
# the options that the selected stages need, checked before anything runs
if selected 0 && prepare_needed; then
  require corpus_dir "stage 0 (manifests)"
  require_path corpus_dir
  if [ "$dry_run" = false ]; then
    for p in "${train_list[@]}" "$valid_part"; do
      if [ ! -d "$corpus_root/$p" ]; then
        echo "run.sh: no LibriSpeech part $corpus_root/$p (--train_parts, --valid_part; see --corpus_dir)" >&2
        exit 2
      fi
    done
  fi
fi
if [ "$dry_run" = false ] && [ ! -e "$config" ]; then
  for ((i = 1; i <= num_iters; i++)); do
    if selected $((4 * i)); then echo "run.sh: no pretraining config $config (--config)" >&2; exit 2; fi
  done
fi

start_run  # $exp/run.command, or in a dry run a line saying that nothing runs

if selected 0; then
  echo "stage 0: manifests of $valid_part -> $manifests, and of ${train_list[*]} as one split 'train' -> $train_manifests"
  if prepare_needed; then
    require corpus_dir "stage 0 (manifests)"
    clear_dir "$manifests"
    run speechssl prepare librispeech "$corpus_dir" "$manifests" --parts "$valid_part" --num-jobs "$nj"
    run mkdir -p "$train_manifests/audio"
    for p in "${train_list[@]}"; do run ln -s "$corpus_root/$p" "$train_manifests/audio/$p"; done
    run speechssl prepare folder "$train_manifests/audio" "$train_manifests" --split train --speaker-from-dir 2 \
      --language en --num-jobs "$nj"
    mark_done "$manifests/.done"
  else
    echo "  done before: $manifests"
  fi
fi

label_dirs=()  # the units of each iteration, for the report
pretrain_dirs=()
for ((i = 1; i <= num_iters; i++)); do
  type=${type_list[i-1]}
  layer=${layer_list[i-1]}
  k=${cluster_list[i-1]}
  case "$type" in
    mfcc)
      feats=mfcc
      feature_args=(--kind mfcc)
      shards=$nj
      shard_device=cpu
      valid_device=cpu
      feature_inputs=("$manifests/.done") ;;
    hubert)
      prev=$exp/pretrain/${model}_iter$((i - 1))
      feats=${model}_iter$((i - 1))_l$layer
      feature_args=(--kind layer --encoder "$prev/encoder.safetensors" --layer "$layer")
      shards=$ngpu
      shard_device=gpu
      valid_device=cuda:0
      feature_inputs=("$manifests/.done" "$prev/.done") ;;
  esac
  units=${feats}_km$k
  feat_dir=$exp/feats/$feats
  km_dir=$exp/kmeans/$units
  label_dir=$exp/labels/$units
  topic_dir=$exp/topics/${units}_t$topics
  pretrain_dir=$exp/pretrain/${model}_iter$i
  label_dirs+=("$label_dir")
  pretrain_dirs+=("$pretrain_dir")

  s=$((4 * i - 3))
  if selected $s; then
    echo "stage $s: $type features of train ($shards shards) and $valid_part -> $feat_dir"
    if changed "$feat_dir/.done" "${feature_inputs[@]}"; then
      clear_dir "$feat_dir"
      run speechssl features "${feature_args[@]}" "$valid_cuts" "$feat_dir" --store-dtype "$feature_dtype" --device "$valid_device"
      run_shards "$shards" "$feat_dir/log" "$shard_device" \
        speechssl features "${feature_args[@]}" "$train_cuts" "$feat_dir" --store-dtype "$feature_dtype"
      mark_done "$feat_dir/.done"
    else
      echo "  done before: $feat_dir"
    fi
  fi

  s=$((4 * i - 2))
  if selected $s; then
    echo "stage $s: k-means with $k clusters on $kmeans_percent% of the train frames of $feat_dir -> $km_dir"
    if changed "$km_dir/.done" "$feat_dir/.done"; then
      clear_dir "$km_dir"
      run mkdir -p "$km_dir"
      run speechssl kmeans fit "$feat_dir" "$km_dir/kmeans.safetensors" --split train --clusters "$k" \
        --percent "$kmeans_percent" --max-frames "$kmeans_max_frames" --seed "$seed"
      mark_done "$km_dir/.done"
    else
      echo "  done before: $km_dir"
    fi
  fi

  s=$((4 * i - 1))
  if selected $s; then
    echo "stage $s: units of train and $valid_part -> $label_dir"
    if changed "$label_dir/.done" "$km_dir/.done"; then
      clear_dir "$label_dir"
      run speechssl kmeans label --model "$km_dir/kmeans.safetensors" "$feat_dir" "$label_dir"
      mark_done "$label_dir/.done"
    else
      echo "  done before: $label_dir"
    fi
    if $use_topics; then
      echo "stage $s: a topic model with $topics topics of the train units, and topic labels -> $topic_dir"
      if changed "$topic_dir/.done" "$label_dir/.done"; then
        clear_dir "$topic_dir"
        run mkdir -p "$topic_dir"
        run speechssl topics fit "$label_dir" "$topic_dir/model.safetensors" --split train --topics "$topics" \
          --seed "$seed" --num-jobs "$nj"
        run speechssl topics label --model "$topic_dir/model.safetensors" "$label_dir" "$topic_dir" --num-jobs "$nj"
        run_to "$topic_dir/analysis.txt" speechssl topics analyze "$topic_dir"
        mark_done "$topic_dir/.done"
      else
        echo "  done before: $topic_dir"
      fi
      if [ "$dry_run" = false ]; then cat "$topic_dir/analysis.txt"; fi
    fi
  fi

  s=$((4 * i))
  if selected $s; then
    echo "stage $s: pretrain $model iteration $i on $label_dir, $ngpu GPUs -> $pretrain_dir"
    pretrain_inputs=("$label_dir/.done")
    topic_args=()
    if $use_topics; then
      pretrain_inputs+=("$topic_dir/.done")
      topic_args=(--topics "$topic_dir" "topic.weight=$topic_weight")
    fi
    if changed "$pretrain_dir/.done" "${pretrain_inputs[@]}"; then
      # an interrupted run resumes from its checkpoints, unless its labels were remade since it started
      # (config.yaml is written at every start); a finished run whose labels were remade starts over
      if [ -e "$pretrain_dir/.done" ] || changed "$pretrain_dir/config.yaml" "${pretrain_inputs[@]}"; then clear_dir "$pretrain_dir"; fi
      run torchrun --standalone --nproc_per_node "$ngpu" -m speechssl.cli.pretrain --config "$config" \
        --labels "$label_dir" "${topic_args[@]}" --exp "$pretrain_dir" --max-steps "${step_list[i-1]}" \
        "data.train_split=train" "data.valid_split=$valid_part" "optim.accum_steps=$accum_steps" "run.seed=$seed"
      mark_done "$pretrain_dir/.done"
    else
      echo "  done before: $pretrain_dir"
    fi
  fi
done

s=$((4 * num_iters + 1))
if selected $s; then
  out=$exp/report/$model
  echo "stage $s: unit usage and entropy of every iteration's units on $valid_part -> $out"
  report_inputs=()
  for ((i = 1; i <= num_iters; i++)); do report_inputs+=("${label_dirs[i-1]}/.done" "${pretrain_dirs[i-1]}/.done"); done
  if changed "$out/.done" "${report_inputs[@]}"; then
    clear_dir "$out"
    run mkdir -p "$out"
    run_to "$out/label_quality.txt" speechssl label-quality "${label_dirs[@]}" --split "$valid_part"
    run_to "$out/label_quality.json" speechssl label-quality "${label_dirs[@]}" --split "$valid_part" --json
    mark_done "$out/.done"
  else
    echo "  done before: $out"
  fi
  if [ "$dry_run" = false ]; then
    echo "the units of iteration i are the targets of pretraining iteration i (losses: <pretrain dir>/log.jsonl):"
    cat "$out/label_quality.txt"
  fi
fi
