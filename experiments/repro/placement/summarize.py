"""Placement card: all-to-all bytes (the study's metric) per grouping x placement,
after the placement and its migration (0-based steps >= 2: step 0 profiles, step 1
places and pays the migration), against the
default deployment (arrival order, default placement). Bytes come from the
cost model's dispatch count (per token once per destination node across the
NIC, once per destination GPU inside a node; bf16 payload); they depend on no
profile assumption, so they have no band. Layer time: the cost model (h100),
with the --sensitivity band of each run's within-run speedup, and the whole-run speedup's band against
arrival order + default at every assumption end (run.sh's baseline-only runs at each end)."""
import json

import h5py
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import repro2_common as rc  # noqa: E402

out = sys.argv[1]
info = json.load(open(os.path.join(out, "clusters.json")))


def base_us(g, end):
    return rc.summarise(os.path.join(out, f"{g}.{end}.h5"), from_step=0)[0]["layer_us"]


def band_vs_ref(g, policy, point):
    """(point, lo, hi) of a policy's whole-run speedup against arrival order's baseline."""
    with h5py.File(os.path.join(out, f"{g}.h5"), "r") as f:
        s = f["sensitivity"]
        pol = [x.decode() if isinstance(x, bytes) else str(x) for x in s["policy"][()]]
        sp = s["speedup"][()][:, :, pol.index(policy)]          # [assumption, end (lo, hi)]
    v = [point]
    for i in range(sp.shape[0]):
        for j, e in enumerate(("lo", "hi")):
            ratio = 1.0 if g == "arrival" else base_us("arrival", f"end_{i}_{e}") / base_us(g, f"end_{i}_{e}")
            v.append(sp[i, j] * ratio)
    return (point, min(v), max(v))


rows = []
ref = None
for g in ("arrival", "kmeans"):
    after = rc.summarise(os.path.join(out, f"{g}.h5"), from_step=2)   # step 0 profiles, step 1 migrates
    whole = rc.summarise(os.path.join(out, f"{g}.h5"), from_step=0)
    for a, w in zip(after, whole):
        r = {"grouping": "k-means" if g == "kmeans" else "arrival order",
             "placement": "default" if a["policy"] == "baseline" else "cluster_place",
             "inter": a["inter_MB"], "intra": a["intra_MB"], "total": a["inter_MB"] + a["intra_MB"],
             "layer_us": a["layer_us"], "layer_us_run": w["layer_us"], "band": w["band"],
             "imb": a["imbalance"]}
        if ref is None:
            ref = r
        r["d_inter"] = r["inter"] / ref["inter"] - 1
        r["d_total"] = r["total"] / ref["total"] - 1
        r["d_time"] = ref["layer_us"] / r["layer_us"]
        r["d_time_run"] = ref["layer_us_run"] / r["layer_us_run"]
        # the after-placement speedup at the policy's whole-run band ends (scaled)
        b = r["band"]
        r["d_time_band"] = (r["d_time"], r["d_time"] * b[1] / b[0], r["d_time"] * b[2] / b[0]) if b else None
        # the whole-run speedup against the same reference as its point (arrival order + default),
        # at every assumption end: the run's own --sensitivity speedup there times its baseline's
        # time against the reference's at the same end (run.sh's baseline-only end runs)
        r["d_time_run_band"] = band_vs_ref(g, a["policy"], r["d_time_run"])
        rows.append(r)
md = os.path.join(out, "results.md")
for f in (md, os.path.join(out, "results.csv")):
    if os.path.exists(f):
        os.remove(f)
with open(md, "w") as f:
    f.write(f"Placement card: {info['requests_per_step']} requests x {info['tokens_per_request']} tokens per step, "
            f"OLMoE-1B-7B routing (3 layers), 4 nodes x 8 GPUs, profile h100; k-means purity against the hidden "
            f"domains {info['purity']:.2f}, clusters {info['clusters']}\n")


def pct(x):
    return f"{100 * x:+.1f}%"


rc.write_table(rows, [
    ("grouping", "grouping", "{}"), ("placement", "placement", "{}"),
    ("cross-node MB/layer", "inter", "{:.2f}"), ("intra-node MB/layer", "intra", "{:.2f}"),
    ("all-to-all MB/layer", "total", "{:.2f}"),
    ("cross-node vs default", "d_inter", pct), ("all-to-all vs default", "d_total", pct),
    ("rank max/mean", "imb", "{:.2f}"),
    ("layer speedup vs default (after placement)", "d_time", "{:.3f}x"),
    ("its band (scaled from the run's)", "d_time_band", rc.fmt_band),
    ("same, whole run (incl. migration)", "d_time_run", "{:.3f}x"),
    ("its band (vs arrival order + default)", "d_time_run_band", rc.fmt_band),
    ("band of the run's speedup vs its own baseline (--sensitivity)", "band", rc.fmt_band),
], md, os.path.join(out, "results.csv"), "all-to-all bytes by grouping and placement (steps after the placement and its migration, 0-based >= 2)")

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 3.4))
lab = [f"{r['grouping']}\n{r['placement']}" for r in rows]
x = range(len(rows))
ax.bar([i - 0.2 for i in x], [r["inter"] for r in rows], 0.4, label="cross-node (NIC)")
ax.bar([i + 0.2 for i in x], [r["intra"] for r in rows], 0.4, label="intra-node (NVLink)")
ax.set_xticks(list(x), lab, fontsize=8)
ax.set_ylabel("all-to-all MB per MoE layer")
ax.legend(fontsize=8)
ax.set_title("OLMoE routing, 4 x 8 GPUs: request grouping x expert placement", fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(out, "placement.png"), dpi=110)
print(open(md).read())
