"""mplb.quant: the C quantizers of libmplb from numpy (ctypes).

Blocks run along the last axis of x. Formats are mplb's precision names:
bf16, fp16, fp8_e4m3, fp8_e5m2, fp4_e2m1, mxfp8, mxfp4, nvfp4, int8,
int4_g32, int4_g128. Options (keyword arguments):
  saturate=False     fp8_*: clamp overflow to +-max instead of NaN (E4M3) / Inf (E5M2)
  scaling="none"     fp8_*, fp4_e2m1: "none" (a plain cast) or "tensor" (amax / max scale)
  mx_round_up=False  mxfp*: the cuBLAS/Transformer Engine scale rule instead of the OCP spec's
  nvfp4_2d=False     nvfp4: 16x16 tiles over (rows, last axis) instead of 1x16 blocks
  int4_asym=False    int4_*: asymmetric with a zero point
Packed layouts are documented in include/mplb/quant.h.
"""
from __future__ import annotations

import ctypes
import os
from collections import namedtuple

import numpy as np

from .runfile import PRECISIONS

_OPTS = ("saturate", "scaling", "mx_round_up", "nvfp4_2d", "int4_asym")


class _QOpts(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in _OPTS]


class _QTensor(ctypes.Structure):
    _fields_ = [("fmt", ctypes.c_int), ("opts", _QOpts), ("rows", ctypes.c_int64), ("cols", ctypes.c_int64),
                ("data", ctypes.c_void_p), ("scales", ctypes.c_void_p), ("zeros", ctypes.c_void_p),
                ("data_bytes", ctypes.c_size_t), ("scale_bytes", ctypes.c_size_t),
                ("zero_bytes", ctypes.c_size_t), ("global_scale", ctypes.c_float)]


class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 1024)]


class QuantError(ValueError):
    """Bad format name, option or shape."""


Scales = namedtuple("Scales", ["block", "global_scale", "zeros"])
Scales.__doc__ = "Block scales as raw bytes (layout per format), the FP32 tensor scale, int4 zero points."

_lib = None


def _candidates():
    env = os.environ.get("MPLB_LIB")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    for build in ("build", "build-asan"):
        yield os.path.join(here, "..", "..", build, "libmplb.so")
    yield "libmplb.so"


def _load():
    global _lib
    if _lib is not None:
        return _lib
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append(f"{path}: {e}")
    else:
        raise OSError("cannot load libmplb.so (build it with `make`, or set MPLB_LIB): " + "; ".join(errors))
    lib.mplb_quant_sizes.argtypes = [ctypes.c_int, ctypes.POINTER(_QOpts), ctypes.c_int64, ctypes.c_int64,
                                     ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t),
                                     ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(_Err)]
    for name in ("mplb_quant_quantize", "mplb_quant_quantize_ref"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.POINTER(_QTensor), ctypes.POINTER(_Err)]
    for name in ("mplb_quant_dequantize", "mplb_quant_dequantize_ref"):
        getattr(lib, name).argtypes = [ctypes.POINTER(_QTensor), ctypes.c_void_p, ctypes.POINTER(_Err)]
    _lib = lib
    return lib


def _opts(options):
    unknown = set(options) - set(_OPTS)
    if unknown:
        raise QuantError(f"unknown option(s) {sorted(unknown)}; known: {list(_OPTS)}")
    o = _QOpts()
    for k, v in options.items():
        if k == "scaling":
            if v not in ("none", "tensor"):
                raise QuantError(f"scaling must be 'none' or 'tensor', got {v!r}")
            v = 1 if v == "tensor" else 0
        setattr(o, k, int(bool(v)) if k != "scaling" else v)
    return o


def _fmt(fmt):
    if fmt not in PRECISIONS:
        raise QuantError(f"unknown precision {fmt!r}; known: {', '.join(PRECISIONS)}")
    return PRECISIONS.index(fmt)


def _shape2(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    cols = shape[-1]
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rows, cols


def _tensor(fmt, opts, rows, cols, data=None, scales=None, zeros=None, global_scale=1.0):
    lib = _load()
    db, sb, zb = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
    err = _Err()
    if lib.mplb_quant_sizes(fmt, ctypes.byref(opts), rows, cols, ctypes.byref(db), ctypes.byref(sb),
                            ctypes.byref(zb), ctypes.byref(err)) < 0:
        raise QuantError(err.msg.decode())
    bufs = []
    for given, n, name in ((data, db.value, "packed"), (scales, sb.value, "scales"), (zeros, zb.value, "zeros")):
        if given is None:
            arr = np.zeros(max(n, 1), dtype=np.uint8)
        else:
            arr = np.ascontiguousarray(np.frombuffer(np.asarray(given, dtype=np.uint8).tobytes(), dtype=np.uint8))
            if arr.size != n:
                raise QuantError(f"{name} has {arr.size} bytes, format {PRECISIONS[fmt]} needs {n}")
            arr = np.concatenate([arr, np.zeros(1, np.uint8)])
        bufs.append((arr, n))
    t = _QTensor(fmt, opts, rows, cols, bufs[0][0].ctypes.data, bufs[1][0].ctypes.data, bufs[2][0].ctypes.data,
                 db.value, sb.value, zb.value, global_scale)
    return t, bufs


def quantize(x, fmt, _ref=False, **options):
    """float32 array -> (packed uint8 array, Scales)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    rows, cols = _shape2(x.shape)
    t, bufs = _tensor(_fmt(fmt), _opts(options), rows, cols)
    err = _Err()
    fn = _load().mplb_quant_quantize_ref if _ref else _load().mplb_quant_quantize
    if fn(x.ctypes.data, ctypes.byref(t), ctypes.byref(err)) < 0:
        raise QuantError(err.msg.decode())
    (d, dn), (s, sn), (z, zn) = bufs
    return d[:dn].copy(), Scales(s[:sn].copy(), float(t.global_scale), z[:zn].copy() if zn else None)


def dequantize(packed, scales, fmt, shape, _ref=False, **options):
    """(packed, Scales) from quantize -> float32 array of `shape`."""
    rows, cols = _shape2(shape)
    if not isinstance(scales, Scales):
        scales = Scales(scales, 1.0, None)
    t, bufs = _tensor(_fmt(fmt), _opts(options), rows, cols, packed, scales.block, scales.zeros,
                      scales.global_scale)
    y = np.empty(rows * cols, dtype=np.float32)
    err = _Err()
    fn = _load().mplb_quant_dequantize_ref if _ref else _load().mplb_quant_dequantize
    if fn(ctypes.byref(t), y.ctypes.data, ctypes.byref(err)) < 0:
        raise QuantError(err.msg.decode())
    return y.reshape(shape)


def fake_quant(x, fmt, **options):
    """Round trip x through fmt: float32 in, float32 out, same shape."""
    x = np.asarray(x, dtype=np.float32)
    packed, scales = quantize(x, fmt, **options)
    return dequantize(packed, scales, fmt, x.shape, **options)
