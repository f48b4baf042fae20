#!/usr/bin/env bash
# Refresh uv.lock, the exact version of every package that tools/setup.sh installs and CI tests.
#
# Usage: tools/lock.sh             after editing pyproject.toml: re-resolve, keeping every pin
#                                  that still satisfies the new ranges
#        tools/lock.sh --upgrade   move every package to the newest release pyproject.toml allows
# Then: tools/setup.sh && .venv/bin/python -m pytest -m "not gpu"   (and commit uv.lock with it).
# tools/deps_drift.sh tries the newest releases without touching the lock.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  "") args=() ;;
  --upgrade) args=(--upgrade) ;;
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "lock.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
# uv from the project's venv (tools/setup.sh puts it there), else from PATH
uv="$root/.venv/bin/uv"
[ -x "$uv" ] || uv="$(command -v uv)" || { echo "lock.sh: no uv: run tools/setup.sh first (or pip install uv)" >&2; exit 1; }
before="$(mktemp)"; trap 'rm -f "$before"' EXIT
cp "$root/uv.lock" "$before" 2>/dev/null || : > "$before"
"$uv" lock --project "$root" "${args[@]}"
# what moved, one package a line
diff <(sed -n '/^\[\[package\]\]/{n;N;s/name = "\(.*\)"\nversion = "\(.*\)"/\1 \2/p}' "$before" | sort -u) \
     <(sed -n '/^\[\[package\]\]/{n;N;s/name = "\(.*\)"\nversion = "\(.*\)"/\1 \2/p}' "$root/uv.lock" | sort -u) \
  | sed -n 's/^< /  was: /p; s/^> /  now: /p' || true
echo "lock.sh: uv.lock refreshed; now run tools/setup.sh and the tests, and commit uv.lock"
