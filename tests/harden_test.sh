#!/usr/bin/env bash
# Issue #18 at the command line: no crash, no hang, no lost data. One check
# per finding that needs a whole process (writers racing, a full disk, killed
# files, sweeps, messages); the library-level ones are in test_fuzz_files.c,
# test_sandbox.c and tests/python/test_runfile_hostile.py.
# usage: harden_test.sh PATH/TO/mplb SOURCE_DIR PYTHON
set -u
MPLB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
PY=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; for f in "$@"; do [ -f "$f" ] && sed 's/^/     /' "$f" | head -20; done; fail=$((fail + 1)); }

cat > exp.lua <<'LUA'
return {
  model = "olmoe-1b-7b",
  cluster = { nodes = 2, gpus_per_node = 4, profile = "h100" },
  workload = { steps = 40, tokens = 4096, zipf = 1.0 },
  policies = { "baseline", "eplb" },
  seed = 3,
}
LUA

# finding 5: a second writer fails before touching the first one's file
echo "half-written header" > w.h5.part
"$MPLB" run exp.lua -o w.h5 > w.txt 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -q "another mplb run is writing it" w.txt && [ ! -e w.h5 ] \
   && [ "$(cat w.h5.part)" = "half-written header" ]; then ok "second writer refused, first untouched"
else bad "second writer refused (exit $rc)" w.txt; fi
rm -f w.h5.part
wins=0
for i in 1 2 3; do
  rm -f r.h5 r.h5.part
  "$MPLB" run exp.lua -o r.h5 --set workload.steps=4 > a.txt 2>&1 & a=$!
  "$MPLB" run exp.lua -o r.h5 --set workload.steps=4 > b.txt 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  n=$(( (ra == 0) + (rb == 0) ))
  st=$("$MPLB" inspect --json r.h5 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  cfg=$("$PY" -c 'import h5py,sys; print(len(h5py.File(sys.argv[1],"r")["config"][()]))' r.h5 2>/dev/null)
  [ "$n" = 1 ] && [ "$st" = complete ] && [ "${cfg:-0}" -gt 0 ] && wins=$((wins + 1))
done
[ $wins = 3 ] && ok "two runs on one -o: one wins, its file complete with its /config" \
  || bad "two runs on one -o ($wins/3 rounds clean)" a.txt b.txt

# finding 6: a full disk (here a file-size limit) ends the run with a clear
# error, no crash at exit, and every flushed row readable
# 240 steps: the finished file (about 1.2 MB compressed) cannot fit 600 KB whatever
# the flush timing (a slow sanitizer build flushes fewer rows at a time), while
# the first flush's claim (512 uncompressed rows, ~410 KB) fits under it
( trap '' XFSZ; ulimit -f 600; exec "$MPLB" run exp.lua -o full.h5 --set workload.steps=240 ) > full.txt 2>&1; rc=$?
rows=$("$MPLB" inspect full.h5 2>&1 | sed -n 's/.*rows: \([0-9]*\).*/\1/p')
if [ $rc = 1 ] && grep -q "no room for rows" full.txt && [ "${rows:-0}" -gt 0 ] \
   && "$MPLB" inspect full.h5 | grep -q "status:   failed" \
   && PYTHONPATH="$SRC/analysis" "$PY" -c 'import mplb,sys; r = mplb.load(sys.argv[1]); assert len(r.steps) == int(sys.argv[2])' full.h5 "$rows"
then ok "full disk: exit 1, $rows flushed rows readable by inspect and mplb.load"
else bad "full disk (exit $rc, rows '${rows}')" full.txt; fi
( trap '' XFSZ; ulimit -f 8; exec "$MPLB" run exp.lua -o tiny.h5 ) > tiny.txt 2>&1; rc=$?
[ $rc = 1 ] && ! grep -q "rows written so far" tiny.txt && ok "no room for the header: exit 1, no crash" \
  || bad "no room for the header (exit $rc)" tiny.txt

# finding 7: a killed run's file cut short never hangs inspect or --resume
"$MPLB" run exp.lua -o k.h5 > /dev/null 2>&1 & pid=$!
for _ in $(seq 50); do [ -f k.h5 ] && [ "$(stat -c %s k.h5)" -gt 60000 ] && break; sleep 0.1; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
size=$(stat -c %s k.h5 2>/dev/null || echo 0)
hangs=0
for frac in 5 10 20 30 40 50 70 90; do
  head -c $((size * frac / 100)) k.h5 > cut.h5
  timeout 30 "$MPLB" inspect cut.h5 > /dev/null 2>&1; [ $? = 124 ] && hangs=$((hangs + 1))
  timeout 60 "$MPLB" run exp.lua -o cut.h5 --resume --set workload.steps=2 > /dev/null 2>&1; [ $? = 124 ] && hangs=$((hangs + 1))
done
[ "$size" -gt 0 ] && [ $hangs = 0 ] && ok "killed and cut files: inspect and --resume end (8 cuts)" \
  || bad "killed and cut files: $hangs hangs (size $size)"

# finding 1: a crafted point run file does not crash sweep --resume
cat > sw.lua <<'LUA'
return { model = "olmoe-1b-7b", cluster = { nodes = 1, gpus_per_node = 4, profile = "h100" },
         workload = { steps = 2, tokens = {512, 1024} }, policies = { "baseline" }, seed = 1 }
LUA
"$MPLB" sweep sw.lua -o swd > /dev/null 2>&1
"$PY" - swd/runs/p0000.h5 <<'EOF'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["ranks"] = np.ones((3, 3), np.int32)
    del f["ranks/load"]; f["ranks/load"] = np.zeros((1,) * 10)
    f.attrs["status"] = "running"
EOF
"$MPLB" sweep sw.lua -o swd --resume > swr.txt 2>&1; rc=$?
[ $rc -lt 128 ] && ok "crafted point file: sweep --resume exit $rc, no crash" || bad "crafted point file (exit $rc)" swr.txt

# finding 2: a point running past --point-timeout is stopped and marked failed
cat > slow.lua <<'LUA'
return { model = "deepseek-v3", cluster = { nodes = 2, gpus_per_node = 8, profile = "h100" },
         workload = { steps = {1000, 1001}, tokens = 16384 }, policies = { "baseline", "eplb" }, seed = 1 }
LUA
start=$(date +%s)
"$MPLB" sweep slow.lua -o slowd -j 2 --point-timeout 2 > slow.txt 2>&1; rc=$?
took=$(( $(date +%s) - start ))
if [ $rc = 1 ] && [ $took -lt 60 ] && grep -q "timed out after 2 s" slowd/index.csv; then ok "sweep point timeout (${took} s)"
else bad "sweep point timeout (exit $rc, ${took} s)" slow.txt slowd/index.csv; fi

# finding 11: messages
printf 'step,layer,expert,count\n0,0,0,4\n0,0,1,4\n' > t.csv
"$MPLB" run exp.lua -o exp.lua/x.h5 > nd.txt 2>&1
"$MPLB" trace import t.csv --top-k 1 -o exp.lua/t.h5 >> nd.txt 2>&1
[ "$(grep -c "Not a directory" nd.txt)" = 2 ] && ! grep -qi "exists" nd.txt && ok "an impossible folder named as such" \
  || bad "impossible folder message" nd.txt
"$MPLB" inspect missing.h5 > mi.txt 2>&1
grep -q "missing.h5: no such file" mi.txt && ! grep -q "not an HDF5" mi.txt && ok "missing file named as such" \
  || bad "missing file message" mi.txt
cat > initfail.lua <<'LUA'
local P = {}
function P.init(ctx) error("init fails") end
function P.decide(obs, act) end
return P
LUA
"$MPLB" run exp.lua --set 'policies={"initfail.lua"}' -o if.h5 > if.txt 2>&1
{ [ -e if.h5 ] || ! grep -q "kept in" if.txt; } && ok "no 'rows are kept' for a file that does not exist" \
  || bad "rows-kept message without a file" if.txt
printf 'local P = {}\nfunction P.decide(obs, act) error("\\27[31mred\\27]0;title\\7") end\nreturn P\n' > esc.lua
"$MPLB" run exp.lua --set 'policies={"esc.lua"}' -o esc.h5 > esc.txt 2>&1
! LC_ALL=C grep -q $'\x1b' esc.txt && grep -q 'x1b' esc.txt && ok "control characters escaped in errors" \
  || bad "control characters escaped" esc.txt
cp r.h5 escf.h5
"$PY" - escf.h5 <<'EOF'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    n = f["policy/names"][()]
    del f["policy/names"]
    f["policy/names"] = np.array([b"\x1b[31mevil"] + list(n[1:]), dtype=h5py.string_dtype())
    f.attrs["command"] = "run \x1b]0;title\x07"
EOF
"$MPLB" inspect escf.h5 > escf.txt 2>&1
! LC_ALL=C grep -q $'\x1b' escf.txt && grep -qF 'x1b[31mevil' escf.txt && ok "control characters from a file escaped by inspect" \
  || bad "inspect escapes control characters" escf.txt
deep=$work/$(printf 'd%.0s' $(seq 40))/$(printf 'e%.0s' $(seq 40))
mkdir -p "$deep"
cp "$SRC/policies/threshold.lua" "$deep/threshold_with_a_rather_long_file_name.lua"
(cd "$deep" && "$MPLB" policy check threshold_with_a_rather_long_file_name.lua) > deep.txt 2>&1 \
  && ok "policy check in a deep folder" || bad "policy check in a deep folder" deep.txt
"$MPLB" run exp.lua --set "policies={\"$deep/threshold_with_a_rather_long_file_name.lua\"}" \
  --set workload.steps=1 --set workload.tokens=4e3 -o long.h5 > long.txt 2>&1 \
  && ok "policy path over 64 characters, tokens = 4e3" || bad "long policy path / tokens = 4e3" long.txt

echo "$pass passed, $fail failed"
[ $fail = 0 ]
