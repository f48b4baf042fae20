# Sourced by each IEMOCAP recipe's run.sh: put the speechssl CLI on PATH (the repo's .venv from tools/setup.sh, if present).
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -x "$repo_root/.venv/bin/speechssl" ]; then
  export PATH="$repo_root/.venv/bin:$PATH"
fi
if ! command -v speechssl >/dev/null 2>&1; then
  echo "speechssl is not installed: run tools/setup.sh (from $repo_root) first" >&2
  exit 1
fi
export PYTHONUNBUFFERED=1
