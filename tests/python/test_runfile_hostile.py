"""mplb.load on damaged, killed and crafted run files (issue #18, findings 7 and 11):
every input either loads or raises RunFileError -- never another exception,
never a hang -- and `mplb report` prints one line, not a traceback."""
import json
import os
import random
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import mplb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(mplb.__file__)))

# Loads each file in a child process (so a hang in libhdf5 cannot stall the
# suite) and reports, per file, "ok", "RunFileError" or the other exception.
CHILD = r"""
import json, sys
import mplb
out = {}
for p in sys.argv[1:]:
    try:
        mplb.load(p); out[p] = "ok"
    except mplb.RunFileError as e:
        out[p] = "RunFileError" if "\x1b" not in str(e) else "unescaped: " + repr(str(e))
    except BaseException as e:
        out[p] = type(e).__name__ + ": " + str(e)[:200]
print(json.dumps(out))
"""


def load_all(paths, timeout=120):
    env = dict(os.environ, PYTHONPATH=ANALYSIS)
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "ok.h5"
    subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "demo.lua"), "-o", str(out),
                    "--set", "workload.steps=2"], check=True, capture_output=True)
    return out


def _mutants(base, d):
    """Structural mutations named after the red-team findings."""
    def edit(name, fn):
        p = d / f"{name}.h5"
        shutil.copy(base, p)
        with h5py.File(p, "r+") as f:
            fn(f)
        return p

    def replace(f, name, data):
        del f[name]
        f[name] = data

    def attr(name, value):
        return lambda f: f.attrs.__setitem__(name, value)

    return [
        edit("seed_array", attr("seed", np.arange(5))),
        edit("ranks_array", attr("ranks", np.ones((2, 3), np.int32))),
        edit("ranks_zero", attr("ranks", 0)),
        edit("status_array", attr("status", np.array([b"a", b"b"]))),
        edit("schema_array", attr("schema_version", np.array([1.0, 2.0]))),
        edit("schema_escape", attr("schema_version", "9\x1b[31mred")),
        edit("config_array", lambda f: replace(f, "config", np.arange(4))),
        edit("config_missing", lambda f: f.__delitem__("config")),
        edit("load_10d", lambda f: replace(f, "ranks/load", np.zeros((1,) * 10))),
        edit("load_narrow", lambda f: replace(f, "ranks/load", np.zeros((5, 3)))),
        edit("names_ints", lambda f: replace(f, "policy/names", np.arange(3))),
        edit("names_short", lambda f: replace(f, "policy/names", np.array([b"a"]))),
        edit("prec_code", lambda f: replace(f, "experts/precision", np.full((3, int(f.attrs["experts"])), 200,
                                                                              np.uint8))),
        edit("steps_policy", lambda f: f["steps"].__setitem__(0, tuple(
            1000000 if n == "policy" else v for n, v in zip(f["steps"].dtype.names, f["steps"][0])))),
        edit("steps_ints", lambda f: replace(f, "steps", np.arange(7))),
        edit("steps_group", lambda f: (f.__delitem__("steps"), f.create_group("steps"))),
    ]


def test_crafted_files_raise_runfileerror(run_file, tmp_path):
    res = load_all(_mutants(run_file, tmp_path))
    bad = {os.path.basename(p): r for p, r in res.items() if r != "RunFileError"}
    assert not bad, bad


def test_byte_mutated_files_never_hang_or_leak_exceptions(run_file, tmp_path):
    seed = int(os.environ.get("MPLB_TEST_SEED", random.randrange(1 << 30)))
    print(f"MPLB_TEST_SEED={seed}")
    rng = random.Random(seed)
    data = run_file.read_bytes()
    paths = []
    for i in range(40):
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        p = tmp_path / f"bytes{i}.h5"
        p.write_bytes(bytes(b))
        paths.append(p)
    res = load_all(paths)
    bad = {os.path.basename(p): r for p, r in res.items() if r not in ("ok", "RunFileError")}
    assert not bad, bad


def test_killed_writer_truncated_fails_fast(run_file, tmp_path):
    """A file left open for write (SWMR writer killed) and cut short: SWMR
    read with bounded retries, not minutes of libhdf5's growing sleeps."""
    killed = tmp_path / "killed.h5"
    shutil.copy(run_file, killed)
    subprocess.run([sys.executable, "-c", "import h5py, os, sys\n"
                    "f = h5py.File(sys.argv[1], 'r+', libver='latest'); f.swmr_mode = True; f.flush(); os._exit(0)",
                    str(killed)], check=True)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(killed, "r")
    size = killed.stat().st_size
    paths = [killed]
    for frac in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90):
        p = tmp_path / f"cut{frac}.h5"
        p.write_bytes(killed.read_bytes()[:size * frac // 100])
        paths.append(p)
    res = load_all(paths, timeout=60)
    assert res[str(killed)] == "ok"
    bad = {os.path.basename(p): r for p, r in res.items() if r not in ("ok", "RunFileError")}
    assert not bad, bad


def test_report_prints_one_line(run_file, tmp_path):
    p = tmp_path / "bad.h5"
    shutil.copy(run_file, p)
    with h5py.File(p, "r+") as f:
        f.attrs["ranks"] = np.ones((4, 4))
    env = dict(os.environ, PYTHONPATH=ANALYSIS)
    r = subprocess.run([sys.executable, "-m", "mplb.report", str(p), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "attribute ranks" in r.stderr, r.stderr
