#!/usr/bin/env bash
# Set up speechssl for development and recipes: the espeak-ng system package the synthetic mini
# corpus needs, and a virtual environment in .venv holding exactly the versions of uv.lock (the set
# the tests passed with) and the package itself (editable, with its dev extra).
# The lock is installed with uv (parallel downloads, no resolver run); uv itself comes from PyPI
# through pip, at the version the lock names. Running it again when nothing changed takes seconds:
# the install is skipped while uv.lock, pyproject.toml, the Python version and whether
# PYTHONDONTWRITEBYTECODE is set (see --compile-bytecode below) are unchanged.
#
# Usage: tools/setup.sh [--force]      (--force reinstalls the Python packages)
# Env:   PYTHON   interpreter to build the venv from (default: python3, must be >= 3.10)
#        VENV     where the venv goes (default: <repo>/.venv)
#        UV_CACHE_DIR, UV_DEFAULT_INDEX, ...  uv's own settings (uv does not read pip.conf)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${VENV:-$root/.venv}"
force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
install_espeak() {
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null
}
apt_pid=""
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
  if [ -z "$sudo" ] || sudo -n true 2>/dev/null; then
    # no password to ask for: apt works in the background while the Python packages install
    apt_log="$(mktemp)"
    install_espeak > "$apt_log" 2>&1 &
    apt_pid=$!
  else
    install_espeak
  fi
fi
# wait for a background apt-get, and check that espeak-ng is usable
espeak_done() {
  if [ -n "$apt_pid" ]; then
    wait "$apt_pid" || { cat "$apt_log" >&2; echo "setup.sh: apt-get install espeak-ng failed (above)" >&2; exit 1; }
    rm -f "$apt_log"; apt_pid=""
  fi
  have_espeak || { echo "setup.sh: espeak-ng still not found after apt-get install" >&2; exit 1; }
}
[ -n "$apt_pid" ] || espeak_done

# 2. the virtual environment
"$python" - <<'PY' || { echo "setup.sh: speechssl needs Python >= 3.10 (PYTHON=$python)" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY
if [ ! -x "$venv/bin/python" ]; then
  echo "setup.sh: creating $venv"
  "$python" -m venv "$venv"
fi

# 3. the locked packages and speechssl, skipped when nothing they depend on changed
stamp="$venv/.speechssl-setup"
want="$( { cat "$root/uv.lock" "$root/pyproject.toml"; "$venv/bin/python" -VV; echo "${PYTHONDONTWRITEBYTECODE:+compiled}"; } \
  | sha256sum | cut -d' ' -f1)"
# speechssl's own .pyc files (it is installed editable: its modules stay in the source tree), kept
# current on every run where Python does not write them itself; see --compile-bytecode below
compile_speechssl() {
  [ -z "${PYTHONDONTWRITEBYTECODE:-}" ] || "$venv/bin/python" -m compileall -q -j 0 "$root/speechssl" > /dev/null
}
if ! $force && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  espeak_done
  compile_speechssl
  echo "setup.sh: $venv is up to date"
  exit 0
fi
rm -f "$stamp"
# uv at the version the lock pins (it is in the dev extra), bootstrapped with the venv's pip
uv_version="$(sed -n '/^name = "uv"$/{n;s/^version = "\(.*\)"$/\1/p;q}' "$root/uv.lock")"
[ -n "$uv_version" ] || { echo "setup.sh: uv.lock names no uv version; refresh it with tools/lock.sh" >&2; exit 1; }
if [ "$("$venv/bin/python" -m uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  echo "setup.sh: installing uv $uv_version into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "uv==$uv_version"
fi
echo "setup.sh: installing the locked packages and speechssl[dev] into $venv (first time: a minute or two)"
# --locked: stop, instead of re-resolving, when uv.lock was not made from this pyproject.toml
# (uv sync also removes what the lock does not name: the venv is the tested set and nothing else)
# --compile-bytecode where PYTHONDONTWRITEBYTECODE is set (as on the machines this project is built
# and tested on): Python never writes .pyc files there, and every command would compile torch's
# modules again (4 s instead of 2 s per process). Elsewhere Python writes them on first use, for
# the modules used only, and compiling all 15,000 now would cost half a minute.
compile=()
[ -z "${PYTHONDONTWRITEBYTECODE:-}" ] || compile=(--compile-bytecode)
UV_PROJECT_ENVIRONMENT="$venv" "$venv/bin/python" -m uv sync --project "$root" --locked --extra dev \
  --python "$venv/bin/python" --no-python-downloads --quiet "${compile[@]}" $($force && echo --reinstall) \
  || { echo "setup.sh: installing from uv.lock failed (see above). If pyproject.toml changed, refresh the lock with tools/lock.sh" >&2; exit 1; }
compile_speechssl

espeak_done

# 4. what the install can do, checked: torch, torchaudio's compiled library, faiss, espeak-ng, ...
if ! report="$("$venv/bin/speechssl" doctor 2>&1)"; then
  echo "$report" >&2
  echo "setup.sh: the install is not healthy (see the FAIL lines and their fixes above)" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "setup.sh: $(echo "$report" | tail -n 1) ('$venv/bin/speechssl doctor' shows the details)"
echo "setup.sh: ready. Activate with: . $venv/bin/activate"
