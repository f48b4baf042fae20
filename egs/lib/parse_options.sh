# Command-line options of every recipe under egs/ (what Kaldi's utils/parse_options.sh does).
# Sourced, not run, right after the recipe's defaults block, with the recipe's arguments still in
# "$@" (egs/<corpus>/<task>/run.sh; egs/mini/run.sh uses ../lib):
#   . "$(dirname "$0")/../../lib/parse_options.sh"
# The defaults block is the lines between "# ---- defaults" and "# ----", one "name=value  # what"
# each. Then:
#   -h, --help          print the header comment of the recipe and every option with its default and
#                       comment, and exit 0
#   --name value        (or --name=value; dashes read as underscores) set $name, which must be one of
#                       the defaults; any other option or argument exits 2 with a message
#   cmdline             is set to the recipe's command line as given, each word quoted for the shell, and
#   given               (an associative array) holds the names of the options it gave: given[name]=1
# Messages start with "run.sh:" and go to stderr, as the recipes' own.

usage() {
  sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  echo "Options (default):"
  sed -n '/^# ---- defaults/,/^# ----$/p' "$0" | grep -E '^[a-z_0-9]+=' |
    sed -E 's/^([a-z_0-9]+)=("[^"]*"|[^ ]*) *# *(.*)$/  --\1 (\2)  \3/'
}
cmdline="$0$(printf ' %q' "$@")"  # quoted for the shell: it runs again as it is
declare -A given=()
recipe_options=" $(sed -n '/^# ---- defaults/,/^# ----$/p' "$0" | grep -oE '^[a-z_0-9]+=' | tr -d '=' | tr '\n' ' ')"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --*=*) name="${1%%=*}"; name="${name#--}"; value="${1#*=}"; shift ;;
    --*) name="${1#--}"; [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; value="$2"; shift 2 ;;
    *) echo "run.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  name="${name//-/_}"
  if [[ "$recipe_options" == *" $name "* ]]; then
    printf -v "$name" '%s' "$value"
    given[$name]=1
  else
    echo "run.sh: unknown option --$name (see --help)" >&2
    exit 2
  fi
done
unset name value
