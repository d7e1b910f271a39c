#!/usr/bin/env bash
# The mplb binary as a user meets it: exit codes and messages.
# usage: cli_test.sh PATH/TO/mplb SOURCE_DIR
set -u
MPLB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
pass=0 fail=0

check() { # name, expected-exit, needle, command...
  local name=$1 want=$2 needle=$3
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qF -- "$needle" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output:"
    echo "$out" | sed 's/^/    /'
    fail=$((fail + 1))
  else
    echo "ok   $name"
    pass=$((pass + 1))
  fi
}

cat > small.lua <<LUA
return {
  model = { layers = 2, experts = 6, top_k = 2, hidden = 128, ffn = 64 },
  cluster = { gpus_per_node = 4, profile = "h100" },
  workload = { steps = 2, tokens = 256, vision_frac = 0.5 },
  policies = { "baseline", { "threshold", tau = 1.1, min_tokens = 0 } },
}
LUA
check version 0 "mplb 0." "$MPLB" --version
check help 0 "usage: mplb" "$MPLB" --help
check no-command 2 "usage" "$MPLB"
check unknown-command 2 "unknown command 'frobnicate'" "$MPLB" frobnicate
check run 0 "run file: out.h5" "$MPLB" run small.lua -o out.h5
check run-sensitivity 0 "sensitivity: written to sens.h5:/sensitivity" "$MPLB" run small.lua -o sens.h5 --sensitivity
check run-table 0 "threshold(min_tokens=0,tau=1.1; kl_budget=-1,low=nvfp4," "$MPLB" run small.lua -o out2.h5
check no-overwrite 1 "file exists (use --force" "$MPLB" run small.lua -o out.h5
check force 0 "run file: out.h5" "$MPLB" run small.lua -o out.h5 --force
check inspect 0 "status:   complete" "$MPLB" inspect out.h5
check inspect-rows 0 "rows: 8" "$MPLB" inspect out.h5
check inspect-json 0 '"status": "complete", "closed": true' "$MPLB" inspect out.h5 --json
check resume-needs-o 2 "--resume needs -o FILE" "$MPLB" run small.lua --resume
# integer options take the whole word (atoi once read "4x" as 4 and "abc" as 0)
check place-bad-int 2 "--gpus needs a whole number" "$MPLB" place "$SRC/traces/olmoe-mixtral/olmoe.h5" -o p.json --gpus 4x
check stats-bad-int 2 "--ranks needs a whole number" "$MPLB" trace stats "$SRC/traces/olmoe-mixtral/olmoe.h5" --ranks 8z
check sweep-bad-j 2 "-j needs a whole number" "$MPLB" sweep small.lua -o sw -j2x
check resume-fresh 0 "run file: fresh.h5" "$MPLB" run small.lua -o fresh.h5 --resume
check set-override 0 "1 node(s)" "$MPLB" run small.lua -o out3.h5 --set workload.tokens=64
check policy-flag 0 "baseline" "$MPLB" run small.lua -o out4.h5 --policy baseline
check bad-set 1 "'nosuch' is not a table" "$MPLB" run small.lua -o out5.h5 --set nosuch.x=1
check missing-exp 1 "nope.lua: cannot open" "$MPLB" run nope.lua
check unknown-option 2 "unknown option '--bogus'" "$MPLB" run small.lua --bogus
sed 's/experts = 6/experts = "six"/' small.lua > badtype.lua
check bad-type 1 "badtype.lua:2: field model.experts: expected an integer, got string" "$MPLB" run badtype.lua -o x.h5
sed 's/"baseline", //' small.lua | sed 's/"threshold"/"nosuch"/' > badpol.lua
check unknown-policy 1 "policies 'nosuch' not found" "$MPLB" run badpol.lua -o y.h5
sed 's/gpus_per_node = 4, //' small.lua > missing.lua
check missing-field 1 "field cluster.gpus_per_node: missing" "$MPLB" run missing.lua -o z.h5
sed 's/profile = "h100"/profile = "h999"/' small.lua > badprof.lua
check unknown-profile 1 "profiles 'h999' not found" "$MPLB" run badprof.lua -o w.h5
printf 'local P = {}\nfunction P.decide(obs, act)\n  act:rank_precision(1, "fp5")\nend\nreturn P\n' > badprec.lua
check unknown-precision 1 "badprec.lua:3: unknown precision 'fp5'" "$MPLB" run small.lua -o v.h5 --policy ./badprec.lua
check failed-file-kept 0 "status:   failed" "$MPLB" inspect v.h5
echo "hello" > text.h5
check inspect-garbage 1 "not an HDF5 file" "$MPLB" inspect text.h5
check demo 0 "speedup" "$MPLB" run "$SRC/experiments/demo.lua" -o demo.h5 --set workload.steps=1
for pol in baseline static threshold lis expert_level learned redistribute eplb locality; do
  check "policy-check-$pol" 0 "ok on the check workload" "$MPLB" policy check "$SRC/policies/$pol.lua"
done
check policy-check-param 0 "ok" "$MPLB" policy check "$SRC/policies/threshold.lua" --param tau=2 --param low='"fp8_e4m3"'
check policy-check-badparam 1 "no parameter 'taux'" "$MPLB" policy check "$SRC/policies/threshold.lua" --param taux=2
check policy-check-error 1 "badprec.lua:3: unknown precision 'fp5'" "$MPLB" policy check badprec.lua
printf 'local P = {}\nfunction P.decide(obs, act)\n  while true do end\nend\nreturn P\n' > loop.lua
check policy-check-loop 1 "instruction limit exceeded" "$MPLB" policy check loop.lua
printf 'local P = {}\nfunction P.decide(obs, act)\n  os.execute("touch pwned")\nend\nreturn P\n' > os.lua
check policy-check-os 1 "os.lua:3: attempt to index a nil value (global 'os')" "$MPLB" policy check os.lua
check run-hostile-kept 1 "status: failed" "$MPLB" run small.lua -o hostile.h5 --policy baseline --policy ./loop.lua
check inspect-hostile 0 "instruction limit exceeded" "$MPLB" inspect hostile.h5
check trace-stats 0 "LIS" "$MPLB" trace stats "$SRC/traces/olmoe-mixtral/olmoe.h5"
check trace-stats-mixtral 0 "top-2 persistence" "$MPLB" trace stats "$SRC/traces/olmoe-mixtral/mixtral.h5" --top 2
printf 'step,layer,expert,count\n0,0,0,30\n0,0,1,10\n0,1,2,40\n1,0,3,25\n1,1,0,5\n' > counts.csv
check trace-import-csv 0 "wrote tr.h5: 2 steps x 2 layers x 4 experts, top-1" "$MPLB" trace import counts.csv -o tr.h5 --top-k 1
check trace-import-exists 1 "exists" "$MPLB" trace import counts.csv -o tr.h5 --top-k 1
printf 'step,layer,expert,count\n0,0,0,30\n0,zero,1,10\n' > bad.csv
check trace-import-bad 1 "bad.csv:3: field 'layer': 'zero' is not an integer" "$MPLB" trace import bad.csv -o bad.h5 --top-k 1
check trace-stats-imported 0 "2 steps x 2 layers x 4 experts" "$MPLB" trace stats tr.h5 --ranks 2
check trace-fit 0 "regime_rate" "$MPLB" trace fit tr.h5 -o trw.lua --ranks 2
check trace-fit-exists 1 "exists" "$MPLB" trace fit tr.h5 -o trw.lua
check trace-fit-usage 2 "mplb trace fit: needs TRACE.h5" "$MPLB" trace fit tr.h5
check trace-gen 0 "wrote trg.h5: 3 steps x 2 layers x 4 experts, top-1" "$MPLB" trace gen trw.lua -o trg.h5 --layers 2 --experts 4 --top-k 1 --steps 3
check trace-gen-mismatch 1 "workload.popularity: rows have 4 experts, the model has 8" "$MPLB" trace gen trw.lua -o trg2.h5 --layers 2 --experts 8 --top-k 1
check trace-stats-workload 0 "fit goal (medians within 10%)" "$MPLB" trace stats tr.h5 --ranks 2 --workload trw.lua --steps 8
cat > trexp.lua <<LUA
return {
  model = { layers = 2, experts = 4, top_k = 1, hidden = 256, ffn = 128 },
  cluster = { gpus_per_node = 2 },
  workload = { kind = "trace", file = "tr.h5", steps = 2 },
  policies = { "baseline", "lis" },
}
LUA
check trace-run 0 "run file: trrun.h5" "$MPLB" run trexp.lua -o trrun.h5
sed 's/steps = 2 }/steps = 3 }/' trexp.lua > trexp3.lua
check trace-run-too-long 1 "do not fit" "$MPLB" run trexp3.lua -o trrun3.h5
sed 's/file = "tr.h5"/file = "missing-trace"/' trexp.lua > trexp4.lua
check trace-run-missing 1 "field workload.file: traces 'missing-trace' not found" "$MPLB" run trexp4.lua -o trrun4.h5
check olmoe-domains 0 "run file: od.h5" "$MPLB" run "$SRC/experiments/olmoe_domains.lua" -o od.h5
check skew-olmoe 0 "run file: so.h5" "$MPLB" run "$SRC/experiments/skew_olmoe.lua" -o so.h5 --set workload.steps=4
check ep-nodes-model 0 "run file: epn.h5" "$MPLB" run "$SRC/experiments/ep_nodes.lua" -o epn.h5 --backend model --set workload.steps=1
check set-preset-field 0 "3 layers" "$MPLB" run "$SRC/experiments/demo.lua" -o preset.h5 --set model.layers=3 --set workload.steps=1
check calibrate 0 "wrote profile prof.lua" "$MPLB" calibrate --backend cpu --quick -o prof.lua
check calibrate-profile 0 "cost model, profile prof" "$MPLB" run small.lua -o cal.h5 --set cluster.profile=prof.lua
check calibrate-accuracy 0 "wrote accuracy table acc.lua" "$MPLB" calibrate --accuracy --quick -o acc.lua
check accuracy-run 0 "run file: accrun.h5" "$MPLB" run small.lua -o accrun.h5 --set 'accuracy="acc.lua"'
check accuracy-missing 1 "field accuracy: profiles 'nope.lua' not found" "$MPLB" run small.lua -o accrun2.h5 --set 'accuracy="nope.lua"'
check execute-cpu 0 "expert compute measured on the CPU of" "$MPLB" run "$SRC/experiments/execute_small.lua" -o exec.h5 --backend cpu --set workload.steps=1
check execute-bad-backend 2 "unknown backend 'gpu' (known: model, cpu, cuda, ep)" "$MPLB" run small.lua --backend gpu
check config-bad-backend 1 "field backend: unknown backend 'tpu' (known: model, cpu, cuda, ep)" "$MPLB" run small.lua --set 'backend="tpu"'
# backend cuda: refused without a device (or without CUDA in this build), writing no run file
out=$("$MPLB" run small.lua --backend cuda -o cudarun.h5 2>&1); rc=$?
if { [ $rc -eq 1 ] && grep -qF "backend cuda: cuda: this machine has no CUDA device" <<<"$out"; } ||
   { [ $rc -eq 2 ] && grep -qF "built without CUDA" <<<"$out"; }; then
  if [ -e cudarun.h5 ]; then echo "FAIL run-cuda: wrote a run file"; fail=$((fail + 1))
  else echo "ok   run-cuda (no device here: refused)"; pass=$((pass + 1)); fi
else echo "FAIL run-cuda: exit $rc: $out"; fail=$((fail + 1)); fi
check calibrate-tpu 2 "unknown backend 'tpu' (known: cpu, cuda)" "$MPLB" calibrate --backend tpu
# cuda: refused without a device (or without CUDA in this build), leaving no profile
out=$("$MPLB" calibrate --backend cuda --quick -o gpuprof.lua 2>&1); rc=$?
if { [ $rc -eq 1 ] && grep -qF "no CUDA device" <<<"$out"; } || { [ $rc -eq 2 ] && grep -qF "built without CUDA" <<<"$out"; }; then
  if [ -e gpuprof.lua ] || [ -e gpuprof.lua.tmp ]; then echo "FAIL calibrate-cuda: left a file"; fail=$((fail + 1))
  else echo "ok   calibrate-cuda (no device here: refused)"; pass=$((pass + 1)); fi
else echo "FAIL calibrate-cuda: exit $rc: $out"; fail=$((fail + 1)); fi
check h200 0 "profile h200" "$MPLB" run small.lua -o h200.h5 --set cluster.profile=h200
check b200 0 "profile b200" "$MPLB" run small.lua -o b200.h5 --set cluster.profile=b200
if command -v h5dump >/dev/null; then
  check h5dump 0 "DATASET \"steps\"" h5dump -H out.h5
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
