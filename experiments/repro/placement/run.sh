#!/usr/bin/env bash
# Placement card: run.sh --bin MPLB --out DIR [--small]   (docs/reproductions/placement.md)
# Builds the arrival-order and k-means-grouped traces from real OLMoE routing (group_requests.py),
# runs placement.lua on each under the cost model with --sensitivity, writes DIR/results.md and .csv.
# Paths under the repository are printed relative to it in the mplb-run-*.txt logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../args.sh"   # root, bin, out, small, py
# full: 8 steps of 128 requests x 128 tokens (16K tokens); --small: 3 steps of 64 x 64
if [ $small = 1 ]; then steps=3; req=64; tok=64; prof=128
else steps=8; req=128; tok=128; prof=512; fi
"$py" "$here/group_requests.py" "$root/traces/olmoe-mixtral/olmoe.h5" "$out" --steps $steps --requests $req \
  --req-tokens $tok --nodes 4 --gpus-per-node 8 --profile $prof --seed 7 > /dev/null
for g in arrival kmeans; do
  "$bin" run "$here/placement.lua" -o "$out/$g.h5" --force --sensitivity \
    --set "workload.file=\"$out/$g.trace.h5\"" --set workload.steps=$steps | sed "s|$root/||g" > "$out/mplb-run-$g.txt"
done
# the k-means runs' bands against arrival order's baseline: --sensitivity gives each run's speedups
# against its own baseline at every assumption end; the two baselines' times at the same ends come
# from baseline-only runs on a profile inheriting h100 with that one assumption at that end
"$py" - "$out/kmeans.h5" "$out" <<'PYEND'
import sys, h5py
f = h5py.File(sys.argv[1], "r")["sensitivity"]
for i, (name, lo, hi) in enumerate(zip(f["param"][()], f["lo"][()].tolist(), f["hi"][()].tolist())):
    name = name.decode() if isinstance(name, bytes) else str(name)
    for e, v in (("lo", float(lo)), ("hi", float(hi))):
        val = f'{{ {v!r}, src = "assumption", range = {{ {lo!r}, {hi!r} }}, ref = "h100 {name} at its {e} end (placement card band)" }}'
        key, _, sub = name.partition(".")
        body = f"{key} = {{ {sub} = {val} }}" if sub else f"{key} = {val}"
        open(f"{sys.argv[2]}/end_{i}_{e}.lua", "w").write(f'return {{ name = "h100-{name}-{e}", inherit = "h100", {body} }}\n')
PYEND
for p in "$out"/end_*_lo.lua "$out"/end_*_hi.lua; do
  e=$(basename "$p" .lua)
  for g in arrival kmeans; do
    "$bin" run "$here/placement.lua" -o "$out/$g.$e.h5" --force --policy baseline --set "cluster.profile=\"$p\"" \
      --set "workload.file=\"$out/$g.trace.h5\"" --set workload.steps=$steps > /dev/null
  done
  rm -f "$p"
done
rm -f "$out/arrival.trace.h5" "$out/kmeans.trace.h5"
"$py" "$here/summarize.py" "$out"
rm -f "$out"/arrival.end_*.h5 "$out"/kmeans.end_*.h5
