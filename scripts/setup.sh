#!/usr/bin/env bash
# Install what mplb needs and is missing: Debian packages via apt-get, Python
# packages into the project venv (.venv). Idempotent: a second run checks and
# returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(build-essential cmake pkg-config git liblua5.4-dev lua5.4 libhdf5-dev hdf5-tools
      libopenmpi-dev openmpi-bin libcmocka-dev libopenblas-dev libcjson-dev libyaml-dev python3 python3-venv bc)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# NCCL's development files (the "nccl" EP transport, kernels/transport_nccl.cu),
# only where a CUDA toolkit is installed and apt has the package (NVIDIA's CUDA
# repository, or Debian's non-free): everything else builds and tests without it.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  have_nccl=0
  for h in /usr/include/nccl.h /usr/local/cuda/include/nccl.h /usr/local/include/nccl.h; do [ -f "$h" ] && have_nccl=1; done
  if [ $have_nccl -eq 0 ]; then
    if apt-cache show libnccl-dev >/dev/null 2>&1; then
      echo "setup: installing NCCL (libnccl-dev) for the nccl transport"
      SUDO=""
      [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libnccl-dev libnccl2
    else
      echo "setup: no NCCL and apt has no libnccl-dev: add NVIDIA's CUDA apt repository for the nccl transport (optional)"
    fi
  fi
fi

# Python: the analysis package and the test stack, in a venv of our own.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.mplb-deps
if [ ! -f "$stamp" ] || [ analysis/pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e "analysis[test]"
  touch "$stamp"
fi
