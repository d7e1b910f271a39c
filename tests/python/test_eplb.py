"""EPLB as mplb's eplb policy runs it (mplb.rebalance_experts, through
tests/eplb_tool) against a numpy port of DeepSeek's eplb.py (eplb_ref.py):
DeepSeek's published example, and random tie-free loads at several shapes."""
import os
import subprocess

import numpy as np
import pytest

import eplb_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
TOOL = os.path.join(os.path.dirname(BIN), "tests", "eplb_tool")
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")


def run_tool(weight, replicas, groups, nodes, gpus):
    w = np.asarray(weight)
    head = f"{w.shape[0]} {w.shape[1]} {replicas} {groups} {nodes} {gpus} 0\n"
    body = "\n".join(" ".join(repr(float(x)) for x in row) for row in w)
    out = subprocess.run([TOOL], input=head + body + "\n", capture_output=True, text=True, check=True).stdout.split("\n")
    L = w.shape[0]
    p2l = np.array([[int(x) for x in out[i].split()] for i in range(L)])
    cnt = np.array([[int(x) for x in out[L + i].split()] for i in range(L)])
    return p2l, cnt


def test_published_example():
    w = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
         [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]
    want = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
            [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
    ref, _ = eplb_ref.rebalance_experts(np.array(w), 16, 4, 2, 8)
    assert ref.tolist() == want          # the reference reproduces DeepSeek's README
    got, cnt = run_tool(w, 16, 4, 2, 8)
    assert got.tolist() == want
    assert cnt.sum(-1).tolist() == [16, 16]


def tie_free_loads(r, layers, experts):
    """Distinct integer token counts below 2^16: group sums are exact in float32
    and no two experts share a load, so the original's unstable sort cannot
    matter."""
    return np.stack([r.choice(1 << 16, size=experts, replace=False) for _ in range(layers)]).astype(np.float32)


# (experts, replicas, groups, nodes, gpus): hierarchical, global (groups not a
# multiple of nodes), DeepSeek-V3 prefill-like (256 experts, 8 groups, 288 slots)
SHAPES = [(12, 16, 4, 2, 8), (64, 80, 8, 2, 16), (60, 64, 3, 2, 8), (256, 288, 8, 4, 32), (256, 320, 8, 8, 64)]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_loads_match_reference(shape):
    E, NP, G, N, GPU = shape
    r = np.random.default_rng(SEED + E + NP)
    w = tie_free_loads(r, 6, E)
    ref, ref_cnt = eplb_ref.rebalance_experts(w, NP, G, N, GPU)
    got, cnt = run_tool(w, NP, G, N, GPU)
    assert np.array_equal(got, ref)
    assert np.array_equal(cnt, ref_cnt)
