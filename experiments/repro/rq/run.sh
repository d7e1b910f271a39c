#!/usr/bin/env bash
# R&Q reproduction card (docs/reproductions/rq.md): run.sh --bin MPLB --out DIR [--small]
# trace.lua on OLMoE-1B-7B's and Mixtral-8x7B's recorded routing (--sensitivity for the
# speedup column), accuracy.lua on models/tiny-moe with importance by ablation; then
# summarize.py writes DIR/results.md, lis.csv and lis.png.
# --small: 4 trace steps and 1 lm step (the shape of the card, for make test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../args.sh"   # root, bin, out, small, py
olmoe_steps=6; mixtral_steps=5; lm=()
if [ $small = 1 ]; then olmoe_steps=4; mixtral_steps=4; lm=(--set workload.steps=1); fi
"$bin" run "$here/trace.lua" --force -o "$out/olmoe.h5" --sensitivity --set workload.steps=$olmoe_steps > "$out/olmoe.txt"
# Mixtral: 8 experts; on 2 ranks (4 experts each) so that quantizing frees room for a copy
# (on 8 ranks, one expert each, no replica fits the rank's bf16 footprint)
"$bin" run "$here/trace.lua" --force -o "$out/mixtral.h5" --sensitivity --set model.preset=mixtral-8x7b \
  --set workload.file=olmoe-mixtral/mixtral --set workload.steps=$mixtral_steps --set cluster.gpus_per_node=2 > "$out/mixtral.txt"
"$bin" run "$here/accuracy.lua" --force -o "$out/accuracy.h5" "${lm[@]}" > "$out/accuracy.txt"
PYTHONPATH="$root/analysis${PYTHONPATH:+:$PYTHONPATH}" "$py" "$here/summarize.py" "$out" > /dev/null
echo "rq: $out/results.md"
