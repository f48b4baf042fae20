#!/usr/bin/env bash
# Emotion recognition on IEMOCAP, SUPERB-style: 4 classes (neutral, happy with excited merged in,
# angry, sad), a pooling + MLP classifier (recipes/er/mlp.yaml) trained on each system's features,
# evaluated by leave-one-session-out cross-validation (fold k tests on session k and trains on the
# other sessions), and a table of accuracies, each the mean over the folds. One model per system of
# --systems and fold:
#   fbank       log-Mel filterbanks (no encoder): the classic baseline
#   mfcc        MFCCs (no encoder): the other classic baseline
#   random      the encoder's architecture with random weights, frozen: what pretraining bought
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers (SUPERB)
#   adapters    the pretrained encoder with bottleneck adapters trained (not in the default list)
# IEMOCAP is not downloaded: request it from https://sail.usc.edu/iemocap (a licence is needed),
# unpack IEMOCAP_full_release and pass --corpus_dir.
#   egs/iemocap/er/run.sh --corpus_dir /data/IEMOCAP_full_release --encoder ../../librispeech/ssl/exp/pretrain/hubert_iter2/encoder.safetensors
#   egs/iemocap/er/run.sh --corpus_dir /data/IEMOCAP_full_release --encoder /models/hubert_base.safetensors --systems "fbank pretrained"
#   egs/iemocap/er/run.sh --corpus_dir /data/IEMOCAP_full_release --systems fbank --folds 1   # one fold of a baseline: a quick look
#   egs/iemocap/er/run.sh ... --dry-run true        # print the commands of the selected stages, run nothing
# The encoder: one pretrained by an egs/*/ssl recipe, or a Hugging Face folder or fairseq checkpoint
# (read as they are, or converted first with 'speechssl convert'). Relative paths are relative to this folder.
# Cost (rough): the 4-class part of IEMOCAP is 5531 utterances (about 7 hours), so a fold trains on
# about 4.4k of them; every step runs the frozen upstream on its batch, so the random and pretrained
# systems cost about that many forward passes per epoch times the epochs of recipes/er/mlp.yaml, far
# less than the speaker verification task but 5 times over (one model per fold). fbank and mfcc take a
# fraction of that. Read the step rate from the first log lines of $exp/<system>/fold1 and multiply
# by the steps and folds before committing; --folds runs fewer folds (their mean is then not
# comparable to the 5-fold number). SUPERB reports 64.92% accuracy for HuBERT Base (5-fold mean).
# Stages:
#   0  manifests, one split per session (4-class utterances)      $data/iemocap/cuts_session<k>.jsonl.gz
#   1  train one model per system and fold                        $exp/<system>/fold<k>
#   2  evaluate fold k's model on session k                       $exp/<system>/fold<k>/eval_session<k>
#   3  the table of accuracies (mean over folds), printed         $exp/RESULTS.md
# --corpus_dir is needed by stage 0 and --encoder by stage 1 (when a selected system uses the
# encoder), when they have work to do (a dry run checks them too, so that it prints the real
# commands, but not that the paths exist).
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus_dir=""                # IEMOCAP as unpacked (IEMOCAP_full_release/, holding Session1..5); required for stage 0
data=data                    # where manifests go, as $data/iemocap
exp=exp                      # where models, evaluations and RESULTS.md go
encoder=""                   # the pretrained encoder (speechssl .safetensors, Hugging Face folder or fairseq .pt); required for stage 1 by random, pretrained, adapters
systems="fbank mfcc random pretrained"  # one model each: fbank, mfcc (no encoder), random (encoder untrained), pretrained (encoder frozen); adapters too
configs=../../../recipes/er  # folder of the training configs
config=mlp                   # the training config, $configs/<config>.yaml
sessions="1 2 3 4 5"         # the sessions to prepare; fold k trains on all of them but session k
folds="1 2 3 4 5"            # the folds to run: fold k tests on session k (fewer for a quick look)
nj=$(nproc)                  # parallel jobs (manifest preparation)
seed=0                       # training seed (run.seed)
dry_run=false                # true: print the commands of the selected stages, run and write nothing
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$dry_run" in true|false) ;; *) echo "run.sh: --dry_run must be true or false, found '$dry_run'" >&2; exit 2 ;; esac
for name in stage stop_stage nj seed; do
  if ! [[ "${!name}" =~ ^[0-9]+$ ]]; then echo "run.sh: --$name must be a whole number, found '${!name}'" >&2; exit 2; fi
done
if ! [[ "$config" =~ ^[A-Za-z0-9_.-]+$ ]]; then
  echo "run.sh: --config must be a name (letters, digits, _ . -), found '$config'" >&2
  exit 2
fi
read -ra session_list <<< "$sessions"
read -ra fold_list <<< "$folds"
for name in session_list fold_list; do
  declare -n list=$name
  seen=" "
  for k in "${list[@]}"; do
    if ! [[ "$k" =~ ^[1-5]$ ]] || [[ "$seen" == *" $k "* ]]; then
      echo "run.sh: --${name%_list}s must be distinct session numbers 1-5, found '${list[*]}'" >&2
      exit 2
    fi
    seen+="$k "
  done
  unset -n list
done
if [ "${#session_list[@]}" -lt 2 ] || [ "${#fold_list[@]}" -eq 0 ]; then
  echo "run.sh: --sessions needs at least two sessions and --folds at least one" >&2
  exit 2
fi
for k in "${fold_list[@]}"; do
  if [[ " ${session_list[*]} " != *" $k "* ]]; then
    echo "run.sh: fold $k of --folds tests on session $k, which is not in --sessions (${session_list[*]})" >&2
    exit 2
  fi
done
# the training splits of fold $1: every session but $1, as a list value ([session1,session2,...])
fold_train_splits() {
  local k out=""
  for k in "${session_list[@]}"; do [ "$k" = "$1" ] || out+=${out:+,}session$k; done
  echo "[$out]"
}

cd "$(dirname "$0")"
. ../path.sh

# the stage helpers (selected, changed, run, mark_done, clear_dir, require, require_path; the touched map)
. ../../lib/stages.sh
parse_systems  # system_list, encoder_systems (egs/lib/stages.sh)

manifests=$data/iemocap
# true when stage 0 has work to do: not done, or a session's manifest is missing (the sessions were changed)
prepare_needed() {
  changed "$manifests/.done" && return 0
  local k
  for k in "${session_list[@]}"; do [ -e "$manifests/cuts_session$k.jsonl.gz" ] || return 0; done
  return 1
}
# true when stage 1 has work to do for some system that uses the encoder
encoder_train_needed() {
  local s k
  for s in "${encoder_systems[@]}"; do
    for k in "${fold_list[@]}"; do changed "$exp/$s/fold$k/.done" "$manifests/.done" && return 0; done
  done
  return 1
}
# the options that the selected stages need, checked before anything runs
if selected 0 && prepare_needed; then require corpus_dir "stage 0 (manifests)"; require_path corpus_dir; fi
if selected 1; then
  if [ "${#encoder_systems[@]}" -gt 0 ] && { (selected 0 && prepare_needed) || encoder_train_needed; }; then
    require encoder "stage 1 (training ${encoder_systems[*]})"
    require_path encoder
  fi
  if [ "$dry_run" = false ] && [ ! -e "$configs/$config.yaml" ]; then
    echo "run.sh: no training config $configs/$config.yaml (--config $config)" >&2
    exit 2
  fi
fi

start_run  # $exp/run.command, or in a dry run a line saying that nothing runs

if selected 0; then
  echo "stage 0: manifests of IEMOCAP sessions ${session_list[*]} -> $manifests"
  if prepare_needed; then
    require corpus_dir "stage 0 (manifests)"
    clear_dir "$manifests"
    run speechssl prepare iemocap "$corpus_dir" "$manifests" --sessions "${session_list[@]}" --num-jobs "$nj"
    mark_done "$manifests/.done"
  else
    echo "  done before: $manifests"
  fi
fi

if selected 1; then
  for s in "${system_list[@]}"; do
    for k in "${fold_list[@]}"; do
      dir=$exp/$s/fold$k
      train_splits=$(fold_train_splits "$k")
      echo "stage 1: train $s ($configs/$config.yaml), fold $k, on ${train_splits:1:-1} -> $dir"
      if changed "$dir/.done" "$manifests/.done"; then
        if uses_encoder "$s"; then require encoder "stage 1 (training ${encoder_systems[*]})"; fi
        # an interrupted run resumes from its checkpoints, unless its manifests were remade since it
        # started (config.yaml is written at every start); a finished run whose manifests were remade starts over
        if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "$manifests/.done"; then clear_dir "$dir"; fi
        system_args "$s"
        run speechssl er train --config "$configs/$config.yaml" --corpus "$manifests" --exp "$dir" "${sys_args[@]}" \
          "data.train_splits=$train_splits" data.valid_split=null data.label=emotion4 "run.seed=$seed"
        mark_done "$dir/.done"
      else
        echo "  done before: $dir"
      fi
    done
  done
fi

results_args=()  # LABEL=EVAL_DIR of every system and fold, for the table (a system's folds share its label: averaged)
for s in "${system_list[@]}"; do
  for k in "${fold_list[@]}"; do results_args+=("$s=$exp/$s/fold$k/eval_session$k"); done
done

if selected 2; then
  for s in "${system_list[@]}"; do
    for k in "${fold_list[@]}"; do
      dir=$exp/$s/fold$k/eval_session$k
      echo "stage 2: evaluate $exp/$s/fold$k on session$k -> $dir"
      if changed "$dir/.done" "$exp/$s/fold$k/.done" "$manifests/.done"; then
        clear_dir "$dir"
        run speechssl er evaluate "$exp/$s/fold$k" --split "session$k" --out "$dir" --corpus "$manifests"
        mark_done "$dir/.done"
      else
        echo "  done before: $dir"
      fi
    done
  done
fi

if selected 3; then
  out=$exp/RESULTS.md
  echo "stage 3: accuracy of every system (mean over folds ${fold_list[*]}) -> $out"
  eval_markers=()
  for arg in "${results_args[@]}"; do eval_markers+=("${arg#*=}/.done"); done
  # written under a temporary name and renamed: the finished file is the stage's done-marker
  if changed "$out" "${eval_markers[@]}"; then
    run speechssl er results --out "$exp/RESULTS.tmp.md" \
      --title "IEMOCAP 4-class emotion recognition, leave-one-session-out (folds ${fold_list[*]} of sessions ${session_list[*]}, mean over folds)${encoder:+, encoder $encoder}" \
      "${results_args[@]}"
    run mv "$exp/RESULTS.tmp.md" "$out"
    touched[$out]=1
  else
    echo "  done before: $out"
  fi
  if [ "$dry_run" = false ]; then cat "$out"; fi
fi
