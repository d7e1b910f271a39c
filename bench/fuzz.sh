#!/usr/bin/env bash
# bench/fuzz: the structure-aware reader fuzz (tests/test_fuzz_files.c) at a
# long count, under ASan (build-asan) when built, else the release build;
# then once more with raw byte flips on top. Counts (inputs, crashes, hangs)
# go to bench/results/fuzz.txt. make test runs the same target at 30 inputs.
#   usage: bench/fuzz.sh [N per file kind, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
BIN=./build-asan/tests/test_fuzz_files
[ -x "$BIN" ] || BIN=./build/tests/test_fuzz_files
[ -x "$BIN" ] || { echo "bench/fuzz.sh: build first (make build or make build-asan)" >&2; exit 2; }
out=bench/results/fuzz.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BIN=$(realpath "$BIN")
{
  echo "# bench/fuzz.sh $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $BIN, N=$N per kind"
  for bytes in 0 1; do
    echo "## structural mutations$([ $bytes = 1 ] && echo ' + byte flips')"
    (cd "$work" && ASAN_OPTIONS=detect_leaks=0 MPLB_FUZZ_N=$N MPLB_FUZZ_BYTES=$bytes "$BIN" | grep -E '^# (fuzz|MPLB_TEST_SEED|fz_bad)' || true)
  done
} | tee "$out"
