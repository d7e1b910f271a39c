#!/usr/bin/env bash
# bench/sweep: mplb sweep throughput with -j2 over -j1 on this machine (2
# cores), same 12 points, same run; best of 2 each. Not a test.
set -euo pipefail
MPLB=${1:-./build/mplb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/exp.lua" <<'LUA'
return {
  model = "olmoe-1b-7b",
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { steps = 8, tokens = 4096, zipf = { 0.8, 1.0, 1.2 }, vision_frac = 0.5 },
  policies = { "baseline", { "threshold", tau = { 1.1, 1.25, 1.5, 2.0 }, min_tokens = 0 } },
}
LUA
best() { # jobs -> best wall seconds of 2
  local b=999
  for i in 1 2; do
    rm -rf "$work/out"
    local t0 t1
    t0=$(date +%s.%N)
    "$MPLB" sweep "$work/exp.lua" -o "$work/out" -j "$1" > /dev/null 2>&1
    t1=$(date +%s.%N)
    b=$(echo "$t1 - $t0" | bc -l | awk -v b="$b" '{ print ($1 < b) ? $1 : b }')
  done
  echo "$b"
}
t1=$(best 1)
t2=$(best 2)
echo "# mplb bench/sweep: 12 points (olmoe-1b-7b, 8 steps x 16 layers, 4096 tokens, 2 policies), $(nproc) cores"
printf "j1_seconds          %.3f\n" "$t1"
printf "j2_seconds          %.3f\n" "$t2"
printf "j1_points_per_s     %.2f\n" "$(echo "12 / $t1" | bc -l)"
printf "j2_points_per_s     %.2f\n" "$(echo "12 / $t2" | bc -l)"
printf "j2_over_j1          %.2fx\n" "$(echo "$t1 / $t2" | bc -l)"
