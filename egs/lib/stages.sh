# Stage helpers shared by the recipes under egs/ (egs/mini/run.sh, egs/librispeech/ssl, egs/librispeech/asr, egs/commonvoice/adapters,
# egs/voxceleb/sv, egs/iemocap/er, egs/mini/{ssl,asr,sv,er} run.sh).
# Sourced, not run: each recipe does, after its
# `cd "$(dirname "$0")"`,
#   . ../../lib/stages.sh
# Variables the recipe must have set before calling these functions:
#   stage, stop_stage  the first and last stage to run (whole numbers; --stage, --stop_stage)
#   dry_run            true or false (--dry_run): true prints commands instead of running them
# Declared here (global, as this file is sourced at the recipe's top level):
#   touched            associative array: in a dry run, the done-markers the run would have
#                      written, so that later stages see them as remade
# Functions:
#   selected STAGE               true when STAGE is in $stage .. $stop_stage
#   changed MARKER [INPUT...]    true when the done-marker MARKER is missing (or only touched in
#                                this dry run), or an INPUT marker is newer or was touched
#   run CMD [ARG...]             run the command, or in a dry run print "+" and the words, each
#                                quoted for the shell (printf %q)
#   mark_done MARKER             the last step of a stage: `run touch MARKER`, and record it in touched
#   clear_dir PATH               remove a stage's earlier output (run rm -rf), if it exists
#   start_run                    after the checks: write $cmdline to $exp/run.command (making $exp), or
#                                in a dry run print that nothing runs (and write nothing)
#   require NAME WHY             exit 2 with "run.sh: --NAME is required for WHY" when $NAME is empty
#   require_path NAME            exit 2 when the path in $NAME does not exist (not checked in a dry run)
# Messages start with "run.sh:" and go to stderr, as the recipes' own.

# true when stage $1 is in --stage .. --stop_stage
selected() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
declare -A touched=()  # in a dry run: the done-markers the run would have written
# true when the done-marker $1 is missing or one of the markers after it is newer (its input was remade)
changed() {
  local marker=$1 input
  shift
  [ -e "$marker" ] && [ -z "${touched[$marker]:-}" ] || return 0
  for input in "$@"; do
    [ -n "${touched[$input]:-}" ] && return 0
    [ "$input" -nt "$marker" ] && return 0
  done
  return 1
}
# run a command, or in a dry run print it ("+ " and the words, quoted for the shell)
run() {
  if [ "$dry_run" = true ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}
# the last step of a stage: its done-marker
mark_done() {
  run touch "$1"
  touched[$1]=1
}
# the start of a run: the exact command line in $exp/run.command, or the dry run's announcement
start_run() {
  if [ "$dry_run" = false ]; then
    mkdir -p "$exp"
    echo "$cmdline" > "$exp/run.command"
  else
    echo "dry run: nothing runs; the commands below would run in $PWD"
  fi
}
# remove a stage's earlier output, if any
clear_dir() { if [ -e "$1" ]; then run rm -rf "$1"; fi; }
# a required option's value, checked when a stage needs it
require() {
  local name=$1 why=$2
  if [ -z "${!name}" ]; then
    echo "run.sh: --$name is required for $why (see --help)" >&2
    exit 2
  fi
}
require_path() {
  local name=$1
  if [ "$dry_run" = false ] && [ ! -e "${!name}" ]; then
    echo "run.sh: --$name ${!name}: no such file or folder (relative paths are relative to $PWD)" >&2
    exit 2
  fi
}

# ---- the systems a downstream recipe compares (egs/*/sv, egs/*/er) ----
#   parse_systems       split $systems into system_list and encoder_systems (those that need
#                       --encoder); exit 2 on none, an unknown name or a name given twice
#   system_args SYSTEM  the training options of SYSTEM, in the array sys_args
#   uses_encoder SYSTEM true when SYSTEM needs --encoder
valid_systems="fbank mfcc random pretrained adapters"
parse_systems() {
  read -ra system_list <<< "$systems"
  if [ "${#system_list[@]}" -eq 0 ]; then
    echo "run.sh: --systems needs at least one of: $valid_systems" >&2
    exit 2
  fi
  encoder_systems=()
  local s seen=" "
  for s in "${system_list[@]}"; do
    case "$s" in
      fbank|mfcc) ;;
      random|pretrained|adapters) encoder_systems+=("$s") ;;
      *) echo "run.sh: unknown system '$s' in --systems (valid: $valid_systems)" >&2; exit 2 ;;
    esac
    if [[ "$seen" == *" $s "* ]]; then echo "run.sh: system '$s' is twice in --systems" >&2; exit 2; fi
    seen+="$s "
  done
}
system_args() {
  case "$1" in
    fbank) sys_args=(encoder.kind=fbank) ;;           # 80 log-mel filterbanks, no encoder
    mfcc) sys_args=(encoder.kind=mfcc) ;;             # 39 MFCC + deltas, no encoder
    random) sys_args=(--encoder "$encoder" encoder.init=random) ;;  # the encoder's architecture, untrained
    pretrained) sys_args=(--encoder "$encoder") ;;    # the pretrained encoder, frozen
    adapters) sys_args=(--encoder "$encoder" encoder.mode=adapters) ;;  # adapters in the frozen encoder
  esac
}
uses_encoder() { [[ " ${encoder_systems[*]} " == *" $1 "* ]]; }
