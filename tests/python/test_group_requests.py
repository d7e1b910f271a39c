"""experiments/repro/placement/group_requests.py: the request grouping behind the
placement card. The capacity-bounded nearest-centroid assignment against an
independent replay of its rule (pairs nearest first, equal requests per node);
k-means separates two domains on disjoint experts without their labels; the
traces it writes hold the same requests in both orders, sum to tokens x k per
(step, layer), and k distinct experts per token."""
import importlib.util
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

pytest.importorskip("scipy")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "repro", "placement", "group_requests.py")
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")
spec = importlib.util.spec_from_file_location("group_requests", SCRIPT)
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)


def test_assign_capacity_and_greedy_order():
    r = np.random.default_rng(SEED)
    for _ in range(20):
        vec, cent = r.normal(size=(6, 3)), r.normal(size=(3, 3))
        node = gr.assign(vec, cent, 2)
        assert np.bincount(node, minlength=3).tolist() == [2, 2, 2]
        # greedy by distance: replay it independently
        d = ((vec[:, None] - cent[None]) ** 2).sum(-1)
        want, room = [-1] * 6, [2, 2, 2]
        for _, m, c in sorted((d[m, c], m, c) for m in range(6) for c in range(3)):
            if want[m] < 0 and room[c]:
                want[m], room[c] = c, room[c] - 1
        assert node.tolist() == want


def test_well_separated_requests_cluster_by_domain():
    r = np.random.default_rng(SEED + 1)
    E, L, k = 16, 2, 2
    p = np.full((2, L, E), 1e-3)
    p[0, :, :8] = 1; p[1, :, 8:] = 1            # two domains on disjoint experts
    p /= p.sum(-1, keepdims=True)
    dom = r.integers(2, size=40)
    v = gr.vectors(gr.draw(r, p, dom, 32, k), E)
    _, lab = gr.kmeans2(v, 2, minit="++", seed=SEED % (1 << 31))
    agree = max((lab == dom).mean(), (lab != dom).mean())
    assert agree == 1.0


def test_traces_same_requests(tmp_path):
    subprocess.run([sys.executable, SCRIPT, os.path.join(ROOT, "traces", "olmoe-mixtral", "olmoe.h5"), str(tmp_path),
                    "--steps", "2", "--requests", "8", "--req-tokens", "16", "--nodes", "2", "--gpus-per-node", "2",
                    "--profile", "32", "--seed", str(SEED % 1000)], check=True, capture_output=True)
    with h5py.File(tmp_path / "arrival.trace.h5") as a, h5py.File(tmp_path / "kmeans.trace.h5") as b:
        ia, ib = a["topk_ids"][()], b["topk_ids"][()]
        assert np.array_equal(a["counts"][()], b["counts"][()])
        assert (a["counts"][()].sum(-1) == 8 * 16 * 8).all()
        for s in range(2):      # the same requests (16-token blocks), reordered
            ra = sorted(ia[s, :, i * 16:(i + 1) * 16].tobytes() for i in range(8))
            rb = sorted(ib[s, :, i * 16:(i + 1) * 16].tobytes() for i in range(8))
            assert ra == rb
        srt = np.sort(ia, axis=-1)
        assert (np.diff(srt, axis=-1) > 0).all()      # k distinct experts per token
