#!/usr/bin/env bash
# HarMoEny card: run.sh --bin MPLB --out DIR [--small]   (docs/reproductions/harmoeny.md)
# For each router skew: a trace of HarMoEny's skewed routing (skew_trace.py), harmoeny.lua under the
# cost model with --sensitivity, then DIR/results.md and DIR/results.csv (summarize.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../../.." && pwd)
bin="$root/build/mplb"; out=""; small=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift ;; --out) out="$2"; shift ;; --small) small=1 ;;
    *) echo "harmoeny/run.sh: unknown option '$1' (valid: --bin, --out, --small)" >&2; exit 2 ;;
  esac; shift
done
[ -n "$out" ] || { echo "harmoeny/run.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"; out=$(cd "$out" && pwd)
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
# full: 2500 sequences x 120 tokens per GPU x 8 GPUs (the public scripts' batch); --small: a tenth, 2 steps
if [ $small = 1 ]; then tokens=240000; steps=2; skews="50 90"
else tokens=2400000; steps=3; skews="0 25 50 75 90 95"; fi
files=()
for s in $skews; do
  "$py" "$here/skew_trace.py" "$out/skew$s.npy" --tokens $tokens --skew $s --steps $steps --layers 6
  "$bin" trace import "$out/skew$s.npy" -o "$out/skew$s.trace.h5" --top-k 1 --force > /dev/null
  "$bin" run "$here/harmoeny.lua" -o "$out/skew$s.h5" --force --sensitivity \
    --set "workload.file=\"$out/skew$s.trace.h5\"" --set workload.steps=$steps > "$out/mplb-run-skew$s.txt"
  files+=("$out/skew$s.h5")
  rm -f "$out/skew$s.npy"
done
"$py" "$here/summarize.py" "$out" $tokens "${files[@]}"
