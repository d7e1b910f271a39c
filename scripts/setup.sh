#!/usr/bin/env bash
# Install what mplb needs and is missing: Debian packages via apt-get, Python
# packages into the project venv (.venv). Idempotent: a second run checks and
# returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(build-essential cmake pkg-config git liblua5.4-dev lua5.4 libhdf5-dev hdf5-tools
      libopenmpi-dev openmpi-bin libcmocka-dev libopenblas-dev libcjson-dev python3 python3-venv bc)
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
