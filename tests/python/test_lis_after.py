"""/steps.lis_after: the LIS after a policy's plan (R&Q's measure), held to a
numpy recomputation from the routing counts the run file keeps
(/experts/load) and the replicas a test policy makes, on fresh random
routing; the baseline's equals the routing's LIS and R&Q's never exceeds it."""
import os
import subprocess

import h5py
import numpy as np
import pytest

import mplb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))

# Replicate the m busiest experts (ties: lower index) onto the c-1 ranks after their home.
TOPREP = """
local P = { params = { m = 2, c = 2 } }
function P.decide(obs, act)
  local n = mplb.values(obs.expert_load)
  local home = mplb.values(obs.expert_rank)
  local order = {}
  for e = 1, obs.experts do order[e] = e end
  table.sort(order, function(a, b) if n[a] ~= n[b] then return n[a] > n[b] end return a < b end)
  for i = 1, P.params.m do
    local e = order[i]
    for j = 1, P.params.c - 1 do act:replicate(e, (home[e] - 1 + j) % obs.ranks + 1) end
  end
end
return P
"""


def expected(counts, tokens, k, m, c):
    E = counts.size
    order = np.lexsort((np.arange(E), -counts))
    per_copy = counts.astype(np.int64).copy()
    per_copy[order[:m]] = -(-per_copy[order[:m]] // c)        # ceil(n / c): the largest copy's share
    return E * per_copy.max() / (tokens * k)


@pytest.mark.parametrize("seed", [int(s) for s in np.random.default_rng().integers(1, 10**6, size=2)])
def test_lis_after_matches_numpy(tmp_path, seed):
    rng = np.random.default_rng(seed)
    E, R, k = int(rng.choice([8, 16, 24])), int(rng.choice([2, 4])), int(rng.integers(1, 4))
    m, c = int(rng.integers(1, 4)), int(rng.integers(2, R + 1))
    tokens = int(rng.integers(1, 3000))
    (tmp_path / "toprep.lua").write_text(TOPREP)
    (tmp_path / "exp.lua").write_text(f"""return {{
  name = "lis_after", model = {{ name = "t", layers = 2, experts = {E}, top_k = {k}, hidden = 256, ffn = 128 }},
  cluster = {{ nodes = 1, gpus_per_node = {R}, profile = "h100", expert_memory_gb = 100 }},
  workload = {{ steps = 3, tokens = {tokens}, zipf = {rng.uniform(0.2, 1.6):.3f} }},
  policies = {{ "baseline", {{ "toprep.lua", m = {m}, c = {c} }}, {{ "lis", bound = 1.1 }} }},
  seed = {seed},
}}""")
    out = tmp_path / "run.h5"
    subprocess.run([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out)], check=True, capture_output=True)
    with h5py.File(out, "r") as f:
        st, load = f["steps"][()], f["experts/load"][()]
    assert len(st) == 3 * 2 * 3
    for i, row in enumerate(st):
        n = load[i]
        lis = E * n.max() / (row["tokens"] * k)
        assert row["lis"] == pytest.approx(lis, rel=1e-12)
        if row["policy"] == 0:
            assert row["lis_after"] == row["lis"]
        elif row["policy"] == 1:
            assert row["lis_after"] == pytest.approx(expected(n, row["tokens"], k, m, c), rel=1e-12)
        else:
            assert row["lis_after"] <= row["lis"] + 1e-12
    s = mplb.load(out).summary()
    assert "lis_after" in s.columns


def test_lis_after_zero_tokens(tmp_path):
    (tmp_path / "exp.lua").write_text("""return {
  name = "empty", model = { name = "t", layers = 1, experts = 8, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 2, profile = "h100" },
  workload = { steps = 1, tokens = 0 }, policies = { "baseline", "lis" }, seed = 1,
}""")
    out = tmp_path / "run.h5"
    subprocess.run([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out)], check=True, capture_output=True)
    with h5py.File(out, "r") as f:
        st = f["steps"][()]
    assert (st["lis_after"] == 0).all() and (st["lis"] == 0).all()


def test_lis_calib_freezes_the_plan(tmp_path):
    """lis with calib = n (R&Q's calibration set): from step n on, every layer's
    plan is the one the first n steps' mean statistics give, whatever the batch;
    without calib the plan follows the batch."""
    rng = np.random.default_rng()
    n_cal, seed = int(rng.integers(1, 3)), int(rng.integers(1, 10**6))
    (tmp_path / "exp.lua").write_text(f"""return {{
  name = "calib", model = {{ name = "t", layers = 2, experts = 16, top_k = 2, hidden = 256, ffn = 128 }},
  cluster = {{ nodes = 1, gpus_per_node = 4, profile = "h100" }},
  workload = {{ steps = 6, tokens = 2048, families = 4, drift = 1.0, drift_period = 3, zipf = 1.2 }},
  policies = {{ "baseline", {{ "lis", bound = 1.0, max_replicas = 3, calib = {n_cal} }}, {{ "lis", bound = 1.0, max_replicas = 3 }} }},
  seed = {seed},
}}""")
    out = tmp_path / "run.h5"
    subprocess.run([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out)], check=True, capture_output=True)
    with h5py.File(out, "r") as f:
        st, prec, load = f["steps"][()], f["experts/precision"][()], f["experts/load"][()]
    for layer in (0, 1):
        rows = lambda pol: [i for i in range(len(st)) if st[i]["policy"] == pol and st[i]["layer"] == layer]
        cal, free = rows(1), rows(2)
        frozen = [prec[i] for i in cal[n_cal - 1:]]
        assert all((p == frozen[0]).all() for p in frozen)
        # the calibrated plan is what the mean shares of steps 0..n-1 give: the same as the
        # uncalibrated policy's at step 0 when n = 1
        if n_cal == 1:
            assert (prec[cal[0]] == prec[free[0]]).all() and st[cal[0]]["lis_after"] == st[free[0]]["lis_after"]
        # the batches differ (drifting families), so the free policy's plans change
        assert len({load[i].tobytes() for i in free}) > 1


def drop_field(path, dset, field):
    """Rewrite a compound dataset without one field, as a file from before it was added."""
    with h5py.File(path, "r+") as f:
        old = f[dset]
        data, attrs = old[()], dict(old.attrs)
        kept = [n for n in data.dtype.names if n != field]
        new = np.empty(data.shape, dtype=[(n, data.dtype[n]) for n in kept])
        for n in kept:
            new[n] = data[n]
        chunks, comp = old.chunks, old.compression
        del f[dset]
        d = f.create_dataset(dset, data=new, maxshape=(None,), chunks=chunks, compression=comp)
        for key, v in attrs.items():
            d.attrs[key] = v


def test_resume_of_a_file_without_lis_after(tmp_path):
    """A run file from before /steps had lis_after, resumed: its old rows say
    'not recorded' (NaN), never a 0 that reads as a measurement; new rows have it."""
    import signal
    import time
    # a policy slow enough (a busy loop per decide) that an interrupt lands mid-run
    (tmp_path / "slow.lua").write_text("""local P = {}
function P.decide(obs, act) local x = 0; for i = 1, 3000000 do x = x + i end end
return P""")
    (tmp_path / "exp.lua").write_text("""return {
  name = "old", model = { name = "t", layers = 2, experts = 16, top_k = 2, hidden = 256, ffn = 128 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = "h100" },
  workload = { steps = 60, tokens = 2048 }, policies = { "slow.lua", "lis" }, seed = 3,
}""")
    out = tmp_path / "run.h5"
    p = subprocess.Popen([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    with h5py.File(out, "r") as f:
        n_old = len(f["steps"])
    if n_old == 0 or n_old == 60 * 2 * 2:
        pytest.skip(f"the interrupt came too early or too late ({n_old} rows)")
    drop_field(out, "steps", "lis_after")
    subprocess.run([BIN, "run", str(tmp_path / "exp.lua"), "-o", str(out), "--resume"], check=True,
                   capture_output=True)
    with h5py.File(out, "r") as f:
        st = f["steps"][()]
    assert len(st) == 60 * 2 * 2
    kept = (n_old // 4) * 4          # resume keeps whole steps
    assert np.isnan(st["lis_after"][:kept]).all()
    assert np.isfinite(st["lis_after"][kept:]).all() and (st["lis_after"][kept:] > 0).all()
