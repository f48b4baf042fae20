#!/usr/bin/env bash
# A new language with little labelled speech: CTC ASR on a Common Voice language (Welsh by default)
# from a pretrained encoder and --budget_minutes of transcribed training speech, one model per
# training mode (recipes/asr/<mode>.yaml), compared on the test split by CER and WER:
#   frozen    the encoder frozen, a weighted sum of its layers and a BiLSTM head (SUPERB): before adapters
#   adapters  Houlsby bottleneck adapters in the frozen encoder (a few MB per language): after
#   lora      LoRA in the frozen encoder's attention: after
#   finetune  the whole encoder fine-tuned (feature encoder frozen): the reference the adapters chase
# Common Voice is not downloaded: get a release from https://commonvoice.mozilla.org/datasets (one
# language's archive), unpack it and pass --corpus_dir.
#   egs/commonvoice/adapters/run.sh --corpus_dir /data/cv-corpus-17.0-2024-03-15 --encoder /models/hubert_base.safetensors
#   egs/commonvoice/adapters/run.sh ... --budget_minutes 600 --modes "adapters finetune"
#   egs/commonvoice/adapters/run.sh ... --dry-run true        # print the commands of the selected stages, run nothing
# The encoder: one pretrained by an egs/*/ssl recipe, or a Hugging Face folder or fairseq checkpoint
# (read as they are, or converted first with 'speechssl convert'). Relative paths are relative to this folder.
# Cost: each mode trains for the steps its config sets, whatever the budget (on 60 minutes of speech
# that is many passes over it); read the step rate from the first log lines of a model's folder and
# multiply before committing. Greedy decoding of the test split takes minutes on a GPU.
# Stages (<tag> = <lang>_<budget_minutes>min, or <lang>_all without a budget):
#   0  manifests of the train, dev and test splits                   $data/commonvoice_<lang>
#   1  the train split cut to --budget_minutes (dev, test whole)      $data/commonvoice_<tag>  (nothing without a budget)
#   2  train one model per mode                                       $exp/<tag>/<mode>
#   3  decode each test split with each model                         $exp/<tag>/<mode>/decode_<split>  (_lm<order> with an LM)
#   4  the table of CER and WER of every model, printed               $exp/<tag>/RESULTS.md
# --corpus_dir is needed by stage 0 and --encoder by stage 2, when they have work to do (a dry run
# checks them too, so that it prints the real commands, but not that the paths exist).
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus_dir=""                # a Common Voice release as unpacked (cv-corpus-<version>/, holding <lang>/clips); required for stage 0
lang=cy                      # the language (its folder name in the release)
data=data                    # where manifests go, as $data/commonvoice_<lang> and $data/commonvoice_<tag>
exp=exp                      # where models, decodes and RESULTS.md go, as $exp/<tag>
encoder=""                   # the pretrained encoder (speechssl .safetensors, Hugging Face folder or fairseq .pt); required for stage 2
budget_minutes=60            # minutes of labelled training speech, drawn from the train split (empty or 0: all of it)
modes="frozen adapters lora finetune"  # training modes: one model per recipes/asr/<mode>.yaml
configs=../../../recipes/asr # folder of the <mode>.yaml training configs
train_split=train            # Common Voice split to train on
valid_split=dev              # Common Voice split to validate on during training
test_splits=test             # Common Voice splits to decode
beam=1                       # CTC beam width (1: greedy)
lm_order=0                   # order of a word n-gram LM of the training transcripts for decoding (0: none)
lm_weight=0.5                # weight of that LM (with --lm_order > 0)
nj=$(nproc)                  # parallel jobs (manifest preparation)
seed=0                       # seed of the budget's draw and of training (run.seed)
dry_run=false                # true: print the commands of the selected stages, run and write nothing
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
case "$dry_run" in true|false) ;; *) echo "run.sh: --dry_run must be true or false, found '$dry_run'" >&2; exit 2 ;; esac
for name in stage stop_stage beam lm_order nj seed; do
  if ! [[ "${!name}" =~ ^[0-9]+$ ]]; then echo "run.sh: --$name must be a whole number, found '${!name}'" >&2; exit 2; fi
done
if ! [[ "$budget_minutes" =~ ^([0-9]+([.][0-9]*)?)?$ ]]; then
  echo "run.sh: --budget_minutes must be a number of minutes (empty or 0: all), found '$budget_minutes'" >&2
  exit 2
fi
read -ra mode_list <<< "$modes"
read -ra test_list <<< "$test_splits"
if [ "${#mode_list[@]}" -eq 0 ] || [ "${#test_list[@]}" -eq 0 ]; then
  echo "run.sh: --modes and --test_splits need at least one value" >&2
  exit 2
fi
splits=()  # every split the manifests need, once each
for s in "$train_split" "$valid_split" "${test_list[@]}"; do
  [[ " ${splits[*]} " == *" $s "* ]] || splits+=("$s")
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

manifests=$data/commonvoice_$lang
if [[ "$budget_minutes" =~ ^0*([.]0*)?$ ]]; then  # no budget: train on the whole train split
  tag=${lang}_all
  corpus=$manifests
else
  tag=${lang}_${budget_minutes}min
  corpus=$data/commonvoice_$tag
fi
models=$exp/$tag
# true when stage 0 has work to do: not done, or a split's manifest is missing (the splits were changed)
prepare_needed() {
  changed "$manifests/.done" && return 0
  local s
  for s in "${splits[@]}"; do [ -e "$manifests/cuts_$s.jsonl.gz" ] || return 0; done
  return 1
}
# true when stage 2 has work to do for some mode
train_needed() {
  local mode
  for mode in "${mode_list[@]}"; do changed "$models/$mode/.done" "$corpus/.done" && return 0; done
  return 1
}
# the options that the selected stages need, checked before anything runs
if selected 0 && prepare_needed; then require corpus_dir "stage 0 (manifests)"; require_path corpus_dir; fi
if selected 2 && { (selected 0 && prepare_needed) || train_needed; }; then
  require encoder "stage 2 (training)"
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
  echo "stage 0: manifests of Common Voice $lang ${splits[*]} -> $manifests"
  if prepare_needed; then
    require corpus_dir "stage 0 (manifests)"
    clear_dir "$manifests"
    run speechssl prepare commonvoice "$corpus_dir" "$manifests" --languages "$lang" --splits "${splits[@]}" --num-jobs "$nj"
    mark_done "$manifests/.done"
  else
    echo "  done before: $manifests"
  fi
fi

if selected 1; then
  if [ "$corpus" = "$manifests" ]; then
    echo "stage 1: no --budget_minutes: training on the whole $train_split split of $manifests"
  else
    echo "stage 1: $budget_minutes minutes of the $train_split split (seed $seed), and ${splits[*]:1} whole -> $corpus"
    if changed "$corpus/.done" "$manifests/.done"; then
      clear_dir "$corpus"
      run speechssl subset "$manifests" "$corpus" --splits "${splits[@]}" --max-minutes "$budget_minutes" \
        --budget-splits "$train_split" --seed "$seed"
      mark_done "$corpus/.done"
    else
      echo "  done before: $corpus"
    fi
  fi
fi

if selected 2; then
  for mode in "${mode_list[@]}"; do
    dir=$models/$mode
    echo "stage 2: train $mode ($configs/$mode.yaml) on $corpus -> $dir"
    if changed "$dir/.done" "$corpus/.done"; then
      require encoder "stage 2 (training)"
      # an interrupted run resumes from its checkpoints, unless its manifests were remade since it
      # started (config.yaml is written at every start); a finished run whose manifests were remade starts over
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "$corpus/.done"; then clear_dir "$dir"; fi
      run speechssl asr train --config "$configs/$mode.yaml" --corpus "$corpus" --encoder "$encoder" --exp "$dir" \
        "data.train_split=$train_split" "data.valid_split=$valid_split" "run.seed=$seed"
      mark_done "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

results_args=()  # LABEL=DECODE_DIR of every model and test split, for the table
for mode in "${mode_list[@]}"; do
  for split in "${test_list[@]}"; do
    results_args+=("$mode/$split=$models/$mode/decode_$split$decode_suffix")
  done
done

if selected 3; then
  for mode in "${mode_list[@]}"; do
    for split in "${test_list[@]}"; do
      dir=$models/$mode/decode_$split$decode_suffix
      echo "stage 3: decode $split with $models/$mode -> $dir"
      if changed "$dir/.done" "$models/$mode/.done" "$corpus/.done"; then
        clear_dir "$dir"
        run speechssl asr decode "$models/$mode" --corpus "$corpus" --split "$split" --out "$dir" --beam "$beam" "${lm_args[@]}"
        mark_done "$dir/.done"
      else
        echo "  done before: $dir"
      fi
    done
  done
fi

if selected 4; then
  out=$models/RESULTS.md
  echo "stage 4: CER and WER of every model -> $out"
  decode_markers=()
  for arg in "${results_args[@]}"; do decode_markers+=("${arg#*=}/.done"); done
  if [ "$corpus" = "$manifests" ]; then budget="all of $train_split"; else budget="$budget_minutes minutes of $train_split"; fi
  # written under a temporary name and renamed: the finished file is the stage's done-marker
  if changed "$out" "${decode_markers[@]}"; then
    run speechssl asr results --out "$models/RESULTS.tmp.md" \
      --title "Common Voice $lang, $budget${encoder:+, encoder $encoder}: frozen (before adapters) vs adapters / lora (after) vs finetune" \
      --notes "frozen: the pretrained encoder as it is, with a trained head (before adapters); adapters, lora: after adapting the frozen encoder to $lang with a few MB of weights; finetune: the whole encoder trained (the reference)." \
      "${results_args[@]}"
    run mv "$models/RESULTS.tmp.md" "$out"
    touched[$out]=1
  else
    echo "  done before: $out"
  fi
  if [ "$dry_run" = false ]; then cat "$out"; fi
fi
