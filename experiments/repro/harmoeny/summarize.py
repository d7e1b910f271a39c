"""HarMoEny card: throughput and time-to-first-token from a step-level model,
and GPU idle time, per router skew; two comparisons:
  same batch   every policy on HarMoEny's batch (2500 sequences per GPU);
  own batches  as the paper's scripts ran them: HarMoEny at 2500, static EP
               (DeepSpeed/FastMoE) and shadowing (FasterMoE) at the smaller
               batches the public script gives them (batches.json).

Step model (one prefill step = one batch; TTFT = its time, queueing left out):
  step = 12 attention blocks + 6 dense FFN blocks + 6 MoE layers
(google/switch-base-128's encoder: 12 blocks, every other FFN an MoE layer).
MoE layers: the cost model's layer time (dispatch + slowest rank incl. exposed
host prefetch + combine) from the run file, steady state (steps after the
first, which pays the baselines' one-time weight copies; the sensitivity
bands are the whole runs'). Attention and dense FFN: per GPU on
its 1/8 of the batch (data parallel), compute-bound GEMMs at the h100 profile's
bf16 peak (989 TFLOPS, datasheet) x mma_eff (0.8, assumption, 0.65-0.9):
attention 2*4*d^2 (QKV, O) + 2*2*s*d (scores, values) FLOPs per token, dense
FFN 2*2*d*3072; softmax/layernorm/elementwise passes are left out.
Throughput = tokens per step / step time. GPU idle = mean over MoE rows of
sum_r (max_r c_r - c_r) / (R * max_r c_r), c_r = the rank's compute time.
usage: summarize.py OUT RUN.h5...   (skewS.h5 = HarMoEny's batch, skewS_own.h5 = the baselines')"""
import json
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import repro2_common as rc  # noqa: E402

out, files = sys.argv[1], sys.argv[2:]
batches = json.load(open(os.path.join(out, "batches.json")))
D, DFF, S, R, PEAK = 768, 3072, 120, 8, 989e12
EFF = {"nominal": 0.8, "lo": 0.65, "hi": 0.9}
SHORT = {"baseline": "static EP", "redistribute": "HarMoEny", "shadow": "shadowing (FasterMoE-like), weights kept",
         "shadow_bcast": "shadowing, broadcast every step", "eplb": "replication (EPLB r8)"}


def dense_ms(tokens, eff):
    n = tokens / R
    attn = (2 * 4 * D * D + 2 * 2 * S * D) * n / (PEAK * eff)
    ffn = 2 * 2 * D * DFF * n / (PEAK * eff)
    return (12 * attn + 6 * ffn) * 1e3


def policies(path, tokens):
    steps, _, names, bands = rc.load(path)
    with h5py.File(path, "r") as f:
        comp = f["ranks/compute_us"][()]
    # steady state: steps after the first (the first pays shadowing's and
    # EPLB's one-time weight copies; the skew is stationary, so a long run
    # is its later steps)
    first = 1 if len(np.unique(steps["step"])) > 1 else 0
    nsteps = len(np.unique(steps["step"][steps["step"] >= first]))
    out = {}
    for i, name in enumerate(names):
        m = (steps["policy"] == i) & (steps["step"] >= first)
        c = comp[m]
        mx = c.max(axis=1)
        moe = steps["t_layer_us"][m].sum() / nsteps / 1e3      # ms per step, 6 MoE layers
        step = dense_ms(tokens, EFF["nominal"]) + moe
        out[name.split("(")[0]] = {
            "label": name, "tokens": tokens, "moe_ms": moe, "step_ms": step, "tput": tokens / (step / 1e3),
            "idle": float(((mx[:, None] - c).sum(axis=1) / (R * mx)).mean()),
            "imbalance": float(steps["imbalance"][m].mean()), "band": bands.get(name)}
        if name.startswith("shadow") and first:
            # FasterMoE as its code does it (built for training, where weights
            # change every iteration): the shadowed weights broadcast in every
            # step = the first step's MoE time, every step (stationary skew)
            m0 = (steps["policy"] == i) & (steps["step"] == 0)
            moe0 = steps["t_layer_us"][m0].sum() / 1e3
            step0 = dense_ms(tokens, EFF["nominal"]) + moe0
            out["shadow_bcast"] = dict(out["shadow"], label=name + " [broadcast every step]", moe_ms=moe0,
                                       step_ms=step0, tput=tokens / (step0 / 1e3))
    return out


def ratio_band(a, b, tok_a, tok_b):
    """throughput of a over b with each policy's steady MoE time scaled by its
    MoE speedup's ends under --sensitivity (nominal / end, from the whole run)
    and the dense part at mma_eff's ends: the lowest and highest of every
    combination."""
    if not a["band"] or not b["band"]:
        return None
    g = []
    for ea in a["band"][1:]:
        for eb in b["band"][1:]:
            for k in ("lo", "hi"):
                ta = dense_ms(tok_a, EFF[k]) + a["moe_ms"] * a["band"][0] / ea
                tb = dense_ms(tok_b, EFF[k]) + b["moe_ms"] * b["band"][0] / eb
                g.append((tok_a / ta) / (tok_b / tb) - 1)
    return min(g), max(g)


same, own = [], []
for path in files:
    m = re.search(r"skew(\d+)(_own)?\.h5$", path)
    skew, is_own = m.group(1), bool(m.group(2))
    tok = batches[skew]["own" if is_own else "harmoeny"]
    p = policies(path, tok)
    if is_own:
        own.append((skew, p))
        continue
    b, h = p["baseline"], p["redistribute"]
    others = [k for k in p if k not in ("redistribute",)]
    nb = max(others, key=lambda k: p[k]["tput"])
    for k, r in p.items():
        sp = b["moe_ms"] / r["moe_ms"]
        # the steady speedup's band: scaled by the whole run's band ends (nominal / end)
        band = (sp, sp * r["band"][1] / r["band"][0], sp * r["band"][2] / r["band"][0]) if r["band"] else None
        same.append({"skew": skew, "policy": SHORT.get(k, k), "imbalance": r["imbalance"],
                     "moe_speedup": sp, "band": band, "ttft_ms": r["step_ms"],
                     "tput": r["tput"], "idle": r["idle"],
                     "vs_nb": h["tput"] / p[nb]["tput"] - 1 if k == "redistribute" else float("nan"),
                     "nb": SHORT[nb] if k == "redistribute" else "",
                     "vs_nb_band": ratio_band(h, p[nb], tok, tok) if k == "redistribute" else None,
                     "ttft_vs_nb": 1 - h["step_ms"] / p[nb]["step_ms"] if k == "redistribute" else float("nan")})
# the paper's comparison: HarMoEny at its batch, the baselines at theirs
hp = {s: policies(f, batches[s]["harmoeny"]) for s, f in
      ((re.search(r"skew(\d+)\.h5$", f).group(1), f) for f in files if not f.endswith("_own.h5"))}
paper = []
for skew, p in own:
    h = hp[skew]["redistribute"]
    for k in ("baseline", "shadow", "shadow_bcast"):
        r = p[k]
        paper.append({"skew": skew, "policy": SHORT[k], "batch": r["tokens"] // (R * S), "tput": r["tput"],
                      "step_ms": r["step_ms"], "h_tput": h["tput"], "gain": h["tput"] / r["tput"] - 1,
                      "band": ratio_band(h, r, h["tokens"], r["tokens"])})
    best = max(paper[-3:], key=lambda r: r["tput"])
    best["next_best"] = "yes"
for r in paper:
    r.setdefault("next_best", "")

md = os.path.join(out, "results.md")
for f in (md, os.path.join(out, "results.csv"), os.path.join(out, "results_own_batches.md"),
          os.path.join(out, "results_own_batches.csv")):
    if os.path.exists(f):
        os.remove(f)
with open(md, "w") as f:
    f.write("HarMoEny card: switch-base-128 shapes, 8 GPUs, profile h100; MoE layers from cost model v2, the rest "
            "from the step model in summarize.py; batches (tokens per step over 8 GPUs) in batches.json\n")


def pct(x):
    return "-" if x != x else f"{100 * x:+.1f}%"


def pband(b):
    return "-" if not b else f"{pct(b[0])} .. {pct(b[1])}"


rc.write_table(same, [
    ("skew (Gini)", "skew", "{}"), ("policy", "policy", "{}"), ("rank max/mean", "imbalance", "{:.2f}"),
    ("MoE speedup over static EP", "moe_speedup", "{:.3f}x"), ("MoE band (--sensitivity)", "band", rc.fmt_band),
    ("throughput Mtok/s", "tput", lambda v: f"{v / 1e6:.2f}"), ("TTFT ms (one batch)", "ttft_ms", "{:.1f}"),
    ("GPU idle share", "idle", "{:.3f}"), ("next-best", "nb", "{}"),
    ("HarMoEny throughput vs next-best", "vs_nb", pct), ("band", "vs_nb_band", pband),
    ("TTFT cut vs next-best", "ttft_vs_nb", pct),
], md, os.path.join(out, "results.csv"), "same batch: every policy on HarMoEny's batch (2500 sequences per GPU)")
rc.write_table(paper, [
    ("skew (Gini)", "skew", "{}"), ("baseline", "policy", "{}"), ("its batch (seq/GPU)", "batch", "{}"),
    ("its throughput Mtok/s", "tput", lambda v: f"{v / 1e6:.2f}"),
    ("HarMoEny (2500 seq/GPU) Mtok/s", "h_tput", lambda v: f"{v / 1e6:.2f}"),
    ("HarMoEny throughput gain", "gain", pct), ("band", "band", pband), ("next-best", "next_best", "{}"),
], os.path.join(out, "results_own_batches.md"), os.path.join(out, "results_own_batches.csv"),
    "own batches: the baselines at the batch sizes of the public scripts")

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
for pname in dict.fromkeys(r["policy"] for r in same):
    rr = [r for r in same if r["policy"] == pname]
    xs = [int(r["skew"]) / 100 for r in rr]
    ax[0].plot(xs, [r["tput"] / 1e6 for r in rr], "o-", label=pname)
    ax[1].plot(xs, [r["ttft_ms"] for r in rr], "o-", label=pname)
for pname in (SHORT["baseline"], SHORT["shadow"], SHORT["shadow_bcast"]):
    rr = [r for r in paper if r["policy"] == pname]
    ax[0].plot([int(r["skew"]) / 100 for r in rr], [r["tput"] / 1e6 for r in rr], "x--",
               label=pname + ", own batch")
ax[0].set_xlabel("router skew (Gini)"); ax[0].set_ylabel("throughput, M tokens/s (step model)")
ax[1].set_xlabel("router skew (Gini)"); ax[1].set_ylabel("TTFT of one 2500-seq/GPU batch, ms")
ax[0].legend(fontsize=6)
fig.suptitle("HarMoEny on switch-base-128 shapes, 8 x H100, prefetch from host over PCIe (cost model v2)", fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(out, "harmoeny.png"), dpi=110)
print(open(md).read())
print(open(os.path.join(out, "results_own_batches.md")).read())
