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
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _clean(s) -> str:
    """Text safe to print on a terminal: control characters escaped."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in str(s))


# libhdf5 retries a checksum failure under SWMR read up to 100 times with
# growing sleeps, so a damaged or killed file could take minutes to fail; the
# C reader uses the same bound (core/internal/h5check.h).
_READ_ATTEMPTS = 3


def _swmr_fapl():
    """A file-access list with bounded SWMR metadata read attempts, set through
    the libhdf5 h5py itself loaded (h5py has no binding for it); None if that
    library cannot be found."""
    import ctypes
    import glob
    here = os.path.dirname(h5py.__file__)
    libs = glob.glob(os.path.join(here, os.pardir, "h5py.libs", "libhdf5-*.so*")) + \
        glob.glob(os.path.join(here, ".dylibs", "libhdf5*.dylib"))
    try:
        lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL(None)
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        if lib.H5Pset_metadata_read_attempts(ctypes.c_int64(fapl.id), ctypes.c_uint(_READ_ATTEMPTS)) < 0:
            return None
        return fapl
    except (OSError, AttributeError, IndexError):
        return None


def _open(path):
    """Open read-only, normally; SWMR (with bounded retries) only for a file a
    writer still holds open, or was killed holding."""
    try:
        return h5py.File(path, "r")
    except OSError as e:
        if "already open for write" not in str(e):
            raise RunFileError(_clean(f"{path}: cannot open as HDF5 ({e})")) from None
    fapl = _swmr_fapl()
    try:
        if fapl is None:
            return h5py.File(path, "r", swmr=True)
        fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
        return h5py.File(fid)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise RunFileError(_clean(f"{path}: cannot open as HDF5 (truncated or damaged: {e})")) from None


def _scalar_text(f, path, name, attr=True):
    v = f.attrs[name] if attr else f[name][()]
    if isinstance(v, np.ndarray) and v.shape in ((), (1,)):
        v = v.reshape(()).item() if v.dtype.kind in "OSU" else v
    if not isinstance(v, (bytes, str)):
        kind = "attribute" if attr else "dataset /"
        raise RunFileError(_clean(f"{path}: {kind}{name} must be one string, it is {type(v).__name__}"
                                  f"{' of shape ' + str(v.shape) if hasattr(v, 'shape') else ''}"))
    return _text(v)


def _table(f, path, name, ndim, width=None, kinds="iuf"):
    if not isinstance(f.get(name, getlink=True), h5py.HardLink) or not isinstance(f[name], h5py.Dataset):
        raise RunFileError(_clean(f"{path}: /{name} is not a dataset"))
    d = f[name]
    if d.ndim != ndim or (width is not None and d.shape[1] != width) or d.dtype.kind not in kinds:
        want = "[rows]" if ndim == 1 else f"[rows x {width}]"
        raise RunFileError(_clean(f"{path}: /{name} is {d.dtype} {list(d.shape)}, expected {want}"))
    return d


def _check(f, path):
    if "schema_version" not in f.attrs:
        raise RunFileError(_clean(f"{path}: not an mplb run file (no schema_version attribute)"))
    ver = _scalar_text(f, path, "schema_version")
    major = ver.split(".")[0]
    if not major.isdigit() or int(major) != SCHEMA_MAJOR:
        raise RunFileError(_clean(f"{path}: schema version {ver} not readable (this mplb reads {SCHEMA_MAJOR}.x)"))
    for name in ("steps", "policy/names", "ranks/load", "ranks/compute_us", "experts/load", "experts/precision",
                 "config"):
        if name not in f:
            raise RunFileError(_clean(f"{path}: missing dataset /{name}"))


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
    # measured accuracy per text domain (workload kind "lm", /accuracy/by_domain): one row per
    # (policy, step, domain); empty for runs without a model
    domains: pd.DataFrame = field(default_factory=pd.DataFrame)

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

    def domain_summary(self) -> pd.DataFrame:
        """One row per (policy, domain): measured kl, top1_agree and ppl_delta,
        each the mean over the steps (as `mplb run` prints them); empty without
        /accuracy."""
        d = self.domains
        if d.empty:
            return pd.DataFrame(columns=["policy", "domain", "steps", "kl", "top1_agree", "ppl_delta"])
        g = d.groupby(["policy_name", "domain"], sort=False)
        out = pd.DataFrame({"steps": g.size(), "kl": g["kl"].mean(), "top1_agree": g["top1_agree"].mean(),
                            "ppl_delta": g["ppl_delta"].mean()}).reset_index()
        return out.rename(columns={"policy_name": "policy"})


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
    if "lis_after" in steps.columns:   # LIS after the plan (files from before it lack it)
        out.insert(out.columns.get_loc("lis") + 1, "lis_after", g["lis_after"].mean())
    if "repeats" in steps.columns and (steps["repeats"] > 1).any():   # measured more than once: the spread
        at = out.columns.get_loc("t_layer_us") + 1
        out.insert(at, "t_layer_max_us", g["t_layer_max_us"].mean())
        out.insert(at, "t_layer_min_us", g["t_layer_min_us"].mean())
        out.insert(at + 2, "repeats", g["repeats"].max())
    if "kl" in steps.columns and steps["kl"].notna().any():   # measured accuracy (workload kind "lm")
        for c in ("kl", "top1_agree", "ppl_delta"):
            out[c] = g[c].mean()   # NaN rows (not measured) are skipped
    out.index.name = "policy"
    return out


def load_steps(path) -> pd.DataFrame:
    """The /steps table with a `policy_name` column (also of a running file)."""
    return load_run(path).steps


_TEXT_ATTRS = ("schema_version", "mplb_version", "git_revision", "command", "host", "times_source", "status", "error")


def _width(attrs, path, name):
    v = attrs.get(name)
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= int(v) <= 1 << 20:
        raise RunFileError(_clean(f"{path}: attribute {name} must be one integer in 1..{1 << 20}, it is {v!r:.60}"))
    return int(v)


def _read_run(f, path) -> Run:
    _check(f, path)
    attrs = {}
    for k, v in f.attrs.items():
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.reshape(()).item()
        attrs[k] = (_text(v) if isinstance(v, (bytes, str)) else v.tolist() if isinstance(v, np.ndarray)
                    else v.item() if hasattr(v, "item") else v)
    R, E = _width(attrs, path, "ranks"), _width(attrs, path, "experts")
    for k in _TEXT_ATTRS:
        if k in attrs and not isinstance(attrs[k], str):
            raise RunFileError(_clean(f"{path}: attribute {k} must be one string, it is {attrs[k]!r:.60}"))
    if attrs.get("status", "running") not in ("running", "complete", "failed", "interrupted"):
        raise RunFileError(_clean(f"{path}: attribute status must be running, complete, failed or interrupted"))
    if "seed" in attrs and not isinstance(attrs["seed"], int):
        raise RunFileError(_clean(f"{path}: attribute seed must be one integer, it is {attrs['seed']!r:.60}"))
    steps_d = _table(f, path, "steps", 1, kinds="V")
    missing = {"policy", "step", "layer", "t_layer_us", "t_baseline_us"} - set(steps_d.dtype.names or ())
    if missing:
        raise RunFileError(_clean(f"{path}: /steps lacks the fields {sorted(missing)}"))
    tables = {name: _table(f, path, name, 2, w) for name, w in
              (("ranks/load", R), ("ranks/compute_us", R), ("experts/load", E), ("experts/precision", E))}
    n = steps_d.shape[0]
    # a killed file may hold fewer per-row array rows than /steps: common prefix
    for d in tables.values():
        n = min(n, d.shape[0])
    steps = pd.DataFrame(steps_d[:n])
    names_d = _table(f, path, "policy/names", 1, kinds="OSU")
    names = [_text(x) for x in names_d[()]]
    pol = steps["policy"].to_numpy()
    if len(pol) and (pol.min() < 0 or pol.max() >= len(names)):
        bad = int(np.flatnonzero((pol < 0) | (pol >= len(names)))[0])
        raise RunFileError(_clean(f"{path}: /steps row {bad}: policy {pol[bad]} is not an index into "
                                  f"/policy/names (0..{len(names) - 1})"))
    steps["policy_name"] = [names[i] for i in pol]
    prec = tables["experts/precision"][:n].astype(np.uint8)
    if prec.size and prec.max() >= len(PRECISIONS):
        raise RunFileError(_clean(f"{path}: /experts/precision holds code {prec.max()}, "
                                  f"not a precision (0..{len(PRECISIONS) - 1})"))
    run = Run(path=str(path), steps=steps,
              rank_load=tables["ranks/load"][:n], rank_compute_us=tables["ranks/compute_us"][:n],
              expert_load=tables["experts/load"][:n], expert_precision=prec,
              policies=names, config=_scalar_text(f, path, "config", attr=False), attrs=attrs)
    run.domains = _read_domains(f, path, names)
    steps.attrs["status"] = attrs.get("status")
    steps.attrs["ranks"] = R
    steps.attrs["experts"] = E
    return run


_DOMAIN_FIELDS = ("policy", "step", "domain", "positions", "kl", "top1_agree", "ppl_delta", "ppl_ref", "ppl_q")


def _read_domains(f, path, names) -> pd.DataFrame:
    """/accuracy: the per-domain rows with policy_name and the domain's name."""
    if "accuracy" not in f:
        return pd.DataFrame(columns=["policy_name", *_DOMAIN_FIELDS])
    doms = [_clean(_text(x)) for x in _table(f, path, "accuracy/domains", 1, kinds="OSU")[()]]
    d = _table(f, path, "accuracy/by_domain", 1, kinds="V")
    missing = set(_DOMAIN_FIELDS) - set(d.dtype.names or ())
    if missing:
        raise RunFileError(_clean(f"{path}: /accuracy/by_domain lacks the fields {sorted(missing)}"))
    t = pd.DataFrame(d[()])
    for col, n in (("policy", len(names)), ("domain", len(doms))):
        v = t[col].to_numpy()
        if len(v) and (v.min() < 0 or v.max() >= n):
            bad = int(np.flatnonzero((v < 0) | (v >= n))[0])
            raise RunFileError(_clean(f"{path}: /accuracy/by_domain row {bad}: {col} {v[bad]} is not in 0..{n - 1}"))
    t.insert(0, "policy_name", [names[i] for i in t["policy"]])
    t["domain"] = [doms[i] for i in t["domain"]]
    return t


def load_run(path) -> Run:
    """Read a run file; anything malformed raises RunFileError naming the file
    and the object (never a raw KeyError/IndexError from h5py or numpy)."""
    with _open(path) as f:
        try:
            return _read_run(f, path)
        except RunFileError:
            raise
        except (OSError, RuntimeError, KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
            raise RunFileError(_clean(f"{path}: damaged or not an mplb run file ({type(e).__name__}: {e})")) from None


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
        raise RunFileError(_clean(f"{path}: not an mplb sweep directory (no index.csv)"))
    try:
        with open(index_path, newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunFileError(_clean(f"{index_path}: cannot read ({e})")) from None
    if header[:1] != ["point"] or header[-3:] != ["file", "status", "error"]:
        raise RunFileError(_clean(f"{index_path}: unexpected header {header}"))
    try:
        index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
        index["point"] = index["point"].astype(int)
    except (ValueError, KeyError, pd.errors.ParserError) as e:
        raise RunFileError(_clean(f"{index_path}: malformed ({e})")) from None
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
        raise RunFileError(_clean(f"{path}: no such file or directory"))
    return load_run(path)
