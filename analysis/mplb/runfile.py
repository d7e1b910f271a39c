"""Reading mplb run files (schema in docs/run-file.md)."""
from __future__ import annotations

import h5py
import pandas as pd

SCHEMA_MAJOR = 1
# Same order as MPLB_PREC_MAP in include/mplb/prec.h (the HDF5 enum values).
PRECISIONS = ["bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "mxfp8", "mxfp4",
              "nvfp4", "int8", "int4_g32", "int4_g128"]


class RunFileError(ValueError):
    """A file that is not a readable mplb run file."""


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_steps(path) -> pd.DataFrame:
    """The /steps table with a `policy_name` column; opens running files too (SWMR)."""
    try:
        f = h5py.File(path, "r", swmr=True)
    except OSError as e:
        raise RunFileError(f"{path}: cannot open as HDF5 ({e})") from None
    with f:
        if "schema_version" not in f.attrs:
            raise RunFileError(f"{path}: not an mplb run file (no schema_version attribute)")
        ver = _text(f.attrs["schema_version"])
        if int(ver.split(".")[0]) != SCHEMA_MAJOR:
            raise RunFileError(f"{path}: schema version {ver} not readable (this reads {SCHEMA_MAJOR}.x)")
        if "steps" not in f:
            raise RunFileError(f"{path}: missing dataset /steps")
        df = pd.DataFrame(f["steps"][()])
        names = [_text(n) for n in f["policy/names"][()]]
        df["policy_name"] = [names[i] for i in df["policy"]]
        df.attrs["status"] = _text(f.attrs["status"])
        df.attrs["ranks"] = int(f.attrs["ranks"])
        df.attrs["experts"] = int(f.attrs["experts"])
        return df
