#!/usr/bin/env bash
# GPU checks and benchmarks, for a machine with an NVIDIA GPU (none is lent to
# this project's CI). The first thing to run there: it goes through every step
# even when one fails, and ends with a summary (exit 1 if any step failed).
#   1 device    nvidia-smi: GPUs (MIG instances are not counted as GPUs), driver
#   2 build     scripts/setup.sh, CMake with CUDA on, NCCL ranks = GPU count
#   3 quant     kernels/check_quant.cu: device quantizers = CPU reference, bit for bit
#   4 ffn       kernels/check_ffn.cu: dequantizers bit for bit; the cuBLASLt FFN per
#               format (FP4 on tensor cores, W4A4, where the GPU has them, else
#               weight-only) against the same algorithm on the host
#   5 nccl      tests/test_dispatch_nccl.c on every GPU (one MPI process each), when
#               the build found NCCL; skipped (not failed) otherwise
#   6 calibrate `mplb calibrate --backend cuda`: the profile bench/results/gpu-profile.lua,
#               which says per format what ran (tensor cores or weight-only)
#   7 execute   experiments/execute_small.lua with every expert FFN on the GPU, and the
#               same on the CPU, side by side
#   8 cpu       bench/run.sh: the CPU benchmarks of this machine (MPLB_GPU_NO_CPU_BENCH=1 skips)
# Logs: bench/results/gpu-<step>.txt; summary: bench/results/gpu-summary.txt.
# Never report FP4 speed on Hopper as measured: Hopper has no FP4 tensor cores,
# and the profile and the run files say "weight-only" there.
set -uo pipefail
cd "$(dirname "$0")/.."
R=bench/results
mkdir -p "$R"
command -v nvidia-smi >/dev/null || { echo "bench/gpu.sh: no nvidia-smi: this machine has no NVIDIA driver" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

names=() states=()
record() { names+=("$1"); states+=("$2"); echo "== $1: $2"; }
# step NAME CMD...: run, log to $R/gpu-NAME.txt, record ok / FAILED (exit N)
step() {
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$R/gpu-$name.txt"
  local rc=${PIPESTATUS[0]}
  if [ $rc -eq 0 ]; then record "$name" ok
  elif [ $rc -eq 77 ]; then record "$name" "skipped (no usable CUDA device)"
  else record "$name" "FAILED (exit $rc)"; fi
  return $rc
}

# 1. device: physical GPUs only (query-gpu lists GPUs, -L also lists MIG instances)
step device nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | grep -c '[0-9]')
nvidia-smi -L >> "$R/gpu-device.txt" 2>&1
[ "$gpus" -ge 1 ] || gpus=1

# 2. build
build() {
  bash scripts/setup.sh &&
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPLB_CUDA=ON -DMPLB_NCCL_RANKS="$gpus" &&
  cmake --build build -j "$(nproc)"
}
if step build build; then built=1; else built=0; fi

if [ $built -eq 1 ]; then
  step quant ./build/kernels/mplb_cuda_check
  step ffn ./build/kernels/mplb_cuda_check_ffn
  if [ -x build/tests/test_dispatch_nccl ]; then
    step nccl mpirun --oversubscribe -np "$gpus" ./build/tests/test_dispatch_nccl
  else
    echo "not built: CMake found no NCCL (scripts/setup.sh installs libnccl-dev where apt has it)" > "$R/gpu-nccl.txt"
    record nccl "skipped (no NCCL in this build)"
  fi
  # the profile goes through a temporary file: a failed calibration leaves the last good one
  if step calibrate ./build/mplb calibrate --backend cuda -o "$R/gpu-profile.lua.new"; then
    { cat "$R/gpu-profile.lua.new"
      echo "-- bench/gpu.sh on $(hostname), driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1),"
      echo "-- git $(git rev-parse --short HEAD); checks at the time: quant ${states[2]:-?}, ffn ${states[3]:-?}, nccl ${states[4]:-?}"
    } > "$R/gpu-profile.lua" && rm -f "$R/gpu-profile.lua.new"
  fi
  execute() {
    local t; t=$(mktemp -d)
    ./build/mplb run experiments/execute_small.lua --backend cuda -o "$t/cuda.h5" --set workload.steps=2 &&
    ./build/mplb run experiments/execute_small.lua --backend cpu -o "$t/cpu.h5" --set workload.steps=2 &&
    ./build/mplb inspect "$t/cuda.h5" && ./build/mplb inspect "$t/cpu.h5"
    local rc=$?
    rm -rf "$t"
    return $rc
  }
  step execute execute
  if [ -n "${MPLB_GPU_NO_CPU_BENCH:-}" ]; then record cpu "skipped (MPLB_GPU_NO_CPU_BENCH)"
  else step cpu bash bench/run.sh; fi
else
  for s in quant ffn nccl calibrate execute cpu; do record "$s" "not run (build failed)"; done
fi

{ echo "# bench/gpu.sh $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname), git $(git rev-parse --short HEAD), $gpus GPU(s)"
  for i in "${!names[@]}"; do printf '%-10s %s\n' "${names[$i]}" "${states[$i]}"; done
} | tee "$R/gpu-summary.txt"
for s in "${states[@]}"; do case $s in FAILED*|"not run"*) exit 1;; esac; done
exit 0
