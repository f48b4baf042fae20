#!/usr/bin/env bash
# CTC speech recognition on LibriSpeech with a pretrained encoder: one model per training mode
# (recipes/asr/<mode>.yaml: frozen = SUPERB's frozen encoder + weighted sum of layers + 2-layer BiLSTM,
# finetune = full fine-tuning with the feature encoder frozen; adapters and lora work too), each
# decoded on the test parts, and a table of WERs. LibriSpeech is not downloaded: unpack it from
# https://www.openslr.org/12 (train-clean-100 is 6.3 GB) and pass --corpus_dir.
#   egs/librispeech/asr/run.sh --corpus_dir /data/LibriSpeech --encoder ../ssl/exp/pretrain/hubert_iter2/encoder.safetensors
#   egs/librispeech/asr/run.sh --corpus_dir /data/LibriSpeech --encoder /models/hubert_base.safetensors --modes frozen
#   egs/librispeech/asr/run.sh ... --dry-run true        # print the commands of the selected stages, run nothing
# The encoder: one pretrained by egs/librispeech/ssl, or a Hugging Face folder or fairseq checkpoint
# (read as they are, or converted first with 'speechssl convert'). Relative paths are relative to this folder.
# Cost (rough): SUPERB's ASR task trains the frozen model for 200k steps of 32 utterances, about 220
# passes over train-clean-100 (28.5k utterances, 100 h); with HuBERT Base that is on the order of a
# day of one modern GPU (200k steps at a few tenths of a second each). Read the step rate from the
# first log lines of $exp/frozen and multiply before committing. SUPERB reports 6.42% test-clean WER
# without an LM for HuBERT Base. Fine-tuning costs what recipes/asr/finetune.yaml's steps cost
# (fairseq's 100 h fine-tuning of a Base model runs 80k updates). Greedy decoding of a 5.4 h test
# part takes minutes on a GPU; a beam (--beam > 1, Python prefix search) takes much longer.
# Stages:
#   0  manifests of the parts (train, valid and test parts)      $data/librispeech/cuts_<part>.jsonl.gz
#   1  train one model per mode                                  $exp/<mode>
#   2  decode each test part with each model                     $exp/<mode>/decode_<part>  (_lm<order> with an LM)
#   3  the table of WERs of every model and test part, printed   $exp/RESULTS.md
# --corpus_dir is needed by stage 0 and --encoder by stage 1, when they have work to do (a dry run
# checks them too, so that it prints the real commands, but not that the paths exist).
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus_dir=""                # LibriSpeech as unpacked (the LibriSpeech/ folder or the one holding it); required for stage 0
data=data                    # where manifests go, as $data/librispeech
exp=exp                      # where models, decodes and RESULTS.md go
encoder=""                   # the pretrained encoder (speechssl .safetensors, Hugging Face folder or fairseq .pt); required for stage 1
modes="frozen finetune"      # training modes: one model per recipes/asr/<mode>.yaml (frozen adapters lora finetune)
configs=../../../recipes/asr # folder of the <mode>.yaml training configs
train_part=train-clean-100   # LibriSpeech part to train on
valid_part=dev-clean         # LibriSpeech part to validate on during training
test_parts="dev-clean test-clean test-other"  # LibriSpeech parts to decode
beam=1                       # CTC beam width (1: greedy, as SUPERB reports)
lm_order=0                   # order of a word n-gram LM of the training transcripts for decoding (0: none)
lm_weight=0.5                # weight of that LM (with --lm_order > 0)
nj=$(nproc)                  # parallel jobs (manifest preparation)
seed=0                       # training seed (run.seed)
dry_run=false                # true: print the commands of the selected stages, run and write nothing
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$dry_run" in true|false) ;; *) echo "run.sh: --dry_run must be true or false, found '$dry_run'" >&2; exit 2 ;; esac
for name in stage stop_stage beam lm_order nj seed; do
  if ! [[ "${!name}" =~ ^[0-9]+$ ]]; then echo "run.sh: --$name must be a whole number, found '${!name}'" >&2; exit 2; fi
done
read -ra mode_list <<< "$modes"
read -ra test_list <<< "$test_parts"
if [ "${#mode_list[@]}" -eq 0 ] || [ "${#test_list[@]}" -eq 0 ]; then
  echo "run.sh: --modes and --test_parts need at least one value" >&2
  exit 2
fi
parts=()  # every part the manifests need, once each
for p in "$train_part" "$valid_part" "${test_list[@]}"; do
  [[ " ${parts[*]} " == *" $p "* ]] || parts+=("$p")
done
decode_suffix=""
lm_args=()
if [ "$lm_order" -gt 0 ]; then
  decode_suffix=_lm$lm_order
  lm_args=(--lm-order "$lm_order" --lm-weight "$lm_weight")
fi

cd "$(dirname "$0")"
. ./path.sh

# the stage helpers (selected, changed, run, mark_done, clear_dir, require, require_path; the touched map)
. ../../lib/stages.sh

manifests=$data/librispeech
# true when stage 0 has work to do: not done, or a part's manifest is missing (the parts were changed)
prepare_needed() {
  changed "$manifests/.done" && return 0
  local p
  for p in "${parts[@]}"; do [ -e "$manifests/cuts_$p.jsonl.gz" ] || return 0; done
  return 1
}
# true when stage 1 has work to do for some mode
train_needed() {
  local mode
  for mode in "${mode_list[@]}"; do changed "$exp/$mode/.done" "$manifests/.done" && return 0; done
  return 1
}
# the options that the selected stages need, checked before anything runs
if selected 0 && prepare_needed; then require corpus_dir "stage 0 (manifests)"; require_path corpus_dir; fi
if selected 1 && { (selected 0 && prepare_needed) || train_needed; }; then
  require encoder "stage 1 (training)"
  require_path encoder
  for mode in "${mode_list[@]}"; do
    if [ "$dry_run" = false ] && [ ! -e "$configs/$mode.yaml" ]; then
      echo "run.sh: no training config $configs/$mode.yaml for mode '$mode' of --modes" >&2
      exit 2
    fi
  done
fi

start_run  # $exp/run.command, or in a dry run a line saying that nothing runs

if selected 0; then
  echo "stage 0: manifests of ${parts[*]} -> $manifests"
  if prepare_needed; then
    require corpus_dir "stage 0 (manifests)"
    clear_dir "$manifests"
    run speechssl prepare librispeech "$corpus_dir" "$manifests" --parts "${parts[@]}" --num-jobs "$nj"
    mark_done "$manifests/.done"
  else
    echo "  done before: $manifests"
  fi
fi

if selected 1; then
  for mode in "${mode_list[@]}"; do
    dir=$exp/$mode
    echo "stage 1: train $mode ($configs/$mode.yaml) on $train_part -> $dir"
    if changed "$dir/.done" "$manifests/.done"; then
      require encoder "stage 1 (training)"
      # an interrupted run resumes from its checkpoints, unless its manifests were remade since it
      # started (config.yaml is written at every start); a finished run whose manifests were remade starts over
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "$manifests/.done"; then clear_dir "$dir"; fi
      run speechssl asr train --config "$configs/$mode.yaml" --corpus "$manifests" --encoder "$encoder" --exp "$dir" \
        "data.train_split=$train_part" "data.valid_split=$valid_part" "run.seed=$seed"
      mark_done "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

results_args=()  # LABEL=DECODE_DIR of every model and test part, for the table
for mode in "${mode_list[@]}"; do
  for part in "${test_list[@]}"; do
    results_args+=("$mode/$part=$exp/$mode/decode_$part$decode_suffix")
  done
done

if selected 2; then
  for mode in "${mode_list[@]}"; do
    for part in "${test_list[@]}"; do
      dir=$exp/$mode/decode_$part$decode_suffix
      echo "stage 2: decode $part with $exp/$mode -> $dir"
      if changed "$dir/.done" "$exp/$mode/.done" "$manifests/.done"; then
        clear_dir "$dir"
        run speechssl asr decode "$exp/$mode" --corpus "$manifests" --split "$part" --out "$dir" --beam "$beam" "${lm_args[@]}"
        mark_done "$dir/.done"
      else
        echo "  done before: $dir"
      fi
    done
  done
fi

if selected 3; then
  out=$exp/RESULTS.md
  echo "stage 3: WER of every model and test part -> $out"
  decode_markers=()
  for arg in "${results_args[@]}"; do decode_markers+=("${arg#*=}/.done"); done
  # written under a temporary name and renamed: the finished file is the stage's done-marker
  if changed "$out" "${decode_markers[@]}"; then
    run speechssl asr results --out "$exp/RESULTS.tmp.md" \
      --title "LibriSpeech: CTC ASR trained on $train_part${encoder:+ with the encoder $encoder} (beam $beam${decode_suffix:+, LM order $lm_order weight $lm_weight})" \
      "${results_args[@]}"
    run mv "$exp/RESULTS.tmp.md" "$out"
    touched[$out]=1
  else
    echo "  done before: $out"
  fi
  if [ "$dry_run" = false ]; then cat "$out"; fi
fi
