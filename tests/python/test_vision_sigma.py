"""workload.vision_sigma: a prefill step's vision popularity is the static
base times exp(sigma * z), z fresh standard normals per (step, layer). Held to
that closed form: across steps, the centred log-counts of each expert vary
with variance sigma^2 * (1 - 1/E) (plus a sampling noise of ~1/n), and not at
all beyond sampling noise with sigma = 0; with and without the fitted text
model's own fluctuation (zipf unset / set)."""
import os
import subprocess

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))


def run(tmp_path, sigma, zipf, seed):
    zip_line = f"zipf = {zipf}," if zipf is not None else ""
    (tmp_path / "exp.lua").write_text(f"""return {{
  name = "vsig", model = {{ name = "t", layers = 2, experts = 16, top_k = 1, hidden = 64, ffn = 64 }},
  cluster = {{ nodes = 1, gpus_per_node = 2, profile = "h100" }},
  workload = {{ steps = 40, tokens = 60000, vision_frac = 1.0, vision_zipf = 0.5, vision_sigma = {sigma}, {zip_line} }},
  policies = {{ "baseline" }}, seed = {seed},
}}""")
    out = tmp_path / "run.h5"
    subprocess.run([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out), "--force"], check=True, capture_output=True)
    with h5py.File(out, "r") as f:
        st, load = f["steps"][()], f["experts/load"][()].astype(float)
    return st, load


@pytest.mark.parametrize("zipf", [None, 1.0])
def test_vision_fluctuation_matches_lognormal(tmp_path, zipf):
    rng = np.random.default_rng()
    sigma, E = float(rng.uniform(0.3, 0.8)), 16
    seed = int(rng.integers(1, 10**6))
    for s, expect in ((sigma, sigma**2 * (1 - 1 / E)), (0.0, 0.0)):
        st, load = run(tmp_path, s, zipf, seed)
        for layer in (0, 1):
            n = load[st["layer"] == layer]                   # [steps, E]
            assert (n > 20).all()
            clr = np.log(n) - np.log(n).mean(axis=1, keepdims=True)
            var = clr.var(axis=0, ddof=1).mean()             # pooled over experts
            noise = (1 / n).mean()                           # multinomial sampling, ~1/n per log count
            if expect == 0:
                assert var < 4 * noise
            else:
                assert var - noise == pytest.approx(expect, rel=0.25), (s, var, noise)
