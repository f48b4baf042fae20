#!/usr/bin/env bash
# The GPU check: everything that needs a GPU, in one call of at most 9 minutes on a lent GPU machine
# whose image has torch/torchaudio preinstalled and no network. From the source tree:
#   1. installs the carried wheels of what the image lacks (.whl/, if present) into a folder on PYTHONPATH
#   2. prints 'speechssl doctor'
#   3. runs the gpu-marked tests
#   4. a CLI smoke test on the device: tiny corpus -> k-means (MFCC) -> labels -> 20 pretraining steps
#      in bf16 -> k-means of the new encoder's layer -> tokens -> a few ASR steps
#   5. the benchmarks tools/bench/encoder.py, pretrain_step.py (with MFU) and tokens.py, --dtype bf16
# and writes its log, the doctor's report, a summary of the steps and the benchmarks' headline lines
# (name: value) into one folder. A step that fails is reported and the next one runs; the exit
# status is 1 when any step failed.
#
# Usage: tools/gpu_check.sh [--device cuda|cpu] [--out DIR] [--data DIR] [--bench-data DIR] [--quick]
#                           [--budget SECONDS]
#   --device      cuda (default) or cpu: the same steps on the CPU (how it is tested without a GPU)
#   --out         output folder (default: $OUT, else gpu_check_out)
#   --data        a tiny mini corpus made beforehand (the GPU image has no espeak-ng to make one),
#                 for the gpu tests and the smoke test; default: made with make-mini-corpus --tiny
#   --bench-data  a mini corpus for the tokens benchmark (default: --data)
#   --quick       test-sized benchmarks (tiny models, one round): seconds instead of minutes
#   --budget      seconds for all steps (default 530): a step gets at most what is left, and is
#                 skipped when under 10 s are left, so the call ends inside the device tool's 9 minutes
# Before a GPU call, here:   ../shared/tools/gpu-wheels.sh                      (wheels into .whl/)
#                             .venv/bin/speechssl make-mini-corpus .gpu_data/mini --tiny
#                             .venv/bin/speechssl make-mini-corpus .gpu_data/bench --hours 0.2
#                             (.whl/ and .gpu_data/ are ignored by git: name both in the call's carry)
# then on the machine:        tools/gpu_check.sh --data .gpu_data/mini --bench-data .gpu_data/bench
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
device=cuda out="${OUT:-}" data="" bench_data="" quick=false budget=530
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift ;;
    --out) out="$2"; shift ;;
    --data) data="$2"; shift ;;
    --bench-data) bench_data="$2"; shift ;;
    --quick) quick=true ;;
    --budget) budget="$2"; shift ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$device" in cuda|cpu) ;; *) echo "gpu_check.sh: --device must be cuda or cpu, found '$device'" >&2; exit 2 ;; esac
out="${out:-gpu_check_out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$out/log.txt" summary="$out/summary.txt" headlines="$out/headlines.txt"
: > "$log"; : > "$summary"; : > "$headlines"
export PYTHONUNBUFFERED=1
cd "$root"

# the interpreter: the project's venv when there is one, else the image's python3 on the source tree
if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py="$(command -v python3)"; fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
speechssl() { "$py" -m speechssl.cli.main "$@"; }

failed=()
# step NAME SECONDS CMD...: run CMD with a time limit (at most what is left of the budget), its
# output into the log, one summary line
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS rc left=$((budget - SECONDS))
  if [ "$left" -lt 10 ]; then
    printf '%-22s %-32s %4d s\n' "$name" "SKIPPED (budget spent)" 0 | tee -a "$summary"
    failed+=("$name"); return 1
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "=== $name: $(echo "$*" | head -c 300)" >> "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  local status=ok
  if [ $rc -ne 0 ]; then
    status="FAIL (exit $rc$([ $rc = 124 ] && echo ", over its ${limit} s"))"
    failed+=("$name")
  fi
  printf '%-22s %-32s %4d s\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$summary"
  return $rc
}

# 1. the carried wheels
if compgen -G "$root/.whl/*.whl" > /dev/null; then
  site="$work/site"
  step wheels 120 "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$root"/.whl/*.whl
  export PYTHONPATH="$site:$PYTHONPATH"
fi

# 2. the doctor (its report also into doctor.txt, for the bug report)
step doctor 120 bash -c "'$py' -m speechssl.cli.main doctor > '$out/doctor.txt' 2>&1; rc=\$?; cat '$out/doctor.txt'; exit \$rc"

# 3. the gpu-marked tests (only the files that have any: collecting the whole suite costs a minute)
# (the tests' mini corpus: --data when given, as the GPU image cannot synthesise one)
mapfile -t gpu_files < <(grep -l "pytest.mark.gpu" tests/test_*.py)
step gpu_tests 300 env ${data:+SPEECHSSL_TEST_MINI_CORPUS="$(cd "$data" && pwd)"} \
  "$py" -m pytest -m gpu -q -p no:cacheprovider -rs "${gpu_files[@]}"

# 4. the CLI smoke test on the device
smoke() {
  set -e
  local w=$work/smoke corpus=$1
  mkdir -p "$w"
  if [ -z "$corpus" ]; then
    corpus=$w/mini
    speechssl make-mini-corpus "$corpus" --tiny -q
  fi
  speechssl kmeans fit "$corpus" "$w/km_mfcc.safetensors" --kind mfcc --clusters 20 --seed 0 --device "$device" -q
  speechssl kmeans label --model "$w/km_mfcc.safetensors" "$corpus" "$w/labels" --device "$device" -q
  speechssl pretrain --config recipes/pretrain/tiny.yaml --labels "$w/labels" --exp "$w/pretrain" --max-steps 20 \
    --device "$device" run.precision=bf16 run.progress=false run.valid_every=10 run.save_every=10 data.num_workers=0 -q
  speechssl kmeans fit "$corpus" "$w/km_l1.safetensors" --kind layer --encoder "$w/pretrain/encoder.safetensors" --layer 1 \
    --clusters 20 --seed 0 --device "$device" --dtype bf16 -q
  speechssl tokens extract --encoder "$w/pretrain/encoder.safetensors" --kmeans "$w/km_l1.safetensors" "$corpus" "$w/tokens" \
    --dedup --device "$device" --dtype bf16 -q
  speechssl asr train --config recipes/asr/mini_frozen_linear.yaml --corpus "$corpus" --encoder "$w/pretrain/encoder.safetensors" \
    --exp "$w/asr" --max-steps 5 --device "$device" run.precision=bf16 run.progress=false run.valid_every=5 run.save_every=5 -q
  "$py" - "$w" <<'PY'
import json, math, sys
from pathlib import Path
w = Path(sys.argv[1])
losses = [r["loss"] for r in map(json.loads, (w / "pretrain" / "log.jsonl").read_text().splitlines()) if "loss" in r]
assert losses and all(math.isfinite(x) for x in losses), f"pretraining losses not finite: {losses}"
n = sum(1 for _ in open(next((w / "tokens").glob("*.jsonl"))))
assert n > 0, "no tokens written"
print(f"smoke: {len(losses)} pretraining loss records, last {losses[-1]:.3f}; {n} token lines")
PY
}
step smoke 240 bash -c "$(declare -f speechssl smoke); py='$py' work='$work' device='$device'; smoke '$data'"

# 5. the benchmarks, bf16; their headline lines (the last 'name: value' lines) into headlines.txt
bench() {
  local name=$1 limit=$2; shift 2
  local before
  before=$(wc -l < "$log")
  step "$name" "$limit" "$py" "tools/bench/$name.py" --device "$device" --dtype bf16 "$@"
  tail -n +"$((before + 2))" "$log" | grep -E '^[a-z0-9]+_[a-z0-9_]+: [-0-9.]+' | sed "s/^/$name | /" >> "$headlines"
}
bench_data=${bench_data:-${data:-$work/smoke/mini}}
if $quick; then
  bench encoder 120 --model tiny_hubert --batch 2 --seconds 1 --repeats 1 --rounds 1
  bench pretrain_step 120 --preset tiny_hubert --batch 2 --seconds 1 --warmup 1 --rounds 1 --no-memory
  bench tokens 120 --preset tiny_hubert --layer 1 --clusters 20 --max-utts 8 --data "$bench_data"
else
  bench encoder 150
  bench pretrain_step 180 --batch 8
  bench tokens 150 --data "$bench_data"
fi

echo "gpu_check: $device, $(date -u +%FT%TZ); log, doctor report, summary and headlines in $out" | tee -a "$summary"
cat "$headlines"
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${failed[*]} (see $log)" | tee -a "$summary" >&2
  exit 1
fi
echo "gpu_check: all steps passed" | tee -a "$summary"
