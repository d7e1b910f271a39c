"""mplb analysis: read mplb run files (HDF5) into pandas; the C quantizers from numpy."""
from .runfile import load_steps, SCHEMA_MAJOR, PRECISIONS, RunFileError
from . import quant

__all__ = ["load_steps", "SCHEMA_MAJOR", "PRECISIONS", "RunFileError", "quant"]
