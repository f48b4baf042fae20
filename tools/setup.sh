#!/usr/bin/env bash
# Set up speechssl for development and recipes: a virtual environment in .venv with the package
# (editable) and its dev extra, and the espeak-ng system package the synthetic mini corpus needs.
# Running it again when nothing changed takes seconds: the pip step is skipped while pyproject.toml
# and the Python version are unchanged.
#
# Usage: tools/setup.sh [--force]      (--force reinstalls the Python packages)
# Env:   PYTHON   interpreter to build the venv from (default: python3, must be >= 3.10)
#        VENV     where the venv goes (default: <repo>/.venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${VENV:-$root/.venv}"
force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# 1. espeak-ng (binary and shared library; the mini corpus reads phoneme events through the library)
# The library check is the dynamic loader itself (what speechssl.data.mini does), not `ldconfig -p`:
# ldconfig lives in /sbin, which is not on every user's PATH.
have_espeak() {
  command -v espeak-ng >/dev/null 2>&1 \
    && "$python" -c 'import ctypes; ctypes.CDLL("libespeak-ng.so.1")' >/dev/null 2>&1
}
if ! have_espeak; then
  echo "setup.sh: espeak-ng is missing; installing it with apt-get"
  if [ "$(id -u)" = 0 ]; then sudo=""
  elif command -v sudo >/dev/null 2>&1; then sudo="sudo"
  else
    echo "setup.sh: cannot install espeak-ng: not root and no sudo. Ask an administrator to run" >&2
    echo "          'apt-get install espeak-ng' (Debian/Ubuntu), then run tools/setup.sh again." >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: cannot install espeak-ng: no apt-get here. Install espeak-ng (binary and" >&2
    echo "          libespeak-ng.so.1) with your system's package manager, then run this again." >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq espeak-ng >/dev/null
  have_espeak || { echo "setup.sh: espeak-ng still not found after apt-get install" >&2; exit 1; }
fi

# 2. the virtual environment
"$python" - <<'PY' || { echo "setup.sh: speechssl needs Python >= 3.10 (PYTHON=$python)" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY
if [ ! -x "$venv/bin/python" ]; then
  echo "setup.sh: creating $venv"
  "$python" -m venv "$venv"
fi

# 3. the package, skipped when nothing it depends on changed
stamp="$venv/.speechssl-setup"
want="$( { cat "$root/pyproject.toml"; "$venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
if ! $force && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: $venv is up to date"
else
  echo "setup.sh: installing speechssl[dev] into $venv (first time: a few minutes)"
  rm -f "$stamp"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  echo "$want" > "$stamp"
fi
echo "setup.sh: ready. Activate with: . $venv/bin/activate"
