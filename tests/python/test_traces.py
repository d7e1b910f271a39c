"""The shipped real traces hold exactly the source's numbers; synthetic
workload knobs do what they say (checked through run files)."""
import json
import os
import subprocess

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
SRC_JSON = os.path.join(ROOT, "..", "shared", "traces", "olmoe-mixtral", "counts.json")


@pytest.mark.skipif(not os.path.exists(SRC_JSON), reason="shared/traces not beside the project")
@pytest.mark.parametrize("key", ["olmoe", "mixtral"])
def test_real_traces_equal_source(key):
    data = json.load(open(SRC_JSON))
    with h5py.File(os.path.join(ROOT, "traces", "olmoe-mixtral", f"{key}.h5"), "r") as f:
        counts = f["counts"][()]
        domains = f.attrs["domains"].decode().split(",")
        assert int(f.attrs["top_k"]) == data["models"][key]["top_k"]
        assert f.attrs["license"].decode().startswith("Apache-2.0")
    topk = data["counts"][key]["topk"]
    assert domains == sorted(topk)
    for s, dom in enumerate(domains):
        for l, layer in enumerate(["0", "7", "15"]):
            want = np.zeros(counts.shape[2], np.int64)
            for e, c in topk[dom][layer].items():
                want[int(e)] = c
            np.testing.assert_array_equal(counts[s, l], want)
            # every top-k slot of every token counted once
            assert counts[s, l].sum() % data["models"][key]["top_k"] == 0


def run(tmp_path, workload, name, policies='{ "baseline" }', model='"olmoe-1b-7b"'):
    exp = tmp_path / f"{name}.lua"
    exp.write_text(f"return {{ model = {model}, cluster = {{ nodes = 2, gpus_per_node = 4 }},\n"
                   f"  workload = {workload}, policies = {policies}, seed = 5 }}\n")
    out = tmp_path / f"{name}.h5"
    subprocess.run([BIN, "run", str(exp), "-o", str(out)], check=True, capture_output=True)
    f = h5py.File(out, "r")
    return f["steps"][()], f["experts/load"][()], f


def test_prefill_decode_mix(tmp_path):
    steps, _, _ = run(tmp_path, "{ steps = 8, tokens = 2048, decode_tokens = 64, prefill_every = 4 }", "pd")
    tokens = {int(r["step"]): int(r["tokens"]) for r in steps}
    assert [tokens[s] for s in range(8)] == [2048, 64, 64, 64, 2048, 64, 64, 64]


def test_drift_moves_popularity(tmp_path):
    """With drift the per-expert load profile changes across steps; without, it stays."""
    def profile_change(drift):
        steps, load, _ = run(tmp_path, f"{{ steps = 20, tokens = 4096, families = 4, drift = {drift}, drift_period = 20, step_sigma = 0 }}",
                             f"drift{drift}")
        layer0 = load[steps["layer"] == 0].astype(float)
        p = layer0 / layer0.sum(axis=1, keepdims=True)
        return np.abs(p[:10] - p[10:20]).sum(axis=1).mean()   # half a period apart
    assert profile_change(1.0) > 2 * profile_change(0.0)


def test_layer_correlation(tmp_path):
    def corr(c):
        steps, load, _ = run(tmp_path, f"{{ steps = 2, tokens = 8192, zipf = 1.2, layer_corr = {c} }}", f"lc{c}")
        l0 = load[(steps["layer"] == 0) & (steps["step"] == 0)][0]
        l1 = load[(steps["layer"] == 1) & (steps["step"] == 0)][0]
        return np.corrcoef(l0, l1)[0, 1]
    assert corr(1.0) > 0.9
    assert abs(corr(0.0)) < 0.5


def test_src_affinity_cuts_inter_node_bytes_for_locality(tmp_path):
    steps, _, _ = run(tmp_path, "{ steps = 6, tokens = 4096, families = 2, src_affinity = 0.9, zipf = 1.2 }", "aff",
                      policies='{ "baseline", "locality" }')
    base = steps[(steps["policy"] == 0) & (steps["step"] >= 2)]["bytes_inter"].sum()
    loc = steps[(steps["policy"] == 1) & (steps["step"] >= 2)]["bytes_inter"].sum()
    assert loc < 0.9 * base
