"""`mplb place` (policies/eplb.lua run offline on a trace's load matrix)
against the numpy port of DeepSeek's eplb.py (eplb_ref.py): phy2log, logcnt
and log2phy as EPLB derives it, the engines' files (SGLang's
--init-expert-location JSON, TensorRT-LLM's YAML read with PyYAML) and the
rank max/mean before and after, on fresh tie-free loads summed over steps."""
import json
import os
import subprocess

import h5py
import numpy as np
import pytest
import yaml

import eplb_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")


def mplb(*args, ok=True):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "analysis"))
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    if ok:
        assert p.returncode == 0, p.stderr + p.stdout
    return p


def write_trace(path, counts, k, load=None, layer_ids=None):
    with h5py.File(path, "w") as f:
        f["counts"] = counts.astype(np.int32)
        if load is not None:
            f["load"] = load
        f.attrs["top_k"] = np.int32(k)
        if layer_ids is not None:
            f.attrs["layer_ids"] = np.asarray(layer_ids, np.int32)


def ref_log2phy(p2l, rank, cnt):
    """EPLB's: log2phy[l, e, rank] = physical slot, -1 padded to the max count."""
    L, P = p2l.shape
    m = int(cnt.max())
    out = np.full((L, cnt.shape[1], m), -1, np.int64)
    for l in range(L):
        for x in range(P):
            out[l, p2l[l, x], rank[l, x]] = x
    return out


def rank_ratio(w, p2l, cnt, gpus):
    per = p2l.shape[0] // gpus
    g = np.array([sum(w[p2l[x]] / cnt[p2l[x]] for x in range(r * per, (r + 1) * per)) for r in range(gpus)])
    return g.max() / g.mean()


# (experts, slots, groups, nodes, gpus): hierarchical; global (groups not a multiple of nodes)
SHAPES = [(12, 16, 4, 2, 8), (64, 80, 8, 2, 16), (60, 64, 3, 2, 8), (32, 32, 4, 1, 8)]


@pytest.mark.parametrize("shape", SHAPES)
def test_place_matches_reference(tmp_path, shape):
    E, NP, G, N, GPU = shape
    r = np.random.default_rng(SEED + E + NP)
    L, S, k = 3, 4, 4
    # distinct per-layer totals below 2^16 (tie-free, exact in float32), split over steps
    total = np.stack([r.choice(1 << 16, size=E, replace=False) for _ in range(L)])
    counts = np.zeros((S, L, E), np.int64)
    for l in range(L):
        for e in range(E):
            cuts = np.sort(r.integers(0, total[l, e] + 1, S - 1))
            counts[:, l, e] = np.diff(np.concatenate([[0], cuts, [total[l, e]]]))
    layer_ids = [3, 4, 7]
    write_trace(tmp_path / "t.h5", counts, k, layer_ids=layer_ids)
    out = tmp_path / "p.json"
    mplb("place", tmp_path / "t.h5", "-o", out, "--slots", NP, "--groups", G, "--nodes", N, "--gpus", GPU,
         "--sglang", tmp_path / "s.json", "--trtllm", tmp_path / "t.yaml")
    w = counts.sum(0).astype(np.float32)
    if G % N == 0:
        p2l, rank, cnt = eplb_ref.rebalance_hierarchical(w, NP, G, N, GPU)
    else:
        p2l, rank, cnt = eplb_ref.rebalance_hierarchical(w, NP, 1, 1, GPU)
    got = json.loads(out.read_text())
    assert np.array_equal(got["phy2log"], p2l)
    assert np.array_equal(got["logcnt"], cnt)
    assert np.array_equal(got["log2phy"], ref_log2phy(p2l, rank, cnt))
    assert got["layer_ids"] == layer_ids and got["num_physical_experts"] == NP
    for l in range(L):
        assert got["rank_max_over_mean_after"][l] == pytest.approx(rank_ratio(w[l].astype(np.float64), p2l[l], cnt[l], GPU), rel=1e-5)
        per = -(-E // GPU)
        g = [w[l, q * per:(q + 1) * per].astype(np.float64).sum() for q in range(GPU)]
        assert got["rank_max_over_mean_before"][l] == pytest.approx(max(g) / np.mean(g), rel=1e-5)
    assert json.loads((tmp_path / "s.json").read_text()) == {"physical_to_logical_map": p2l.tolist()}
    y = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert y["num_slots"] == NP and y["layer_updates_per_iter"] == 0
    assert y["initial_global_assignments"] == {lid: p2l[i].tolist() for i, lid in enumerate(layer_ids)}


def test_place_float_loads_and_step_range(tmp_path):
    r = np.random.default_rng(SEED + 1)
    S, L, E = 5, 2, 16
    load = r.permutation(np.arange(1, S * L * E + 1)).reshape(S, L, E) + 0.25   # distinct, not whole counts
    write_trace(tmp_path / "t.h5", np.floor(load + 0.5), 2, load=load)
    mplb("place", tmp_path / "t.h5", "-o", tmp_path / "p.json", "--slots", 24, "--gpus", 4, "--steps", "2:4")
    w = load[1:3].sum(0).astype(np.float32)
    p2l, _, _ = eplb_ref.rebalance_hierarchical(w, 24, 1, 1, 4)
    assert np.array_equal(json.loads((tmp_path / "p.json").read_text())["phy2log"], p2l)


def test_place_errors(tmp_path):
    write_trace(tmp_path / "t.h5", np.ones((1, 2, 10), np.int64) * 4, 2)
    p = mplb("place", tmp_path / "t.h5", "-o", tmp_path / "p.json", "--slots", 12, "--gpus", 8, ok=False)
    assert p.returncode == 1 and "multiple of --gpus" in p.stderr
    p = mplb("place", tmp_path / "t.h5", "-o", tmp_path / "p.json", "--policy", "lis", ok=False)
    assert p.returncode == 1 and "rebalance_experts" in p.stderr
    mplb("place", tmp_path / "t.h5", "-o", tmp_path / "p.json", "--gpus", 2)
    p = mplb("place", tmp_path / "t.h5", "-o", tmp_path / "p.json", "--gpus", 2, ok=False)
    assert p.returncode == 1 and "--force" in p.stderr
