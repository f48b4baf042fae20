# Sourced by run.sh: the speechssl CLI on PATH, as for every LibriSpeech recipe.
. "$(dirname "${BASH_SOURCE[0]}")/../path.sh"
