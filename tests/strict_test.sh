#!/usr/bin/env bash
# Nothing silent: misspelled keys, params and policy fields are errors that
# name file:line and the closest name; every subcommand explains itself.
# usage: strict_test.sh PATH/TO/mplb SOURCE_DIR
set -u
MPLB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
pass=0 fail=0

check() { # name, expected-exit, needle, command...  (stdout and stderr together)
  local name=$1 want=$2 needle=$3
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qF -- "$needle" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output:"
    echo "$out" | sed 's/^/    /' | head -20
    fail=$((fail + 1))
  else
    echo "ok   $name"
    pass=$((pass + 1))
  fi
}
check_stdout() { # name, needle, command...: exit 0, needle on stdout
  local name=$1 needle=$2
  shift 2
  local out rc
  out=$("$@" 2>/dev/null)
  rc=$?
  if [ "$rc" -ne 0 ] || ! grep -qF -- "$needle" <<<"$out"; then
    echo "FAIL $name: exit $rc, stdout:"; echo "$out" | sed 's/^/    /' | head -10; fail=$((fail + 1))
  else echo "ok   $name"; pass=$((pass + 1)); fi
}

# the reference of keys is the one the binary's table prints
if diff -u "$SRC/docs/experiment-reference.md" <("$MPLB" help experiment) >ref.diff; then
  echo "ok   experiment-reference up to date"; pass=$((pass + 1))
else
  echo "FAIL docs/experiment-reference.md is stale: ./build/mplb help experiment > docs/experiment-reference.md"
  head -20 ref.diff; fail=$((fail + 1))
fi

cat > small.lua <<LUA
return {
  model = { layers = 2, experts = 6, top_k = 2, hidden = 128, ffn = 64 },
  cluster = { gpus_per_node = 4, profile = "h100" },
  workload = { steps = 2, tokens = 256, vision_frac = 0.5 },
  policies = { "baseline", { "threshold", tau = 1.1, min_tokens = 0 } },
}
LUA
sed 's/vision_frac = 0.5/vision_frac = 0.5, zipff = 0.8/' small.lua > zipff.lua
check unknown-key 1 "zipff.lua:4: field workload.zipff: unknown key (did you mean 'zipf'?)" "$MPLB" run zipff.lua -o a.h5
printf 'return {\n  sed = 4,\n%s' "$(tail -n +2 small.lua)" > sed.lua
check unknown-top-key 1 "sed.lua:2: field sed: unknown key (did you mean 'seed'?)" "$MPLB" run sed.lua -o a.h5
check unknown-set-key 1 "field workload.zipff: unknown key (did you mean 'zipf'?)" "$MPLB" run small.lua -o a.h5 --set workload.zipff=1
sed 's/tau = 1.1/tua = 1.1/' small.lua > tua.lua
check unknown-param 1 "tua.lua:5: field policies[2].tua" "$MPLB" run tua.lua -o a.h5
check unknown-param-hint 1 "did you mean 'tau'? known: kl_budget, low, min_tokens, mode, overload, tau, top_ranks, vision_share" "$MPLB" run tua.lua -o a.h5
[ -e a.h5 ] && { echo "FAIL a refused experiment wrote a.h5"; fail=$((fail + 1)); }
check noop-warning 0 "warning: small.lua: policies[2] (threshold): params.min_tokens = 4096 is above every batch (workload.tokens = 256)" \
  "$MPLB" run small.lua -o w.h5 --set policies.threshold.min_tokens=4096
check noop-warning-workload 0 "warning: small.lua: workload.drift = 0.3 has no effect with workload.families = 1" \
  "$MPLB" run small.lua -o w2.h5 --set workload.drift=0.3

# --set reaches policies by name or index, bare words are strings, lists are sweep axes
check set-policy-name 0 "threshold(low=int8,min_tokens=0,tau=1.7;" "$MPLB" run small.lua -o s1.h5 --set policies.threshold.tau=1.7 --set policies.threshold.low=int8
check set-policy-index 0 "threshold(min_tokens=0,tau=1.3;" "$MPLB" run small.lua -o s2.h5 --set 'policies[2].tau=1.3'
check set-policy-unknown 1 "no policy named 'thresh' in policies (have: baseline, threshold)" "$MPLB" run small.lua -o s3.h5 --set policies.thresh.tau=1
check set-bad-type 1 "parameter 'tau' expects a number (default 1.25), got string '1.1.2'" "$MPLB" run small.lua -o s4.h5 --set policies.threshold.tau=1.1.2
check set-global-word 1 "profiles 'table' not found" "$MPLB" run small.lua -o s5.h5 --set cluster.profile=table
check set-sweep-axis 0 "2 points (1 axes)" "$MPLB" sweep small.lua -o sw1 --set 'policies.threshold.tau={1.1,1.5}'
# --policy NAME,k=v replaces the list; its values read as --set values
check policy-spec 0 "threshold(low=nvfp4,tau=1.4;" "$MPLB" run small.lua -o p1.h5 --policy threshold,tau=1.4,low=nvfp4
check policy-spec-replaces 0 "rows: 4" "$MPLB" inspect p1.h5
check policy-spec-bad 2 "--policy 'threshold,tau': expected NAME or NAME,key=value" "$MPLB" run small.lua -o p2.h5 --policy threshold,tau
check policy-spec-badparam 1 "no parameter 'taux'" "$MPLB" run small.lua -o p3.h5 --policy threshold,taux=1
# -o creates parent folders
check out-parents 0 "run file: deep/er/run.h5" "$MPLB" run small.lua -o deep/er/run.h5

# sweep: every point is checked up front, at the experiment's file:line
check sweep-unknown-key 1 "zipff.lua:4: field workload.zipff: unknown key (did you mean 'zipf'?)" "$MPLB" sweep zipff.lua -o swbad
[ -e swbad/index.csv ] && { echo "FAIL a refused sweep wrote swbad/index.csv"; fail=$((fail + 1)); }
# tied axes (zip) beside a cross product
cat > zip.lua <<LUA
return {
  model = { layers = 1, experts = 6, top_k = 2, hidden = 64, ffn = 32 },
  cluster = { gpus_per_node = 2, profile = { "h100", "b200" } },
  workload = { steps = 1, tokens = { 256, 4096 } },
  policies = { "baseline", { "threshold", min_tokens = { 0, 4096 } } },
  zip = { { "workload.tokens", "policies.threshold.min_tokens" } },
}
LUA
check sweep-zip 0 "4 points, 4 complete" "$MPLB" sweep zip.lua -o swzip
if [ "$(cut -d, -f2-4 swzip/index.csv | tr -d '"' | tr '\n' ' ')" = \
     "cluster.profile,policies[2].min_tokens,workload.tokens h100,0,256 h100,4096,4096 b200,0,256 b200,4096,4096 " ]; then
  echo "ok   sweep-zip index"; pass=$((pass + 1))
else echo "FAIL sweep-zip index:"; cat swzip/index.csv; fail=$((fail + 1)); fi
check sweep-zip-cli 0 "4 points, 4 complete" "$MPLB" sweep zip.lua -o swzip2 --zip workload.tokens,cluster.profile
check_stdout sweep-zip-cli-index "3,\"b200\",\"4096\",\"4096\"" cat swzip2/index.csv
check sweep-zip-unequal 1 "zip[1]: cluster.profile has 2 values but workload.tokens has 3" \
  "$MPLB" sweep zip.lua -o swzip3 --set 'workload.tokens={1,2,3}' --zip cluster.profile,workload.tokens
check sweep-zip-unknown 1 "zip[1]: 'cluster.nodes' is not a sweep axis (axes: cluster.profile, policies[2].min_tokens or policies.threshold.min_tokens, workload.tokens)" \
  "$MPLB" sweep zip.lua -o swzip4 --zip cluster.nodes,workload.tokens
check sweep-out-parents 0 "index: a/b/sw/index.csv" "$MPLB" sweep small.lua -o a/b/sw

# trace stats --json: the text table's numbers, per layer
trace="$SRC/traces/olmoe-mixtral/olmoe.h5"
if "$MPLB" trace stats "$trace" --json > stats.json && "$MPLB" trace stats "$trace" > stats.txt &&
   python3 - stats.json stats.txt <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rows = [l.split() for l in open(sys.argv[2]) if l.split() and l.split()[0].isdigit()]
assert len(j["per_layer"]) == j["layers"] == len(rows), (len(j["per_layer"]), len(rows))
for r, t in zip(j["per_layer"], rows):
    got = [r["max_over_mean"], r["lis"], r["gini"], r["entropy"], r["rank_imbalance"]]
    assert int(t[0]) == r["layer"]
    for g, w in zip(got, map(float, t[1:6])):
        assert abs(g - w) <= 0.0006, (g, w)
PY
then echo "ok   trace-stats-json"; pass=$((pass + 1)); else echo "FAIL trace-stats-json"; fail=$((fail + 1)); fi

# the progress line: on a terminal only
"$MPLB" run small.lua -o quiet.h5 >/dev/null 2>quiet.err
if [ -s quiet.err ]; then echo "FAIL progress not quiet off a terminal:"; cat quiet.err; fail=$((fail + 1))
else echo "ok   progress quiet off a terminal"; pass=$((pass + 1)); fi
if command -v script >/dev/null; then
  check progress-tty 0 "step 1/3, layer 1/48" script -qec "$MPLB run $SRC/experiments/demo.lua -o tty.h5 --set workload.steps=3 >/dev/null" /dev/null
fi
# Ctrl-C: the file closes with every row (status interrupted), the resume command is printed and works.
# A policy that spins ~1M Lua iterations per decide makes the run seconds long however fast mplb gets.
printf 'local P = { params = { spin = 1000000 } }\nP.stateless = true\nfunction P.decide(obs, act)\n  local x = 0\n  for i = 1, P.params.spin do x = x + i end\nend\nreturn P\n' > spin.lua
sed 's/steps = 2,/steps = 200,/' small.lua > slow.lua
wait_for() { for _ in $(seq 1 200); do for f in "$@"; do [ -e "$f" ] && return 0; done; sleep 0.05; done; }
"$MPLB" run slow.lua -o int.h5 --policy ./spin.lua >int.out 2>int.err & pid=$!
wait_for int.h5 int.h5.part; sleep 0.5; kill -INT $pid; wait $pid; rc=$?
if [ $rc -eq 130 ] && grep -qF "status: interrupted" int.err && grep -qF -- "-o int.h5 --policy ./spin.lua --resume" int.err &&
   "$MPLB" inspect int.h5 | grep -qF "status:   interrupted"; then
  echo "ok   run-interrupt"; pass=$((pass + 1))
else echo "FAIL run-interrupt: exit $rc"; cat int.err; fail=$((fail + 1)); fi
check run-interrupt-resume 0 "run file: int.h5" "$MPLB" run slow.lua -o int.h5 --policy ./spin.lua --resume
check run-interrupt-complete 0 "rows: 400" "$MPLB" inspect int.h5
"$MPLB" sweep slow.lua -o swint -j 2 --set 'workload.steps={100,101,102,103}' --set 'policies={"./spin.lua"}' >swint.out 2>swint.err & pid=$!
wait_for swint/runs/p0000.h5 swint/runs/p0000.h5.part; sleep 0.5; kill -INT $pid; wait $pid; rc=$?
if [ $rc -eq 130 ] && grep -qF -- "-o swint -j 2 --set 'workload.steps={100,101,102,103}' --set 'policies={\"./spin.lua\"}' --resume" swint.err &&
   grep -q ",pending," swint/index.csv; then
  echo "ok   sweep-interrupt"; pass=$((pass + 1))
else echo "FAIL sweep-interrupt: exit $rc"; cat swint.err swint/index.csv; fail=$((fail + 1)); fi
check sweep-interrupt-resume 0 "4 points, 4 complete, 0 failed" "$MPLB" sweep slow.lua -o swint -j 2 --set 'workload.steps={100,101,102,103}' --set 'policies={"./spin.lua"}' --resume

# policy check: what the policy chose, per rank; errors of later steps; the user's experiment
check pc-precisions 0 "bf16" "$MPLB" policy check "$SRC/policies/threshold.lua" --param min_tokens=0
check pc-bare-word 0 "threshold(low=fp8_e4m3,min_tokens=0;" "$MPLB" policy check "$SRC/policies/threshold.lua" --param low=fp8_e4m3 --param min_tokens=0
check pc-format-chosen 0 "fp8_e4m3 " "$MPLB" policy check "$SRC/policies/threshold.lua" --param low=fp8_e4m3 --param min_tokens=0
check pc-bad-word 1 "unknown precision 'nvfp' (did you mean 'nvfp4'?" "$MPLB" policy check "$SRC/policies/threshold.lua" --param low=nvfp
check pc-moves 0 "moved_out" "$MPLB" policy check "$SRC/policies/redistribute.lua"
out=$("$MPLB" policy check "$SRC/policies/redistribute.lua")
if awk '$1 ~ /^[0-9]+$/ && NF >= 5 { s += $(NF-1) } END { exit !(s > 0) }' <<<"$out"; then
  echo "ok   pc-moves-nonzero"; pass=$((pass + 1)); else echo "FAIL pc-moves-nonzero:"; echo "$out"; fail=$((fail + 1)); fi
out=$("$MPLB" policy check "$SRC/policies/lis.lua" --param max_replicas=2)
if awk '$1 ~ /^[0-9]+$/ && NF >= 5 { s += $(NF-2) } END { exit !(s > 0) }' <<<"$out"; then
  echo "ok   pc-replicas-nonzero"; pass=$((pass + 1)); else echo "FAIL pc-replicas-nonzero:"; echo "$out"; fail=$((fail + 1)); fi
printf 'local P = { params = {} }\nfunction P.decide(obs, act)\n  if obs.step == 9 then act:rank_precision(1, "fp5") end\nend\nreturn P\n' > late.lua
check pc-late-error 1 "late.lua:3: unknown precision 'fp5'" "$MPLB" policy check ./late.lua
check pc-late-step 1 "late.lua, step 9, layer 1: decide" "$MPLB" policy check ./late.lua
check pc-steps 0 "3 layers x 8 steps" "$MPLB" policy check ./late.lua --steps 8
printf 'local P = { params = {} }\nfunction P.decide(obs, act)\n  if obs.vision_share then act:rank_precision(1, "nvfp4") end\nend\nreturn P\n' > typo.lua
check pc-obs-typo 1 "typo.lua:3: obs has no field 'vision_share'" "$MPLB" policy check ./typo.lua
check pc-experiment 0 "ok on small.lua" "$MPLB" policy check "$SRC/policies/threshold.lua" --experiment small.lua --param min_tokens=0
check pc-experiment-ranks 0 "     4  " "$MPLB" policy check "$SRC/policies/threshold.lua" --experiment small.lua
check pc-experiment-sweep 0 "point 1 of its 4 sweep points" "$MPLB" policy check "$SRC/policies/threshold.lua" --experiment zip.lua
check pc-warning 0 "params.min_tokens = 2048 is above every batch (workload.tokens = 256)" "$MPLB" policy check "$SRC/policies/threshold.lua" --experiment small.lua

# --help on every subcommand: usage on stdout, exit 0; usage errors exit 2
check_stdout version "mplb 0." "$MPLB" --version
check_stdout help-backend "--backend model|cpu|cuda" "$MPLB" --help
check_stdout help-exit "Exit status: 0 ok, 1 error" "$MPLB" --help
for cmd in "run" "sweep" "inspect" "policy check" "policy" "trace" "trace import" "trace stats" "calibrate" "validate" "report"; do
  # shellcheck disable=SC2086
  check_stdout "help-$cmd" "usage: mplb ${cmd%% *}" "$MPLB" $cmd --help
done
check_stdout help-cmd "usage: mplb sweep" "$MPLB" help sweep
check usage-run 2 "missing EXP.lua" "$MPLB" run
check usage-sweep 2 "usage: mplb sweep" "$MPLB" sweep small.lua
check usage-trace 2 "usage: mplb trace" "$MPLB" trace frob
check usage-inspect 2 "usage: mplb inspect" "$MPLB" inspect
check usage-calibrate 2 "usage: mplb calibrate" "$MPLB" calibrate --frob
check usage-policy 2 "usage: mplb policy" "$MPLB" policy frob

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
