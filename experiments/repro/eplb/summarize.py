"""EPLB card: balancedness (mean/max tokens per GPU, EPLB's measure) and layer
time per policy, split into steady steps and rebalance steps, and the
rebalance interval at which one rebalance's migration pays for itself."""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import repro2_common as rc  # noqa: E402

path, out = sys.argv[1], sys.argv[2]
steps, loads, names, bands = rc.load(path)
rows = []
for i, name in enumerate(names):
    m = steps["policy"] == i
    s = steps["step"][m]
    t = steps["t_layer_us"][m]
    tb = steps["t_baseline_us"][m]
    ld = loads[m]
    bal = ld.mean(axis=1) / ld.max(axis=1)
    per = re.search(r"period=(\d+)", name)
    p = int(per.group(1)) if per else 0
    if p:
        # 0-based: the first rebalance is at step p (the policy needs past
        # loads), then every p steps; steady = after the first, between them
        reb = (s >= p) & (s % p == 0)
        steady = (s > p) & (s % p != 0)
    else:
        reb = np.zeros_like(s, bool)
        steady = s > 0
    # per-step sums over layers
    def per_step(mask, v):
        return np.array([v[mask & (s == k)].sum() for k in np.unique(s[mask])]) if mask.any() else np.array([])
    st_t, st_b = per_step(steady, t), per_step(steady, tb)
    rb_t, rb_b = per_step(reb, t), per_step(reb, tb)
    gain = (st_b.mean() - st_t.mean()) if len(st_t) else float("nan")
    extra = (rb_t.mean() - st_t.mean()) if len(rb_t) and len(st_t) else float("nan")
    b = bands.get(name)
    sst = float(st_b.sum() / st_t.sum()) if len(st_t) else float("nan")
    rows.append({
        "policy": name,
        "band_steady": (sst, sst * b[1] / b[0], sst * b[2] / b[0]) if b else None,
        "bal_steady": float(bal[steady].mean()) if steady.any() else float("nan"),
        "inter_MB": float(steps["bytes_inter"][m][steady].mean()) / 1e6 if steady.any() else float("nan"),
        "speedup_steady": float(st_b.sum() / st_t.sum()) if len(st_t) else float("nan"),
        "speedup_run": float(tb.sum() / t.sum()),
        "band": bands.get(name),
        "rebalances": len(rb_t),
        # the steady speedup at the whole run's band ends (nominal / end scaled)
        "mig_ms": extra / 1e3 if p else float("nan"),
        "breakeven": (extra / gain) if p and gain > 0 else float("nan"),
        # steady steps with one rebalance every 1000 steps (vLLM's EPLB
        # rebalances every step_interval forward steps; 1000 is an assumption)
        "amort1000": float(st_b.mean() / (st_t.mean() + extra / 1000)) if p and len(st_t) else float("nan"),
    })
md = os.path.join(out, "results.md")
if os.path.exists(md):
    os.remove(md)
if os.path.exists(os.path.join(out, "results.csv")):
    os.remove(os.path.join(out, "results.csv"))
with open(md, "w") as f:
    f.write(f"EPLB card{' (--small)' if '--small' in sys.argv else ''}: {path}\n"
            "(times: cost model v2, profile h800; balancedness = mean/max tokens per GPU, averaged over rows)\n")
rc.write_table(rows, [
    ("policy", "policy", "{}"),
    ("balancedness (steady steps)", "bal_steady", "{:.3f}"),
    ("cross-node MB/layer (steady)", "inter_MB", "{:.1f}"),
    ("layer speedup, steady steps", "speedup_steady", "{:.3f}x"),
    ("its band (whole run's ends, scaled)", "band_steady", rc.fmt_band),
    ("layer speedup, whole run", "speedup_run", "{:.3f}x"),
    ("band (whole run, --sensitivity)", "band", rc.fmt_band),
    ("rebalances", "rebalances", "{}"),
    ("one rebalance costs (ms per step, all layers)", "mig_ms", "{:.2f}"),
    ("break-even interval (steps)", "breakeven", "{:.1f}"),
    ("speedup if rebalanced every 1000 steps", "amort1000", "{:.3f}x"),
], md, os.path.join(out, "results.csv"), "EPLB and LPLB")

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
lab = [r["policy"].replace("; decay=0.8", "").replace(",lp=true", "") for r in rows]
y = range(len(rows))
ax[0].barh(y, [r["bal_steady"] for r in rows], color="tab:blue")
ax[0].set_yticks(list(y), lab, fontsize=7)
ax[0].set_xlabel("balancedness, steady steps (mean/max tokens per GPU)")
ax[0].set_xlim(0, 1)
ax[1].barh(y, [r["speedup_steady"] for r in rows], color="tab:green", label="steady steps")
ax[1].barh(y, [r["speedup_run"] for r in rows], height=0.35, color="tab:red", label="whole run (rebalances charged)")
ax[1].set_yticks(list(y), [""] * len(rows))
ax[1].axvline(1.0, color="k", lw=0.8)
ax[1].set_xlabel("MoE layer speedup over the default placement")
ax[1].legend(fontsize=7, loc="lower right")
fig.suptitle("EPLB / LPLB, DeepSeek-V3 shapes, EP32 (4 x 8 H800), cost model v2", fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(out, "eplb.png"), dpi=110)
print(open(md).read())
