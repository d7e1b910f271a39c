"""Figures of mplb runs and sweeps (matplotlib).

Every function returns a matplotlib Figure made without pyplot's figure
manager: nothing is kept open behind the caller's back, and a notebook cell
ending in `fig` shows it once. Every figure says what it shows: which sweep
point (`where`), which step and layer, and where the times come from
(cost model with a named profile, or measured).

Sweep summaries (Sweep.summary()) carry one column per sweep axis. Axes under
`policies` vary a policy; every other axis (profile, tokens, model, seed, ...)
changes the condition, and Pareto fronts are drawn within one condition only.
"""
from __future__ import annotations

import os
import re
import sys

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .runfile import Run


def _notebook_display():
    """Under IPython, load pyplot's backend now: matplotlib-inline registers
    IPython's display of Figure objects when its module loads, which pyplot
    otherwise defers to the first pyplot figure. With no figure open,
    switching closes nothing."""
    if "IPython" in sys.modules and not plt.get_fignums():
        plt.switch_backend(matplotlib.get_backend())


_notebook_display()

MARKERS = "os^Dv<>p*h"


def _int_ticks():
    """Integer ticks, also on an axis that spans a single integer."""
    return matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1)


# Columns of Run.summary() / Sweep.summary() that are not sweep axes.
SUMMARY_COLUMNS = {"point", "policy", "rows", "t_layer_us", "t_baseline_us", "speedup", "imbalance", "lis",
                   "lis_after", "error_proxy", "bytes_inter", "exposed_conv_us", "decide_us"}
FRONT_STYLE = dict(color="black", lw=2.2, alpha=1.0, zorder=4)


# --- where numbers come from -------------------------------------------------

def source_label(run: Run) -> str:
    """Where the run's times come from, as the run file records it (files
    from before mplb recorded it: the cost model with the config's profile)."""
    if run.attrs.get("times_source"):
        return run.attrs["times_source"]
    return f"cost model, profile {config_value(run, 'profile')}"


def is_measured(run: Run) -> bool:
    """True when some of the run's times were measured (backend cpu or cuda,
    real EP layers); the source label says which parts."""
    backend = run.attrs.get("backend") or config_value(run, "backend")
    return "measured" in source_label(run) or backend in ("cpu", "cuda")


def source_note(run: Run) -> str:
    """The source label with what it means for the reader."""
    if is_measured(run):
        return f"{source_label(run)} (measured; parts named as cost model are modelled)"
    return f"{source_label(run)} (modelled, not measurements)"


def config_value(run: Run, key: str) -> str:
    """A value from the run's resolved config text: profile, backend, or the
    model (its preset or name)."""
    cfg = run.config or ""
    if key == "model":
        m = re.search(r'\["model"\]="([^"]+)"', cfg) or \
            re.search(r'\["model"\]=\{[^{}]*?\["(?:preset|name)"\]="([^"]+)"', cfg)
    else:
        m = re.search(r'\["%s"\]\s*=\s*"([^"]+)"|\b%s\s*=\s*"([^"]+)"' % (key, key), cfg)
    if not m and key == "profile":   # the default profile: the times source names it
        m = re.search(r"profile (\S+)", run.attrs.get("times_source") or "")
    if not m:
        return {"backend": "model"}.get(key, "?")
    return next(g for g in m.groups() if g)


# --- colours, axes and conditions --------------------------------------------

def policy_colors(names):
    """One colour per policy name, the same in every figure of a report."""
    names = list(dict.fromkeys(names))
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "turbo"]
    n = max(len(names), 1)
    return {name: cmap(i if len(names) <= 20 else i / max(n - 1, 1)) for i, name in enumerate(names)}


def sweep_axes(summary: pd.DataFrame):
    """The sweep-axis columns of a summary (none for a single run's)."""
    return [c for c in summary.columns if c not in SUMMARY_COLUMNS]


def is_policy_axis(name: str) -> bool:
    return name == "policies" or name.startswith("policies.") or name.startswith("policies[")


def condition_axes(summary: pd.DataFrame):
    """Axes that change the condition (profile, tokens, model, ...): those
    that vary and do not name a policy parameter."""
    return [a for a in sweep_axes(summary) if not is_policy_axis(a) and summary[a].nunique() > 1]


def short_axis(name: str, axes) -> str:
    """`cluster.profile` -> `profile` unless that leaves two axes one name."""
    short = name.split(".")[-1]
    return short if sum(a.split(".")[-1] == short for a in axes) == 1 and "[" not in name else name


def axis_text(values: dict, axes) -> str:
    return ", ".join(f"{short_axis(a, axes)}={values[a]}" for a in axes)


def _frame(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary with `policy` as a column (Run.summary() has it as index)."""
    return summary.reset_index() if summary.index.name is not None else summary.reset_index(drop=True)


def _axis_owns(axis: str, position: int, label: str) -> bool:
    """Whether a policy axis sets the policy at `position` (0-based) with this
    label: policies[N].k names the N-th (1-based, as in Lua), policies.NAME.k
    the policy named NAME."""
    m = re.match(r"policies\[(\d+)\]", axis)
    if m:
        return int(m.group(1)) - 1 == position
    m = re.match(r"policies\.([^.\[]+)", axis)
    if m:
        return label == m.group(1) or label.startswith(m.group(1) + "(")
    return True


def _series(summary: pd.DataFrame):
    """Series names: the policy label, plus the values of the policy axes
    that set this policy when its label alone repeats within a condition."""
    df = _frame(summary)
    pol_axes = [a for a in sweep_axes(df) if is_policy_axis(a) and df[a].nunique() > 1]
    if not pol_axes:
        return df["policy"].astype(str)
    position = df.groupby("point").cumcount() if "point" in df else pd.Series(range(len(df)), index=df.index)
    repeats = df.duplicated(subset=condition_axes(df) + ["policy"], keep=False)
    names = []
    for i, r in df.iterrows():
        own = [a for a in pol_axes if _axis_owns(a, int(position[i]), str(r["policy"]))]
        names.append(f"{r['policy']} [{axis_text(r, own)}]" if repeats[i] and own else str(r["policy"]))
    return pd.Series(names, index=df.index)


def same_groups(series: dict):
    """Group the keys of {key: 1-d array} whose arrays are equal (to 1e-9
    relative), in first-seen order: overlapping lines are drawn once and
    labelled with every key they stand for."""
    groups = []
    for k, v in series.items():
        v = np.asarray(v, float)
        for g in groups:
            ref = np.asarray(series[g[0]], float)
            if ref.shape == v.shape and np.allclose(ref, v, rtol=1e-9, atol=0, equal_nan=True):
                g.append(k)
                break
        else:
            groups.append([k])
    return groups


def _grid(n, ncols_max=3):
    ncols = min(n, ncols_max)
    return (n + ncols - 1) // ncols, ncols


def _label_grid(axs, used, xlabel, ylabel):
    """Hide the grid's unused panels; label the lowest panel of each column
    (with its tick labels, which sharex hides above an unused panel) and the
    first of each row."""
    nrows, ncols = axs.shape
    for k, ax in enumerate(axs.flat):
        if k >= used:
            ax.set_visible(False)
        elif k + ncols >= used:
            ax.set_xlabel(xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axs[:, 0]:
        ax.set_ylabel(ylabel)


def wrap(label: str, width: int = 38) -> str:
    """A long policy label on several lines, broken after its commas."""
    lines, cur = [], ""
    for part in re.split(r"(?<=,)", label):
        if cur and len(cur) + len(part) > width:
            lines.append(cur)
            cur = ""
        cur += part
    return "\n".join(lines + [cur])


def _new_figure(nrows, ncols, panel_w, panel_h, extra_h=0.0, **kw):
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + extra_h), layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axs


def _legend(fig, handles_labels, ncol=4):
    """One legend below the panels, in as many columns as the figure's width
    holds (long policy labels get fewer)."""
    handles, labels = handles_labels
    if handles:
        widest = max(len(str(t)) for t in labels) * 4.3 + 30      # points at fontsize 7
        fits = max(1, int(fig.get_figwidth() * 72 // widest))
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(labels), fits), fontsize=7,
                   frameon=False)


# --- Pareto fronts --------------------------------------------------------------

def pareto_front(error, speedup):
    """Indices of the non-dominated points (lower error, higher speedup), in
    order of increasing error. A point is dominated when another is at least
    as good in both and better in one; exact ties keep the first."""
    e, s = np.asarray(error, float), np.asarray(speedup, float)
    order = np.lexsort((-s, e))        # by error, then by speedup descending
    front, best = [], -np.inf
    for i in order:
        if s[i] > best:
            front.append(int(i))
            best = s[i]
    return front


def _pareto_panel(ax, df, colors, title):
    series = _series(df)
    for name in dict.fromkeys(series):
        g = df[series.to_numpy() == name]
        ax.scatter(g["error_proxy"], g["speedup"], color=colors[name], s=30, zorder=3, label=name,
                   marker=MARKERS[list(colors).index(name) % len(MARKERS)])   # coinciding points stay apart
    idx = pareto_front(df["error_proxy"], df["speedup"])
    fx, fy = df["error_proxy"].to_numpy()[idx], df["speedup"].to_numpy()[idx]
    ax.step(fx, fy, where="post", label=f"Pareto front ({len(idx)} points)", **FRONT_STYLE)
    ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", linewidths=1.4, zorder=5)
    ax.axhline(1, color="0.5", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def pareto(summary: pd.DataFrame, ax=None, title="speedup vs error proxy", source=""):
    """Speedup against error proxy, one point per policy (and per policy-axis
    value). A sweep's summary gets one panel per condition (every combination
    of its non-policy axes), each with its own Pareto front; panels share
    both axes. `ax` draws a single condition into an existing Axes."""
    df = _frame(summary)
    cond = condition_axes(df)
    colors = policy_colors(_series(df))
    if ax is not None:
        if cond:
            raise ValueError(f"summary has {df.groupby(cond).ngroups} conditions ({', '.join(cond)}): "
                             "draw it without ax= to get one panel per condition")
        _pareto_panel(ax, df, colors, title)
        ax.legend(fontsize=7)
        return ax.figure
    groups = list(df.groupby(cond, sort=False)) if cond else [((), df)]
    nrows, ncols = _grid(len(groups))
    fig, axs = _new_figure(nrows, ncols, 4.2, 3.3, 0.6, sharex=True, sharey=True)
    for k, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        _pareto_panel(axs.flat[k], g, colors, axis_text(dict(zip(cond, key)), cond) if cond else "")
    _label_grid(axs, len(groups), "error proxy (gate-mass-weighted rel. weight error)",
                "MoE layer speedup over all-bf16")
    fig.suptitle(title + (f": one panel and front per condition ({', '.join(cond)})" if cond else "")
                 + (f"\n({source})" if source else ""), fontsize=10)
    names = list(colors)
    handles = [Line2D([], [], ls="", marker=MARKERS[k % len(MARKERS)], color=colors[n]) for k, n in enumerate(names)]
    handles.append(Line2D([], [], **FRONT_STYLE))
    _legend(fig, (handles, names + ["Pareto front (per panel)"]), ncol=4)
    return fig


def sweep_metrics(summary: pd.DataFrame, title="speedup and error proxy by sweep axis", source=""):
    """Speedup (top row) and error proxy (bottom row) per policy against one
    condition axis (x; the numeric one with most values), one column of
    panels per combination of the other condition axes; colours are policies.
    Rows share their y axis and columns their x axis."""
    df = _frame(summary)
    cond = condition_axes(df)
    if not cond:
        raise ValueError("sweep_metrics needs a summary with at least one condition axis that varies")
    numeric = [a for a in cond if pd.api.types.is_numeric_dtype(df[a])]
    xaxis = max(numeric or cond, key=lambda a: df[a].nunique())
    facets = [a for a in cond if a != xaxis]
    groups = list(df.groupby(facets, sort=False)) if facets else [((), df)]
    xs = sorted(df[xaxis].unique()) if xaxis in numeric else list(dict.fromkeys(df[xaxis]))
    pos = {v: i for i, v in enumerate(xs)}
    series = _series(df)
    colors = policy_colors(series)
    fig, axs = _new_figure(2, len(groups), 4.0, 2.7, 0.7, sharex=True, sharey="row")
    for k, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        gs = series[g.index]
        for j, name in enumerate(dict.fromkeys(gs)):
            # a policy the policy axes do not set repeats: one value per x
            h = g[gs == name].drop_duplicates(xaxis).sort_values(xaxis)
            x = [pos[v] for v in h[xaxis]]
            mk = MARKERS[list(colors).index(name) % len(MARKERS)]   # overlapping lines stay apart
            axs[0, k].plot(x, h["speedup"], marker=mk, ms=4, color=colors[name], label=name)
            axs[1, k].plot(x, h["error_proxy"], marker=mk, ms=4, color=colors[name], label=name)
        axs[0, k].axhline(1, color="0.5", lw=0.8, ls=":")
        axs[0, k].set_title(axis_text(dict(zip(facets, key)), facets) if facets else "", fontsize=9)
        axs[1, k].set_xticks(range(len(xs)), [str(v) for v in xs])
        axs[1, k].set_xlabel(xaxis)
        for ax_ in axs[:, k]:
            ax_.grid(alpha=0.3)
    axs[0, 0].set_ylabel("speedup over all-bf16")
    axs[1, 0].set_ylabel("error proxy")
    fig.suptitle(title + (f" ({source})" if source else ""), fontsize=10)
    _legend(fig, axs[0, 0].get_legend_handles_labels())
    return fig


def sweep_lis(sweep, points=None, runs=None, title="routing LIS over steps, every point"):
    """The routing's LIS (mean over layers) per step, one line per complete
    sweep point (or those in points), coloured by point; the legend names each
    point's axes, and points with the same routing share a line. runs: the
    points' Runs if already loaded ({point: Run})."""
    idx = sweep.index[sweep.index["status"] == "complete"]
    if points is not None:
        idx = idx[idx["point"].isin(points)]
    cmap = matplotlib.colormaps["viridis"]
    fig, axs = _new_figure(1, 1, 7.0, 3.6, 0.3 + 0.18 * len(idx) / 2)
    ax = axs[0, 0]
    curves, labels = {}, {}
    for _, r in idx.iterrows():
        run = runs[int(r["point"])] if runs and int(r["point"]) in runs else sweep.run(int(r["point"]))
        s = run.steps[run.steps["policy"] == 0]
        curves[int(r["point"])] = s.groupby("step")["lis"].mean()
        labels[int(r["point"])] = f"point {int(r['point'])} ({axis_text(r, sweep.axes)})"
    groups = same_groups({p: c.to_numpy() for p, c in curves.items()})
    for k, g in enumerate(groups):
        m = curves[g[0]]
        ax.plot(m.index, m.values, marker=MARKERS[k % len(MARKERS)], ms=4, color=cmap(k / max(len(groups) - 1, 1)),
                label=wrap(", ".join(labels[p] for p in g) + (" (same routing)" if len(g) > 1 else ""), 110))
    ax.axhline(1, color="k", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(_int_ticks())
    ax.set_xlabel("step")
    ax.set_ylabel("LIS = E·max n_e / (T·k)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend(fig, ax.get_legend_handles_labels(), ncol=2)
    return fig


# --- one run (or one sweep point) ------------------------------------------------

def _where(run, where):
    """What a figure of this run shows: the caller's words, else the file, else
    the experiment's name (a run made by mplb.run without a file)."""
    if where:
        return where
    if run.path:
        return os.path.basename(run.path)
    m = re.search(r'\["name"\]="([^"]+)"', run.config or "")
    return f"run of {m.group(1)}" if m else "run"


def worst_step_layer(run: Run):
    """(step, layer) of the first policy's (the baseline's) most imbalanced row."""
    s = run.steps
    if not (s["policy"] == 0).any():
        raise ValueError(f"{_where(run, '')}: no rows of the first policy (status {run.status})")
    i = s.loc[s["policy"] == 0, "imbalance"].idxmax()
    return int(s.loc[i, "step"]), int(s.loc[i, "layer"])


def _policies(run, policies):
    return list(range(len(run.policies))) if policies is None else [int(p) for p in np.atleast_1d(policies)]


def _timeline_panel(ax, run, p, step, layer, where):
    s = run.steps
    idx = np.flatnonzero(((s["policy"] == p) & (s["step"] == step) & (s["layer"] == layer)).to_numpy())
    if idx.size == 0:
        raise ValueError(f"{_where(run, where)}: no row for policy {p}, step {step}, layer {layer}")
    row, comp = s.iloc[idx[0]], run.rank_compute_us[idx[0]]
    R = comp.size
    disp, comb = row["t_dispatch_us"], row["t_combine_us"]
    y = np.arange(R)
    ax.barh(y, np.full(R, disp), color="#8da0cb", label="dispatch")
    ax.barh(y, comp, left=disp, color="#fc8d62", label="compute (+exposed conversion)")
    ax.barh(y, comp.max() - comp, left=disp + comp, color="#e5e5e5", label="idle")
    ax.barh(y, np.full(R, comb), left=disp + comp.max(), color="#66c2a5", label="combine")
    ax.set_yticks(y if R <= 16 else y[::max(R // 8, 1)])
    ax.set_ylim(R - 0.5, -0.5)
    ax.set_ylabel("rank", fontsize=8)
    ax.set_title(f"{run.policies[p]}: layer time {row['t_layer_us']:.4g} µs", fontsize=8, loc="left")


def timelines(run: Run, step=None, layer=None, policies=None, where=""):
    """One layer on every rank, one panel per policy (all by default) on a
    shared time axis: dispatch, compute (+ exposed conversion), idle (waiting
    for the slowest rank), combine. Default: the baseline's most imbalanced
    (step, layer)."""
    if step is None or layer is None:
        step, layer = worst_step_layer(run)
    pols = _policies(run, policies)
    R = run.rank_compute_us.shape[1]
    fig, axs = _new_figure(len(pols), 1, 7.5, 0.55 + 0.17 * R, 0.9, sharex=True)
    for k, p in enumerate(pols):
        _timeline_panel(axs[k, 0], run, p, step, layer, where)
    axs[-1, 0].set_xlabel("µs")
    fig.suptitle(f"{_where(run, where)}: step {step}, layer {layer} on every rank\n({source_label(run)})",
                 fontsize=9)
    _legend(fig, axs[0, 0].get_legend_handles_labels())
    return fig


def timeline(run: Run, policy=0, step=0, layer=0, ax=None, where=""):
    """One policy's timeline (see timelines); with ax, drawn into it."""
    if ax is None:
        return timelines(run, step, layer, [policy], where)
    _timeline_panel(ax, run, policy, step, layer, where)
    return ax.figure


def rank_heatmap(run: Run, layer=None, policies=None, where=""):
    """Token copies per rank (columns) over steps (rows) for one layer, one
    panel per policy (all by default) on one colour scale. Default layer:
    the baseline's most imbalanced."""
    if layer is None:
        layer = worst_step_layer(run)[1]
    pols = _policies(run, policies)
    s = run.steps
    sels = [((s["policy"] == p) & (s["layer"] == layer)).to_numpy() for p in pols]
    vmax = max(float(run.rank_load[m].max()) if m.any() else 0.0 for m in sels) or 1.0
    nrows, ncols = _grid(len(pols))
    fig, axs = _new_figure(nrows, ncols, 3.6, 2.9, 0.5, sharex=True, sharey=True)
    im = None
    for k, (p, m) in enumerate(zip(pols, sels)):
        ax = axs.flat[k]
        steps = s.loc[m, "step"].to_numpy()
        # rows are the layer's steps in order: the y axis counts steps
        im = ax.imshow(run.rank_load[m], aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest",
                       extent=(-0.5, run.rank_load.shape[1] - 0.5, steps.max() + 0.5, steps.min() - 0.5))
        ax.set_title(wrap(run.policies[p]), fontsize=8)
        ax.xaxis.set_major_locator(_int_ticks())
        ax.yaxis.set_major_locator(_int_ticks())
    _label_grid(axs, len(pols), "rank", "step")
    fig.colorbar(im, ax=axs, label="token copies", shrink=0.8)
    fig.suptitle(f"{_where(run, where)}: rank load, layer {layer}, every step", fontsize=9)
    return fig


def precision_map(run: Run, policies=None, where=""):
    """Share of each rank's experts below bf16 (over steps), per layer, one
    panel per policy (all by default) on one colour scale. Experts are counted
    on their home rank of the default contiguous placement (expert e on rank
    floor(e*R/E)); replicas elsewhere are not drawn."""
    pols = _policies(run, policies)
    s = run.steps
    R, E = run.rank_load.shape[1], run.expert_precision.shape[1]
    home = (np.arange(E) * R) // E
    layers = int(s["layer"].max()) + 1 if len(s) else 0
    nrows, ncols = _grid(len(pols))
    fig, axs = _new_figure(nrows, ncols, 3.6, min(max(2.2, 0.9 + 0.08 * layers), 4.5), 0.5, sharex=True,
                           sharey=True)
    im = None
    for k, p in enumerate(pols):
        grid = np.zeros((layers, R))
        for lay in range(layers):
            sel = ((s["policy"] == p) & (s["layer"] == lay)).to_numpy()
            low = (run.expert_precision[sel] != 0).mean(axis=0) if sel.any() else np.zeros(E)
            grid[lay] = [low[home == r].mean() if (home == r).any() else 0 for r in range(R)]
        ax = axs.flat[k]
        im = ax.imshow(grid, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(wrap(f"{run.policies[p]} (mean {grid.mean():.2f})"), fontsize=8)
        ax.xaxis.set_major_locator(_int_ticks())
        ax.yaxis.set_major_locator(_int_ticks())
    _label_grid(axs, len(pols), "rank (home of experts)", "layer")
    fig.colorbar(im, ax=axs, label="share of experts below bf16", shrink=0.8)
    fig.suptitle(f"{_where(run, where)}: precision map, every step", fontsize=9)
    return fig


def lis_over_time(run: Run, where=""):
    """Top: the routing's LIS per step (mean over layers); every policy sees
    the same routing, so one line unless the file says otherwise. Bottom:
    rank imbalance (max/mean rank load after the policy acted) per policy.
    The panels share the step axis."""
    s = run.steps
    colors = policy_colors(run.policies)
    fig, axs = _new_figure(2, 1, 6.5, 2.4, 0.6, sharex=True)
    lis = s.groupby(["policy", "step"])["lis"].mean().unstack(0)
    same = bool(np.allclose(lis.to_numpy(), lis.to_numpy()[:, :1], equal_nan=True))
    for p in ([0] if same else range(len(run.policies))):
        label = "routing (same for every policy)" if same else run.policies[p]
        axs[0, 0].plot(lis.index, lis[p], marker="o", ms=3, color="k" if same else colors[run.policies[p]],
                       label=label)
    axs[0, 0].axhline(1, color="k", lw=0.8, ls=":")
    axs[0, 0].set_ylabel("LIS = E·max n_e / (T·k)", fontsize=8)
    axs[0, 0].legend(fontsize=7)
    imb = s.groupby(["policy", "step"])["imbalance"].mean().unstack(0)
    # policies that leave the rank loads alone share one line, named for all of them
    for j, g in enumerate(same_groups({p: imb[p].to_numpy() for p in imb.columns})):
        axs[1, 0].plot(imb.index, imb[g[0]], marker=MARKERS[j % len(MARKERS)], ms=4,
                       color=colors[run.policies[g[0]]], label=wrap(", ".join(run.policies[p] for p in g), 110))
    axs[1, 0].axhline(1, color="k", lw=0.8, ls=":")
    axs[1, 0].set_ylabel("rank imbalance (max/mean)", fontsize=8)
    axs[1, 0].set_xlabel("step")
    axs[1, 0].xaxis.set_major_locator(_int_ticks())
    for ax in axs[:, 0]:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{_where(run, where)}: load imbalance over steps (mean over layers)", fontsize=9)
    _legend(fig, axs[1, 0].get_legend_handles_labels(), ncol=1)
    return fig
