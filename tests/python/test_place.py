"""`mplb place` (policies/eplb.lua run offline on a trace's load matrix)
against the numpy port of DeepSeek's eplb.py (eplb_ref.py): phy2log, logcnt
and log2phy as EPLB derives it, the engines' files (SGLang's
--init-expert-location JSON, TensorRT-LLM's YAML read with PyYAML) and the
rank max/mean before and after, on fresh tie-free loads summed over steps."""
import json
import os

import h5py
import numpy as np
import pytest
import yaml

import eplb_ref

from mplb_cli import ROOT, SEED, mplb

print(f"# MPLB_TEST_SEED={SEED}")


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


OLMOE = os.path.join(ROOT, "traces", "olmoe-mixtral", "olmoe.h5")


def run_olmoe(tmp_path, name, placement=None):
    pf = f'placement_file = "{placement}",' if placement else ""
    (tmp_path / f"{name}.lua").write_text(f"""return {{
  name = "{name}", model = {{ preset = "olmoe-1b-7b", layers = 3 }},
  cluster = {{ nodes = 1, gpus_per_node = 8, profile = "h100" }},
  workload = {{ kind = "trace", file = "{OLMOE}", steps = 6 }},
  policies = {{ "baseline" }}, {pf} seed = 1,
}}""")
    out = tmp_path / f"{name}.h5"
    mplb("run", tmp_path / f"{name}.lua", "-o", out)
    with h5py.File(out, "r") as f:
        return f["steps"][()]


def test_placement_file_is_the_runs_placement(tmp_path):
    """EPLB's map from `mplb place` (64 slots: a permutation, no replicas) as
    the run's initial placement: the baseline's rank imbalance per (step,
    layer) equals max/mean of the trace's counts summed per GPU under
    phy2log (every token copy counted: the trace has no per-token choices)."""
    with h5py.File(OLMOE, "r") as f:
        counts = f["counts"][()]
    mplb("place", OLMOE, "-o", tmp_path / "p.json", "--gpus", 8, "--slots", 64, "--steps", "1:7",
         "--sglang", tmp_path / "s.json", "--trtllm", tmp_path / "t.yaml")
    p2l = np.array(json.loads((tmp_path / "p.json").read_text())["phy2log"])
    rows = run_olmoe(tmp_path, "eplb_init", tmp_path / "s.json")    # SGLang's file works as well
    base = run_olmoe(tmp_path, "contiguous")
    for row, b in zip(rows, base):
        s, l = row["step"], row["layer"]
        gpu = np.array([counts[s, l, p2l[l, 8 * g:8 * g + 8]].sum() for g in range(8)], float)
        assert row["imbalance"] == pytest.approx(gpu.max() / gpu.mean(), rel=1e-9)
        cont = counts[s, l].reshape(8, 8).sum(1).astype(float)
        assert b["imbalance"] == pytest.approx(cont.max() / cont.mean(), rel=1e-9)
    # TensorRT-LLM's YAML (libyaml), its layers listed out of order: the same placement
    y = yaml.safe_load((tmp_path / "t.yaml").read_text())
    y["initial_global_assignments"] = dict(reversed(list(y["initial_global_assignments"].items())))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(y))
    assert np.array_equal(run_olmoe(tmp_path, "trt", tmp_path / "r.yaml")["imbalance"], rows["imbalance"])
    # EPLB placed on the summed loads of these steps: better on the sum than contiguous
    assert rows["imbalance"].mean() < base["imbalance"].mean()


def test_placement_file_errors(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"phy2log": [list(range(64))] * 2}))
    (tmp_path / "x.lua").write_text(f"""return {{
  model = {{ preset = "olmoe-1b-7b", layers = 3 }}, cluster = {{ gpus_per_node = 8 }},
  workload = {{ kind = "trace", file = "{OLMOE}", steps = 1 }}, policies = {{ "baseline" }},
  placement_file = "{tmp_path / 'bad.json'}",
}}""")
    p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", ok=False)
    assert p.returncode == 1 and "bad.json" in p.stderr and "2 rows" in p.stderr
    row = list(range(64))
    row[5] = 4                                   # expert 5 has no slot
    (tmp_path / "bad.json").write_text(json.dumps({"physical_to_logical_map": [row] * 3}))
    p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
    assert p.returncode == 1 and "physical_to_logical_map[0] gives logical expert 5 no slot" in p.stderr
    (tmp_path / "bad.json").write_text(json.dumps({"physical_to_logical_map": [row[:60]] * 3}))
    p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
    assert p.returncode == 1 and "60 slots" in p.stderr
    (tmp_path / "x.lua").write_text((tmp_path / "x.lua").read_text().replace("bad.json", "bad.yaml"))
    (tmp_path / "bad.yaml").write_text("num_slots: 64\ninitial_global_assignments:\n  0: [1, 2\n")
    p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
    assert p.returncode == 1 and "bad.yaml" in p.stderr and "not YAML" in p.stderr
    full = list(range(64))
    cases = {   # YAML text -> what the error must say (file:line and the field)
        "initial_global_assignments:\n  0: %s\n  0: %s\n  1: %s\n" % (full, full, full): "bad.yaml:3: initial_global_assignments lists layer 0 twice",
        "num_slots: 72\ninitial_global_assignments:\n  0: %s\n  1: %s\n  2: %s\n" % (full, full, full): "bad.yaml:3: initial_global_assignments[0] lists 64 slots, num_slots says 72",
        "initial_global_assignments:\n  0: %s\n  1: [0, x]\n  2: %s\n" % (full, full): "bad.yaml:3: initial_global_assignments[1][1] is not an expert id",
    }
    for text, want in cases.items():
        (tmp_path / "bad.yaml").write_text(text)
        p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
        assert p.returncode == 1 and want in p.stderr, (want, p.stderr)
    (tmp_path / "x.lua").write_text((tmp_path / "x.lua").read_text().replace("bad.yaml", "bad.json"))
    cases = {   # JSON rows -> error (a row that is an object once overran a buffer)
        json.dumps({"phy2log": [{str(i): i for i in range(64)}] + [full] * 2}): "phy2log[0] is not a list",
        json.dumps({"phy2log": [full, full[:63], full[:62]]}): "phy2log[1] lists 63 slots",
        json.dumps({"phy2log": [full, full[:63] + [1e10], full]}): "phy2log[1][63] is not an expert id",
        json.dumps({"phy2log": [full, full[:63] + [2.5], full]}): "phy2log[1][63] is not an expert id",
    }
    for text, want in cases.items():
        (tmp_path / "bad.json").write_text(text)
        p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
        assert p.returncode == 1 and want in p.stderr, (want, p.stderr)
    # a map over the memory budget is refused at open, naming the file, layer and rank
    (tmp_path / "bad.json").write_text(json.dumps({"phy2log": [full] * 3}))
    (tmp_path / "x.lua").write_text((tmp_path / "x.lua").read_text().replace(
        "gpus_per_node = 8 }", "gpus_per_node = 8, expert_memory_gb = 0.05 }"))
    p = mplb("run", tmp_path / "x.lua", "-o", tmp_path / "x.h5", "--force", ok=False)
    assert p.returncode == 1 and "placement_file" in p.stderr and "bad.json: layer 1 puts" in p.stderr \
        and "over cluster.expert_memory_gb = 0.05" in p.stderr, p.stderr


MEMCHECK = """-- fails the run unless obs.rank_mem is the expected count of expert copies per rank
local P = { params = { l1 = "", l2 = "", l3 = "" } }
function P.decide(obs, act)
  local got = {}
  for r = 1, obs.ranks do got[r] = string.format("%.0f", obs.rank_mem[r] / obs.expert_bytes) end
  local s = table.concat(got, ",")
  if s ~= P.params["l" .. obs.layer] then error("layer " .. obs.layer .. ": rank_mem copies " .. s) end
end
return P
"""


def test_placement_file_rank_mem(tmp_path):
    """obs.rank_mem under a 72-slot map: each rank's distinct experts (two
    slots of one expert on a rank count once) times the bf16 expert bytes."""
    mplb("place", OLMOE, "-o", tmp_path / "p.json", "--gpus", 8, "--slots", 72)
    p2l = np.array(json.loads((tmp_path / "p.json").read_text())["phy2log"])
    want = {f"l{l + 1}": ",".join(str(len(set(p2l[l, 9 * g:9 * g + 9]))) for g in range(8)) for l in range(3)}
    assert any(w != ",".join(["8"] * 8) for w in want.values())
    (tmp_path / "memcheck.lua").write_text(MEMCHECK)
    params = ", ".join(f'{k} = "{v}"' for k, v in want.items())
    (tmp_path / "m.lua").write_text(f"""return {{
  model = {{ preset = "olmoe-1b-7b", layers = 3 }}, cluster = {{ gpus_per_node = 8 }},
  workload = {{ kind = "trace", file = "{OLMOE}", steps = 2 }},
  policies = {{ {{ "{tmp_path / 'memcheck.lua'}", {params} }} }},
  placement_file = "{tmp_path / 'p.json'}",
}}""")
    mplb("run", tmp_path / "m.lua", "-o", tmp_path / "m.h5")


def test_place_hostile_policy_is_an_error_not_an_abort(tmp_path):
    """rebalance_experts returning a table whose __len raises: a clear error
    (exit 1), not a Lua panic outside a protected call (it aborted, exit 134)."""
    (tmp_path / "bad.lua").write_text("""local P = {}
function P.decide(obs, act) end
function P.rebalance_experts(w, nr, ng, nn, ngpu)
  return setmetatable({}, { __len = function() error("boom") end })
end
return P""")
    p = mplb("place", OLMOE, "-o", tmp_path / "p.json", "--policy", tmp_path / "bad.lua", "--gpus", 4, ok=False)
    assert p.returncode == 1 and "rebalance_experts must return phy2log" in p.stderr, (p.returncode, p.stderr)
