"""Read plain tensors from torch.save files without torch.

torch.save (torch/serialization.py, `_save`, the zip format used since
PyTorch 1.6) writes a zip archive ``NAME/data.pkl`` (a pickle, protocol 2 by
default), ``NAME/data/KEY`` (the raw little-endian bytes of each storage),
``NAME/byteorder`` and ``NAME/version``. In data.pkl every tensor is
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks[, metadata])`` and every storage a persistent id
``('storage', torch.<Type>Storage, KEY, location, numel)``.

``load(path)`` unpickles data.pkl with Python's pickle module and a
restricted Unpickler: only the globals listed in _ALLOWED resolve (tensors
become numpy arrays, storages numpy buffers), anything else is refused with
the file and the global's name, so a dump never runs code. The pre-1.6 legacy
(non-zip) format is refused."""
import collections
import io
import pickle
import zipfile

import numpy as np

# torch storage class name -> numpy dtype (torch/storage.py's _dtype_to_storage_type_map)
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}


class TorchFileError(ValueError):
    pass


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return storage[offset].copy()
    item = storage.itemsize
    need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else offset
    if any(s < 0 for s in stride) or need > storage.size:
        raise TorchFileError(f"tensor of size {size}, stride {stride}, offset {offset} overruns its storage of {storage.size}")
    return np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * item for s in stride)).copy()


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, zf, prefix, path):
        super().__init__(io.BytesIO(data))
        self._zf, self._prefix, self._path, self._cache = zf, prefix, path, {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise TorchFileError(f"{self._path}: data.pkl refers to {module}.{name}, which is not a plain "
                                 "tensor, list, dict or number (only those are read)")
        return fn

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"{self._path}: unknown persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        if key not in self._cache:
            name = f"{self._prefix}data/{key}"
            try:
                raw = self._zf.read(name)
            except KeyError:
                raise TorchFileError(f"{self._path}: storage record {name} is missing") from None
            dt = stype.dtype
            if len(raw) < int(numel) * dt.itemsize and stype.name != "UntypedStorage":
                raise TorchFileError(f"{self._path}: storage {name} has {len(raw)} bytes, "
                                     f"{numel} x {dt.itemsize} expected")
            self._cache[key] = np.frombuffer(raw, dtype=dt, count=len(raw) // dt.itemsize)
        return self._cache[key]


def load(path):
    """The object torch.save wrote to path, tensors as numpy arrays."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise TorchFileError(f"{path}: not a torch.save zip file (the pre-1.6 legacy format is not read; "
                             "re-save with a current torch)") from None
    except OSError as e:
        raise TorchFileError(f"{path}: cannot open: {e.strerror}") from None
    with zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise TorchFileError(f"{path}: a zip file, but not torch.save's layout (no NAME/data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in zf.namelist() else "little"
        if order != "little":
            raise TorchFileError(f"{path}: byteorder {order!r} (only little-endian files are read)")
        try:
            return _Unpickler(zf.read(pkl[0]), zf, prefix, path).load()
        except TorchFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise TorchFileError(f"{path}: damaged data.pkl: {e}") from None
