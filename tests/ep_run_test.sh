#!/usr/bin/env bash
# mplb run --backend cpu --transport mpi (backend ep): real EP layers across
# mpirun processes, one run file written by rank 0. Checks: the run completes
# for np = 1, 2, 4; its routing-derived columns equal the cost-model run of
# the same experiment; its error column (output_rel_rms, one weight source
# and one split rule) equals the single-process --backend cpu run's;
# measured times are positive; each row's times are the medians of its
# stored repeats; more processes than cores are refused without
# --allow-oversubscribed and labelled with it; a process count that is not
# the cluster's rank count is refused. On 2 nodes x 2 ranks (node dedup
# through proxies) the rows that crossed nodes, counted from the measured
# bytes, equal the cost model's per-node dedup for every policy, replicas
# (lis) and fp8 dispatch included; a policy that moves tokens runs too.
# usage: ep_run_test.sh MPLB SOURCE_DIR PYTHON
set -u
MPLB=$1 SRC=$2 PY=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"   # libmpi's allocations outlive MPI_Finalize
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
for np in 1 2 4; do
  sets=(--set workload.steps=2 --set cluster.gpus_per_node=$np)
  if mpirun --oversubscribe -np $np "$MPLB" run "$SRC/experiments/execute_small.lua" --backend cpu --transport mpi \
       --allow-oversubscribed $([ $np = 2 ] || echo --repeats 1 --warmup 0) -o ep$np.h5 "${sets[@]}" > run$np.txt 2>&1 && grep -q "real EP layers (dispatch, experts on CPU, combine) across $np processes" run$np.txt; then
    ok "np=$np: EP run completes"
  else bad "np=$np"; cat run$np.txt; fi
  "$MPLB" run "$SRC/experiments/execute_small.lua" -o model$np.h5 "${sets[@]}" > /dev/null 2>&1
  "$MPLB" run "$SRC/experiments/execute_small.lua" -o cpu$np.h5 --backend cpu --repeats 1 --warmup 0 "${sets[@]}" > /dev/null 2>&1
  if "$PY" - ep$np.h5 model$np.h5 cpu$np.h5 $np <<'PY'
import sys, h5py, numpy as np
a, b, c = (h5py.File(p, "r") for p in sys.argv[1:4])
np_ = int(sys.argv[4])
sa, sb, sc = a["steps"][()], b["steps"][()], c["steps"][()]
assert a.attrs["status"] == "complete"
for col in ("policy", "step", "layer", "tokens", "lis", "imbalance"):
    assert np.array_equal(sa[col], sb[col]), col        # same routing and plans
# one error definition: the EP layers' measured output error is the cpu backend's
assert a.attrs["error_metric"] == c.attrs["error_metric"] == "output_rel_rms"
assert b.attrs["error_metric"] == "weight_error_proxy"
np.testing.assert_array_equal(sa["error_proxy"], sc["error_proxy"])   # bit for bit: same floats, same sums
assert np_ == 1 or (sa["error_proxy"][sa["policy"] > 0] > 0).any()   # one rank: nothing to balance
np.testing.assert_array_equal(a["experts/load"][()], b["experts/load"][()])
assert (sa["t_layer_us"] > 0).all() and (sa["t_dispatch_us"] >= 0).all()
comp = a["ranks/compute_us"][()]
load = a["ranks/load"][()]
assert (comp[load > 0] > 0).all()                    # every rank with tokens measured its experts
PY
  then ok "np=$np: routing columns equal the model run, measured times positive"
  else bad "np=$np: columns"; fi
done
# more processes than cores: refused without --allow-oversubscribed; with it,
# the run file's times source says the times do not compare plans
if "$PY" - ep1.h5 ep4.h5 <<'PY'
import os, sys, h5py
one, four = (h5py.File(p, "r").attrs["times_source"] for p in sys.argv[1:3])
cores = os.sysconf("SC_NPROCESSORS_ONLN")
assert "OVERSUBSCRIBED" not in one, one
assert ("OVERSUBSCRIBED, allowed by --allow-oversubscribed: 4 processes on %d cores" % cores in four) == (4 > cores), four
assert "one run after 0 warm-up" in four, four
PY
then ok "oversubscribed EP timings are labelled as such"
else bad "oversubscription label"; fi
cores=$(getconf _NPROCESSORS_ONLN)
mpirun --oversubscribe -np 4 "$MPLB" run "$SRC/experiments/execute_small.lua" --backend cpu --transport mpi \
  -o over.h5 --repeats 1 --set workload.steps=1 --set cluster.gpus_per_node=4 > over.txt 2>&1
over_rc=$?
if [ "$cores" -lt 4 ]; then
  if [ $over_rc -ne 0 ] && grep -q "more processes than cores on a host (here 4 on $cores cores)" over.txt && [ ! -e over.h5 ]; then
    ok "4 processes on $cores cores refused without --allow-oversubscribed, no run file"
  else bad "oversubscription not refused (rc $over_rc)"; cat over.txt; fi
elif [ $over_rc -eq 0 ]; then ok "4 processes on $cores cores: not oversubscribed, runs"
else bad "4 processes on $cores cores refused"; cat over.txt; fi
# the EP timings' repeats: each row's time is the median of its stored runs
if "$PY" - ep2.h5 <<'PY'
import sys, h5py, numpy as np, statistics as st
f = h5py.File(sys.argv[1], "r")
s, L, B = f["steps"][()], f["repeats/t_layer_us"][()], f["repeats/t_baseline_us"][()]
assert L.shape == (len(s), 3) and (s["repeats"] == 3).all()
for i in range(len(s)):
    assert s["t_layer_us"][i] == st.median_low(L[i]) and s["t_baseline_us"][i] == st.median_low(B[i]), i
    assert s["t_layer_min_us"][i] == L[i].min() and s["t_layer_max_us"][i] == L[i].max(), i
PY
then ok "EP rows: median and min/max of the stored repeats"
else bad "EP repeats"; fi
cat > fp8disp.lua <<'LUA'
local P = { params = {} }
P.stateless = true
function P.decide(obs, act) act:dispatch_precision("fp8_e4m3") end
return P
LUA
cat > nodes.lua <<'LUA'
return {
  name = "two_nodes",
  model = { name = "tiny-moe", layers = 2, experts = 16, top_k = 2, hidden = 256, ffn = 128 },
  cluster = { nodes = 2, gpus_per_node = 2, profile = "h100" },
  workload = { steps = 2, tokens = 1024, zipf = 1.2, vision_frac = 0.5 },
  policies = { "baseline", "lis", "fp8disp.lua" },
  backend = "cpu",
  seed = 5,
}
LUA
if mpirun --oversubscribe -np 4 "$MPLB" run nodes.lua --transport mpi --allow-oversubscribed --repeats 1 -o nodes_ep.h5 > nodes.txt 2>&1 &&
   "$MPLB" run nodes.lua --backend model -o nodes_model.h5 > /dev/null 2>&1 &&
   "$PY" - nodes_ep.h5 nodes_model.h5 <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
sa, sb = a["steps"][()], b["steps"][()]
names = [n.decode() if isinstance(n, bytes) else str(n) for n in a["policies"]["name"][()]] if "policies" in a else None
d, k = 256, 2
row = {0: 8 + 12 * k + 2 * d, 1: 8 + 12 * k + 2 * d, 2: 8 + 12 * k + 4 * ((d + 127) // 128) + d}   # measured: rows with headers
tok = {0: 2 * d, 1: 2 * d, 2: d + 4 * ((d + 127) // 128)}                   # model: payload (+ fp8 scales)
for i in range(len(sa)):
    p = int(sa["policy"][i])
    rows_ep, rows_model = sa["bytes_inter"][i] / row[p], sb["bytes_inter"][i] / tok[p]
    assert rows_ep == rows_model and rows_ep > 0, (i, p, rows_ep, rows_model)
    assert sa["bytes_intra"][i] > 0
PY
then ok "2 nodes x 2: rows across nodes equal the cost model's node dedup (bf16, replicas, fp8)"
else bad "2 nodes x 2"; cat nodes.txt; fi
sed 's/"baseline", "lis", "fp8disp.lua"/"baseline", { "redistribute", q = 1 }/' nodes.lua > moves.lua
if mpirun --oversubscribe -np 4 "$MPLB" run moves.lua --transport mpi --allow-oversubscribed --repeats 1 -o moves_ep.h5 > moves.txt 2>&1 &&
   "$MPLB" run moves.lua --backend model -o moves_model.h5 > /dev/null 2>&1 &&
   "$PY" - moves_ep.h5 moves_model.h5 <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
sa, sb = a["steps"][()], b["steps"][()]
assert a.attrs["status"] == "complete"
for c in ("policy", "step", "layer", "tokens", "imbalance"):
    assert np.array_equal(sa[c], sb[c]), c
moved = sa["policy"] == 1
assert not np.allclose(sb["imbalance"][moved], sb["imbalance"][~moved])   # the policy did move tokens
# moved tokens travel to other ranks: the dispatch bytes change with the moves
assert not np.array_equal(sa["bytes_intra"][moved] + sa["bytes_inter"][moved],
                          sa["bytes_intra"][~moved] + sa["bytes_inter"][~moved])
PY
then ok "token moves (redistribute) run for real across 4 processes"
else bad "moves"; cat moves.txt; fi
if mpirun --oversubscribe -np 2 "$MPLB" run "$SRC/experiments/execute_small.lua" --backend cpu --transport mpi \
     -o bad.h5 > bad.txt 2>&1; then bad "np mismatch accepted"
elif grep -q "2 processes, but the cluster has 4 ranks" bad.txt; then ok "np != ranks refused"
else bad "np mismatch message"; cat bad.txt; fi
if "$MPLB" run "$SRC/experiments/execute_small.lua" --transport mpi -o nb.h5 > nb.txt 2>&1; then bad "transport without cpu backend"
elif grep -q -- '--transport runs real EP layers (backend ep, or cpu)' nb.txt; then ok "transport needs the cpu (ep) backend"
else bad "transport/backend message"; cat nb.txt; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
