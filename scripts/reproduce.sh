#!/usr/bin/env bash
# Regenerate the numbers and figures of every reproduction card (docs/reproductions/NAME.md).
#   scripts/reproduce.sh [--small] [-o OUT] [--bin MPLB] [NAME...]
# Each card has a directory experiments/repro/NAME/ with an executable `run.sh` that is called as
#   run.sh --bin MPLB --out OUT/NAME [--small]
# and writes its tables (markdown/CSV) and figures under OUT/NAME. Without --small the outputs go to
# docs/reproductions/NAME/ (what the cards cite); --small is the reduced size `make test` runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
small=""; out=""; bin="$root/build/mplb"; names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --small) small="--small" ;;
    -o|--out) out="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "reproduce.sh: unknown option '$1' (valid: --small, -o, --bin, --help)" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "reproduce.sh: no mplb binary at $bin (run 'make build' or pass --bin)" >&2; exit 2; }
[ -n "$out" ] || out="$root/docs/reproductions"
if [ ${#names[@]} -eq 0 ]; then
  for d in "$root"/experiments/repro/*/; do [ -x "$d/run.sh" ] && names+=("$(basename "$d")"); done
fi
[ ${#names[@]} -gt 0 ] || { echo "reproduce.sh: no cards under experiments/repro/*/run.sh" >&2; exit 2; }
fail=0
for n in "${names[@]}"; do
  script="$root/experiments/repro/$n/run.sh"
  if [ ! -x "$script" ]; then
    echo "reproduce.sh: unknown card '$n' (cards: $(ls "$root/experiments/repro" | tr '\n' ' '))" >&2; exit 2
  fi
  mkdir -p "$out/$n"
  echo "== $n"
  start=$(date +%s)
  if "$script" --bin "$bin" --out "$out/$n" $small; then
    echo "== $n: done in $(( $(date +%s) - start )) s -> $out/$n"
  else
    echo "== $n: FAILED" >&2; fail=1
  fi
done
exit $fail
