#!/usr/bin/env bash
# kill -9 a run at random moments, inspect the killed file, resume it, and
# check the result equals an uninterrupted run (all columns but decide_us).
# usage: resume_test.sh MPLB SOURCE_DIR PYTHON
set -u
MPLB=$1 SRC=$2 PY=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
cat > exp.lua <<'LUA'
return {
  model = "olmoe-1b-7b",
  cluster = { nodes = 2, gpus_per_node = 4, profile = "h100" },
  workload = { steps = 30, tokens = 4096, zipf = 1.0, vision_frac = 0.5 },
  policies = { "baseline", { "threshold", min_tokens = 0 }, "learned", "eplb", "lis", "locality" },
  seed = 3,
}
LUA
"$MPLB" run exp.lua -o ref.h5 > /dev/null || { echo "reference run failed"; exit 1; }
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
for i in 1 2 3 4; do
  rm -f k.h5 k.h5.resume
  "$MPLB" run exp.lua -o k.h5 > /dev/null 2>&1 &
  pid=$!
  # a random moment inside the run (~2-3 s here)
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  sleep "$((RANDOM % 2))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ -f k.h5 ]; then
    if "$MPLB" inspect k.h5 > inspect.txt 2>&1; then ok "inspect killed file ($i): $(grep -o 'rows: [0-9]*' inspect.txt)"
    else bad "inspect killed file ($i)"; cat inspect.txt; fi
  fi
  # kill the resume itself once: the file being resumed must survive it
  if [ "$i" = 2 ]; then
    "$MPLB" run exp.lua -o k.h5 --resume > /dev/null 2>&1 &
    pid=$!
    sleep 0.3
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  if "$MPLB" run exp.lua -o k.h5 --resume > resume.txt 2>&1; then ok "resume ($i): $(grep -o 'resumed: [0-9]* step' resume.txt || echo 'fresh run')"
  else bad "resume ($i)"; cat resume.txt; fi
  if "$PY" "$SRC/tests/compare_runs.py" ref.h5 k.h5; then ok "equals uninterrupted run ($i)"
  else bad "equals uninterrupted run ($i)"; fi
done
# a damaged or foreign file (here: cut to 300 bytes; a text file) is never
# replaced without --force (files are put in place only with a complete
# header, so an unreadable one is not a killed run of ours); --force starts over
head -c 300 ref.h5 > cut.h5
cp cut.h5 cut.bak
echo "not hdf5" > text.h5
if ! "$MPLB" run exp.lua -o cut.h5 --resume > cut.txt 2>&1 && grep -q "cannot resume" cut.txt && cmp -s cut.h5 cut.bak \
   && ! "$MPLB" run exp.lua -o text.h5 --resume > /dev/null 2>&1 && [ "$(cat text.h5)" = "not hdf5" ]; then
  ok "resume refuses a damaged or foreign file"
else bad "resume of a damaged file refused"; cat cut.txt; fi
if "$MPLB" run exp.lua -o cut.h5 --force > cut.txt 2>&1 && "$PY" "$SRC/tests/compare_runs.py" ref.h5 cut.h5 > /dev/null; then
  ok "--force replaces the damaged file"
else bad "resume --force of a damaged file"; cat cut.txt; fi
# an edited policy file is refused: its kept steps came from the old source (finding 8)
cp "$SRC/policies/threshold.lua" mythr.lua
"$MPLB" run exp.lua -o ed.h5 --set 'policies={"baseline","mythr.lua"}' --set workload.steps=3 > /dev/null 2>&1
echo "-- edited" >> mythr.lua
if "$MPLB" run exp.lua -o ed.h5 --resume --set 'policies={"baseline","mythr.lua"}' --set workload.steps=3 > ed.txt 2>&1; then
  bad "edited policy refused"
elif grep -q "policy/sources\[1\].*the policy file changed" ed.txt; then ok "edited policy source refused on resume"
else bad "edited policy refused"; cat ed.txt; fi
# resuming a complete file changes nothing; a different experiment is refused
"$MPLB" run exp.lua -o k.h5 --resume > /dev/null 2>&1 && "$PY" "$SRC/tests/compare_runs.py" ref.h5 k.h5 > /dev/null \
  && ok "resume of a complete run" || bad "resume of a complete run"
if "$MPLB" run exp.lua -o k.h5 --resume --set seed=4 > other.txt 2>&1; then bad "different experiment refused"
elif grep -q "written by a different experiment" other.txt; then ok "different experiment refused"
else bad "different experiment refused"; cat other.txt; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
