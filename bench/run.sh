#!/usr/bin/env bash
# Build (release) and run mplb's benchmarks; results go to bench/results/.
# usage: bench/run.sh [quant ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null
host=$(hostname)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
which=${*:-quant costmodel policies hdf5 workloads}
for b in $which; do
  out=bench/results/$b.txt
  { echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $host ($cpu), git $(git rev-parse --short HEAD)"
    ./build/bench/bench_$b; } | tee "$out"
done
