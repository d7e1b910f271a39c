"""bench/eplb: DeepSeek's EPLB on the DeepSeek-V3 shape (58 MoE layers, 256
experts in 8 groups, 32 redundant -> 288 slots; 4 nodes x 8 GPUs, the
prefill deployment DeepSeek describes), mplb (policies/eplb.lua's
mplb.rebalance_experts, via tests/eplb_tool) next to the numpy port of
DeepSeek's eplb.py (tests/python/eplb_ref.py), same loads, same run.
Thread CPU time; each round times both, best of 3 each; the table gives the
median over rounds. The placements are checked equal first."""
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import eplb_ref  # noqa: E402

TOOL = os.path.join(ROOT, "build", "tests", "eplb_tool")
LAYERS, E, NP, G, N, GPU = 58, 256, 288, 8, 4, 32
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5

r = np.random.default_rng(1)
# Zipf-like token counts per expert (16k tokens x top-8 per layer), distinct
w = np.stack([r.permutation(np.round(16384 * 8 * (np.arange(1, E + 1) ** -1.0) / np.sum(np.arange(1, E + 1) ** -1.0)
                                    + np.arange(E) * 1e-3)) for _ in range(LAYERS)]).astype(np.float32)
head = f"{LAYERS} {E} {NP} {G} {N} {GPU} 3\n"
body = "\n".join(" ".join(repr(float(x)) for x in row) for row in w) + "\n"

ref_p2l, _ = eplb_ref.rebalance_experts(w, NP, G, N, GPU)
ratios, ours, refs = [], [], []
for _ in range(ROUNDS):
    out = subprocess.run([TOOL], input=head + body, capture_output=True, text=True, check=True).stdout.split("\n")
    got = np.array([[int(x) for x in out[i].split()] for i in range(LAYERS)])
    assert np.array_equal(got, ref_p2l), "placements differ"
    us = float([ln for ln in out if ln.startswith("us_per_rebalance")][0].split()[1])
    best = 1e30
    for _ in range(3):
        t0 = time.thread_time()
        eplb_ref.rebalance_experts(w, NP, G, N, GPU)
        best = min(best, time.thread_time() - t0)
    ours.append(us)
    refs.append(best * 1e6)
    ratios.append(best * 1e6 / us)
print(f"# mplb bench/eplb: {LAYERS} layers x {E} experts -> {NP} slots, {G} groups, {N} nodes, {GPU} GPUs; "
      f"thread CPU time, median of {ROUNDS} rounds; placements identical")
print(f"{'impl':<28} {'ms_per_rebalance':>16}")
print(f"{'mplb (mplb.rebalance_experts)':<28} {np.median(ours) / 1e3:16.3f}")
print(f"{'numpy port of eplb.py':<28} {np.median(refs) / 1e3:16.3f}")
print(f"speedup over numpy: {np.median(ratios):.1f}x")
