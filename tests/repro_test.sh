#!/usr/bin/env bash
# Every reproduction card regenerates at reduced size: scripts/reproduce.sh --small into a
# temporary folder, then each card's outputs are checked for properties that can fail:
# ReaLB: speed baseline < ReaLB <= ReaLB without the modality test <= FP4 everywhere, accuracy loss
# 0 < ReaLB (threshold 0.5) <= no modality test < FP4 everywhere, every speedup inside its band;
# R&Q: LIS after the policy never above the routing's, not rising with more copies; HarMoEny:
# balance and throughput order per skew, its gain and static EP's idle time rising with the skew;
# placement: k-means + cluster_place cut cross-node bytes, every speedup inside its band; EPLB:
# more rebalances cost more, EPLB balances better than the default placement, LPLB at least as
# well as EPLB on the same copies. (Figures are checked to exist only.) Then the committed cards:
# the numbers of each card's main result tables equal its committed CSVs as printed
# (tests/repro_cards.py), and every experiments/repro/NAME/run.sh is executable.
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
  [ -e "$d/run.sh" ] || continue
  # reproduce.sh skips a run.sh without its +x bit: that card would silently drop out
  [ -x "$d/run.sh" ] || { bad "$n: run.sh is not executable (scripts/reproduce.sh skips it)"; continue; }
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
need(len(t.groupby(["tokens", "vision_frac", "vision_sigma"])) >= 5, "fewer than 5 settings")
need(((t["band_lo"] <= t["speedup"] + 1e-12) & (t["speedup"] <= t["band_hi"] + 1e-12)).all(), "speedup outside its band")
for k, g in t.groupby(["tokens", "vision_frac", "vision_sigma"]):
    s = g.set_index("policy")["speedup"]
    f = g.set_index("policy")["fp4_share"]
    # more ranks in NVFP4 (no modality test, then every rank) is never slower; ReaLB switches some, not all
    need(1 < s["realb"] <= s["realb-no-modality"] + 1e-12 <= s["fp4-everywhere"] + 2e-12, f"{k}: speed order {s.to_dict()}")
    need(0 < f["realb"] <= f["realb-no-modality"] < 1 and f["eplb"] == 0 and f["fp4-everywhere"] == 1, f"{k}: FP4 shares {f.to_dict()}")
a = pd.read_csv(os.path.join(d, "accuracy.csv")).set_index("policy")["kl"]
need(a["eplb"] == 0, "EPLB (bf16) changed the output")
need(0 < a["realb-modality-0.5"] <= a["realb-no-modality"] < a["fp4-everywhere"],
     f"KL: expected 0 < threshold 0.5 <= no modality test < FP4 everywhere, got {a.to_dict()}")
need(os.path.getsize(os.path.join(d, "speedup.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "realb: speed and FP4-share order, bands, accuracy order" || bad "realb checks"
fi

if [ -d "$out/rq" ]; then
  check rq <<'PY'
l = pd.read_csv(os.path.join(d, "lis.csv"))
need(set(l["run"]) == {"olmoe", "mixtral", "accuracy"}, f"runs {sorted(set(l['run']))}")
need((l.groupby(["run", "layer"])["lis_before"].nunique() == 1).all(), "policies of one run saw different routing (LIS before)")
for (run, layer), g in l[l["run"] != "accuracy"].groupby(["run", "layer"]):
    s = g.set_index("policy")["lis_after"]
    need(s["rq-1rep"] >= s["rq-2rep"] - 1e-12 >= s["rq-4rep"] - 2e-12 >= s["rq-8rep"] - 3e-12,
         f"{run} layer {layer}: LIS after rises with more copies {s.to_dict()}")
need((l["lis_after"] <= l["lis_before"] + 1e-12).all(), "LIS after the policy above the routing's")
need((l[l["run"] == "olmoe"].groupby("policy")["lis_after"].mean().drop("baseline") <
      l[(l["run"] == "olmoe") & (l["policy"] == "baseline")]["lis_after"].mean()).all(), "R&Q did not lower OLMoE's LIS")
acc = l[l["run"] == "accuracy"].groupby("policy")["kl"].mean()
need(acc["baseline"] == 0 and (acc.drop("baseline") > 0).all(), "KL: baseline 0, quantizing policies > 0")
need(os.path.getsize(os.path.join(d, "lis.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "rq: LIS after <= before, not rising with copies, KL" || bad "rq checks"
fi


# the HarMoEny, placement and EPLB cards (experiments/repro/{harmoeny,placement,eplb})
if [ -d "$out/eplb" ]; then
  check eplb <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
band = t["band"].str.split("|", expand=True).astype(float)
e8 = t[t["policy"].str.startswith("eplb(groups=8,") & t["policy"].str.contains("redundant=32;")].sort_values("rebalances")
need(len(e8) >= 3 and e8["rebalances"].is_unique and e8["speedup_run"].is_monotonic_decreasing,
     "EPLB: more rebalances did not cost more over the run")
base_bal = t.loc[t["policy"] == "baseline", "bal_steady"].iloc[0]
need((t.loc[t["policy"] != "baseline", "bal_steady"].dropna() > base_bal).all(), "EPLB/LPLB not better balanced than the default placement")
need(((band[1] <= t["speedup_run"] + 1e-9) & (t["speedup_run"] <= band[2] + 1e-9)).all(), "speedup outside its band")
m = t.loc[(t["rebalances"] > 0) & t["mig_ms"].notna(), "mig_ms"]
need(len(m) > 0 and (m > 0).all(), "a rebalance cost nothing")
lp = t[t["policy"].str.startswith("lplb(groups=8")].iloc[0]
per = lp["policy"].split("period=")[1].split(",")[0]
ep = t[t["policy"].str.startswith(f"eplb(groups=8,period={per},redundant=32")].iloc[0]
need(lp["bal_steady"] >= ep["bal_steady"] - 1e-9, "LPLB balances worse than EPLB on the same copies")
need(os.path.getsize(os.path.join(d, "eplb.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "eplb: bands, migration charged, more rebalances slower, balance over default, LPLB >= EPLB" || bad "eplb checks"
fi
if [ -d "$out/harmoeny" ]; then
  check harmoeny <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
hs = t[t["policy"] == "HarMoEny"].sort_values("skew")
ss = t[t["policy"] == "static EP"].sort_values("skew")
need(len(hs) >= 2 and hs["moe_speedup"].is_monotonic_increasing and ss["idle"].is_monotonic_increasing,
     "HarMoEny's MoE speedup or static EP's idle share not rising with the skew")
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
  [ $? = 0 ] && ok "harmoeny: balance, throughput against static EP and the fastest per skew, trend with skew" || bad "harmoeny checks"
fi
if [ -d "$out/placement" ]; then
  check placement <<'PY'
t = pd.read_csv(os.path.join(d, "results.csv"))
ref = t[(t["grouping"] == "arrival order") & (t["placement"] == "default")].iloc[0]
both = t[(t["grouping"] == "k-means") & (t["placement"] == "cluster_place")].iloc[0]
for _, r in t.iterrows():
    for pt, bd in (("d_time", "d_time_band"), ("d_time_run", "d_time_run_band")):
        _, lo, hi = (float(x) for x in r[bd].split("|"))
        need(lo - 1e-4 <= r[pt] <= hi + 1e-4, f"{r['grouping']}/{r['placement']}: {pt} {r[pt]:.4f} outside its band {lo}-{hi}")
arr = t[t["grouping"] == "arrival order"]
need((arr["d_time_run_band"] == arr["band"]).all(), "arrival order's whole-run band is not its own --sensitivity band")
need(both["d_inter"] < 0, "k-means + cluster_place did not cut cross-node bytes")
need(os.path.getsize(os.path.join(d, "placement.png")) > 1000, "figure missing")
PY
  [ $? = 0 ] && ok "placement: grouping + placement cut cross-node bytes, speedups inside their bands" || bad "placement checks"
fi

# the committed cards: main result tables against the committed results, as printed
if PYTHONPATH="$SRC/analysis" "$PY" "$SRC/tests/repro_cards.py" "$SRC"; then
  ok "cards: result tables equal the committed CSVs"
else
  bad "cards: result tables differ from the committed CSVs"
fi

[ $fail = 0 ] && echo "repro: all passed" || echo "repro: FAILED"
exit $fail
