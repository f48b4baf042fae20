#!/usr/bin/env bash
# Adapters for a new language on the synthetic mini corpus: an encoder pretrained on the English part
# only (../ssl/run.sh on an English subset), then CTC ASR of German from 10 minutes of its transcribed
# speech, in four modes compared in RESULTS.md by CER, WER, trainable parameters and stored weights:
#   frozen_linear  the English encoder as it is, a weighted sum of its layers, a linear CTC layer (before adapters)
#   adapters       Houlsby bottleneck adapters in the frozen encoder, the same head (after)
#   lora           LoRA in the frozen encoder, the same head (after)
#   finetune       the whole encoder but its conv front end trained (the reference)
# It is ../asr/run.sh with the defaults below; every option of ../asr/run.sh works here (see
# '../asr/run.sh --help'), and relative paths are relative to this folder.
#   egs/mini/new_language/run.sh                        # about 30 minutes on 2 CPU cores
#   egs/mini/new_language/run.sh --lang fr --budget_minutes 5
#   egs/mini/new_language/run.sh --tiny true --data /tmp/mini_data --exp /tmp/new_language_exp   # CI-sized
set -euo pipefail

# ---- defaults (override with --name value) ----
lang=de                      # the new language
budget_minutes=10            # minutes of its transcribed speech to train on
pretrain_languages=en        # what the encoder is pretrained on
modes="frozen_linear adapters lora finetune"  # training modes (recipes/asr/mini_<mode>.yaml)
data=../data                 # where the mini corpus goes, as $data/mini (egs/mini/run.sh's by default)
exp=exp                      # where everything this recipe makes goes
# ----

here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
  sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  echo "Options (default) that differ from ../asr/run.sh's:"
  sed -n '/^# ---- defaults/,/^# ----$/p' "$0" | grep -E '^[a-z_]+=' |
    sed -E 's/^([a-z_]+)=("[^"]*"|[^ ]*) *# *(.*)$/  --\1 (\2)  \3/'
  exit 0
fi
# paths given here are relative to this folder; ../asr/run.sh works in its own
absolute() { case "$1" in /*) echo "$1" ;; *) realpath -m "$here/$1" ;; esac; }
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --*=*) name="${1%%=*}"; value="${1#*=}"; shift ;;
    --*) name="$1"; [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; value="$2"; shift 2 ;;
    *) echo "run.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  case "${name//-/_}" in  # --exp and --exp-dir alike: __exp
    __data|__exp|__encoder|__configs) value=$(absolute "$value") ;;
  esac
  args+=("$name" "$value")
done
exec "$here/../asr/run.sh" --lang "$lang" --budget_minutes "$budget_minutes" --pretrain_languages "$pretrain_languages" \
  --modes "$modes" --data "$(absolute "$data")" --exp "$(absolute "$exp")" "${args[@]}"
