#!/usr/bin/env bash
# Every reproduction card regenerates at reduced size: scripts/reproduce.sh --small into a
# temporary folder, then each card's outputs are checked to exist and be well-formed, with
# properties that can fail: a baseline's speedup is exactly 1 (band included) and its KL 0,
# every speedup lies inside its sensitivity band, FP4 everywhere loses more KL than ReaLB's
# rule, R&Q's LIS after the policy never exceeds the routing's (and the baseline's equals it).
# usage: repro_test.sh PATH/TO/mplb SOURCE_DIR PYTHON
set -u
MPLB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$(cd "$2" && pwd)
PY=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

if ! "$SRC/scripts/reproduce.sh" --small --bin "$MPLB" -o "$out" > "$out/log.txt" 2>&1; then
  bad "reproduce.sh --small"; cat "$out/log.txt"
else
  ok "reproduce.sh --small"
fi

# every card wrote something readable
for d in "$SRC"/experiments/repro/*/; do
  n=$(basename "$d")
  [ -x "$d/run.sh" ] || continue
  if [ -n "$(find "$out/$n" -maxdepth 1 \( -name '*.md' -o -name '*.csv' \) -size +0 2>/dev/null)" ]; then
    ok "$n: tables written"
  else
    bad "$n: no .md or .csv output in $out/$n"
  fi
done

check() {   # check NAME: the card's Python checks on its CSVs
  PYTHONPATH="$SRC/analysis" "$PY" - "$out/$1" <<PY
import os, sys
import pandas as pd
d = sys.argv[1]
errs = []
def need(cond, msg):
    if not cond: errs.append(msg)
$(cat)
for e in errs: print("   ", e)
sys.exit(1 if errs else 0)
PY
}

if [ -d "$out/realb" ]; then
  check realb <<'PY'
t = pd.read_csv(os.path.join(d, "timing.csv"))
need(set(t["tokens"]) == {4096, 8192}, f"token sizes {sorted(set(t['tokens']))}")
b = t[t["policy"] == "baseline"]
need(len(b) == 4 and (b["speedup"] == 1.0).all() and (b["band_lo"] == 1.0).all() and (b["band_hi"] == 1.0).all(),
     "baseline speedup/band not exactly 1.0")
need(((t["band_lo"] <= t["speedup"] + 1e-12) & (t["speedup"] <= t["band_hi"] + 1e-12)).all(), "speedup outside its band")
need(((t["moe_share_lo"] <= t["moe_share"]) & (t["moe_share"] <= t["moe_share_hi"]) & (t["moe_share_hi"] < 1)).all(),
     "MoE share outside (lo, hi) or >= 1")
need(((t["e2e"] - 1) * (t["speedup"] - 1) >= 0).all() and ((t["e2e"] - 1).abs() <= (t["speedup"] - 1).abs() + 1e-12).all(),
     "end-to-end estimate not between 1 and the layer speedup")
need((t[t["policy"] == "eplb"]["fp4_share"] == 0).all() and (t[t["policy"] == "fp4-everywhere"]["fp4_share"] == 1).all(),
     "low-precision shares wrong (eplb 0, fp4-everywhere 1)")
a = pd.read_csv(os.path.join(d, "accuracy.csv")).set_index("policy")
need(a.loc["baseline", "kl"] == 0 and a.loc["baseline", "top1_agree"] == 1, "baseline KL not 0 / top-1 not 1")
need(a.loc["eplb", "kl"] == 0, "EPLB (bf16) changed the output")
need(0 < a.loc["fp4-everywhere", "kl"] and a.loc["realb", "kl"] <= a.loc["fp4-everywhere", "kl"],
     "KL: expected 0 < fp4-everywhere and realb <= fp4-everywhere")
need(os.path.getsize(os.path.join(d, "speedup.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "realb: baseline 1.0x and KL 0, bands, accuracy order" || bad "realb checks"
fi

if [ -d "$out/rq" ]; then
  check rq <<'PY'
l = pd.read_csv(os.path.join(d, "lis.csv"))
need(set(l["run"]) == {"olmoe", "mixtral", "accuracy"}, f"runs {sorted(set(l['run']))}")
b = l[l["policy"] == "baseline"]
need((b["lis_after"] == b["lis_before"]).all() and (b["speedup"] == 1.0).all(), "baseline LIS changed or speedup != 1")
need((l["lis_after"] <= l["lis_before"] + 1e-12).all(), "LIS after the policy above the routing's")
need((l[l["run"] == "olmoe"].groupby("policy")["lis_after"].mean().drop("baseline") <
      l[(l["run"] == "olmoe") & (l["policy"] == "baseline")]["lis_after"].mean()).all(), "R&Q did not lower OLMoE's LIS")
acc = l[l["run"] == "accuracy"].groupby("policy")["kl"].mean()
need(acc["baseline"] == 0 and (acc.drop("baseline") > 0).all(), "KL: baseline 0, quantizing policies > 0")
need(os.path.getsize(os.path.join(d, "lis.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "rq: LIS after <= before, baseline unchanged, KL" || bad "rq checks"
fi

[ $fail = 0 ] && echo "repro: all passed" || echo "repro: FAILED"
exit $fail
