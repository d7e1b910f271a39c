#!/usr/bin/env bash
# bench/memory: peak resident memory (max RSS, from GNU time / getrusage) of a
# DeepSeek-V3-scale run under the cost model: 256 experts, top-8, 61 layers
# (the issue's shape; the preset's 58 MoE layers are fewer), 100 steps of 16k
# tokens, 64 ranks (8 nodes x 8 H100s), baseline + threshold + eplb. Also the
# run file's size and the wall and CPU time. Not a test.
set -euo pipefail
MPLB=${1:-./build/mplb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/exp.lua" <<'LUA'
return {
  name = "memory-dsv3",
  model = { preset = "deepseek-v3", layers = 61 },
  cluster = { nodes = 8, gpus_per_node = 8, profile = "h100" },
  workload = { steps = 100, tokens = 16384, zipf = 1.0, vision_frac = 0.3, vision_zipf = 1.5 },
  policies = { "baseline", { "threshold", min_tokens = 0 }, "eplb" },
  seed = 1,
}
LUA
/usr/bin/time -f "%M %e %U %S" -o "$work/time" "$MPLB" run "$work/exp.lua" -o "$work/out.h5" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
read -r kb wall user sys < "$work/time"
echo "# mplb bench/memory: deepseek-v3 shape, 61 layers x 100 steps x 16384 tokens, 64 ranks, 3 policies (baseline, threshold, eplb), cost model"
printf "%-22s %12s\n" "peak_rss_MiB" "$(awk -v k="$kb" 'BEGIN{printf "%.1f", k/1024}')"
printf "%-22s %12s\n" "runfile_MiB" "$(du -k "$work/out.h5" | awk '{printf "%.1f", $1/1024}')"
printf "%-22s %12s\n" "wall_s" "$wall"
printf "%-22s %12s\n" "cpu_s" "$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')"
