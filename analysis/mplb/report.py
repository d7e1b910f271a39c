"""mplb report RUN_OR_SWEEP -o DIR: figures as PNG and one HTML page.

A run gets one section. A sweep gets a header (its axes, and every profile,
model and times source its points used), figures over all points (Pareto
fronts per condition, metrics by axis value, LIS of every point), then one
section per point with its own times source, table and figures; failed
points are listed with their error."""
from __future__ import annotations

import argparse
import html
import os
import sys

import pandas as pd

# Figures are plain Figure objects saved to files: no pyplot backend or display
# is needed, and a notebook calling report() keeps its own backend.
from . import plots
from .runfile import RunFileError, Sweep, load

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 8px}"
       " .tbl{overflow-x:auto}"
       " table{border-collapse:collapse;table-layout:fixed;width:100%}"
       " td,th{border:1px solid #ccc;padding:2px 4px;font-size:12px;overflow-wrap:anywhere;text-align:right}"
       " td:first-child,th:first-child{text-align:left} img{max-width:100%}"
       " .src{background:#f4f4f4;padding:4px 8px}")
# columns of the tables, in order; a sweep's table adds point and its axes first
TABLE_COLUMNS = ["policy", "speedup", "t_layer_us", "t_layer_min_us", "t_layer_max_us", "repeats", "t_baseline_us", "imbalance", "lis", "error_proxy",
                 "kl", "top1_agree", "ppl_delta", "exposed_conv_us", "bytes_inter", "decide_us"]
DOMAIN_COLUMNS = ["policy", "domain", "steps", "kl", "top1_agree", "ppl_delta"]


class _Files:
    """The output folder and the names written to it, in page order."""

    def __init__(self, out, dpi):
        self.out, self.dpi, self.names = out, dpi, []

    def save(self, fig, name):
        fig.savefig(os.path.join(self.out, name), dpi=self.dpi, bbox_inches="tight")
        self.names.append(name)


def _table(df, cols):
    df = df[[c for c in cols if c in df.columns]]
    text = df.to_html(float_format=lambda v: f"{v:.4g}", index=False, escape=True)
    # long names break at their underscores before anywhere else
    for c in df.columns:
        broken = html.escape(c).replace("_", "_<wbr>").replace(".", ".<wbr>")
        text = text.replace(f"<th>{html.escape(c)}</th>", f"<th>{broken}</th>")
    # the policy label gets a quarter of the width, the numbers share the rest
    cols = list(df.columns)
    wide = 24 if "policy" in cols else 0
    rest = (100 - wide) / max(len(cols) - (1 if wide else 0), 1)
    group = "<colgroup>" + "".join(f"<col style='width:{wide if c == 'policy' else rest:.2f}%'>" for c in cols) + \
        "</colgroup>"
    text = text.replace(">\n  <thead>", ">" + group + "\n  <thead>", 1)
    return f"<div class='tbl'>{text}</div>"


def _domains(run):
    """Measured accuracy split by text domain (workload kind "lm"), if the run has it."""
    d = run.domain_summary()
    if d.empty:
        return []
    return ["<h3>Measured accuracy by text domain</h3>",
            "<p>kl: mean KL(p_bf16 || p_plan) of the model's next-token distributions, nats per token; "
            "top1_agree and ppl_delta against the bf16 model on the same tokens; means over the steps "
            "(/accuracy/by_domain). Measured on the model's output, not the proxy.</p>",
            _table(d, DOMAIN_COLUMNS)]


def _img(name, alt):
    return f"<figure><img src='{html.escape(name)}' alt='{html.escape(alt)}'></figure>"


def _run_figures(run, where, prefix, files):
    """The figures of one run (or sweep point); returns HTML."""
    step, layer = plots.worst_step_layer(run)
    figs = [("timelines", plots.timelines(run, step, layer, where=where),
             f"every policy at step {step}, layer {layer} (the baseline's most imbalanced)"),
            ("rank_heatmap", plots.rank_heatmap(run, layer, where=where), f"rank load of layer {layer}, every policy"),
            ("precision_map", plots.precision_map(run, where=where), "precision map, every policy"),
            ("lis", plots.lis_over_time(run, where=where), "LIS and rank imbalance over steps, every policy")]
    page = []
    for name, fig, alt in figs:
        fname = f"{prefix}{name}.png"
        files.save(fig, fname)
        page.append(_img(fname, f"{where}: {alt}"))
    return page


def _sources(runs):
    """The distinct times sources of runs, in one line."""
    return "; ".join(dict.fromkeys(plots.source_label(r) for r in runs.values()))


def _source_html(run):
    return f"<p class='src'>Times: {html.escape(plots.source_note(run))}</p>"


def _sweep_header(obj, runs):
    """Axes and, grouped, every profile, model and times source of the points."""
    idx = obj.index
    lines = []
    if obj.axes:
        lines.append("Axes: " + "; ".join(
            f"<code>{html.escape(a)}</code> = {html.escape(', '.join(str(v) for v in dict.fromkeys(idx[a])))}"
            for a in obj.axes))
    for what, fn in (("Profiles", lambda r: plots.config_value(r, "profile")),
                     ("Models", lambda r: plots.config_value(r, "model")),
                     ("Times", plots.source_note)):
        groups = {}
        for point, run in runs.items():
            groups.setdefault(fn(run), []).append(point)
        lines.append(f"{what}: " + "; ".join(
            f"{html.escape(k)} (point{'s' if len(v) > 1 else ''} {', '.join(map(str, v))})"
            for k, v in groups.items()))
    return "".join(f"<p>{x}</p>" for x in lines)


def _summary(obj: Sweep, runs):
    """Sweep.summary() over runs already loaded: one row per (point, policy)."""
    rows = []
    for p, run in runs.items():
        s = run.summary().reset_index()
        r = obj.index[obj.index["point"] == p].iloc[0]
        for a in obj.axes:
            s[a] = r[a]
        s.insert(0, "point", p)
        rows.append(s)
    return pd.concat(rows, ignore_index=True)


def report_sweep(obj: Sweep, path, files, points=None):
    idx = obj.index
    done = idx[idx["status"] == "complete"]
    if done.empty:
        raise RunFileError(f"{path}: no complete points to report")
    if points is not None:
        missing = sorted(set(points) - set(done["point"]))
        if missing:
            raise RunFileError(f"{path}: point(s) {missing} not complete or not in the sweep "
                               f"(complete: {list(done['point'])})")
    every = {int(p): obj.run(int(p)) for p in done["point"]}
    runs = {p: r for p, r in every.items() if points is None or p in points}
    summary = _summary(obj, every)
    name = os.path.basename(os.path.normpath(path))
    failed = idx[idx["status"] != "complete"]
    page = [f"<h1>sweep {html.escape(name)}: {len(idx)} point{'s' if len(idx) != 1 else ''} "
            f"({len(idx) - len(failed)} complete, "
            f"{len(failed)} not)</h1>", _sweep_header(obj, every),
            "<p>error_proxy is a proxy for accuracy loss (gate-mass-weighted relative weight error), "
            f"not a measured accuracy. Source: <code>{html.escape(str(path))}</code></p>",
            "<h2>All points</h2>",
            _table(summary, ["point", *obj.axes, *TABLE_COLUMNS])]
    files.save(plots.pareto(summary, title=f"sweep {name}: speedup vs error proxy", source=_sources(every)),
               "pareto.png")
    page.append(_img("pareto.png", "Pareto fronts, one per condition"))
    if plots.condition_axes(summary):
        files.save(plots.sweep_metrics(summary, title=f"sweep {name}: speedup and error proxy by axis",
                                       source=_sources(every)), "by_axis.png")
        page.append(_img("by_axis.png", "speedup and error proxy by axis value"))
    files.save(plots.sweep_lis(obj, runs=every), "lis_all_points.png")
    page.append(_img("lis_all_points.png", "LIS of every point"))
    if len(failed):
        page.append("<h2>Points not complete</h2><ul>" + "".join(
            f"<li>point {int(r['point'])} ({html.escape(plots.axis_text(r, obj.axes))}): {html.escape(r['status'])}"
            f"{': ' + html.escape(str(r['error'])) if r['error'] else ''}</li>" for _, r in failed.iterrows())
            + "</ul>")
    page.append("<p>Points: " + ", ".join(f"<a href='#p{p}'>{p}</a>" for p in runs) + "</p>")
    for p, run in runs.items():
        row = idx[idx["point"] == p].iloc[0]
        where = f"point {p} ({plots.axis_text(row, obj.axes)})" if obj.axes else f"point {p}"
        page += [f"<h2 id='p{p}'>{html.escape(where)}</h2>", _source_html(run),
                 _table(run.summary().reset_index(), TABLE_COLUMNS)]
        page += _domains(run)
        page += _run_figures(run, where, f"p{p:04d}_", files)
    return f"mplb report: sweep {name}", page


def report_run(run, path, files):
    name = os.path.basename(path)
    if run.steps.empty:
        raise RunFileError(f"{path}: no rows to report (status {run.status}"
                           + (f": {run.attrs['error']}" if run.attrs.get("error") else "") + ")")
    page = [f"<h1>run {html.escape(name)} ({html.escape(str(run.status))})</h1>", _source_html(run),
            "<p>error_proxy is a proxy for accuracy loss, not a measured accuracy. "
            f"Source: <code>{html.escape(str(path))}</code></p>",
            _table(run.summary().reset_index(), TABLE_COLUMNS)]
    page += _domains(run)
    files.save(plots.pareto(run.summary(), title=f"{name}: speedup vs error proxy", source=plots.source_label(run)),
               "pareto.png")
    page.append(_img("pareto.png", "Pareto front"))
    page += _sensitivity(path)
    page += _run_figures(run, name, "", files)
    return f"mplb report: run {name}", page


def _sensitivity(path):
    """The /sensitivity group `mplb run --sensitivity` adds: each speedup with
    its band over the profile's assumptions at the ends of their ranges."""
    import h5py
    with h5py.File(path, "r") as f:
        if "sensitivity" not in f:
            return []
        g = f["sensitivity"]
        pol = [p.decode() if isinstance(p, bytes) else p for p in g["policy"][:]]
        band, cross = g["band"][:], g["crosses_one"][:]
        flip = g.attrs.get("rank_flip", b"")
        flip = flip.decode() if isinstance(flip, bytes) else str(flip)
        n = len(g["param"])
    rows = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{b[0]:.3f}x</td><td>{b[1]:.3f}x &ndash; {b[2]:.3f}x</td>"
        f"<td>{'crosses 1.0' if c else ''}</td></tr>" for p, b, c in zip(pol, band, cross))
    note = (f"<p><b>The ranking of the policies flips inside the bands</b> (first at <code>{html.escape(flip)}</code>).</p>"
            if flip else "<p>The ranking of the policies is the same at every end of every range.</p>")
    return ["<h2>Sensitivity to the profile's assumptions</h2>",
            f"<p>Each of the profile's {n} assumption parameters at both ends of its range (docs/cost-model.md).</p>",
            "<table><tr><th>policy</th><th>speedup</th><th>band</th><th>flag</th></tr>" + rows + "</table>", note]


def report(path, out, points=None, dpi=110):
    """Write the figures and index.html of a run file or sweep directory into
    out; returns the files written. points: sweep points to give a section
    (default all complete ones)."""
    os.makedirs(out, exist_ok=True)
    obj = load(path)
    files = _Files(out, dpi)
    if isinstance(obj, Sweep):
        title, page = report_sweep(obj, path, files, points)
    else:
        title, page = report_run(obj, path, files)
    head = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"]
    with open(os.path.join(out, "index.html"), "w") as fh:
        fh.write("\n".join(head + page) + "\n")
    return [os.path.join(out, n) for n in files.names] + [os.path.join(out, "index.html")]


def _points(text):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--points takes point numbers separated by commas, got {text!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mplb report", description="figures and an HTML page for a run file or sweep")
    ap.add_argument("path", help="run file (.h5) or sweep directory")
    ap.add_argument("-o", "--output", required=True, help="output directory")
    ap.add_argument("--points", type=_points, help="sweep: the points to give a section, e.g. 0,3 (default: all)")
    a = ap.parse_args(argv)
    try:
        files = report(a.path, a.output, a.points)
    except (RunFileError, ValueError) as e:
        print(f"mplb: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files to {a.output} (open {os.path.join(a.output, 'index.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
