# Sourced by run.sh: the speechssl CLI on PATH, as for every recipe on the mini corpus.
. "$(dirname "${BASH_SOURCE[0]}")/../path.sh"
