#!/usr/bin/env bash
# ReaLB reproduction card (docs/reproductions/realb.md): run.sh --bin MPLB --out DIR [--small]
# Timing: timing.lua at 4K and 8K tokens and two vision shares, each with --sensitivity, and at 8K
# with the vision routing fluctuating from batch to batch (workload.vision_sigma 0.45, 1.0).
# Full size also: variants (tau = 1.25; rtx5090_corner.lua's joint pessimistic corner).
# Accuracy: accuracy.lua (the lm workload on models/tiny-moe). Then summarize.py writes
# DIR/results.md, timing.csv, variants.csv, accuracy.csv and speedup.png.
# --small: 2 MoE layers x 2 steps, one fluctuating-vision point, 2 lm steps (the card's shape, for make test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../args.sh"   # root, bin, out, small, py
size=(); acc=()
sigmas="45 100"
if [ $small = 1 ]; then size=(--set model.layers=2 --set workload.steps=2); acc=(--set workload.steps=2); sigmas=100; fi
for tokens in 4096 8192; do
  for vis in 60 85; do
    "$bin" run "$here/timing.lua" --force -o "$out/timing_${tokens}_v${vis}.h5" --sensitivity \
      --set workload.tokens=$tokens --set workload.vision_frac=0.$vis "${size[@]}" > "$out/timing_${tokens}_v${vis}.txt"
  done
done
# the vision hot set redrawn in part every batch (other images, other experts): sd of the log-popularity
# 0.45 (the fitted text model's own step fluctuation) and 1.0
for vs in $sigmas; do
  "$bin" run "$here/timing.lua" --force -o "$out/timing_8192_v85_s${vs}.h5" --sensitivity \
    --set workload.tokens=8192 --set workload.vision_frac=0.85 --set workload.vision_sigma=$(awk "BEGIN{print $vs/100}") \
    "${size[@]}" > "$out/timing_8192_v85_s${vs}.txt"
done
# routing seeds beside the card's (11): the spread the random routing adds (full size only)
if [ $small = 0 ]; then
  for seed in 12 13 14; do
    "$bin" run "$here/timing.lua" --force -o "$out/seed_8192_v85_${seed}.h5" --set seed=$seed \
      --set workload.tokens=8192 --set workload.vision_frac=0.85 > "$out/seed_8192_v85_${seed}.txt"
  done
fi
# variants (full size only): ReaLB's rule at threshold's default tau = 1.25 (the card uses 1.1), with
# --sensitivity; and the two deciding assumptions at their pessimistic ends together (rtx5090_corner.lua)
if [ $small = 0 ]; then
  for tokens in 4096 8192; do
    for vis in 60 85; do
      "$bin" run "$here/timing.lua" --force -o "$out/variant_tau125_${tokens}_v${vis}.h5" --sensitivity \
        --set policies.threshold.tau=1.25 --set workload.tokens=$tokens --set workload.vision_frac=0.$vis \
        > "$out/variant_tau125_${tokens}_v${vis}.txt"
      "$bin" run "$here/timing.lua" --force -o "$out/variant_corner_${tokens}_v${vis}.h5" \
        --set "cluster.profile=\"$here/rtx5090_corner.lua\"" --set workload.tokens=$tokens --set workload.vision_frac=0.$vis \
        | sed "s|$root/||g" > "$out/variant_corner_${tokens}_v${vis}.txt"
    done
  done
fi
"$bin" run "$here/accuracy.lua" --force -o "$out/accuracy.h5" "${acc[@]}" > "$out/accuracy.txt"
PYTHONPATH="$root/analysis${PYTHONPATH:+:$PYTHONPATH}" "$py" "$here/summarize.py" "$out" "$root" > /dev/null
echo "realb: $out/results.md"
