"""mplb.run (libmplb through ctypes) against the mplb binary, its settings,
errors, version and repr."""
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

import mplb
from mplb import api

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
DEMO = os.path.join(ROOT, "experiments", "demo.lua")
# columns that are measured on this machine (the policy's decide time)
TIMED = ["decide_us"]


def _cli_run(tmp_path, *sets, name="cli.h5"):
    out = tmp_path / name
    args = [BIN, "run", DEMO, "-o", str(out)]
    for s in sets:
        args += ["--set", s]
    subprocess.run(args, check=True, capture_output=True)
    return mplb.load(out)


def test_run_equals_the_binary(tmp_path, monkeypatch):
    seed = int(np.random.default_rng().integers(1, 2**31))
    sets = ["workload.steps=2", "model.layers=3", f"seed={seed}", "workload.tokens=2048"]
    ref = _cli_run(tmp_path, *sets)

    # no subprocess: any attempt to start one fails the call
    def no_subprocess(*a, **k):
        raise AssertionError("mplb.run started a subprocess")
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(os, "system", no_subprocess)
    got = mplb.run(DEMO, output=tmp_path / "api.h5", workload={"steps": 2, "tokens": 2048}, seed=seed,
                   **{"model.layers": 3})
    monkeypatch.undo()

    assert isinstance(got, mplb.Run) and got.path == str(tmp_path / "api.h5") and got.status == "complete"
    assert got.policies == ref.policies
    a, b = got.steps.drop(columns=TIMED), ref.steps.drop(columns=TIMED)
    pd.testing.assert_frame_equal(a, b)
    for name in ("rank_load", "rank_compute_us", "expert_load", "expert_precision"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    assert got.config == ref.config
    assert got.attrs["times_source"] == ref.attrs["times_source"] == "cost model, profile h100"
    assert got.attrs["command"].startswith("mplb.run(")


def test_run_in_memory_and_by_name():
    r = mplb.run("demo", workload={"steps": 1}, model={"layers": 2})
    assert r.path == "" and r.status == "complete"
    assert sorted(r.steps["layer"].unique()) == [0, 1] and list(r.steps["step"].unique()) == [0]


def test_dict_experiment_and_policy_entries(tmp_path):
    # a label with quotes, a backslash and a newline goes through Lua's parser unchanged
    label = 'odd "label" \\ with\nnewline'
    exp = {"name": "dict", "model": {"preset": "qwen3-30b-a3b", "layers": 2},
           "cluster": {"gpus_per_node": 4, "profile": "b200"},
           "workload": {"steps": 1, "tokens": 1024},
           "policies": ["baseline", mplb.policy("threshold", tau=1.1, low="nvfp4", label=label)]}
    r = mplb.run(exp, output=tmp_path / "d.h5")
    assert r.policies == ["baseline", label]
    assert r.rank_load.shape[1] == 4 and r.attrs["times_source"] == "cost model, profile b200"


def test_lua_values():
    assert api.lua(True) == "true" and api.lua(3) == "3" and api.lua(np.int64(7)) == "7"
    assert api.lua(0.1) == "0.1" and api.lua(float("inf")) == "(1/0)"
    assert api.lua('a"b\\c\n') == '"a\\"b\\\\c\\010"'
    assert api.lua(["x", 2]) == '{"x", 2}'
    assert api.lua({1: "threshold", "tau": 1.5, "not id": 1}) == '{[1] = "threshold", tau = 1.5, ["not id"] = 1}'
    assert api.settings_to_sets({"workload": {"steps": 2, "zipf": [0.8, 1.2]}, "seed": 3}) == \
        ["workload.steps=2", "workload.zipf={0.8, 1.2}", "seed=3"]
    with pytest.raises(TypeError, match="workload.steps: None"):
        api.settings_to_sets({"workload": {"steps": None}})
    with pytest.raises(TypeError, match=r"x\[2\]: cannot pass object"):
        api.lua([1, object()], "x")


def test_errors_are_raised_with_the_library_message(tmp_path):
    with pytest.raises(mplb.MplbError, match="profile") as e:
        mplb.run(DEMO, cluster={"profile": "no_such_chip"}, workload={"steps": 1})
    assert e.value.code < 0
    with pytest.raises(FileNotFoundError, match="nope.lua"):
        mplb.run("nope")
    # an existing file is not overwritten without force
    out = tmp_path / "r.h5"
    mplb.run(DEMO, output=out, workload={"steps": 1}, model={"layers": 1})
    with pytest.raises(mplb.MplbError, match="exists|force"):
        mplb.run(DEMO, output=out, workload={"steps": 1}, model={"layers": 1})
    mplb.run(DEMO, output=out, force=True, workload={"steps": 1}, model={"layers": 1})


def test_policy_error_keeps_rows(tmp_path, monkeypatch):
    # policy names hold 63 characters (MPLB_NAME_MAX): a relative path from the run's folder
    monkeypatch.chdir(tmp_path)
    pol = tmp_path / "late_fail.lua"
    pol.write_text("local P = { params = {} }\n"
                   "function P.decide(obs, act)\n"
                   "  if obs.step == 2 then error('boom at step 2') end\n"   # obs.step counts from 1
                   "end\nreturn P\n")
    out = tmp_path / "f.h5"
    with pytest.raises(mplb.MplbError, match="boom at step 2") as e:
        mplb.run(DEMO, output=out, policies=["late_fail.lua"], workload={"steps": 3}, model={"layers": 2})
    assert "kept in" in str(e.value)
    r = mplb.load(out)
    assert r.status == "failed" and "boom at step 2" in r.attrs["error"]
    assert r.steps[["step", "layer"]].values.tolist() == [[0, 0], [0, 1]]   # the first step's rows


def _cmake_version():
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    return re.search(r"project\(mplb VERSION ([0-9.]+)", text).group(1)


def test_version_agrees_everywhere():
    header = open(os.path.join(ROOT, "include", "mplb", "version.h")).read()
    assert mplb.__version__ == re.search(r'MPLB_VERSION "([^"]+)"', header).group(1)
    assert mplb.__version__ == _cmake_version()
    lib_version, rev = mplb.library_version()
    assert lib_version == mplb.__version__ and rev


def test_repr_is_compact(tmp_path):
    r = mplb.run(DEMO, output=tmp_path / "x.h5", workload={"steps": 2}, model={"layers": 3})
    text = repr(r)
    assert "\n" not in text and len(text) < 200
    assert text == ("<mplb.Run x.h5: complete, 3 policies x 2 steps x 3 layers (18 rows), 8 ranks, 128 experts; "
                    "cost model, profile h100>")


def test_ctrl_c_stops_and_resume_continues(tmp_path):
    """SIGINT during mplb.run stops the library before its next layer, keeps
    the rows (status interrupted) and says how to resume; resume completes."""
    import signal
    import threading
    import time
    out = tmp_path / "i.h5"
    settings = dict(workload={"steps": 40}, model={"layers": 8})
    def interrupt():   # as soon as the run has created its file (or the FILE.part it links in place)
        while not (out.exists() or out.with_name(out.name + ".part").exists()):
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGINT)
    timer = threading.Thread(target=interrupt)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match="resume=True") as e:
        mplb.run(DEMO, output=out, **settings)
    timer.join()
    assert str(out) in str(e.value)
    r = mplb.load(out)
    assert r.status == "interrupted" and len(r.steps) < 40 * 8 * 3
    full = mplb.run(DEMO, output=out, resume=True, **settings)
    assert full.status == "complete" and len(full.steps) == 40 * 8 * 3
    assert time.monotonic() - t0 < 120
