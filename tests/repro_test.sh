#!/usr/bin/env bash
# Every reproduction card regenerates at reduced size: scripts/reproduce.sh --small into a
# temporary folder, then each card's outputs are checked to exist and be well-formed, with
# properties that can fail: a baseline's speedup is exactly 1 (band included) and its KL 0,
# every speedup lies inside its sensitivity band, FP4 everywhere loses more KL than ReaLB's
# rule, R&Q's LIS after the policy never exceeds the routing's (and the baseline's equals it).
# HarMoEny: balance and throughput order per skew; placement: k-means + cluster_place cut cross-node
# bytes; EPLB: rebalances are charged and LPLB balances at least as well as EPLB on the same copies.
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
need(len(b) == len(t.groupby(["tokens", "vision_frac", "vision_sigma"])) >= 4 and (b["speedup"] == 1.0).all() and (b["band_lo"] == 1.0).all() and (b["band_hi"] == 1.0).all(),
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


# the HarMoEny, placement and EPLB cards (experiments/repro/{harmoeny,placement,eplb})
if [ -d "$out/eplb" ]; then
  check eplb <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
band = t["band"].str.split("|", expand=True).astype(float)
b = t["policy"] == "baseline"
need(b.sum() == 1 and (t.loc[b, "speedup_run"] == 1.0).all() and (band[b].values == 1.0).all(), "baseline not exactly 1.0x")
need(((band[1] <= t["speedup_run"] + 1e-9) & (t["speedup_run"] <= band[2] + 1e-9)).all(), "speedup outside its band")
m = t.loc[(t["rebalances"] > 0) & t["mig_ms"].notna(), "mig_ms"]
need(len(m) > 0 and (m > 0).all(), "a rebalance cost nothing")
lp = t[t["policy"].str.startswith("lplb(groups=8")].iloc[0]
per = lp["policy"].split("period=")[1].split(",")[0]
ep = t[t["policy"].str.startswith(f"eplb(groups=8,period={per},redundant=32")].iloc[0]
need(lp["bal_steady"] >= ep["bal_steady"] - 1e-9, "LPLB balances worse than EPLB on the same copies")
need(os.path.getsize(os.path.join(d, "eplb.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "eplb: baseline 1.0x, bands, migration charged, LPLB >= EPLB balance" || bad "eplb checks"
fi
if [ -d "$out/harmoeny" ]; then
  check harmoeny <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
need((t.loc[t["policy"] == "static EP", "moe_speedup"] == 1.0).all(), "static EP speedup not 1.0")
for sk, g in t.groupby("skew"):
    h = g[g["policy"] == "HarMoEny"].iloc[0]
    base = g[g["policy"] == "static EP"].iloc[0]
    need(h["imbalance"] <= base["imbalance"] + 1e-9 and h["idle"] <= base["idle"] + 1e-9, f"skew {sk}: no balance gain")
    need(h["tput"] >= 0.95 * g["tput"].max(), f"skew {sk}: HarMoEny more than 5% behind the fastest at the same batch")
    need(int(sk) == 0 or h["tput"] > 1.2 * base["tput"], f"skew {sk}: HarMoEny not clearly ahead of static EP")
o = pd.read_csv(os.path.join(d, "results_own_batches.csv"))
st = o[o["policy"] == "static EP"]
need(len(st) > 0 and (st[st["skew"] > 0]["gain"] > 0).all(), "HarMoEny not ahead of static EP at its own batches")
need(os.path.getsize(os.path.join(d, "harmoeny.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "harmoeny: balance, throughput against static EP and the fastest per skew" || bad "harmoeny checks"
fi
if [ -d "$out/placement" ]; then
  check placement <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
ref = t[(t["grouping"] == "arrival order") & (t["placement"] == "default")].iloc[0]
both = t[(t["grouping"] == "k-means") & (t["placement"] == "cluster_place")].iloc[0]
need(ref["d_inter"] == 0 and ref["d_time"] == 1.0, "reference row not 0 / 1.0x")
need(both["d_inter"] < 0, "k-means + cluster_place did not cut cross-node bytes")
need(os.path.getsize(os.path.join(d, "placement.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "placement: grouping + placement cut cross-node bytes" || bad "placement checks"
fi

[ $fail = 0 ] && echo "repro: all passed" || echo "repro: FAILED"
exit $fail
