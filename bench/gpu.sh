#!/usr/bin/env bash
# GPU checks and benchmarks, for a machine with an NVIDIA GPU (none is lent to
# this project's CI): builds with CUDA, records the device, checks the CUDA
# quantizers against the CPU reference bit for bit (kernels/check_quant.cu),
# the FP4 dequantizers and the cuBLASLt expert FFN against the CPU
# (kernels/check_ffn.cu), the EP layer over NCCL against the local transport
# on every GPU (tests/test_dispatch_nccl.c, one MPI process per GPU), then
# measures the expert FFN per format with `mplb calibrate --backend cuda`
# (bench/results/gpu-profile.lua, a profile to run experiments with) and runs
# the CPU benchmarks beside it. nvfp4 there is weight-only (dequantize +
# BF16 GEMM), so its figure is never FP4 tensor-core speed. Never
# report FP4 speed on Hopper as measured: Hopper has no FP4 tensor cores.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "bench/gpu.sh: no nvidia-smi: this machine has no GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee bench/results/gpu-device.txt
make build CMAKE_FLAGS="-DMPLB_CUDA=ON" >/dev/null
./build/kernels/mplb_cuda_check | tee bench/results/gpu-quant-check.txt
./build/kernels/mplb_cuda_check_ffn | tee bench/results/gpu-ffn-check.txt
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
gpus=$(nvidia-smi -L | wc -l)
mpirun --oversubscribe -np "$gpus" ./build/tests/test_dispatch_nccl | tee bench/results/gpu-nccl-check.txt
./build/mplb calibrate --backend cuda -o bench/results/gpu-profile.lua
cat bench/results/gpu-profile.lua
bash bench/run.sh
