"""Measured times in the analysis package: a cpu-backend run's summary carries
the repeats' spread (mean over rows of each row's min and max), held to a
recomputation from every timed run the file keeps (/repeats), and the report's
table shows it; a cost-model run (and a single timed run) has no spread columns."""
import os
import subprocess

import h5py
import numpy as np
import pytest

import mplb
from mplb import report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))

EXP = """return {{
  name = "m", model = {{ name = "t", layers = 2, experts = 8, top_k = 2, hidden = 64, ffn = 64 }},
  cluster = {{ nodes = 1, gpus_per_node = 2, profile = "h100" }},
  workload = {{ steps = 2, tokens = {tokens} }},
  policies = {{ "baseline", {{ "static", prec = "fp8_e4m3" }} }}, backend = "{backend}", repeats = {repeats}, seed = {seed},
}}"""


def run(tmp_path, backend, repeats):
    rng = np.random.default_rng()
    exp = tmp_path / f"{backend}.lua"
    exp.write_text(EXP.format(tokens=int(rng.integers(16, 200)), backend=backend, repeats=repeats,
                              seed=int(rng.integers(1, 10**6))))
    out = tmp_path / f"{backend}.h5"
    subprocess.run([BIN, "run", str(exp), "-o", str(out)], check=True, capture_output=True)
    return out


def test_spread_in_summary_and_report(tmp_path):
    repeats = int(np.random.default_rng().integers(2, 6))
    out = run(tmp_path, "cpu", repeats)
    r = mplb.load(out)
    s = r.summary()
    with h5py.File(out, "r") as f:
        rep, st = f["repeats/t_layer_us"][()], f["steps"][()]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["policy/names"][()]]
    assert rep.shape[1] == repeats
    for p, name in enumerate(names):
        rows = rep[st["policy"] == p]
        assert s.loc[name, "t_layer_min_us"] == pytest.approx(rows.min(axis=1).mean(), rel=1e-12)
        assert s.loc[name, "t_layer_max_us"] == pytest.approx(rows.max(axis=1).mean(), rel=1e-12)
        assert s.loc[name, "repeats"] == repeats
        assert s.loc[name, "t_layer_min_us"] <= s.loc[name, "t_layer_us"] <= s.loc[name, "t_layer_max_us"]
    html = tmp_path / "rep"
    report.main([str(out), "-o", str(html)])
    page = (html / "index.html").read_text()
    assert "t_<wbr>layer_<wbr>min_<wbr>us" in page and "t_<wbr>layer_<wbr>max_<wbr>us" in page


def test_cost_model_has_no_spread(tmp_path):
    s = mplb.load(run(tmp_path, "model", 3)).summary()
    assert "t_layer_min_us" not in s.columns and "repeats" not in s.columns
