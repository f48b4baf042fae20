# The stages shared by egs/mini/sv/run.sh and egs/mini/er/run.sh, sourced by each right after its
# options are parsed (it is not run on its own). The recipe sets, besides its options:
#   task               sv or er: the speechssl verb, and the folder $exp/<task>/<system>
#   train_args         extra options of '<task> train' (array)
#   evaluate_args      extra options of '<task> evaluate' (array)
#   test_what          stage 3's message: what is done to the test data
#   results_what, results_title   stage 4's message, and RESULTS.md's title
#   results_notes      a function printing RESULTS.md's notes (it may use $encoder, set below)
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
    dir=$exp/$task/$s
    inputs=("$corpus/.complete")
    if uses_encoder "$s"; then inputs+=("$encoder"); fi
    echo "stage 2: train $s ($config) -> $dir"
    if changed "$dir/.done" "${inputs[@]}"; then
      # an interrupted run resumes from its checkpoints unless its inputs were remade since it started
      if [ -e "$dir/.done" ] || changed "$dir/config.yaml" "${inputs[@]}"; then rm -rf "$dir"; fi
      system_args "$s"
      speechssl "$task" train --config "$config" --corpus "$corpus" --exp "$dir" "${sys_args[@]}" \
        "${train_args[@]}" "run.seed=$seed" run.progress=false "${step_args[@]}"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 3; then
  for s in "${system_list[@]}"; do
    dir=$exp/$task/$s/eval_test
    echo "stage 3: $test_what with $exp/$task/$s -> $dir"
    if changed "$dir/.done" "$exp/$task/$s/.done"; then
      rm -rf "$dir"
      speechssl "$task" evaluate "$exp/$task/$s" --split test --out "$dir" "${evaluate_args[@]}"
      touch "$dir/.done"
    else
      echo "  done before: $dir"
    fi
  done
fi

if selected 4; then
  out=$exp/RESULTS.md
  echo "stage 4: $results_what of every system -> $out"
  rows=() markers=()
  for s in "${system_list[@]}"; do rows+=("$s=$exp/$task/$s/eval_test"); markers+=("$exp/$task/$s/eval_test/.done"); done
  if changed "$out" "${markers[@]}"; then
    speechssl "$task" results --out "$out" --title "$results_title" --notes "$(results_notes) Command: $cmdline" \
      "${rows[@]}"
  else
    echo "  done before: $out"
  fi
  cat "$out"
fi
