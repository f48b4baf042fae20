#!/usr/bin/env bash
# Speaker verification on VoxCeleb1, SUPERB-style: an x-vector head (TDNN, statistics pooling,
# AAM-softmax; recipes/sv/xvector.yaml) trained to classify the training speakers on top of each
# system's features, then scored on a trial list by the cosine of the embeddings (with adaptive
# score normalisation, AS-norm), and a table of EERs. One model per system of --systems:
#   fbank       log-Mel filterbanks (no encoder): the classic baseline
#   mfcc        MFCCs (no encoder): the other classic baseline
#   random      the encoder's architecture with random weights, frozen: what pretraining bought
#   pretrained  the pretrained encoder, frozen, a weighted sum of its layers (SUPERB)
#   adapters    the pretrained encoder with bottleneck adapters trained (not in the default list)
# VoxCeleb is not downloaded: get VoxCeleb1 (and VoxCeleb2 for more training speakers) from
# https://www.robots.ox.ac.uk/~vgg/data/voxceleb, unpack it (wav/, vox1_meta.csv), put the trial list
# (veri_test2.txt) in the same folder and pass --corpus_dir. VoxCeleb2 ships AAC: convert it to WAV or
# FLAC first (same names) and pass --vox2_dir.
#   egs/voxceleb/sv/run.sh --corpus_dir /data/voxceleb1 --encoder ../../librispeech/ssl/exp/pretrain/hubert_iter2/encoder.safetensors
#   egs/voxceleb/sv/run.sh --corpus_dir /data/voxceleb1 --encoder /models/hubert_base.safetensors --systems "fbank pretrained"
#   egs/voxceleb/sv/run.sh --corpus_dir /data/voxceleb1 --systems "fbank mfcc"     # the baselines need no encoder
#   egs/voxceleb/sv/run.sh ... --dry-run true        # print the commands of the selected stages, run nothing
# The encoder: one pretrained by an egs/*/ssl recipe, or a Hugging Face folder or fairseq checkpoint
# (read as they are, or converted first with 'speechssl convert'). Relative paths are relative to this folder.
# Cost (rough): SUPERB's SV task trains the x-vector head on the frozen upstream over VoxCeleb1 dev
# (1211 speakers, about 148k utterances); every step runs the encoder on its batch, so the random and
# pretrained systems are each on the order of a day of one modern GPU, while fbank and mfcc (no
# upstream) take a fraction of that. Read the step rate from the first log lines of $exp/<system> and
# multiply by the steps of recipes/sv/xvector.yaml before committing. Adding VoxCeleb2 (--vox2_dir,
# about 6k more speakers and 1M utterances) multiplies the data by about 8. Evaluation embeds the
# VoxCeleb1 test utterances (minutes) and, with AS-norm, the cohort split too (the whole train split:
# about one pass over it). SUPERB reports 5.11% EER for HuBERT Base (its own scoring, no AS-norm).
# The trial lists: veri_test2 is VoxCeleb1-O cleaned (veri_test the original); the -E and -H lists
# (list_test_all2, list_test_hard2) use VoxCeleb1 dev utterances, which are in the train split here.
# Stages:
#   0  manifests of train (VoxCeleb1 dev + VoxCeleb2) and test, the trial lists   $data/voxceleb/cuts_<split>.jsonl.gz, trials_<name>.txt
#   1  train one model per system                                 $exp/<system>
#   2  score the trial list with each model                       $exp/<system>/eval_<trials>  (_asnorm with AS-norm)
#   3  the table of EERs of every system, printed                 $exp/RESULTS.md
# --corpus_dir is needed by stage 0 and --encoder by stage 1 (when a selected system uses the
# encoder), when they have work to do (a dry run checks them too, so that it prints the real
# commands, but not that the paths exist).
set -euo pipefail

# ---- defaults (override with --name value) ----
stage=0                      # first stage to run
stop_stage=100               # last stage to run
corpus_dir=""                # VoxCeleb1 as unpacked (wav/, vox1_meta.csv and the trial list); required for stage 0
vox2_dir=""                  # VoxCeleb2 as unpacked and converted to WAV/FLAC (vox2_meta.csv), added to train (empty: none)
data=data                    # where manifests go, as $data/voxceleb
exp=exp                      # where models, scores and RESULTS.md go
encoder=""                   # the pretrained encoder (speechssl .safetensors, Hugging Face folder or fairseq .pt); required for stage 1 by random, pretrained, adapters
systems="fbank mfcc random pretrained"  # one model each: fbank, mfcc (no encoder), random (encoder untrained), pretrained (encoder frozen); adapters too
configs=../../../recipes/sv  # folder of the training configs
config=xvector               # the training config, $configs/<config>.yaml
trials=veri_test2            # trial list: <corpus_dir>/<trials>.txt, as $data/voxceleb/trials_<trials>.txt (veri_test2: VoxCeleb1-O cleaned)
asnorm=true                  # adaptive score normalisation of the trial scores (true or false)
cohort_split=train           # split whose embeddings form the AS-norm cohort (train or test)
top_k=300                    # AS-norm: the number of closest cohort entries each score is normalised by
nj=$(nproc)                  # parallel jobs (manifest preparation)
seed=0                       # training seed (run.seed)
dry_run=false                # true: print the commands of the selected stages, run and write nothing
# ----

. "$(dirname "$0")/../../lib/parse_options.sh"  # --help, --name value for each default above; cmdline
for name in dry_run asnorm; do
  case "${!name}" in true|false) ;; *) echo "run.sh: --$name must be true or false, found '${!name}'" >&2; exit 2 ;; esac
done
for name in stage stop_stage top_k nj seed; do
  if ! [[ "${!name}" =~ ^[0-9]+$ ]]; then echo "run.sh: --$name must be a whole number, found '${!name}'" >&2; exit 2; fi
done
for name in config trials; do
  if ! [[ "${!name}" =~ ^[A-Za-z0-9_.-]+$ ]]; then
    echo "run.sh: --$name must be a name (letters, digits, _ . -), found '${!name}'" >&2
    exit 2
  fi
done
case "$cohort_split" in train|test) ;; *) echo "run.sh: --cohort_split must be train or test, found '$cohort_split'" >&2; exit 2 ;; esac
eval_suffix=""
norm_args=(--asnorm false)
if [ "$asnorm" = true ]; then
  eval_suffix=_asnorm
  norm_args=(--asnorm true --cohort-split "$cohort_split" --top-k "$top_k")
fi

cd "$(dirname "$0")"
. ../path.sh

# the stage helpers (selected, changed, run, mark_done, clear_dir, require, require_path; the touched map)
. ../../lib/stages.sh
parse_systems  # system_list, encoder_systems (egs/lib/stages.sh)

manifests=$data/voxceleb
trials_file=$manifests/trials_$trials.txt
splits=(train test)  # train: VoxCeleb1 dev (+ VoxCeleb2); test: VoxCeleb1 test, which the trial list draws on
vox2_args=()
if [ -n "$vox2_dir" ]; then vox2_args=(--voxceleb2-dir "$vox2_dir"); fi
# true when stage 0 has work to do: not done, or a split's manifest or the trial list is missing
prepare_needed() {
  changed "$manifests/.done" && return 0
  local s
  for s in "${splits[@]}"; do [ -e "$manifests/cuts_$s.jsonl.gz" ] || return 0; done
  [ -e "$trials_file" ] || return 0
  return 1
}
# true when stage 1 has work to do for some system that uses the encoder
encoder_train_needed() {
  local s
  for s in "${encoder_systems[@]}"; do changed "$exp/$s/.done" "$manifests/.done" && return 0; done
  return 1
}
# the options that the selected stages need, checked before anything runs
if selected 0 && prepare_needed; then
  require corpus_dir "stage 0 (manifests)"
  require_path corpus_dir
  if [ -n "$vox2_dir" ]; then require_path vox2_dir; fi
  if [ "$dry_run" = false ] && [ ! -e "$corpus_dir/$trials.txt" ]; then
    echo "run.sh: no trial list $corpus_dir/$trials.txt (--trials $trials): put it in the VoxCeleb1 folder" >&2
    exit 2
  fi
fi
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
  echo "stage 0: manifests of VoxCeleb1${vox2_dir:+ + VoxCeleb2} (${splits[*]}) and trials_$trials.txt -> $manifests"
  if prepare_needed; then
    require corpus_dir "stage 0 (manifests)"
    clear_dir "$manifests"
    run speechssl prepare voxceleb "$corpus_dir" "$manifests" "${vox2_args[@]}" --num-jobs "$nj"
    if [ "$dry_run" = false ] && [ ! -e "$trials_file" ]; then
      echo "run.sh: the preparation wrote no $trials_file (is $trials.txt in $corpus_dir?)" >&2
      exit 1
    fi
    mark_done "$manifests/.done"
  else
    echo "  done before: $manifests"
  fi
fi

if selected 1; then
  for s in "${system_list[@]}"; do
    dir=$exp/$s
    echo "stage 1: train $s ($configs/$config.yaml) on train -> $dir"
    if changed "$dir/.done" "$manifests/.done"; then
      if uses_encoder "$s"; then require encoder "stage 1 (training ${encoder_systems[*]})"; fi
      # an interrupted run resumes from its checkpoints, unless its manifests were remade since it
      # started (config.yaml is written at every start); a finished run whose manifests were remade starts over
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "$manifests/.done"; then clear_dir "$dir"; fi
      system_args "$s"
      run speechssl sv train --config "$configs/$config.yaml" --corpus "$manifests" --exp "$dir" "${sys_args[@]}" \
        "data.train_splits=[train]" data.valid_split=null data.valid_trials=null data.label=speaker "run.seed=$seed"
      mark_done "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

results_args=()  # LABEL=EVAL_DIR of every system, for the table
for s in "${system_list[@]}"; do results_args+=("$s=$exp/$s/eval_$trials$eval_suffix"); done

if selected 2; then
  for s in "${system_list[@]}"; do
    dir=$exp/$s/eval_$trials$eval_suffix
    echo "stage 2: score $trials (split test${eval_suffix:+, AS-norm on $cohort_split}) with $exp/$s -> $dir"
    if changed "$dir/.done" "$exp/$s/.done" "$manifests/.done"; then
      clear_dir "$dir"
      run speechssl sv evaluate "$exp/$s" --trials "$trials_file" --split test --out "$dir" --corpus "$manifests" \
        "${norm_args[@]}"
      mark_done "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 3; then
  out=$exp/RESULTS.md
  echo "stage 3: EER of every system -> $out"
  eval_markers=()
  for arg in "${results_args[@]}"; do eval_markers+=("${arg#*=}/.done"); done
  # written under a temporary name and renamed: the finished file is the stage's done-marker
  if changed "$out" "${eval_markers[@]}"; then
    run speechssl sv results --out "$exp/RESULTS.tmp.md" \
      --title "VoxCeleb1 speaker verification ($trials${eval_suffix:+, AS-norm top $top_k of $cohort_split}): x-vector trained on VoxCeleb1 dev${vox2_dir:+ + VoxCeleb2}${encoder:+, encoder $encoder}" \
      "${results_args[@]}"
    run mv "$exp/RESULTS.tmp.md" "$out"
    touched[$out]=1
  else
    echo "  done before: $out"
  fi
  if [ "$dry_run" = false ]; then cat "$out"; fi
fi
