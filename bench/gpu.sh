#!/usr/bin/env bash
# GPU checks and benchmarks, for a machine with an NVIDIA GPU (none is lent to
# this project's CI): builds with CUDA, records the device, checks the CUDA
# quantizers against the CPU reference bit for bit (kernels/check_quant.cu),
# checks the EP layer over NCCL against the local transport on every GPU
# (tests/test_dispatch_nccl.c, one MPI process per GPU), then runs the CPU
# benchmarks beside it. Nothing here is a GPU speed measurement. Never
# report FP4 speed on Hopper as measured: Hopper has no FP4 tensor cores.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "bench/gpu.sh: no nvidia-smi: this machine has no GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee bench/results/gpu-device.txt
make build CMAKE_FLAGS="-DMPLB_CUDA=ON" >/dev/null
./build/kernels/mplb_cuda_check | tee bench/results/gpu-quant-check.txt
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
gpus=$(nvidia-smi -L | wc -l)
mpirun --oversubscribe -np "$gpus" ./build/tests/test_dispatch_nccl | tee bench/results/gpu-nccl-check.txt
bash bench/run.sh
