"""Shared by the HarMoEny, placement and EPLB cards (experiments/repro/*/run.sh):
read one mplb run file and summarise each policy in the metrics those papers
use. Everything comes from the run file: the cost model's per-row layer time,
per-rank token loads (ranks/load), all-to-all bytes (bytes_intra/bytes_inter)
and the sensitivity bands `mplb run --sensitivity` wrote (/sensitivity)."""
import csv
import os

import h5py
import numpy as np


def load(path):
    """steps (structured array), rank loads [rows, R], policy labels, bands {label: (nom, lo, hi)}."""
    with h5py.File(path, "r") as f:
        steps = f["steps"][()]
        loads = f["ranks/load"][()]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["policy/names"][()]]
        bands = {}
        if "sensitivity" in f:
            pol = [n.decode() if isinstance(n, bytes) else str(n) for n in f["sensitivity/policy"][()]]
            for p, b in zip(pol, f["sensitivity/band"][()]):
                bands[p] = tuple(float(x) for x in b)
    return steps, loads, names, bands


def summarise(path, from_step=0):
    """Per policy, over rows with step >= from_step (0-based): summed layer time
    and the baseline's, speedup, balancedness (mean over rows of mean/max rank
    load: EPLB's measure), max/mean imbalance, all-to-all bytes per layer."""
    steps, loads, names, bands = load(path)
    out = []
    for i, name in enumerate(names):
        m = (steps["policy"] == i) & (steps["step"] >= from_step)
        if not m.any():
            continue
        ld = loads[m]
        mx = ld.max(axis=1)
        bal = np.where(mx > 0, ld.mean(axis=1) / np.where(mx > 0, mx, 1), 1.0)
        t = float(steps["t_layer_us"][m].sum())
        tb = float(steps["t_baseline_us"][m].sum())
        out.append({
            "policy": name,
            "rows": int(m.sum()),
            "layer_us": t / m.sum(),
            "baseline_us": tb / m.sum(),
            "speedup": tb / t if t > 0 else float("nan"),
            "balancedness": float(bal.mean()),
            "imbalance": float(steps["imbalance"][m].mean()),
            "inter_MB": float(steps["bytes_inter"][m].mean()) / 1e6,
            "intra_MB": float(steps["bytes_intra"][m].mean()) / 1e6,
            "band": bands.get(name),
        })
    return out


def fmt_band(b):
    return "-" if not b else f"{b[1]:.3f}-{b[2]:.3f}x"


def write_table(rows, cols, path_md, path_csv, title=""):
    """A markdown table (cols: (header, key, format)) and the same as CSV."""
    os.makedirs(os.path.dirname(path_md), exist_ok=True)
    with open(path_md, "a") as f:
        if title:
            f.write(f"\n### {title}\n\n")
        f.write("| " + " | ".join(h for h, _, _ in cols) + " |\n")
        f.write("|" + "---|" * len(cols) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fm(r[k]) if callable(fm) else fm.format(r[k]) for _, k, fm in cols) + " |\n")
    new = not os.path.exists(path_csv)
    with open(path_csv, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["table"] + [k for _, k, _ in cols])
        for r in rows:
            w.writerow([title] + [r[k] if not isinstance(r[k], tuple) else "|".join(f"{x:.4f}" for x in r[k])
                                  for _, k, _ in cols])
