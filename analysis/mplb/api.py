"""mplb.run: an experiment through libmplb's run loop, from Python (ctypes, no
subprocess), returning the run as a Run.

    import mplb
    run = mplb.run("experiments/demo.lua", workload={"steps": 2}, model={"layers": 4})
    run = mplb.run("demo", **{"workload.steps": 2}, output="demo.h5")
    run = mplb.run("demo", policies=["baseline", mplb.policy("threshold", tau=1.1)])

Settings are the experiment's keys, as `mplb run --set` takes them: a nested
dict sets the keys it names and keeps the others (workload={"steps": 2} is
--set workload.steps=2); any other value replaces the key (str -> Lua string,
bool, int, float, list/tuple -> Lua list, dict -> Lua table). The library
checks them as it checks the experiment file: a bad key or value raises
MplbError with its message.
"""
from __future__ import annotations

import ctypes
import math
import os
import shutil
import signal
import tempfile
import threading

from . import quant
from .runfile import Run, load_run

# MPLB_EPOLICY, MPLB_ELIMIT in include/mplb/err.h: a policy failed mid-run, its rows are kept
_ROWS_KEPT = (-5, -6)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MplbError(RuntimeError):
    """An error from libmplb: `code` is the MPLB_E* code, the message names
    the file, line and field at fault."""

    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.code = code


def _lib():
    lib = quant._load()
    if not getattr(lib, "_mplb_py_ready", False):
        try:
            # volatile sig_atomic_t *stop: an int on the platforms mplb builds on
            lib.mplb_py_run.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                        ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                        ctypes.POINTER(ctypes.c_int), ctypes.POINTER(quant._Err)]
        except AttributeError:
            raise OSError("the libmplb.so found has no mplb_py_run (an older build: run `make`)") from None
        lib.mplb_py_run.restype = ctypes.c_int
        for name in ("mplb_py_version", "mplb_py_git_revision"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = []
        lib._mplb_py_ready = True
    return lib


def library_version():
    """(version, git revision) of the libmplb.so this package loads."""
    lib = _lib()
    return lib.mplb_py_version().decode(), lib.mplb_py_git_revision().decode()


def policy(name, **params):
    """A policy entry for `policies=[...]`: policy("threshold", tau=1.1) is
    Lua's { "threshold", tau = 1.1 }."""
    return {1: name, **params}


def lua(v, where="value"):
    """A Python value as a Lua expression (what --set takes)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):   # numpy scalars
        v = v.item()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "(0/0)"
        if math.isinf(v):
            return "(1/0)" if v > 0 else "(-1/0)"
        return repr(v)
    if isinstance(v, str):
        out = ['"']
        for c in v:
            if c in '"\\':
                out.append("\\" + c)
            elif ord(c) < 32 or ord(c) == 127:
                out.append(f"\\{ord(c):03d}")
            else:
                out.append(c)
        return "".join(out) + '"'
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(lua(x, f"{where}[{i + 1}]") for i, x in enumerate(v)) + "}"
    if isinstance(v, dict):
        items = []
        for k, x in v.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"{where}: table keys are str or int, got {k!r}")
            key = f"[{k}]" if isinstance(k, int) else k if k.isidentifier() else f"[{lua(k)}]"
            items.append(f"{key} = {lua(x, f'{where}.{k}')}")
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"{where}: cannot pass {type(v).__name__} {v!r} to an experiment "
                    "(str, bool, int, float, list, tuple or dict)")


def settings_to_sets(settings):
    """{"workload": {"steps": 2}, "seed": 3} -> ["workload.steps=2", "seed=3"]:
    nested dicts with str keys set the keys they name, other values replace."""
    out = []

    def walk(prefix, v):
        if isinstance(v, dict) and v and all(isinstance(k, str) for k in v):
            for k, x in v.items():
                walk(f"{prefix}.{k}", x)
        else:
            if v is None:
                raise TypeError(f"{prefix}: None is not a setting (leave the key out to keep the experiment's value)")
            out.append(f"{prefix}={lua(v, prefix)}")

    for k, v in settings.items():
        walk(k, v)
    return out


def _experiment_path(experiment, tmp):
    if isinstance(experiment, dict):
        path = os.path.join(tmp, "experiment.lua")
        with open(path, "w") as fh:
            fh.write("return " + lua(experiment, "experiment") + "\n")
        return path
    experiment = os.fspath(experiment)
    if os.path.exists(experiment):
        return experiment
    named = os.path.join(ROOT, "experiments", experiment + ("" if experiment.endswith(".lua") else ".lua"))
    if os.sep not in experiment and os.path.exists(named):
        return named
    raise FileNotFoundError(f"{experiment}: no such experiment file (nor {named})")


def _call_stoppable(call, stop):
    """call() in a worker thread (ctypes drops the Python lock) while this
    thread waits; here Ctrl-C only sets stop (a SIGINT handler in place of
    KeyboardInterrupt for the call's duration, so no exception can leave
    while the library still writes), and the library ends the run before its
    next layer. Returns call()'s result. Off the main thread no handler can
    be installed: the call then runs to its end."""
    out, done = {}, threading.Event()

    def work():
        try:
            out["rc"] = call()
        finally:
            done.set()

    def on_sigint(signum, frame):
        stop.value = 1

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        threading.Thread(target=work, name="mplb.run", daemon=True).start()
        while not done.wait(0.05):
            pass
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
    return out.get("rc", -1)


def run(experiment, *, output=None, force=False, resume=False, **settings) -> Run:
    """Run an experiment (a path, a name under experiments/, or a dict of the
    experiment table) in this process through libmplb and return the Run.

    output: the run file to write (kept); None runs into a temporary file
    that is read into memory and removed (the Run's path is then "").
    force overwrites output, resume continues it. Other keyword arguments are
    settings (see the module doc). The backend is the experiment's ("model"
    or "cpu"; "cuda" needs the mplb binary). The library runs in a worker
    thread without the Python lock; Ctrl-C stops it before the next layer,
    keeps every row in output (status "interrupted") and raises
    KeyboardInterrupt saying how to resume."""
    lib = _lib()
    tmp = tempfile.mkdtemp(prefix="mplb-run-")
    try:
        exp_path = _experiment_path(experiment, tmp)
        out = os.fspath(output) if output is not None else os.path.join(tmp, "run.h5")
        sets = settings_to_sets(settings)
        arr = (ctypes.c_char_p * max(len(sets), 1))(*[s.encode() for s in sets])
        cmd = "mplb.run(" + ", ".join([repr(os.fspath(experiment)) if not isinstance(experiment, dict) else "{...}"]
                                      + sets) + ")"
        err = quant._Err()
        stop = ctypes.c_int(0)
        rc = _call_stoppable(lambda: lib.mplb_py_run(exp_path.encode(), arr, len(sets), out.encode(),
                                                     int(bool(force)), int(bool(resume)), cmd.encode(),
                                                     ctypes.byref(stop), ctypes.byref(err)), stop)
        if stop.value:
            if output is None:
                raise KeyboardInterrupt("mplb.run interrupted (no output= given: nothing kept)")
            raise KeyboardInterrupt(f"mplb.run interrupted: every row so far kept in {out} (status interrupted); "
                                    f"continue with the same call plus output={out!r}, resume=True")
        if rc < 0:
            msg = err.msg.decode(errors="replace")
            if output is not None and os.path.exists(out) and rc in _ROWS_KEPT:
                msg += f" (rows written so far are kept in {out}, status failed)"
            raise MplbError(msg, rc)
        r = load_run(out)
        if output is None:
            r.path = ""
        return r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
