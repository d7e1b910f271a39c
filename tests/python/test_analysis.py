"""The analysis package against the C writer, its figures, its errors, and the
notebooks executed end to end (on small runs)."""
import json
import os
import subprocess

import h5py
import matplotlib.image as mpimg
import numpy as np
import pytest

import mplb
from mplb import plots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("an") / "demo.h5"
    subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "demo.lua"), "-o", str(out),
                    "--set", "workload.steps=2", "--set", "model.layers=6"], check=True, capture_output=True)
    return out


def test_summary_matches_c_inspect(demo):
    run = mplb.load(demo)
    j = json.loads(subprocess.run([BIN, "inspect", str(demo), "--json"], check=True, capture_output=True,
                                  text=True).stdout)
    s = run.summary()
    assert j["rows"] == len(run.steps)
    for p in j["policies"]:
        row = s.loc[p["name"]]
        assert row["rows"] == p["rows"]
        assert row["t_layer_us"] == pytest.approx(p["mean_t_layer_us"], rel=1e-5)
        assert row["speedup"] == pytest.approx(p["speedup"], rel=1e-5)
        assert row["error_proxy"] == pytest.approx(p["mean_error_proxy"], rel=1e-5, abs=1e-12)
    # arrays equal the raw HDF5
    with h5py.File(demo, "r") as f:
        np.testing.assert_array_equal(run.rank_compute_us, f["ranks/compute_us"][()])
        np.testing.assert_array_equal(run.expert_precision, f["experts/precision"][()])


def test_figures_say_where_times_come_from(demo, tmp_path):
    """The run file records the source of its times; figures and inspect use it."""
    run = mplb.load(demo)
    assert plots.source_label(run) == "cost model, profile h100"
    j = json.loads(subprocess.run([BIN, "inspect", str(demo), "--json"], check=True, capture_output=True,
                                  text=True).stdout)
    assert j["times_source"] == "cost model, profile h100"
    ex = tmp_path / "ex.h5"
    subprocess.run([BIN, "run", os.path.join(ROOT, "experiments", "execute_small.lua"), "-o", str(ex),
                    "--backend", "cpu", "--set", "workload.steps=1", "--set", "model.layers=1"],
                   check=True, capture_output=True)
    label = plots.source_label(mplb.load(ex))
    assert label.startswith("expert compute measured on the CPU of ") and "cost model, profile h100" in label


def _not_blank(path):
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img[..., :3])) > 0.02   # more than a blank canvas


def test_report_for_run_and_sweep(demo, tmp_path):
    files = mplb.report.report(str(demo), str(tmp_path / "rep")) if hasattr(mplb, "report") else None
    from mplb.report import report
    files = report(str(demo), str(tmp_path / "rep"))
    pngs = [f for f in files if f.endswith(".png")]
    assert len(pngs) == 5   # Pareto front, timelines, rank load, precision map, LIS
    for p in pngs:
        _not_blank(p)
    html = open(tmp_path / "rep" / "index.html").read()
    assert "cost model, profile h100" in html and "<table" in html
    # through the C binary, on a sweep
    exp = tmp_path / "sw.lua"
    exp.write_text('return { model = { layers = 2, experts = 8, top_k = 2, hidden = 256, ffn = 128 },\n'
                   '  cluster = { gpus_per_node = 4 }, workload = { steps = 2, tokens = 512, zipf = {0.8, 1.4} },\n'
                   '  policies = { "baseline", { "threshold", min_tokens = 0 } } }\n')
    subprocess.run([BIN, "sweep", str(exp), "-o", str(tmp_path / "sw")], check=True, capture_output=True)
    r = subprocess.run([BIN, "report", str(tmp_path / "sw"), "-o", str(tmp_path / "rep2")], capture_output=True,
                       text=True, env={**os.environ, "MPLB_PYTHON": os.sys.executable})
    assert r.returncode == 0, r.stderr
    _not_blank(tmp_path / "rep2" / "pareto.png")
    sweep = mplb.load(tmp_path / "sw")
    summ = sweep.summary()
    assert set(summ["workload.zipf"]) == {0.8, 1.4}
    assert len(summ) == 4


def test_bad_inputs(tmp_path):
    with pytest.raises(mplb.RunFileError, match="no such file"):
        mplb.load(tmp_path / "missing.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mplb.RunFileError, match="not an mplb sweep directory"):
        mplb.load(tmp_path / "empty")
    p = tmp_path / "partial.h5"
    with h5py.File(p, "w") as f:
        f.attrs["schema_version"] = "1.0"
        f["steps"] = np.zeros(3)
    with pytest.raises(mplb.RunFileError, match="missing dataset /policy/names"):
        mplb.load(p)
    r = subprocess.run([BIN, "report", str(p), "-o", str(tmp_path / "r")], capture_output=True, text=True,
                       env={**os.environ, "MPLB_PYTHON": os.sys.executable})
    assert r.returncode == 1 and "missing dataset" in r.stderr


@pytest.mark.parametrize("name", ["quickstart", "realb", "rq"])
def test_notebook_runs(name, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    path = os.path.join(ROOT, "analysis", "notebooks", f"{name}.ipynb")
    nb = nbformat.read(path, as_version=4)
    # committed notebooks carry no outputs
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    os.environ["MPLB_BIN"] = BIN
    os.environ["MPLB_QUICK"] = "1"
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    # a cell that ends in a figure shows it once (no second copy from pyplot), others none
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        images = sum(1 for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        last = c.source.strip().splitlines()[-1]
        assert images == (1 if last.startswith("plots.") else 0), (c.source, images)


def test_report_shows_sensitivity_band(tmp_path):
    out, exp = tmp_path / "sens.h5", tmp_path / "sens.lua"
    exp.write_text('return { model = { layers = 2, experts = 16, top_k = 2, hidden = 512, ffn = 256 },\n'
                   '  cluster = { gpus_per_node = 4, profile = "h100" }, workload = { steps = 2, tokens = 4096 },\n'
                   '  policies = { "baseline", { "static", prec = "fp8_e4m3" }, { "threshold", min_tokens = 0 } } }\n')
    subprocess.run([BIN, "run", str(exp), "-o", str(out), "--sensitivity"], check=True, capture_output=True)
    with h5py.File(out, "r") as f:
        band = f["sensitivity/band"][:]
        speed = f["sensitivity/speedup"][:]
    assert band.shape[1] == 3 and (band[:, 1] <= band[:, 0]).all() and (band[:, 0] <= band[:, 2]).all()
    assert np.allclose(band[:, 1], np.minimum(band[:, 0], speed.min(axis=(0, 1))))
    assert np.allclose(band[:, 2], np.maximum(band[:, 0], speed.max(axis=(0, 1))))
    from mplb.report import report
    report(str(out), str(tmp_path / "rep"))
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Sensitivity to the profile's assumptions" in page and f"{band[1, 1]:.3f}x" in page


def test_sweep_sensitivity_in_every_point(tmp_path):
    exp = tmp_path / "sw.lua"
    exp.write_text('return { model = { layers = 2, experts = 16, top_k = 2, hidden = 512, ffn = 256 },\n'
                   '  cluster = { gpus_per_node = 4, profile = "h100" }, workload = { steps = 2, tokens = { 2048, 4096 } },\n'
                   '  policies = { "baseline", { "static", prec = "fp8_e4m3" } } }\n')
    subprocess.run([BIN, "sweep", str(exp), "-o", str(tmp_path / "sw"), "--sensitivity"], check=True, capture_output=True)
    for p in (0, 1):
        with h5py.File(tmp_path / "sw" / "runs" / f"p{p:04d}.h5", "r") as f:
            band = f["sensitivity/band"][:]
            assert band.shape == (2, 3) and np.allclose(band[0], 1.0)   # the baseline against itself
            assert band[1, 1] <= band[1, 0] <= band[1, 2]
