"""mplb report RUN_OR_SWEEP -o DIR: figures as PNG and one HTML page."""
from __future__ import annotations

import argparse
import html
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from . import plots  # noqa: E402
from .runfile import RunFileError, Sweep, load


def _save(fig, out, name, written):
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(name)


def report(path, out):
    os.makedirs(out, exist_ok=True)
    obj = load(path)
    figs = []
    if isinstance(obj, Sweep):
        summary = obj.summary()
        if summary.empty:
            raise RunFileError(f"{path}: no complete points to report")
        title = f"sweep {os.path.basename(os.path.normpath(path))}: {len(obj.index)} points"
        _save(plots.pareto(summary.set_index("policy"), title="speedup vs error proxy, all points"), out,
              "pareto.png", figs)
        first = obj.run(int(obj.index[obj.index["status"] == "complete"]["point"].iloc[0]))
        table = summary
        source = plots.source_label(first)
        run = first
    else:
        run = obj
        summary = run.summary()
        table = summary.reset_index()
        title = f"run {os.path.basename(path)} ({run.status})"
        source = plots.source_label(run)
        _save(plots.pareto(summary), out, "pareto.png", figs)
    worst = int(run.steps.loc[run.steps["policy"] == 0, "imbalance"].idxmax())
    step, layer = int(run.steps.loc[worst, "step"]), int(run.steps.loc[worst, "layer"])
    _save(plots.rank_heatmap(run, 0, layer), out, "rank_heatmap.png", figs)
    for p in range(min(len(run.policies), 4)):
        _save(plots.timeline(run, p, step, layer), out, f"timeline_{p}.png", figs)
    lowp = max(range(len(run.policies)), key=lambda p: (run.expert_precision[(run.steps["policy"] == p).to_numpy()] != 0).mean())
    _save(plots.precision_map(run, lowp), out, "precision_map.png", figs)
    _save(plots.lis_over_time(run), out, "lis.png", figs)
    page = ["<!doctype html><meta charset='utf-8'><title>mplb report</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto} table{border-collapse:collapse}"
            " td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px} img{max-width:100%}</style>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>Times: {html.escape(source)} (not measurements). error_proxy is a proxy for accuracy loss, "
            "not a measured accuracy. Source: <code>" + html.escape(str(path)) + "</code></p>",
            table.to_html(float_format=lambda v: f"{v:.4g}", index=False)]
    for name in figs:
        page.append(f"<h3>{html.escape(name)}</h3><img src='{name}'>")
    with open(os.path.join(out, "index.html"), "w") as fh:
        fh.write("\n".join(page))
    return [os.path.join(out, n) for n in figs] + [os.path.join(out, "index.html")]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mplb report", description="figures and an HTML page for a run file or sweep")
    ap.add_argument("path", help="run file (.h5) or sweep directory")
    ap.add_argument("-o", "--output", required=True, help="output directory")
    a = ap.parse_args(argv)
    try:
        files = report(a.path, a.output)
    except (RunFileError, ValueError) as e:
        print(f"mplb: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files to {a.output} (open {os.path.join(a.output, 'index.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
