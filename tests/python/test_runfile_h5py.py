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
