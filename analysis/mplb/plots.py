"""Figures of mplb runs and sweeps (matplotlib). Every figure says where its
numbers came from: the cost model with a named profile, unless a backend says
it measured them."""
from __future__ import annotations

import re

import matplotlib
import matplotlib.ticker
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runfile import PRECISIONS, Run  # noqa: E402


def source_label(run: Run) -> str:
    """Where the run's times come from, as the run file records it (files
    from before mplb recorded it: the cost model with the config's profile)."""
    if run.attrs.get("times_source"):
        return run.attrs["times_source"]
    m = re.search(r'profile\s*=\s*"([^"]+)"|\["profile"\]="([^"]+)"', run.config)
    prof = next((g for g in (m.groups() if m else ()) if g), "?")
    return f"cost model, profile {prof}"


def pareto(summary, ax=None, title="speedup vs error proxy"):
    """Speedup against error proxy, one point per (policy[, sweep point]);
    the Pareto front (higher speedup, lower error) drawn as a line."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    df = summary.reset_index()
    for name, g in df.groupby("policy", sort=False):
        ax.scatter(g["error_proxy"], g["speedup"], label=name, s=30)
    pts = df.sort_values(["error_proxy", "speedup"], ascending=[True, False])
    front, best = [], -np.inf
    for _, r in pts.iterrows():
        if r["speedup"] > best:
            front.append((r["error_proxy"], r["speedup"]))
            best = r["speedup"]
    if front:
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="k", lw=1, alpha=0.6, label="Pareto front")
    ax.set_xlabel("error proxy (gate-mass-weighted relative weight error)")
    ax.set_ylabel("MoE layer speedup over all-bf16")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax.figure


def rank_heatmap(run: Run, policy=0, layer=0, ax=None):
    """Token copies per rank (columns) over steps (rows) for one layer."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    s = run.steps
    sel = ((s["policy"] == policy) & (s["layer"] == layer)).to_numpy()
    im = ax.imshow(run.rank_load[sel], aspect="auto", cmap="viridis", interpolation="nearest")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.figure.colorbar(im, ax=ax, label="token copies")
    ax.set_xlabel("rank")
    ax.set_ylabel("step")
    ax.set_title(f"rank load, layer {layer}, {run.policies[policy]}")
    return ax.figure


def timeline(run: Run, policy=0, step=0, layer=0, ax=None):
    """One layer on every rank: dispatch, compute, idle (waiting for the
    slowest rank), combine (cost model)."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    s = run.steps
    idx = np.flatnonzero(((s["policy"] == policy) & (s["step"] == step) & (s["layer"] == layer)).to_numpy())
    if idx.size == 0:
        raise ValueError(f"no row for policy {policy}, step {step}, layer {layer}")
    i = idx[0]
    row = s.iloc[i]
    comp = run.rank_compute_us[i]
    R = comp.size
    disp, comb = row["t_dispatch_us"], row["t_combine_us"]
    idle = comp.max() - comp
    y = np.arange(R)
    ax.barh(y, np.full(R, disp), color="#8da0cb", label="dispatch")
    ax.barh(y, comp, left=disp, color="#fc8d62", label="compute (+exposed conversion)")
    ax.barh(y, idle, left=disp + comp, color="#e5e5e5", label="idle")
    ax.barh(y, np.full(R, comb), left=disp + comp.max(), color="#66c2a5", label="combine")
    ax.set_yticks(y)
    ax.set_xlabel("µs")
    ax.set_ylabel("rank")
    ax.set_title(f"{run.policies[policy]}: step {step}, layer {layer} ({source_label(run)})", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    return ax.figure


def precision_map(run: Run, policy=0, ax=None):
    """Share of each rank's experts below bf16, per layer (over steps), under
    the default contiguous placement."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    s = run.steps
    R, E = run.rank_load.shape[1], run.expert_precision.shape[1]
    home = (np.arange(E) * R) // E
    layers = int(s["layer"].max()) + 1
    grid = np.zeros((layers, R))
    for l in range(layers):
        sel = ((s["policy"] == policy) & (s["layer"] == l)).to_numpy()
        low = (run.expert_precision[sel] != 0).mean(axis=0) if sel.any() else np.zeros(E)
        for r in range(R):
            grid[l, r] = low[home == r].mean() if (home == r).any() else 0
    im = ax.imshow(grid, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="share of experts below bf16")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("rank")
    ax.set_ylabel("layer")
    ax.set_title(f"precision map, {run.policies[policy]}")
    return ax.figure


def lis_over_time(run: Run, ax=None):
    """LIS of the routing (mean over layers) per step; 1 = balanced."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    s = run.steps[run.steps["policy"] == 0]
    m = s.groupby("step")["lis"].mean()
    ax.plot(m.index, m.values, marker="o", ms=3)
    ax.axhline(1, color="k", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("LIS = E·max n_e / (T·k)")
    ax.set_title("load-imbalance score over time")
    ax.grid(alpha=0.3)
    return ax.figure
