"""Reading mplb run files and sweep directories (schemas in docs/run-file.md)."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd

SCHEMA_MAJOR = 1
# Same order as MPLB_PREC_MAP in include/mplb/prec.h (the HDF5 enum values).
PRECISIONS = ["bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "mxfp8", "mxfp4",
              "nvfp4", "int8", "int4_g32", "int4_g128"]


class RunFileError(ValueError):
    """A file or directory that is not a readable mplb run file or sweep."""


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _open(path):
    try:
        # swmr=True reads files that are still being written, or were killed
        return h5py.File(path, "r", swmr=True)
    except OSError as e:
        raise RunFileError(f"{path}: cannot open as HDF5 ({e})") from None


def _check(f, path):
    if "schema_version" not in f.attrs:
        raise RunFileError(f"{path}: not an mplb run file (no schema_version attribute)")
    ver = _text(f.attrs["schema_version"])
    if int(ver.split(".")[0]) != SCHEMA_MAJOR:
        raise RunFileError(f"{path}: schema version {ver} not readable (this mplb reads {SCHEMA_MAJOR}.x)")
    for name in ("steps", "policy/names", "ranks/load", "ranks/compute_us", "experts/load", "experts/precision"):
        if name not in f:
            raise RunFileError(f"{path}: missing dataset /{name}")


@dataclass
class Run:
    """One run file: /steps as a DataFrame plus the per-rank and per-expert arrays."""
    path: str
    steps: pd.DataFrame
    rank_load: np.ndarray         # [rows, R]
    rank_compute_us: np.ndarray   # [rows, R]
    expert_load: np.ndarray       # [rows, E]
    expert_precision: np.ndarray  # [rows, E] codes into PRECISIONS
    policies: list
    config: str
    attrs: dict = field(default_factory=dict)

    @property
    def status(self):
        return self.attrs.get("status")

    def __repr__(self):
        """One line: file, status, size, source of the times (not the arrays)."""
        s = self.steps
        steps = s["step"].nunique() if len(s) else 0
        layers = s["layer"].nunique() if len(s) else 0
        src = self.attrs.get("times_source") or "times source not recorded"
        return (f"<mplb.Run {os.path.basename(self.path) or '(in memory)'}: {self.status or 'unknown status'}, "
                f"{len(self.policies)} policies x {steps} steps x {layers} layers ({len(s)} rows), "
                f"{self.rank_load.shape[1]} ranks, {self.expert_load.shape[1]} experts; {src}>")

    def summary(self) -> pd.DataFrame:
        """One row per policy: mean times, speedup over baseline (sum of baseline
        time over sum of layer time), imbalance, error proxy, decide time."""
        return summarize_steps(self.steps)


def summarize_steps(steps: pd.DataFrame) -> pd.DataFrame:
    g = steps.groupby("policy_name", sort=False)
    out = pd.DataFrame({
        "rows": g.size(),
        "t_layer_us": g["t_layer_us"].mean(),
        "t_baseline_us": g["t_baseline_us"].mean(),
        "speedup": g["t_baseline_us"].sum() / g["t_layer_us"].sum(),
        "imbalance": g["imbalance"].mean(),
        "lis": g["lis"].mean(),
        "error_proxy": g["error_proxy"].mean(),
        "bytes_inter": g["bytes_inter"].mean(),
        "exposed_conv_us": g["exposed_conv_us"].mean(),
        "decide_us": g["decide_us"].mean(),
    })
    out.index.name = "policy"
    return out


def load_steps(path) -> pd.DataFrame:
    """The /steps table with a `policy_name` column (also of a running file)."""
    return load_run(path).steps


def load_run(path) -> Run:
    with _open(path) as f:
        _check(f, path)
        n = f["steps"].shape[0]
        # a killed file may hold fewer per-row array rows than /steps: common prefix
        for name in ("ranks/load", "ranks/compute_us", "experts/load", "experts/precision"):
            n = min(n, f[name].shape[0])
        steps = pd.DataFrame(f["steps"][:n])
        names = [_text(x) for x in f["policy/names"][()]]
        steps["policy_name"] = [names[i] for i in steps["policy"]]
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                 for k, v in f.attrs.items()}
        run = Run(path=str(path), steps=steps,
                  rank_load=f["ranks/load"][:n], rank_compute_us=f["ranks/compute_us"][:n],
                  expert_load=f["experts/load"][:n],
                  expert_precision=f["experts/precision"][:n].astype(np.uint8),
                  policies=names, config=_text(f["config"][()]), attrs=attrs)
    steps.attrs["status"] = attrs.get("status")
    steps.attrs["ranks"] = int(attrs.get("ranks", 0))
    steps.attrs["experts"] = int(attrs.get("experts", 0))
    return run


@dataclass
class Sweep:
    """A sweep directory: index.csv plus one run file per point."""
    path: str
    index: pd.DataFrame
    axes: list

    def __repr__(self):
        done = int((self.index["status"] == "complete").sum())
        axes = "; ".join(f"{a} = {', '.join(str(v) for v in pd.unique(self.index[a]))}" for a in self.axes)
        return (f"<mplb.Sweep {os.path.basename(os.path.normpath(self.path))}: {len(self.index)} points "
                f"({done} complete){'; ' + axes if axes else ''}>")

    def run(self, point: int) -> Run:
        row = self.index.loc[self.index["point"] == point].iloc[0]
        return load_run(os.path.join(self.path, row["file"]))

    def summary(self) -> pd.DataFrame:
        """One row per (point, policy): the point's axis values and the policy's summary."""
        rows = []
        for _, r in self.index.iterrows():
            if r["status"] != "complete":
                continue
            s = self.run(int(r["point"])).summary().reset_index()
            for a in self.axes:
                s[a] = r[a]
            s.insert(0, "point", int(r["point"]))
            rows.append(s)
        if not rows:
            return pd.DataFrame()
        return pd.concat(rows, ignore_index=True)


def load_sweep(path) -> Sweep:
    index_path = os.path.join(path, "index.csv")
    if not os.path.exists(index_path):
        raise RunFileError(f"{path}: not an mplb sweep directory (no index.csv)")
    with open(index_path, newline="") as fh:
        header = next(csv.reader(fh))
    if header[:1] != ["point"] or header[-3:] != ["file", "status", "error"]:
        raise RunFileError(f"{index_path}: unexpected header {header}")
    index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
    index["point"] = index["point"].astype(int)
    axes = header[1:-3]
    for a in axes:  # numeric axes become numbers
        conv = pd.to_numeric(index[a], errors="coerce")
        if conv.notna().all():
            index[a] = conv
    return Sweep(path=str(path), index=index, axes=axes)


def load(path):
    """A run file -> Run; a sweep directory -> Sweep."""
    if os.path.isdir(path):
        return load_sweep(path)
    if not os.path.exists(path):
        raise RunFileError(f"{path}: no such file or directory")
    return load_run(path)
