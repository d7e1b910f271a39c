"""mplb analysis: read mplb run files (HDF5) into pandas."""
from .runfile import load_steps, SCHEMA_MAJOR, PRECISIONS, RunFileError

__all__ = ["load_steps", "SCHEMA_MAJOR", "PRECISIONS", "RunFileError"]
