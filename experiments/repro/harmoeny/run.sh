#!/usr/bin/env bash
# HarMoEny card: run.sh --bin MPLB --out DIR [--small]   (docs/reproductions/harmoeny.md)
# For each router skew: a trace of HarMoEny's skewed routing (skew_trace.py), harmoeny.lua under the
# cost model with --sensitivity, then DIR/results.md and DIR/results.csv (summarize.py); paths under
# the repository are printed relative to it in the mplb-run-*.txt logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../args.sh"   # root, bin, out, small, py
# HarMoEny's batch: 2500 sequences x 120 tokens per GPU x 8 GPUs; the baselines' own batches in the
# public script (scripts/experiment_systems_skew.sh: DeepSpeed, FastMoE and FasterMoE alike, smaller as
# the skew grows: their memory limit): skew 0 (random) 1250, 25: 1100, 50: 625, 75: 550, 90: 450, 95: 400.
# --small: a tenth of every batch, 2 skews, 2 steps.
declare -A own=([0]=1250 [25]=1100 [50]=625 [75]=550 [90]=450 [95]=400)
if [ $small = 1 ]; then div=10; steps=2; skews="50 90"
else div=1; steps=3; skews="0 25 50 75 90 95"; fi
tokens=$((2500 * 120 * 8 / div))
files=()
echo "{" > "$out/batches.json"; sep=""
for s in $skews; do
  town=$((${own[$s]} * 120 * 8 / div))
  printf '%s"%s": {"harmoeny": %d, "own": %d}' "$sep" "$s" $tokens $town >> "$out/batches.json"; sep=$',\n'
  for run in h own; do
    t=$tokens; [ $run = own ] && t=$town
    name="skew$s"; [ $run = own ] && name="skew${s}_own"
    "$py" "$here/skew_trace.py" "$out/$name.npy" --tokens $t --skew $s --steps $steps --layers 6
    "$bin" trace import "$out/$name.npy" -o "$out/$name.trace.h5" --top-k 1 --force > /dev/null
    "$bin" run "$here/harmoeny.lua" -o "$out/$name.h5" --force --sensitivity \
      --set "workload.file=\"$out/$name.trace.h5\"" --set workload.steps=$steps | sed "s|$root/||g" > "$out/mplb-run-$name.txt"
    files+=("$out/$name.h5")
    rm -f "$out/$name.npy" "$out/$name.trace.h5"
  done
done
echo "}" >> "$out/batches.json"
"$py" "$here/summarize.py" "$out" "${files[@]}"
