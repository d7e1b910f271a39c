"""policies/shadow.lua (FasterMoE-style shadowing) against a numpy reference:
every expert above ratio x the fair share of a rank (up to max_shadow, busiest
first) gets a copy on every rank and its tokens split as mplb's split rule
(copy 0 = home, then the ranks in order, n//c + (i < n % c)); the others stay
home on the contiguous placement. Per-rank loads of the run must match; the
first step pays the copies' transfer, a later step with the same set does not."""
import os
import subprocess
import textwrap

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
SEED = int(os.environ.get("MPLB_TEST_SEED", np.random.SeedSequence().entropy % (1 << 32)))
print(f"# MPLB_TEST_SEED={SEED}")


def reference(n, R, k, ratio, max_shadow):
    E = len(n)
    fair = n.sum() / R          # tokens * k / R
    home = np.repeat(np.arange(R), E // R)
    load = np.zeros(R)
    shadow = [e for e in np.argsort(-n, kind="stable")[:max_shadow] if n[e] > ratio * fair]
    for e in range(E):
        if e in shadow:
            ranks = [home[e]] + [r for r in range(R) if r != home[e]]
            for i, r in enumerate(ranks):
                load[r] += n[e] // R + (i < n[e] % R)
        else:
            load[home[e]] += n[e]
    return load, shadow


@pytest.mark.parametrize("trial", range(3))
def test_shadow_loads(tmp_path, trial):
    r = np.random.default_rng(SEED + trial)
    E, K, R, L = 32, 2, 8, 2
    n = (r.pareto(1.2, size=E) * 50).astype(np.int64) + r.permutation(E)   # distinct, heavy-tailed
    n[0] += (-n.sum()) % K
    c = np.broadcast_to(n, (2, L, E)).copy()
    np.save(tmp_path / "c.npy", c)
    subprocess.run([BIN, "trace", "import", str(tmp_path / "c.npy"), "-o", str(tmp_path / "t.h5"), "--top-k", str(K)],
                   check=True, capture_output=True)
    ratio, ms = [0.5, 1.0, 2.0][trial], 3
    (tmp_path / "e.lua").write_text(textwrap.dedent(f"""
        return {{
          model = {{ layers = {L}, experts = {E}, top_k = {K}, hidden = 256, ffn = 128 }},
          cluster = {{ nodes = 1, gpus_per_node = {R}, profile = "h100", expert_memory_gb = 1 }},
          workload = {{ kind = "trace", file = "{tmp_path / 't.h5'}", steps = 2 }},
          policies = {{ "baseline", {{ "shadow", ratio = {ratio}, max_shadow = {ms} }} }},
        }}"""))
    subprocess.run([BIN, "run", str(tmp_path / "e.lua"), "-o", str(tmp_path / "r.h5")], check=True,
                   capture_output=True, cwd=ROOT)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        st, loads = f["steps"][()], f["ranks/load"][()]
    want, shadow = reference(n, R, K, ratio, ms)
    rows = np.flatnonzero(st["policy"] == 1)
    assert len(rows) == 2 * L
    for i in rows:
        assert np.allclose(loads[i], want)
    if shadow:   # the broadcast is charged once: step 0 slower than step 1 (same routing)
        t = {s: st["t_layer_us"][rows][st["step"][rows] == s].sum() for s in (0, 1)}
        assert t[0] > t[1]
