"""mplb analysis: run files and sweeps as pandas DataFrames, figures, reports,
the run loop and the C quantizers from Python.

    import mplb
    run = mplb.load("run.h5")          # a Run (steps DataFrame + arrays)
    run.summary()                      # one row per policy
    sweep = mplb.load("sweeps/realb")  # a Sweep (index + summary over points)
    run = mplb.run("demo", workload={"steps": 2})   # libmplb in this process
"""
from ._version import __version__
from .runfile import (PRECISIONS, SCHEMA_MAJOR, Run, RunFileError, Sweep, load, load_run,
                      load_steps, load_sweep, summarize_steps)
from . import quant
from .api import MplbError, library_version, policy, run

__all__ = ["__version__", "PRECISIONS", "SCHEMA_MAJOR", "Run", "RunFileError", "Sweep", "load", "load_run",
           "load_steps", "load_sweep", "summarize_steps", "quant", "run", "policy", "MplbError",
           "library_version"]
