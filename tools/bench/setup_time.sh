#!/usr/bin/env bash
# A fresh tools/setup.sh against an earlier one, measured in the same run: each from its own fresh
# clone, with empty pip and uv caches (nothing downloaded before counts), one after the other.
# espeak-ng is left as it is (a system package, installed once per machine), unless --no-espeak:
# then it is removed with apt-get before each (root only), as on a fresh machine.
#
#   tools/bench/setup_time.sh                 # HEAD against 4e2d0af (pip install -e, floating versions)
#   tools/bench/setup_time.sh --no-espeak --rounds 2   # as on a fresh machine; before, after, before, after
#   tools/bench/setup_time.sh --before REF --after REF
#
# Prints, last, one 'name: value' line per headline figure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
before=4e2d0af after=HEAD no_espeak=false rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-espeak) no_espeak=true ;;
    --rounds) rounds="$2"; shift ;;
    --before) before="$2"; shift ;;
    --after) after="$2"; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup_time.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# one REF NAME: clone REF, run its tools/setup.sh with empty caches; print seconds and venv size
one() {
  local ref=$1 name=$2 dir=$work/$2
  git clone -q "$root" "$dir"
  git -C "$dir" checkout -q "$ref"
  if $no_espeak; then
    apt-get remove -y -qq espeak-ng libespeak-ng1 espeak-ng-data > /dev/null 2>&1 || true
    apt-get autoremove -y -qq > /dev/null 2>&1 || true
    apt-get clean && rm -rf /var/lib/apt/lists/*
  fi
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$dir" && PIP_CACHE_DIR="$work/pip-$name" UV_CACHE_DIR="$work/uv-$name" tools/setup.sh) > "$work/$name.log" 2>&1 \
    || { echo "setup_time.sh: $name ($ref) failed:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  local secs gib
  secs=$(python3 -c "print(round($t1 - $t0, 1))")
  gib=$(du -sk "$dir/.venv" | awk '{printf "%.2f", $1 / 1048576}')
  echo "$name ($ref, $(git -C "$dir" rev-parse --short HEAD)): $secs s, venv $gib GiB" >&2
  rm -rf "$dir" "$work/pip-$name" "$work/uv-$name"
  echo "$secs $gib"
}
# rounds alternate before, after, before, after, ...; each side's figure is its median
b_all=() a_all=()
for ((r = 1; r <= rounds; r++)); do
  read -r s gib < <(one "$before" before) || true; b_all+=("${s:-}"); before_gib=${gib:-}
  read -r s gib < <(one "$after" after) || true; a_all+=("${s:-}"); after_gib=${gib:-}
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for s in "${b_all[@]}" "${a_all[@]}"; do
  [ -n "$s" ] || { echo "setup_time.sh: a set-up failed (above)" >&2; exit 1; }
done
before_s=$(median "${b_all[@]}") after_s=$(median "${a_all[@]}")
echo "before: ${b_all[*]} s; after: ${a_all[*]} s (medians $before_s, $after_s)"
echo "setup_seconds: $after_s"
echo "setup_seconds_before: $before_s"
echo "setup_speedup_vs_before: $(python3 -c "print(f'{$before_s / $after_s:.2f}x')")"
echo "setup_venv_gib: $after_gib (before $before_gib)"
