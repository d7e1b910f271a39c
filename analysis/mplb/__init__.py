"""mplb analysis: run files and sweeps as pandas DataFrames, figures, reports,
and the C quantizers from numpy.

    import mplb
    run = mplb.load("run.h5")          # a Run (steps DataFrame + arrays)
    run.summary()                      # one row per policy
    sweep = mplb.load("sweeps/realb")  # a Sweep (index + summary over points)
"""
from .runfile import (PRECISIONS, SCHEMA_MAJOR, Run, RunFileError, Sweep, load, load_run,
                      load_steps, load_sweep, summarize_steps)
from . import quant

__all__ = ["PRECISIONS", "SCHEMA_MAJOR", "Run", "RunFileError", "Sweep", "load", "load_run", "load_steps",
           "load_sweep", "summarize_steps", "quant"]
