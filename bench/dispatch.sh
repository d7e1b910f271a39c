#!/usr/bin/env bash
# bench/dispatch: the EP exchange under mpirun -np 2, then -np 4 for the
# node-dedup section (see bench/dispatch.c).
set -euo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 2 ./build/bench/bench_dispatch
mpirun --oversubscribe -np 4 ./build/bench/bench_dispatch
