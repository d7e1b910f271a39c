#!/usr/bin/env bash
# EPLB card: run.sh --bin MPLB --out DIR [--small]   (docs/reproductions/eplb.md)
# Runs eplb.lua under the cost model with --sensitivity and writes DIR/results.md and DIR/results.csv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../args.sh"   # root, bin, out, small, py
# --small: 8 steps of one layer; periods shortened so that each policy rebalances and has steady steps
if [ $small = 1 ]; then sets=(--set workload.steps=8 --set model.layers=1 --set workload.tokens=4096
  --set 'policies[3].period=3' --set 'policies[4].period=4' --set 'policies[5].period=3' --set 'policies[6].period=3'
  --set 'policies[7].period=3')
else sets=(--set workload.steps=60 --set model.layers=4); fi
"$bin" run "$here/eplb.lua" -o "$out/eplb.h5" --force --sensitivity "${sets[@]}" > "$out/mplb-run.txt"
"$py" "$here/summarize.py" "$out/eplb.h5" "$out" $([ $small = 1 ] && echo --small)
