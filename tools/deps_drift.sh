#!/usr/bin/env bash
# Find dependency drift before users do: install speechssl into a throwaway venv with the newest
# releases pyproject.toml's ranges allow today (what a fresh 'pip install' would get, not uv.lock),
# then run 'speechssl doctor' and the dependency-sensitive tests (pytest -m deps). Not part of CI:
# run it before refreshing the lock (tools/lock.sh --upgrade) and now and then.
#
# Usage: tools/deps_drift.sh [--lowest] [--venv DIR] [-- PYTEST_ARGS...]
#   --lowest    speechssl's own requirements at the lowest releases their ranges allow (checks that
#               the lower bounds are true); their dependencies at the newest
#   --venv DIR  where the venv goes, made afresh and kept (default: a temporary folder, removed)
# Exit status: 0 when doctor finds no FAIL and the tests pass.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
resolution=highest venv="" pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --lowest) resolution=lowest-direct ;;
    --venv) venv="$2"; shift ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deps_drift.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$venv" ]; then
  venv="$(mktemp -d)/venv"
  trap 'rm -rf "$(dirname "$venv")"' EXIT
fi
uv="$root/.venv/bin/uv"
[ -x "$uv" ] || uv="$(command -v uv)" || { echo "deps_drift.sh: no uv: run tools/setup.sh first (or pip install uv)" >&2; exit 1; }
"$uv" venv --quiet --clear --python "${PYTHON:-python3}" --no-python-downloads "$venv"  # --clear: a venv given again starts afresh
echo "deps_drift.sh: resolving speechssl[dev] afresh ($resolution) into $venv"
"$uv" pip install --quiet --python "$venv/bin/python" --resolution "$resolution" -e "$root[dev]"
status=0
"$venv/bin/speechssl" doctor || status=1   # its 'lock' line lists what differs from uv.lock
cd "$root"
"$venv/bin/python" -m pytest -m "deps and not gpu and not slow" -p no:cacheprovider -q "${pytest_args[@]}" || status=1
[ $status = 0 ] && echo "deps_drift.sh: no drift: the $resolution resolution passes" \
                || echo "deps_drift.sh: DRIFT: the $resolution resolution fails (above); fix the code or the ranges before users meet it" >&2
exit $status
