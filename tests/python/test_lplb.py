"""policies/lplb.lua (LPLB: per-batch token split over EPLB's copies) against an
independent reference: the placement from eplb_ref.py (numpy port of DeepSeek's
eplb.py) and the batch's linear program solved by scipy's HiGHS (minimise the
largest rank load, each replicated expert's tokens split over its copies).
The run's per-rank loads must reach the LP optimum up to whole-token rounding,
never beat it, and keep every token; EPLB's even split is no better."""
import os
import subprocess
import textwrap

import h5py
import numpy as np
import pytest

import eplb_ref

scipy_optimize = pytest.importorskip("scipy.optimize")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")

E, K, R, NODES, GROUPS, RED, LAYERS = 32, 4, 8, 2, 4, 8, 2


def counts(r):
    """Distinct per-expert counts (no ties for EPLB's sorts) summing to T*K, skewed."""
    c = (r.choice(1 << 12, size=E, replace=False) * r.choice([1, 1, 1, 4, 9], size=E)).astype(np.int64)
    c = c * 8 + np.arange(E)                    # distinct after scaling
    c[np.argmax(c)] += (-c.sum()) % K
    return c


def lp_optimum(n_flex, holders, fixed):
    """min T s.t. sum_i x[j,i] = n_j, fixed_r + sum of x on r <= T, x >= 0."""
    var = [(j, r) for j, hs in enumerate(holders) for r in hs]
    nv = len(var) + 1
    c = np.zeros(nv); c[-1] = 1
    a_eq = np.zeros((len(n_flex), nv)); b_eq = np.array(n_flex, float)
    a_ub = np.zeros((R, nv)); b_ub = -np.array(fixed, float)
    for v, (j, r) in enumerate(var):
        a_eq[j, v] = 1
        a_ub[r, v] = 1
    a_ub[:, -1] = -1
    res = scipy_optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=[(0, None)] * nv,
                                 method="highs")
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("trial", range(3))
def test_lplb_reaches_lp_optimum(tmp_path, trial):
    r = np.random.default_rng(SEED + trial)
    c = np.stack([np.stack([counts(r) for _ in range(LAYERS)]) for _ in range(2)]).astype(np.int64)
    np.save(tmp_path / "c.npy", c)
    subprocess.run([BIN, "trace", "import", str(tmp_path / "c.npy"), "-o", str(tmp_path / "t.h5"), "--top-k", str(K)],
                   check=True, capture_output=True)
    exp = tmp_path / "e.lua"
    exp.write_text(textwrap.dedent(f"""
        return {{
          model = {{ layers = {LAYERS}, experts = {E}, top_k = {K}, hidden = 256, ffn = 128 }},
          cluster = {{ nodes = {NODES}, gpus_per_node = {R // NODES}, profile = "h100", expert_memory_gb = 1 }},
          workload = {{ kind = "trace", file = "{tmp_path / 't.h5'}", steps = 2 }},
          policies = {{ "baseline",
            {{ "eplb", redundant = {RED}, groups = {GROUPS}, period = 1, decay = 1.0 }},
            {{ "lplb", redundant = {RED}, groups = {GROUPS}, period = 1, decay = 1.0 }} }},
        }}"""))
    out = tmp_path / "r.h5"
    subprocess.run([BIN, "run", str(exp), "-o", str(out)], check=True, capture_output=True, cwd=ROOT)
    with h5py.File(out, "r") as f:
        steps = f["steps"][()]
        loads = f["ranks/load"][()]
        names = [n.decode() for n in f["policy/names"][()]]
    pol = {n.split("(")[0]: i for i, n in enumerate(names)}
    slots = E + RED
    for layer in range(LAYERS):
        # step 2 runs on the placement EPLB makes from step 1's loads
        phy2log, _ = eplb_ref.rebalance_experts(c[0, layer][None, :].astype(np.float32), slots, GROUPS, NODES, R)
        per = slots // R
        holders = [sorted({x // per for x in np.flatnonzero(phy2log[0] == e)}) for e in range(E)]
        n = c[1, layer]
        fixed = np.zeros(R)
        flex, hs = [], []
        for e in range(E):
            if len(holders[e]) == 1:
                fixed[holders[e][0]] += n[e]
            else:
                flex.append(n[e]); hs.append(holders[e])
        opt = lp_optimum(flex, hs, fixed)
        even = fixed.copy()
        for nj, h in zip(flex, hs):
            for q, rk in enumerate(h):       # mplb's split: copy q gets n//c + (q < n % c)
                even[rk] += nj // len(h) + (q < nj % len(h))

        def row(p):
            i = np.flatnonzero((steps["policy"] == pol[p]) & (steps["step"] == 1) & (steps["layer"] == layer))
            assert len(i) == 1
            return loads[i[0]]
        lp, ep = row("lplb"), row("eplb")
        assert lp.sum() == pytest.approx(n.sum())                 # every token computed once
        assert np.allclose(ep, even)                              # eplb: the even split over the same copies
        most = max(sum(rk in h for h in hs) for rk in range(R))   # rounding: <= one token per flexible copy
        assert opt - 1e-6 <= lp.max() <= opt + most + 0.5
        assert lp.max() <= ep.max() + 0.5
