#!/usr/bin/env bash
# GPU benchmarks, for a machine with an NVIDIA GPU (none is lent to this
# project's CI): builds with CUDA, checks a device is present, and runs the
# CPU benchmarks plus the device probe. The CUDA kernels proper (quantizers,
# permute/combine, grouped GEMMs) come with the CUDA backend; until then this
# script only records the device next to the CPU numbers, so nothing here is
# presented as a GPU measurement. Never report FP4 speed on Hopper as
# measured: Hopper has no FP4 tensor cores.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "bench/gpu.sh: no nvidia-smi: this machine has no GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee bench/results/gpu-device.txt
make build CMAKE_FLAGS="-DMPLB_CUDA=ON" >/dev/null
bash bench/run.sh
