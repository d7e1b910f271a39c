"""Run files as a notebook sees them: written by the mplb binary, read by h5py."""
import os
import subprocess

import h5py
import numpy as np
import pytest

import mplb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "demo.h5"
    subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "demo.lua"), "-o", str(out),
                    "--set", "workload.steps=2"], check=True, capture_output=True)
    return out


def test_schema_and_attrs(run_file):
    with h5py.File(run_file, "r") as f:
        assert f.attrs["status"] == "complete"
        assert f.attrs["schema_version"].split(".")[0] == "1"
        assert int(f.attrs["seed"]) == 42
        names = [n.decode() for n in f["policy/names"][()]]
        assert names[0] == "baseline" and len(names) == 3
        steps = f["steps"]
        assert steps.shape == (3 * 2 * 48,)
        assert steps.maxshape == (None,)
        assert steps.compression == "gzip"
        assert f["ranks/load"].shape == (3 * 2 * 48, 8)
        prec = f["experts/precision"]
        mapping = h5py.check_enum_dtype(prec.dtype)
        assert {v: k for k, v in mapping.items()} == dict(enumerate(mplb.PRECISIONS))
        assert "experts" in f and "config" in f and "hardware" in f


def test_values_consistent(run_file):
    df = mplb.load_steps(run_file)
    with h5py.File(run_file, "r") as f:
        load = f["experts/load"][()]
        prec = f["experts/precision"][()]
        rank_load = f["ranks/load"][()]
    # LIS from the stored per-expert loads: E * max / (T * k)
    lis = load.shape[1] * load.max(axis=1) / (df["tokens"].to_numpy() * 8)
    np.testing.assert_allclose(df["lis"], lis, rtol=1e-12)
    # baseline rows are all bf16 and equal their own baseline
    base = df["policy"] == 0
    assert (prec[base.to_numpy()] == 0).all()
    np.testing.assert_array_equal(df.loc[base, "t_layer_us"], df.loc[base, "t_baseline_us"])
    # token copies are conserved across ranks
    np.testing.assert_allclose(rank_load.sum(axis=1), df["tokens"] * 8)
    # imbalance column = max/mean of the stored rank loads
    np.testing.assert_allclose(df["imbalance"], rank_load.max(axis=1) / rank_load.mean(axis=1), rtol=1e-12)


def test_not_a_run_file(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f["a"] = 1
    with pytest.raises(mplb.RunFileError, match="not an mplb run file"):
        mplb.load_steps(p)
    q = tmp_path / "y.h5"
    q.write_text("text")
    with pytest.raises(mplb.RunFileError, match="cannot open"):
        mplb.load_steps(q)


def test_read_while_running(tmp_path):
    """SWMR: a notebook reads a run file while mplb is still writing it."""
    import time
    exp = tmp_path / "long.lua"
    exp.write_text(
        'return { model = "olmoe-1b-7b", cluster = { nodes = 2, gpus_per_node = 4 },\n'
        '  workload = { steps = 400, tokens = 4096 }, policies = { "baseline", "eplb" } }\n')
    out = tmp_path / "long.h5"
    proc = subprocess.Popen([BIN, "run", str(exp), "-o", str(out)], stdout=subprocess.DEVNULL)
    try:
        seen = None
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if out.exists():
                try:
                    df = mplb.load_steps(out)
                except mplb.RunFileError:
                    df = None
                if df is not None and len(df) > 0 and df.attrs["status"] == "running":
                    seen = df
                    break
            time.sleep(0.1)
        assert seen is not None, "never saw rows of the running file"
        assert (seen["step"].diff().fillna(0) >= 0).all()
    finally:
        proc.kill()
        proc.wait()


def test_newer_schema_refused(tmp_path, run_file):
    import shutil
    p = tmp_path / "v9.h5"
    shutil.copy(run_file, p)
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = "9.0"
    with pytest.raises(mplb.RunFileError, match="schema version 9.0"):
        mplb.load_steps(p)
