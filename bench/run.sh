#!/usr/bin/env bash
# Build (release) and run mplb's benchmarks; results go to bench/results/NAME.txt.
# usage: bench/run.sh [quant costmodel policies hdf5 workloads sweep]   (default: all)
# GPU benchmarks: bench/gpu.sh, on a machine with a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null
host=$(hostname)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
which=${*:-quant costmodel policies hdf5 workloads sweep gemm dispatch eplb accuracy memory}
for b in $which; do
  out=bench/results/$b.txt
  { echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $host ($cpu, $(nproc) cores), git $(git rev-parse --short HEAD)"
    if [ -f "bench/$b.sh" ]; then bash "bench/$b.sh" ./build/mplb; else ./build/bench/bench_$b; fi; } | tee "$out"
done
