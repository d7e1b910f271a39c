"""ReaLB card: tables and figure from the run files run.sh wrote.

MoE-layer speedup (the paper's layer-level metric) = sum of baseline layer
times / sum of the policy's, same routing, with the --sensitivity band (every
profile assumption at each end of its range). End-to-end estimate: a step
model, e2e = 1 / ((1 - f) + f / s), where f is the MoE layers' share of the
language model's prefill step: MoE layer time from the cost model (baseline
row), the rest of a layer (attention projections and scores) as bf16 tensor
FLOPs on the same GPU; f's range comes from the attention efficiency and the
sequence length (both assumptions, named in the table). The vision encoder is
not in the step (not modelled), which makes f, and so the estimate, an upper
bound."""
import csv
import math
import os
import re
import sys

import h5py
import numpy as np

import mplb

OUT = sys.argv[1]
ROOT = sys.argv[2]

# Qwen3-VL-30B-A3B language model attention (as Qwen3-30B-A3B): hidden 2048, 32 query heads and
# 4 KV heads of 128 (MindSpeed-RL qwen3_30b_a3b.yaml; NeMo Megatron-Bridge Qwen3VLMoEModelProvider).
HIDDEN, QDIM, KVDIM = 2048, 32 * 128, 4 * 128
ATT_EFF = (0.4, 0.56, 0.7)   # assumption: share of bf16 peak the attention GEMMs reach (0.56: profile's MMA value)


def bf16_peak_tflops():
    txt = open(os.path.join(ROOT, "profiles", "rtx5090.lua")).read()
    return float(re.search(r"\bbf16 = \{ (\d+(?:\.\d+)?)", txt).group(1))


def flops_per_token(seq):
    proj = 2 * (HIDDEN * (QDIM + 2 * KVDIM) + QDIM * HIDDEN)   # QKV and output projections
    scores = 2 * seq * QDIM                                     # QK^T and PV, causal: mean context seq/2
    return proj + scores


def moe_share(t_moe_us, tokens, ranks, seq, eff, peak):
    t_other_us = (tokens / ranks) * flops_per_token(seq) / (peak * 1e12 * eff) * 1e6
    return t_moe_us / (t_moe_us + t_other_us)


def e2e(s, f):
    return 1.0 / ((1.0 - f) + f / s)


def names(f, key):
    return [x.decode() if isinstance(x, bytes) else str(x) for x in f[key][()]]


def last_step(sub):
    """Speedup over the run's last step alone: for EPLB, after its rebalance has been paid."""
    s = sub[sub["step"] == sub["step"].max()]
    return s["t_baseline_us"].sum() / s["t_layer_us"].sum()


def timing_rows():
    rows = []
    peak = bf16_peak_tflops()
    for fn in sorted(os.listdir(OUT)):
        m = re.match(r"timing_(\d+)_v(\d+)(?:_s(\d+))?\.h5$", fn)
        if not m:
            continue
        tokens, vis = int(m.group(1)), int(m.group(2)) / 100
        vsig = int(m.group(3)) / 100 if m.group(3) else 0.0
        path = os.path.join(OUT, fn)
        run = mplb.load(path)
        st = run.steps
        with h5py.File(path, "r") as f:
            pol = names(f["sensitivity"], "policy")
            band = f["sensitivity/band"][()]
            flip = f["sensitivity"].attrs.get("rank_flip", b"")
            ranks = int(f["ranks/load"].shape[1])
        t_moe = st[st["policy"] == 0]["t_baseline_us"].mean()
        seqs = (1024, tokens // 2, tokens)
        f_lo = moe_share(t_moe, tokens, ranks, seqs[2], ATT_EFF[0], peak)
        f_mid = moe_share(t_moe, tokens, ranks, seqs[1], ATT_EFF[1], peak)
        f_hi = moe_share(t_moe, tokens, ranks, seqs[0], ATT_EFF[2], peak)
        g = st.groupby("policy_name", sort=False)
        for i, p in enumerate(pol):
            s, lo, hi = band[i]
            sub = st[st["policy_name"] == p]
            rows.append(dict(
                tokens=tokens, vision_frac=vis, vision_sigma=vsig, policy=p, speedup=s, band_lo=lo, band_hi=hi,
                imbalance=g["imbalance"].mean()[p], fp4_share=float(np.nan),
                exposed_conv_us=sub["exposed_conv_us"].mean(), t_layer_us=sub["t_layer_us"].mean(),
                speedup_last_step=last_step(sub),
                t_baseline_us=t_moe, t_dispatch_us=sub["t_dispatch_us"].mean(), t_compute_max_us=sub["t_compute_max_us"].mean(),
                t_combine_us=sub["t_combine_us"].mean(), moe_share=f_mid, moe_share_lo=f_lo, moe_share_hi=f_hi,
                e2e=e2e(s, f_mid), e2e_lo=min(e2e(x, y) for x in (lo, hi) for y in (f_lo, f_hi)),
                e2e_hi=max(e2e(x, y) for x in (lo, hi) for y in (f_lo, f_hi)),
                rank_flip=flip.decode() if isinstance(flip, bytes) else str(flip)))
        # share of expert-layer slots a policy ran in FP4
        with h5py.File(path, "r") as f:
            prec = f["experts/precision"][()]
            pidx = f["steps"]["policy"][()]
        for r in rows[-len(pol):]:
            k = pol.index(r["policy"])
            r["fp4_share"] = float((prec[pidx == k] != 0).mean())
    rows.sort(key=lambda r: (r["tokens"], r["vision_frac"], r["vision_sigma"]))   # stable: policy order kept
    return rows


def seed_rows():
    """MoE-layer speedups at 8K / vision 0.85 for other routing seeds (no sensitivity)."""
    out = {}
    for fn in sorted(os.listdir(OUT)):
        m = re.match(r"seed_8192_v85_(\d+)\.h5$", fn)
        if not m:
            continue
        st = mplb.load(os.path.join(OUT, fn)).steps
        g = st.groupby("policy_name", sort=False)
        out[int(m.group(1))] = (g["t_baseline_us"].sum() / g["t_layer_us"].sum()).to_dict()
    return out


VARIANTS = {"tau125": "ReaLB's rule at threshold's default tau = 1.25 (the card's runs use 1.1)",
            "corner": "profile rtx5090_corner.lua: nvlink_eff 0.3 and the FP8/FP4 MMA share 0.4 together"}


def variant_rows():
    """variant_NAME_TOKENS_vVIS.h5 (run.sh, full size): the card's setting with one choice changed;
    speedup over the whole run, the --sensitivity band where the run has one."""
    rows = []
    for fn in sorted(os.listdir(OUT)):
        m = re.match(r"variant_(\w+?)_(\d+)_v(\d+)\.h5$", fn)
        if not m:
            continue
        path = os.path.join(OUT, fn)
        st = mplb.load(path).steps
        g = st.groupby("policy_name", sort=False)
        sp = (g["t_baseline_us"].sum() / g["t_layer_us"].sum()).to_dict()
        bands = {}
        with h5py.File(path, "r") as f:
            if "sensitivity" in f:
                bands = dict(zip(names(f["sensitivity"], "policy"), f["sensitivity/band"][()]))
        for p, v in sp.items():
            b = bands.get(p)
            rows.append(dict(variant=m.group(1), tokens=int(m.group(2)), vision_frac=int(m.group(3)) / 100, policy=p,
                             speedup=v, band_lo=float(b[1]) if b is not None else float("nan"),
                             band_hi=float(b[2]) if b is not None else float("nan")))
    return rows


def accuracy_rows():
    path = os.path.join(OUT, "accuracy.h5")
    if not os.path.exists(path):
        return []
    st = mplb.load(path).steps
    last = st[st["layer"] == st["layer"].max()]
    g = last.groupby("policy_name", sort=False)
    return [dict(policy=p, kl=g["kl"].mean()[p], top1_agree=g["top1_agree"].mean()[p],
                 ppl_delta=g["ppl_delta"].mean()[p], steps=int(g.size()[p])) for p in g.size().index]


def write_csv(path, rows):
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    key = lambda r: (r["tokens"], r["vision_frac"], r["vision_sigma"])
    conds = sorted({key(r) for r in rows})
    pols = [r["policy"] for r in rows if key(r) == conds[0]]
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    w = 0.8 / len(pols)
    for j, p in enumerate(pols):
        xs, ys, lo, hi = [], [], [], []
        for i, c in enumerate(conds):
            r = next(r for r in rows if key(r) == c and r["policy"] == p)
            xs.append(i + j * w)
            ys.append(r["speedup"])
            lo.append(r["speedup"] - r["band_lo"])
            hi.append(r["band_hi"] - r["speedup"])
        ax.bar(xs, ys, w, yerr=[lo, hi], capsize=2, label=p)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(1.29, color="grey", ls="--", lw=0.8, label="paper: 1.29x (layer, v1 abstract, 2nd-hand)")
    ax.set_xticks([i + w * (len(pols) - 1) / 2 for i in range(len(conds))])
    ax.set_xticklabels([f"{t // 1024}K, vision {v:.0%}" + (f"\nvision σ {g}" if g else "") for t, v, g in conds], fontsize=8)
    ax.set_ylabel("MoE-layer speedup vs bf16")
    ax.set_title("ReaLB on 8x RTX 5090 (cost model v2, profile rtx5090; bars: sensitivity band)", fontsize=9)
    ax.set_ylim(0, 1.55)
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    t = timing_rows()
    a = accuracy_rows()
    write_csv(os.path.join(OUT, "timing.csv"), t)
    write_csv(os.path.join(OUT, "accuracy.csv"), a)
    md = ["# ReaLB reproduction: numbers (generated by experiments/repro/realb/run.sh)", "",
          "Times: cost model v2, profile rtx5090 (8 ranks, one node, PCIe). Speedup = sum of bf16 baseline layer "
          "times / sum of the policy's, same routing; band = `--sensitivity` (every profile assumption at each end "
          "of its range). e2e = step-model estimate 1/((1-f)+f/s), f = MoE share of the language model's prefill "
          "step (attention as bf16 FLOPs at 40-70% of peak, sequence length 1K..batch; vision encoder not counted). "
          "last step = speedup over the run's last step (EPLB: after its rebalance, migration paid). "
          "vision σ = workload.vision_sigma, the per-batch fluctuation of vision routing (0: the same hot set every batch).", "",
          "| tokens | vision | vision σ | policy | MoE-layer speedup | band | last step | FP4 share | imbalance | dispatch+combine share | exposed conv us | f (MoE share) | e2e estimate |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in t:
        md.append(f"| {r['tokens']} | {r['vision_frac']:.2f} | {r['vision_sigma']:.2f} | {r['policy']} | {r['speedup']:.3f}x | "
                  f"{r['band_lo']:.3f}-{r['band_hi']:.3f}x | {r['speedup_last_step']:.3f}x | {r['fp4_share']:.2f} | {r['imbalance']:.3f} | "
                  f"{(r['t_dispatch_us'] + r['t_combine_us']) / r['t_layer_us']:.2f} | "
                  f"{r['exposed_conv_us']:.1f} | {r['moe_share']:.2f} ({r['moe_share_lo']:.2f}-{r['moe_share_hi']:.2f}) | "
                  f"{r['e2e']:.3f}x ({r['e2e_lo']:.3f}-{r['e2e_hi']:.3f}) |")
    flips = {r["rank_flip"] for r in t if r["rank_flip"]}
    md += ["", "Ranking flips under sensitivity: " + ("; ".join(sorted(flips)) if flips else "none"), ""]
    seeds = seed_rows()
    if seeds:
        base = {r["policy"]: r["speedup"] for r in t if (r["tokens"], r["vision_frac"], r["vision_sigma"]) == (8192, 0.85, 0.0)}
        pols = list(base)
        md += ["Routing seeds at 8K, vision 0.85 (the card's seed 11 first): MoE-layer speedup", "",
               "| policy | " + " | ".join(["11"] + [str(k) for k in seeds]) + " |", "|---|" + "---|" * (1 + len(seeds))]
        for p in pols:
            md.append(f"| {p} | {base[p]:.3f}x | " + " | ".join(f"{seeds[k][p]:.3f}x" for k in seeds) + " |")
        md.append("")
    v = variant_rows()
    write_csv(os.path.join(OUT, "variants.csv"), v)
    if v:
        md += ["Variants (full size only): " + "; ".join(f"{k} = {d}" for k, d in VARIANTS.items()), "",
               "| variant | tokens | vision | policy | MoE-layer speedup | band |", "|---|---|---|---|---|---|"]
        for r in v:
            bd = "-" if math.isnan(r["band_lo"]) else f"{r['band_lo']:.3f}-{r['band_hi']:.3f}x"
            md.append(f"| {r['variant']} | {r['tokens']} | {r['vision_frac']:.2f} | {r['policy']} | {r['speedup']:.3f}x | {bd} |")
        md.append("")
    if a:
        md += ["Accuracy, measured on models/tiny-moe (NOT Qwen3-VL; code labelled `vision`), last-layer rows, "
               "mean over steps:", "",
               "| policy | KL (nats/token) | top-1 agreement | perplexity change |", "|---|---|---|---|"]
        for r in a:
            md.append(f"| {r['policy']} | {r['kl']:.3e} | {r['top1_agree']:.4f} | {r['ppl_delta']:+.4f} |")
    open(os.path.join(OUT, "results.md"), "w").write("\n".join(md) + "\n")
    if t:
        figure(t, os.path.join(OUT, "speedup.png"))
    print("\n".join(md))


if __name__ == "__main__":
    main()
