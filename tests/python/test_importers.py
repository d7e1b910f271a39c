"""`mplb trace import` on engine dumps written here in each engine's layout
(SGLang's expert-distribution recorder, vLLM's routed experts and EPLB state,
TensorRT-LLM's expert statistics, Megatron-Core's router trace, npz, float
loads): the trace file's counts and per-token choices against counts computed
here with plain loops from the routing that was written, on fresh random
routing; and the errors the importer promises for broken inputs."""
import base64
import io
import json
import os

import h5py
import numpy as np
import pytest
from safetensors.numpy import save_file

import torch_save_ref

from mplb_cli import SEED, mplb

print(f"# MPLB_TEST_SEED={SEED}")


def routing(r, tokens, layers, experts, k):
    """[layers, tokens, k]: k distinct experts per token, skewed popularity
    (Gumbel top-k: sampling without replacement proportional to popularity)."""
    pop = r.dirichlet(np.full(experts, 0.7), size=layers) + 1e-12
    keys = np.log(pop)[:, None, :] + r.gumbel(size=(layers, tokens, experts))
    return np.argsort(-keys, axis=-1, kind="stable")[..., :k].astype(np.int64)


def loop_counts(ids, experts):
    """[layers, tokens, k] -> [layers, experts], one slot at a time."""
    c = np.zeros((ids.shape[0], experts), np.int64)
    for layer in range(ids.shape[0]):
        for tok in ids[layer]:
            for e in tok:
                c[layer, e] += 1
    return c


def read(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out.update({k: f.attrs[k] for k in f.attrs})
    return out


def test_sglang_stat(tmp_path):
    r = np.random.default_rng(SEED)
    S, L, E, k = 5, 3, 16, 4
    want = [loop_counts(routing(r, int(r.integers(1, 40)), L, E, k), E) for _ in range(S)]
    buf = np.zeros((S + 2, L + 1, E), np.int32)    # the circular buffer's last rows never filled;
    buf[:S, 1:] = np.stack(want)                    # layer 0 dense (SGLang numbers every layer)
    pt = tmp_path / "expert_distribution_recorder_1730000000.123.pt"
    torch_save_ref.save({"rank": 0, "logical_count": buf, "average_utilization_rate_over_window": None}, pt)
    out = tmp_path / "t.h5"
    p = mplb("trace", "import", pt, "-o", out, "--top-k", k, "--phase", "decode")
    assert "2 all-zero buffer rows dropped" in p.stdout and "1 layers without routed tokens" in p.stdout
    t = read(out)
    assert np.array_equal(t["counts"], np.stack(want)) and list(t["layer_ids"]) == [1, 2, 3]
    assert t["top_k"] == k and list(t["phase"]) == [b"decode"] * S
    s = mplb("trace", "stats", out, "--json")       # the C reader takes it
    assert json.loads(s.stdout)["steps"] == S
    # k is not in a stat dump
    p = mplb("trace", "import", pt, "-o", tmp_path / "u.h5", ok=False)
    assert p.returncode == 1 and "--top-k" in p.stderr
    # a layer that saw other tokens than layer 0 of its step
    buf[1, 3, 0] += 1
    torch_save_ref.save({"rank": 0, "logical_count": buf}, pt)
    p = mplb("trace", "import", pt, "-o", tmp_path / "v.h5", "--top-k", k, ok=False)
    assert p.returncode == 1 and str(pt) in p.stderr and "logical_count[1]" in p.stderr and "layer 3" in p.stderr


def p2l_map(r, L, E, P):
    """[L, P] physical -> logical: every expert once, then random replicas, shuffled."""
    m = np.empty((L, P), np.int64)
    for layer in range(L):
        m[layer] = r.permutation(np.concatenate([np.arange(E), r.integers(0, E, P - E)]))
    return m


def to_physical(r, logical, p2l):
    """Each logical choice to one of its physical copies, at random."""
    phys = np.empty_like(logical)
    for layer in range(logical.shape[0]):
        for t in range(logical.shape[1]):
            for j in range(logical.shape[2]):
                copies = np.nonzero(p2l[layer] == logical[layer, t, j])[0]
                phys[layer, t, j] = r.choice(copies)
    return phys


@pytest.mark.parametrize("same_tokens", [True, False])
def test_sglang_per_token_two_ranks(tmp_path, same_tokens):
    r = np.random.default_rng(SEED + 1)
    L, E, P, k, passes = 3, 12, 16, 4, 4
    p2l = np.concatenate([p2l_map(r, 1, E, P), p2l_map(r, L, E, P)])    # row 0: a dense layer's (unused) map
    files, want_counts, want_ids, want_phase = [], [], [], []
    per_rank = {0: [], 1: []}
    for fid in range(passes):
        mode = 1 if fid == 0 else 2         # EXTEND then DECODE (ForwardMode)
        ids_all = []
        for rank in (0, 1):
            T = 6 if same_tokens else int(r.integers(1, 9))
            logical = routing(r, T, L, E, k)
            ids_all.append(logical)
            phys = to_physical(r, logical, p2l[1:])
            slots = np.full((L + 1, T, 8), -1, np.int32)    # _TOP_K_NUM = 8 slots, -1 unused; layer 0 dense
            slots[1:, :, :k] = phys
            gpc = np.zeros((L + 1, P), np.int32)
            for layer in range(L):
                for tok in phys[layer]:
                    for x in tok:
                        gpc[layer + 1, x] += 1
            per_rank[rank].append({"forward_pass_id": fid, "rank": rank, "gatherer_key": "primary",
                                   "input_ids": list(range(T)), "positions": list(range(T)),
                                   "extend_seq_lens": [T] if mode == 1 else None, "forward_mode": mode,
                                   "topk_ids_of_layer": slots, "misc_objects": [], "global_physical_count": gpc})
        both = np.concatenate(ids_all, axis=1)
        want_ids.append(both)
        want_counts.append(loop_counts(both, E))
        want_phase.append(b"prefill" if mode == 1 else b"decode")
    for rank in (0, 1):
        f = tmp_path / f"expert_distribution_recorder_1730000000.5_{rank}.pt"
        torch_save_ref.save({"records": per_rank[rank], "last_physical_to_logical_map": p2l}, f)
        files.append(f)
    out = tmp_path / "t.h5"
    p = mplb("trace", "import", *files, "-o", out, "--experts", E)
    t = read(out)
    assert np.array_equal(t["counts"], np.stack(want_counts)) and list(t["layer_ids"]) == [1, 2, 3]
    assert t["top_k"] == k and list(t["phase"]) == want_phase
    if same_tokens:
        assert np.array_equal(t["topk_ids"], np.stack(want_ids))
    else:
        assert "topk_ids" not in t and "different token counts" in p.stdout
    # per_pass mode: the same records without per-token ids
    for rank in (0, 1):
        for rec in per_rank[rank]:
            for key in ("topk_ids_of_layer", "input_ids", "positions", "extend_seq_lens", "forward_mode", "misc_objects"):
                rec.pop(key)
        torch_save_ref.save({"records": per_rank[rank], "last_physical_to_logical_map": p2l}, files[rank])
    mplb("trace", "import", *files, "-o", out, "--experts", E, "--top-k", k, "--force", "--format", "sglang-detail")
    t = read(out)
    assert np.array_equal(t["counts"], np.stack(want_counts)) and "topk_ids" not in t


def test_sglang_detail_mismatch_named(tmp_path):
    r = np.random.default_rng(SEED + 2)
    L, E, k = 2, 8, 2
    p2l = np.tile(np.arange(E), (L, 1))
    logical = routing(r, 5, L, E, k)
    slots = np.full((L, 5, 8), -1, np.int32)
    slots[..., :k] = logical
    slots[1, 3, 1] = slots[1, 3, 0]                   # token 3 of layer 1 picks one expert twice
    gpc = np.stack([np.bincount(slots[layer][slots[layer] >= 0], minlength=E) for layer in range(L)]).astype(np.int32)
    f = tmp_path / "d.pt"
    torch_save_ref.save({"records": [{"forward_pass_id": 7, "rank": 0, "topk_ids_of_layer": slots,
                                      "global_physical_count": gpc, "forward_mode": 1}],
                         "last_physical_to_logical_map": p2l}, f)
    p = mplb("trace", "import", f, "-o", tmp_path / "t.h5", ok=False)
    assert p.returncode == 1 and "records[0]" in p.stderr and "layer 1, token 3" in p.stderr and "twice" in p.stderr


def test_vllm_routed_npz_one_step(tmp_path):
    r = np.random.default_rng(SEED + 3)
    L, E, k = 4, 16, 2
    lens = [5, 9, 1]
    reqs = [routing(r, n, L, E, k).transpose(1, 0, 2).astype(np.int32) for n in lens]   # [T, L, k]
    np.savez(tmp_path / "routed.npz", **{f"req{i}": a for i, a in enumerate(reqs)})
    out = tmp_path / "t.h5"
    mplb("trace", "import", tmp_path / "routed.npz", "-o", out, "--experts", E, "--phase", "prefill")
    t = read(out)
    want = np.zeros((L, E), np.int64)
    for a in reqs:
        for tok in a:
            for layer in range(L):
                for e in tok[layer]:
                    want[layer, e] += 1
    assert np.array_equal(t["counts"][0], want) and t["counts"].shape == (1, L, E)
    assert t["topk_ids"].shape == (1, L, sum(lens), k)
    assert np.array_equal(t["topk_ids"][0], np.concatenate(reqs).transpose(1, 0, 2))


def test_vllm_routed_api_json_prefill_decode(tmp_path):
    r = np.random.default_rng(SEED + 4)
    L, E, k = 2, 8, 2
    prompts, gens = [4, 7], [3, 1]
    lines, arrays = [], []
    for pl, g in zip(prompts, gens):
        a = routing(r, pl + g - 1, L, E, k).transpose(1, 0, 2).astype(np.int16)   # forwarded tokens
        arrays.append(a)
        b = io.BytesIO()
        np.save(b, a)
        lines.append(json.dumps({"id": "cmpl", "choices": [{"index": 0, "text": "x", "routed_experts":
                                 base64.b64encode(b.getvalue()).decode()}],
                                 "usage": {"prompt_tokens": pl, "completion_tokens": g}}))
    (tmp_path / "resp.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "t.h5"
    mplb("trace", "import", tmp_path / "resp.jsonl", "-o", out, "--experts", E)
    t = read(out)
    # step 0: both prompts; step 1: request 0's first generated token, request 1's (its only row is
    # the prompt: completion 1 forwards nothing more); step 2: request 0's second
    want = [np.concatenate([arrays[0][:4], arrays[1][:7]]), arrays[0][4:5], arrays[0][5:6]]
    assert t["counts"].shape[0] == 3
    for s, w in enumerate(want):
        c = np.zeros((L, E), np.int64)
        for tok in w:
            for layer in range(L):
                for e in tok[layer]:
                    c[layer, e] += 1
        assert np.array_equal(t["counts"][s], c)
    assert list(t["phase"]) == [b"prefill", b"decode", b"decode"]
    lines[1] = json.dumps({"choices": [{"index": 0, "text": "x"}], "usage": {"prompt_tokens": 3}})
    (tmp_path / "resp.jsonl").write_text("\n".join(lines) + "\n")
    p = mplb("trace", "import", tmp_path / "resp.jsonl", "-o", out, "--force", ok=False)
    assert p.returncode == 1 and "resp.jsonl:2" in p.stderr and "--enable-return-routed-experts" in p.stderr


@pytest.mark.parametrize("as_torch", [False, True])
def test_vllm_eplb_window(tmp_path, as_torch):
    r = np.random.default_rng(SEED + 5)
    W, L, E, P, k = 6, 3, 10, 14, 2
    p2l = p2l_map(r, L, E, P)
    win = np.zeros((W, L, P), np.int32)
    logical_want = []
    for w in range(W):
        ids = routing(r, int(r.integers(1, 30)), L, E, k)
        logical_want.append(loop_counts(ids, E))
        win[w] = np.stack([np.bincount(to_physical(r, ids, p2l)[layer].ravel(), minlength=P) for layer in range(L)])
    step = 2     # next slot to write: rows 2.. are the oldest
    state = {"expert_load_window": np.roll(win, step, axis=0), "physical_to_logical_map": p2l,
             "expert_load_window_step": np.array(step)}
    f = tmp_path / ("eplb.pt" if as_torch else "eplb.npz")
    if as_torch:
        torch_save_ref.save(state, f)
    else:
        np.savez(f, **state)
    out = tmp_path / "t.h5"
    mplb("trace", "import", f, "-o", out, "--top-k", k, "--experts", E)
    assert np.array_equal(read(out)["counts"], np.stack(logical_want))
    # per-rank windows over each rank's local physical experts (2 ranks x 7)
    files = []
    for rank in (0, 1):
        part = dict(state, expert_load_window=state["expert_load_window"][..., 7 * rank:7 * rank + 7])
        files.append(tmp_path / f"rank{rank}.npz")
        np.savez(files[-1], **part)
    mplb("trace", "import", *files, "-o", out, "--top-k", k, "--experts", E, "--force", "--format", "vllm-eplb")
    assert np.array_equal(read(out)["counts"], np.stack(logical_want))
    p = mplb("trace", "import", files[0], "-o", out, "--top-k", k, "--force", "--format", "vllm-eplb", ok=False)
    assert p.returncode == 1 and "7 physical experts, the map 14" in p.stderr


def test_float_loads_decayed(tmp_path):
    r = np.random.default_rng(SEED + 6)
    loads = r.gamma(2.0, 30.0, size=(4, 32))          # decayed EPLB weights, not whole counts
    np.save(tmp_path / "w.npy", loads)
    out = tmp_path / "t.h5"
    mplb("trace", "import", tmp_path / "w.npy", "-o", out, "--top-k", 8, "--format", "loads")
    t = read(out)
    assert np.array_equal(t["load"][0], loads)
    assert np.array_equal(t["counts"][0], np.floor(loads + 0.5))
    assert json.loads(mplb("trace", "stats", out, "--json").stdout)["experts"] == 32
    # the C importer refuses them and says where they go
    p = mplb("trace", "import", tmp_path / "w.npy", "-o", tmp_path / "u.h5", "--top-k", 8, ok=False)
    assert "--format loads" in p.stderr
    bad = loads.copy()
    bad[2, 5] = -1
    np.save(tmp_path / "w.npy", bad)
    p = mplb("trace", "import", tmp_path / "w.npy", "-o", out, "--top-k", 8, "--format", "loads", "--force", ok=False)
    assert p.returncode == 1 and "[0, 2, 5]" in p.stderr


def test_trtllm_expert_statistic(tmp_path):
    r = np.random.default_rng(SEED + 7)
    E, k, ranks = 16, 4, 2
    iters, layers = range(100, 104), [3, 4, 6]       # MoE layers keep their model index
    d = tmp_path / "expert_statistic"
    d.mkdir()
    (d / "meta_info.json").write_text(json.dumps({"num_experts": E, "num_experts_per_token": k}))
    want = np.zeros((len(iters), len(layers), E), np.int64)
    for rank in range(ranks):
        rec = {}
        for si, it in enumerate(iters):
            T = int(r.integers(1, 30))
            ids = routing(r, T, len(layers), E, k)
            for li, layer in enumerate(layers):
                rec[f"{it}_{layer}"] = np.bincount(ids[li].ravel(), minlength=E).astype(np.int64)
                want[si, li] += loop_counts(ids[li:li + 1], E)[0]
        save_file(rec, str(d / f"rank{rank}.safetensors"))
    out = tmp_path / "t.h5"
    mplb("trace", "import", d, "-o", out)
    t = read(out)
    assert np.array_equal(t["counts"], want) and t["top_k"] == k and list(t["layer_ids"]) == layers
    # a missing (iteration, layer) tensor is named
    rec.pop("101_4")
    save_file(rec, str(d / "rank1.safetensors"))
    p = mplb("trace", "import", d, "-o", out, "--force", ok=False)
    assert p.returncode == 1 and "'101_4'" in p.stderr


def test_megatron_router_trace(tmp_path):
    r = np.random.default_rng(SEED + 8)
    E, k, steps, layers = 8, 2, 3, [0, 1, 2]
    d = tmp_path / "trace"
    d.mkdir()
    want_ids = {s: [[] for _ in layers] for s in range(steps)}
    for rank in (0, 1):
        with open(d / f"router_trace_rank{rank}.jsonl", "w") as f:
            for s in range(steps):
                T = int(r.integers(1, 6))
                ids = routing(r, T, len(layers), E, k)
                for li, layer in enumerate(layers):
                    want_ids[s][li].append(ids[li])
                    f.write(json.dumps({"step": s, "stage": "pre_dispatch", "block": "decoder", "layer": layer,
                                        "rank": rank, "num_tokens": T, "topk": k,
                                        "top_indices": ids[li].tolist()}) + "\n")
                f.write(json.dumps({"step": s, "stage": "pre_dispatch", "block": "mtp", "layer": 0, "mtp_idx": 0,
                                    "rank": rank, "num_tokens": 1, "topk": k, "top_indices": [[0, 1]]}) + "\n")
    out = tmp_path / "t.h5"
    p = mplb("trace", "import", d, "-o", out, "--experts", E)
    assert "MTP records left out" in p.stdout
    t = read(out)
    for s in range(steps):
        ids = np.stack([np.concatenate(want_ids[s][li]) for li in range(len(layers))])
        assert np.array_equal(t["counts"][s], loop_counts(ids, E))
    # one token choosing an expert twice: named by file and line
    lines = (d / "router_trace_rank1.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["top_indices"][0] = [3, 3]
    lines[0] = json.dumps(rec)
    (d / "router_trace_rank1.jsonl").write_text("\n".join(lines) + "\n")
    p = mplb("trace", "import", d, "-o", out, "--force", ok=False)
    assert p.returncode == 1 and "twice" in p.stderr and "step 0" in p.stderr


def test_npz_counts_topk_and_phase(tmp_path):
    r = np.random.default_rng(SEED + 9)
    S, L, E, k, T = 3, 2, 8, 2, 7
    ids = np.stack([routing(r, T, L, E, k) for _ in range(S)])
    np.savez(tmp_path / "x.npz", topk_ids=ids.astype(np.int32), phase=np.array(["prefill", "decode", "decode"]))
    out = tmp_path / "t.h5"
    mplb("trace", "import", tmp_path / "x.npz", "-o", out, "--experts", E)
    t = read(out)
    assert np.array_equal(t["topk_ids"], ids)
    assert np.array_equal(t["counts"], np.stack([loop_counts(ids[s], E) for s in range(S)]))
    assert list(t["phase"]) == [b"prefill", b"decode", b"decode"]


def test_unknown_format_and_torch_globals_refused(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\0" * 10)
    p = mplb("trace", "import", tmp_path / "x.bin", "-o", tmp_path / "t.h5", ok=False)
    assert p.returncode == 1 and "--format" in p.stderr
    # a torch file whose pickle calls anything but a tensor rebuild is not executed
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    with zipfile.ZipFile(tmp_path / "e.pt", "w") as zf:
        zf.writestr("e/data.pkl", pickle.dumps({"logical_count": Evil()}, protocol=2))
    p = mplb("trace", "import", tmp_path / "e.pt", "-o", tmp_path / "t.h5", "--format", "sglang-stat",
             "--top-k", 2, ok=False)
    assert p.returncode == 1 and "system" in p.stderr and "pwned" not in p.stdout


def test_csv_phase_and_license_in_c(tmp_path):
    (tmp_path / "c.csv").write_text("step,layer,expert,count\n0,0,0,2\n0,0,1,2\n1,0,1,4\n")
    mplb("trace", "import", tmp_path / "c.csv", "-o", tmp_path / "c.h5", "--top-k", 2, "--phase", "decode",
         "--license", "CC-BY-4.0")
    t = read(tmp_path / "c.h5")
    assert list(t["phase"]) == [b"decode", b"decode"] and t["license"] == b"CC-BY-4.0"
    assert np.array_equal(t["counts"][:, 0], [[2, 2], [0, 4]])
    p = mplb("trace", "import", tmp_path / "c.csv", "-o", tmp_path / "d.h5", "--top-k", 2, "--phase", "both", ok=False)
    assert p.returncode == 2 and "prefill or decode" in p.stderr
