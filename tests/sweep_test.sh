#!/usr/bin/env bash
# mplb sweep: cross product, index, a failing point, kill -9 and --resume,
# and the same points under mpirun -np 2 and -np 4.
# usage: sweep_test.sh MPLB SOURCE_DIR PYTHON
set -u
MPLB=$1 SRC=$2 PY=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
same_runs() { # dirA dirB: every point's run file equal (all columns but decide_us)
  local n=0
  for f in "$1"/runs/*.h5; do
    "$PY" "$SRC/tests/compare_runs.py" "$f" "$2/runs/$(basename "$f")" > /dev/null || return 1
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}
cat > exp.lua <<'LUA'
return {
  model = "olmoe-1b-7b",
  cluster = { nodes = {1, 2}, gpus_per_node = 4, profile = "h100" },
  workload = { steps = 12, tokens = 4096, zipf = {0.8, 1.4}, vision_frac = 0.5 },
  policies = { "baseline", { "threshold", tau = {1.1, 1.5}, min_tokens = 0 }, "learned" },
  seed = 1,
}
LUA
if "$MPLB" sweep exp.lua -o ref -j 1 > ref.txt 2> ref.err; then ok "sweep -j1"; else bad "sweep -j1"; cat ref.txt ref.err; fi
[ "$(grep -c complete ref/index.csv)" = 8 ] && ok "8 points complete in index.csv" || bad "index: $(cat ref/index.csv)"
head -1 ref/index.csv | grep -q '"cluster.nodes","policies\[2\].tau","workload.zipf",file,status' && ok "index columns" || bad "index columns: $(head -1 ref/index.csv)"
grep -q '^\[8/8\]' ref.err && ok "progress lines when not a tty" || bad "progress lines"
if "$MPLB" sweep exp.lua -o j2 -j 2 > /dev/null 2>&1 && same_runs ref j2; then ok "-j2 equals -j1"; else bad "-j2 equals -j1"; fi
for np in 2 4; do
  # Open MPI's own allocations outlive MPI_Finalize: leak checks are for mplb, not libmpi
  if ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" mpirun --oversubscribe -np $np "$MPLB" sweep exp.lua -o mpi$np > mpi.txt 2>&1 && same_runs ref mpi$np &&
     grep -q "over MPI ranks" mpi.txt; then ok "mpirun -np $np equals -j1"; else bad "mpirun -np $np"; cat mpi.txt; fi
done
# kill -9 in the middle, then resume
"$MPLB" sweep exp.lua -o killed -j 2 > /dev/null 2>&1 &
pid=$!
sleep 1.0
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
sleep 0.2
done_before=$(ls killed/runs 2>/dev/null | wc -l)
if "$MPLB" sweep exp.lua -o killed -j 2 --resume > resume.txt 2>&1 && same_runs ref killed; then
  ok "kill -9 + --resume equals an uninterrupted sweep ($done_before run files existed at the kill)"
else bad "kill -9 + --resume"; cat resume.txt; fi
# a failing point is recorded and the sweep goes on
sed 's/min_tokens = 0 }/min_tokens = 0, low = {"fp8_e4m3", "fp3"} }/' exp.lua > failing.lua
"$MPLB" sweep failing.lua -o failing -j 2 > fail.txt 2>&1
rc=$?
[ $rc = 1 ] && ok "exit status 1 when points fail" || bad "exit status $rc"
[ "$(grep -c ',complete,' failing/index.csv)" = 8 ] && [ "$(grep -c ',failed,' failing/index.csv)" = 8 ] \
  && ok "8 complete and 8 failed points in the index" || bad "failing index: $(cat failing/index.csv)"
grep -q "unknown precision 'fp3'" failing/index.csv && ok "failure message in the index" || bad "failure message"
"$MPLB" sweep exp.lua -o ref > again.txt 2>&1 && bad "re-sweep into a used DIR" || \
  { grep -q "already holds a sweep" again.txt && ok "a used DIR needs --resume" || bad "used DIR message"; }
# measuring points (backend cpu) with more workers than cores: refused, or run and labelled
cores=$(nproc)
cat > cpu.lua <<'LUA'
return {
  model = { name = "t", layers = 1, experts = 8, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 2, profile = "h100" },
  workload = { steps = 1, tokens = {64, 128} }, policies = { "baseline" }, backend = "cpu", seed = 1,
}
LUA
"$MPLB" sweep cpu.lua -o over -j $((cores + 1)) > over.txt 2>&1
rc=$?
[ $rc = 1 ] && grep -q "on $cores cores" over.txt && grep -q -- "--allow-oversubscribed" over.txt && [ ! -e over/index.csv ] \
  && ok "cpu points at -j $((cores + 1)) on $cores cores refused" || { bad "oversubscribed sweep not refused (exit $rc)"; cat over.txt; }
if "$MPLB" sweep cpu.lua -o overok -j $((cores + 1)) --allow-oversubscribed --set repeats=1 > overok.txt 2>&1 &&
   "$PY" -c "import h5py,sys; sys.exit(not all('OVERSUBSCRIBED' in h5py.File(f'overok/runs/p000{i}.h5','r').attrs['times_source'] for i in (0,1)))"; then
  ok "--allow-oversubscribed: cpu points run, times labelled OVERSUBSCRIBED"
else bad "--allow-oversubscribed label"; cat overok.txt; fi
"$MPLB" sweep cpu.lua -o fit -j "$cores" --set repeats=1 > fit.txt 2>&1 &&
  "$PY" -c "import h5py,sys; sys.exit('OVERSUBSCRIBED' in h5py.File('fit/runs/p0000.h5','r').attrs['times_source'])" \
  && ok "-j cores: no label" || { bad "-j $cores sweep"; cat fit.txt; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
