# Sourced by every card's run.sh (after setting `here` to its folder): the
# runner's contract, run.sh --bin MPLB --out DIR [--small] (scripts/reproduce.sh).
# Sets root (the repository), bin, out (made, absolute), small (0/1), py.
root=$(cd "$here/../../.." && pwd)
card="$(basename "$here")/run.sh"
bin="$root/build/mplb"; out=""; small=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --out) out="$2"; shift ;;
    --small) small=1 ;;
    *) echo "$card: unknown option '$1' (valid: --bin, --out, --small)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || { echo "$card: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"; out=$(cd "$out" && pwd)
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
