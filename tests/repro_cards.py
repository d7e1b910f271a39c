"""The reproduction cards' main result tables against their committed results (tests/repro_test.sh).

usage: repro_cards.py SOURCE_DIR [NAME=CARD.md ...]   (NAME=PATH reads that card text instead)

Each card's table rows are tied to rows of docs/reproductions/NAME/*.csv; every number printed in
a checked cell must equal the CSV value rounded as printed (its decimals, or significant digits in
e-notation). A cell showing no number ("–") is skipped; a table or row the spec names but the card
lacks is an error. Exit 1 with one line per mismatch.
"""
import math
import os
import re
import sys

import pandas as pd

src = sys.argv[1]
override = dict(a.split("=", 1) for a in sys.argv[2:])
errs = []
NUM = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers(cell):
    return NUM.findall(cell.replace("\u2212", "-").replace("*", ""))


def matches(text, value):
    """text (as printed) equals value rounded the same way."""
    p = float(text)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if "e" in text:
        mant, ex = text.split("e")
        dec = len(mant.split(".")[1]) if "." in mant else 0
        res = 10.0 ** (int(ex) - dec)
    else:
        res = 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)
    return abs(p - value) <= 0.5 * res * (1 + 1e-9) + 1e-12


def tables(md):
    """{header line: [rows as lists of cells]} for every markdown table."""
    out, cur = {}, None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = line
                out[cur] = []
            elif not set(line.replace("|", "").strip()) <= set("-: "):
                out[cur].append(cells)
        else:
            cur = None
    return out


def check(card, head, rows):
    """head: the table's header starts with it; rows: [(first cells, {cell index: [values]})]."""
    found = [t for h, t in tables(card_text[card]).items() if h.startswith(head)]
    if not found:
        errs.append(f"{card}.md: no table starting '{head}'")
        return
    t = found[0]
    for key, cells in rows:
        hit = [r for r in t if r[:len(key)] == list(key)]
        if not hit:
            errs.append(f"{card}.md: table '{head}': no row {key}")
            continue
        for i, want in cells.items():
            got = numbers(hit[0][i])
            if not got:
                continue
            for g, w in zip(got, want):
                if not matches(g, w):
                    errs.append(f"{card}.md: row {key}, column {i}: printed {g}, results have {w:.6g}")


card_text = {}
for n in ("realb", "rq", "harmoeny", "placement", "eplb"):
    with open(override.get(n, os.path.join(src, "docs", "reproductions", n + ".md"))) as f:
        card_text[n] = f.read()
res = os.path.join(src, "docs", "reproductions")


def band(s):
    return [float(x) for x in str(s).split("|")]


# ReaLB: layer speedups (band), EPLB on the step after its rebalance; accuracy
t = pd.read_csv(os.path.join(res, "realb", "timing.csv"))


def sp(tok, vf, sig, pol):
    r = t[(t.tokens == tok) & (abs(t.vision_frac - vf) < 1e-9) & (abs(t.vision_sigma - sig) < 1e-9) & (t.policy == pol)].iloc[0]
    return [r.speedup, r.band_lo, r.band_hi]


def last(tok, vf, sig):
    return [t[(t.tokens == tok) & (abs(t.vision_frac - vf) < 1e-9) & (abs(t.vision_sigma - sig) < 1e-9) & (t.policy == "eplb")].iloc[0].speedup_last_step]


rows = []
for lab, tok, vf in (("4K, vision 0.60", 4096, .6), ("4K, vision 0.85", 4096, .85),
                     ("8K, vision 0.60", 8192, .6), ("8K, vision 0.85", 8192, .85)):
    rows.append(((lab,), {1: sp(tok, vf, 0, "realb"), 2: sp(tok, vf, 0, "realb-no-modality"),
                          3: sp(tok, vf, 0, "fp4-everywhere"), 4: sp(tok, vf, 0, "eplb"), 5: last(tok, vf, 0)}))
check("realb", "| setting | ReaLB |", rows)
check("realb", "| vision σ |", [((lab,), {1: sp(8192, .85, s, "realb"), 2: sp(8192, .85, s, "fp4-everywhere"),
                                           3: sp(8192, .85, s, "eplb"), 4: last(8192, .85, s)})
                                 for lab, s in (("0 (fixed hot set)", 0), ("0.45", .45), ("1.0", 1.0))])
v = pd.read_csv(os.path.join(res, "realb", "variants.csv"))


def var(name, tok, vf, pol):
    r = v[(v.variant == name) & (v.tokens == tok) & (abs(v.vision_frac - vf) < 1e-9) & (v.policy == pol)].iloc[0]
    return [r.speedup] + ([] if math.isnan(r.band_lo) else [r.band_lo, r.band_hi])


check("realb", "| setting | ReaLB, τ = 1.25 |",
      [((lab,), {1: var("tau125", tok, vf, "realb"), 2: var("tau125", tok, vf, "realb-no-modality"),
                 3: var("corner", tok, vf, "realb"), 4: var("corner", tok, vf, "fp4-everywhere"),
                 5: var("corner", tok, vf, "eplb")})
       for lab, tok, vf in (("4K, vision 0.60", 4096, .6), ("4K, vision 0.85", 4096, .85),
                            ("8K, vision 0.60", 8192, .6), ("8K, vision 0.85", 8192, .85))])
a = pd.read_csv(os.path.join(res, "realb", "accuracy.csv")).set_index("policy")
acc = {"baseline, EPLB": "baseline", "ReaLB (modality threshold 0.7)": "realb", "ReaLB, threshold 0.5": "realb-modality-0.5",
       "ReaLB, no modality test": "realb-no-modality", "FP4 everywhere": "fp4-everywhere",
       "(not in ReaLB) no modality test, measured-KL budget 3e-3 a step (`kl_budget`)": "realb-kl-budget-3e-3"}
check("realb", "| policy | KL (nats/token)", [((lab,), {1: [a.loc[p, "kl"]], 2: [a.loc[p, "top1_agree"]], 3: [a.loc[p, "ppl_delta"]]})
                                                for lab, p in acc.items()])
need_eplb = a.loc["eplb"]
if not (need_eplb.kl == 0 and need_eplb.top1_agree == 1):
    errs.append("realb.md: row 'baseline, EPLB' prints EPLB's KL 0 but accuracy.csv differs")

# R&Q: LIS before and after per copies (reduction, its range); calibrated rows on held-out batches
q = pd.read_csv(os.path.join(res, "rq", "lis.csv"))


def lis(run, layer, pol, cols):
    r = q[(q.run == run) & (q.layer == layer) & (q.policy == pol)].iloc[0]
    return [r[c] for c in cols]


rows, rows2 = [], []
for lab, run in (("OLMoE", "olmoe"), ("Mixtral", "mixtral")):
    for li, layer in enumerate(("0", "7", "15")):
        full = ["lis_after", "reduction", "reduction_min", "reduction_max"]
        rows.append(((lab, layer), {2: lis(run, li, "baseline", ["lis_before"]), 3: lis(run, li, "rq-1rep", full),
                                    4: lis(run, li, "rq-2rep", full[:2]), 5: lis(run, li, "rq-4rep", full[:2]),
                                    6: lis(run, li, "rq-8rep", full[:2])}))
        rows2.append(((lab, layer), {2 + j: lis(run, li, p, ["reduction_heldout"])
                                     for j, p in enumerate(("rq-2rep", "rq-2rep-calib3", "rq-8rep", "rq-8rep-calib3"))}))
check("rq", "| routing | layer | LIS before |", rows)
check("rq", "| routing | layer | 2 copies: oracle |", rows2)

# HarMoEny: the same-batch table and the baselines' own batches
h = pd.read_csv(os.path.join(res, "harmoeny", "results.csv"))
o = pd.read_csv(os.path.join(res, "harmoeny", "results_own_batches.csv"))
rows, rows2 = [], []
for sk in sorted(set(h["skew"])):
    g = h[h["skew"] == sk].set_index("policy")
    H, st = g.loc["HarMoEny"], g.loc["static EP"]
    kept, bc = g.loc["shadowing (FasterMoE-like), weights kept"], g.loc["shadowing, broadcast every step"]
    lab = "0" if sk == 0 else f"{sk / 100:g}"
    nb = [100 * H.vs_nb] + ([100 * x for x in band(H.vs_nb_band)] if isinstance(H.vs_nb_band, str) else [])
    rows.append(((lab,), {1: [H.moe_speedup], 2: [100 * (H.tput / st.tput - 1)], 3: nb, 4: [100 * (H.tput / bc.tput - 1)],
                          5: [st.ttft_ms, H.ttft_ms], 6: [st.idle, H.idle]}))
    go = o[o["skew"] == sk].set_index("policy")

    def gain(p):
        r = go.loc[p]
        return [100 * r.gain] + [100 * x for x in band(r.band)]
    rows2.append(((lab,), {1: [go.loc["static EP", "batch"]], 2: gain("static EP"),
                           3: gain("shadowing (FasterMoE-like), weights kept"), 4: gain("shadowing, broadcast every step")}))
check("harmoeny", "| skew (Gini) | HarMoEny MoE speedup", rows)
check("harmoeny", "| skew (Gini) | baselines' batch", rows2)

# placement: bytes, their changes, imbalance, speedups with their bands
p = pd.read_csv(os.path.join(res, "placement", "results.csv"))
rows = []
for _, r in p.iterrows():
    lab = ("arrival" if r.grouping == "arrival order" else r.grouping, r.placement)
    rows.append((lab, {2: [r.inter], 3: [100 * r.d_inter], 4: [r.total], 5: [100 * r.d_total], 6: [r.imb],
                       7: [r.d_time] + band(r.d_time_band)[1:], 8: [r.d_time_run] + band(r.d_time_run_band)[1:]}))
check("placement", "| grouping | placement | cross-node", rows)

# EPLB: one table row per results.csv row, in order
e = pd.read_csv(os.path.join(res, "eplb", "results.csv"))
tabs = [tb for hd, tb in tables(card_text["eplb"]).items() if hd.startswith("| policy | balancedness")]
if not tabs or len(tabs[0]) != len(e):
    errs.append(f"eplb.md: the policy table has {len(tabs[0]) if tabs else 0} rows, results.csv {len(e)}")
else:
    check("eplb", "| policy | balancedness", [((tabs[0][i][0],), {1: [r.bal_steady], 2: [r.speedup_steady] + band(r.band_steady)[1:], 3: [r.speedup_run] + band(r.band)[1:],
                                                                  4: [r.mig_ms], 5: [r.breakeven], 6: [r.amort1000]})
                                                for i, r in e.iterrows()])

for x in errs:
    print("   ", x)
sys.exit(1 if errs else 0)
