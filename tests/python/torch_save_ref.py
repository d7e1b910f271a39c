"""Write files in torch.save's zip layout without torch, for the importer tests.

The layout follows torch/serialization.py (`_save`, PyTorch >= 1.6, default
pickle protocol 2): a stored (uncompressed) zip with ARCHIVE/data.pkl,
ARCHIVE/byteorder ("little"), ARCHIVE/data/KEY per storage, ARCHIVE/version
and ARCHIVE/.data/serialization_id, ARCHIVE being the file name without its
extension. Each tensor pickles as torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, requires_grad, OrderedDict()) and each storage as the
persistent id ('storage', torch.<Type>Storage, KEY, 'cpu', numel).

Python's own Pickler writes data.pkl: a stand-in `torch` module is put in
sys.modules only while pickling, so the GLOBAL opcodes name torch's real
functions and classes exactly as torch.save writes them. The test then reads
the files with mplb.torchfile (an independent reader: a restricted Unpickler
and zipfile)."""
import collections
import contextlib
import io
import os
import pickle
import sys
import types
import zipfile

import numpy as np

_STORAGE_OF = {np.dtype("<f8"): "DoubleStorage", np.dtype("<f4"): "FloatStorage", np.dtype("<i8"): "LongStorage",
               np.dtype("<i4"): "IntStorage", np.dtype("<i2"): "ShortStorage", np.dtype("u1"): "ByteStorage",
               np.dtype("bool"): "BoolStorage", np.dtype("i1"): "CharStorage"}


@contextlib.contextmanager
def _fake_torch():
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):   # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in set(_STORAGE_OF.values()):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Storage:
    def __init__(self, key, arr):
        self.key, self.arr = key, arr


class _Tensor:
    def __init__(self, storage, shape, torch):
        self.storage, self.shape, self.torch = storage, shape, torch

    def __reduce_ex__(self, proto):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.append(acc)
            acc *= n
        return (self.torch._utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(reversed(stride)), False, collections.OrderedDict()))


def save(obj, path):
    """torch.save(obj, path) for obj made of dicts, lists, numbers, strings,
    None and numpy arrays (saved as CPU tensors of the same dtype)."""
    storages = []
    with _fake_torch() as torch:
        def conv(o):
            if isinstance(o, np.ndarray):
                a = np.array(o, order="C")   # keeps 0-d arrays 0-d (ascontiguousarray would not)
                st = _Storage(str(len(storages)), a)
                storages.append(st)
                return _Tensor(st, a.shape, torch)
            if isinstance(o, dict):
                return {k: conv(v) for k, v in o.items()}
            if isinstance(o, list):
                return [conv(v) for v in o]
            return o

        class P(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _Storage):
                    return ("storage", getattr(torch, _STORAGE_OF[o.arr.dtype]), o.key, "cpu", o.arr.size)
                return None

        buf = io.BytesIO()
        P(buf, protocol=2).dump(conv(obj))
    name = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}/data.pkl", buf.getvalue())
        zf.writestr(f"{name}/byteorder", "little")
        for st in storages:
            zf.writestr(f"{name}/data/{st.key}", st.arr.astype(st.arr.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{name}/version", "3\n")
        zf.writestr(f"{name}/.data/serialization_id", "0" * 40)
