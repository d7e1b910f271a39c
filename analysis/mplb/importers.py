"""Routing dumps of serving and training engines -> mplb trace files.

``python -m mplb.importers INPUT... -o OUT.h5 [--format F] [--phase P] ...``
(what ``mplb trace import`` runs for every format but CSV and integer NPY).
Each reader returns a _Routing: per step, per layer expert counts (or float
loads), optionally the per-token expert choices, the phase and where each step
came from (the record named in errors). Layouts and the upstream source files
they follow are in docs/trace-file.md.
"""
import argparse
import base64
import glob
import io
import json
import os
import re
import sys

import numpy as np

from . import torchfile

FORMATS = ("sglang-stat", "sglang-detail", "vllm-routed", "vllm-eplb", "trtllm", "megatron", "npz", "loads")


class ImportError_(ValueError):
    """A malformed or unsupported input: the message names the file and the record."""


def _fail(msg):
    raise ImportError_(msg)


class _Routing:
    """What a reader found. counts [S, L, E] (int64) or loads [S, L, E] (float64);
    topk: per step an int array [L, T_s, k] or None; where: per step a text
    naming the input record; phase: per step "prefill"/"decode" or None."""

    def __init__(self, path, fmt):
        self.path, self.fmt = path, fmt
        self.counts = self.loads = None
        self.topk = None
        self.where = []
        self.phase = None
        self.top_k = None
        self.layer_ids = None
        self.model = ""
        self.notes = []


# ---- helpers ---------------------------------------------------------------

def _int_array(a, what):
    a = np.asarray(a)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        _fail(f"{what}: expected integers, got {a.dtype}")
    return a.astype(np.int64)


def _scatter_logical(phys, p2l, E, what):
    """Per-layer physical counts [..., L, P] -> logical [..., L, E] through the
    physical->logical map [L, P] (SGLang's and vLLM's layout)."""
    phys = np.asarray(phys)
    if p2l.ndim != 2 or phys.shape[-2:] != p2l.shape:
        _fail(f"{what}: physical counts {phys.shape[-2:]} do not match the physical->logical map {p2l.shape}")
    if p2l.min() < 0 or p2l.max() >= E:
        _fail(f"{what}: physical->logical map has ids outside 0..{E - 1}")
    out = np.zeros(phys.shape[:-1] + (E,), dtype=np.float64 if phys.dtype.kind == "f" else np.int64)
    L = p2l.shape[0]
    for layer in range(L):
        np.add.at(out[..., layer, :], (Ellipsis, p2l[layer]), phys[..., layer, :])
    return out


def _logical_ids(ids, p2l, layer, what):
    """Physical expert ids of one layer (-1 = no slot) -> logical ids."""
    if ids.size and (ids.max() >= p2l.shape[1] or ids.min() < -1):
        _fail(f"{what}: physical expert id outside -1..{p2l.shape[1] - 1}")
    out = np.where(ids >= 0, p2l[layer][np.clip(ids, 0, None)], -1)
    return out


def _phase_of(s):
    if s not in ("prefill", "decode"):
        _fail(f"--phase must be prefill or decode, not {s!r}")
    return s


# ---- SGLang: ExpertDistributionRecorder dumps (python/sglang/srt/eplb/expert_distribution.py)

def read_sglang_stat(paths, args):
    """stat / stat_approx mode: {"rank", "logical_count": [buffered steps, layers,
    logical experts] int32, "average_utilization_rate_over_window"}."""
    (path,) = _one(paths, "sglang-stat")
    obj = torchfile.load(path)
    if not isinstance(obj, dict) or "logical_count" not in obj:
        _fail(f"{path}: not an SGLang stat dump (no 'logical_count')")
    lc = _int_array(obj["logical_count"], f"{path}: logical_count")
    if lc.ndim != 3:
        _fail(f"{path}: logical_count has shape {lc.shape}, expected [steps, layers, experts]")
    r = _Routing(path, "sglang-stat")
    moe = [int(layer) for layer in np.nonzero(lc.sum(axis=(0, 2)))[0]]
    if 0 < len(moe) < lc.shape[1]:
        r.notes.append(f"{lc.shape[1] - len(moe)} layers without routed tokens left out (dense layers)")
        r.layer_ids = moe
        lc = lc[:, moe]
    keep = [s for s in range(lc.shape[0]) if lc[s].any()]
    if len(keep) < lc.shape[0]:
        r.notes.append(f"{lc.shape[0] - len(keep)} all-zero buffer rows dropped (a circular buffer not yet filled)")
    if not keep:
        _fail(f"{path}: logical_count is all zeros (nothing was recorded)")
    r.counts = lc[keep]
    r.where = [f"logical_count[{s}]" for s in keep]
    return r


def read_sglang_detail(paths, args):
    """per_pass / per_token mode, one file per rank:
    {"records": [{"forward_pass_id", "rank", "gatherer_key", "global_physical_count": [L, P],
                  per_token also "input_ids", "positions", "extend_seq_lens", "forward_mode",
                  "topk_ids_of_layer": [L, T, 8] physical ids, -1 unused}],
     "last_physical_to_logical_map": [L, P]}.
    Ranks' records of one forward pass are added up (data-parallel attention:
    each rank routes its own tokens)."""
    passes, p2l, first = {}, None, paths[0]
    for path in paths:
        obj = torchfile.load(path)
        if not isinstance(obj, dict) or "records" not in obj or "last_physical_to_logical_map" not in obj:
            _fail(f"{path}: not an SGLang per_pass/per_token dump (needs 'records' and 'last_physical_to_logical_map')")
        m = _int_array(obj["last_physical_to_logical_map"], f"{path}: last_physical_to_logical_map")
        if p2l is not None and not np.array_equal(m, p2l):
            _fail(f"{path}: last_physical_to_logical_map differs from {first}'s")
        p2l = m
        for i, rec in enumerate(obj["records"]):
            what = f"{path}: records[{i}]"
            if not isinstance(rec, dict) or "global_physical_count" not in rec or "forward_pass_id" not in rec:
                _fail(f"{what}: needs forward_pass_id and global_physical_count")
            passes.setdefault(int(rec["forward_pass_id"]), []).append((what, rec))
    if p2l.ndim != 2:
        _fail(f"{first}: last_physical_to_logical_map has shape {p2l.shape}, expected [layers, physical]")
    E = args.experts or int(p2l.max()) + 1
    r = _Routing(first, "sglang-detail")
    # layers without any routed token in any pass: dense layers (SGLang numbers every layer,
    # e.g. DeepSeek's first_k_dense_replace ones) -- left out, the rest keep their ids
    busy = sum(_int_array(rec["global_physical_count"], w).reshape(p2l.shape[0], -1).sum(-1)
               for recs in passes.values() for w, rec in recs)
    moe = [int(layer) for layer in np.nonzero(busy)[0]]
    if not moe:
        _fail(f"{first}: no forward pass with routed tokens")
    if len(moe) < p2l.shape[0]:
        r.notes.append(f"{p2l.shape[0] - len(moe)} layers without routed tokens left out (dense layers)")
        r.layer_ids = moe
    counts, topk, where, phase = [], [], [], []
    per_token = None
    for fid in sorted(passes):
        recs = passes[fid]
        what = recs[0][0] + (f" (forward_pass_id {fid}, {len(recs)} ranks)" if len(recs) > 1 else f" (forward_pass_id {fid})")
        phys = sum(_int_array(rec["global_physical_count"], w) for w, rec in recs)
        c = _scatter_logical(phys, p2l, E, what)[moe]
        has_ids = all("topk_ids_of_layer" in rec for _, rec in recs)
        if per_token is None:
            per_token = has_ids
        elif per_token != has_ids:
            _fail(f"{what}: some records have topk_ids_of_layer and some not")
        if not c.any() and not has_ids:
            continue       # an idle pass (data-parallel padding)
        if has_ids:
            ids = np.concatenate([_int_array(rec["topk_ids_of_layer"], w) for w, rec in recs], axis=1)
            if ids.ndim != 3 or ids.shape[0] != p2l.shape[0]:
                _fail(f"{what}: topk_ids_of_layer has shape {ids.shape}, expected [layers, tokens, slots]")
            if ids.shape[1] == 0:
                continue
            logical = np.stack([_logical_ids(ids[layer], p2l, layer, what) for layer in moe])
            k = int((logical[0, 0] >= 0).sum())
            if k == 0 or (logical[..., :k] < 0).any() or (logical[..., k:] >= 0).any():
                _fail(f"{what}: topk_ids_of_layer: every token needs the same number of experts in its first slots")
            logical = logical[..., :k]
            from_ids = np.zeros_like(c)
            for layer in range(logical.shape[0]):
                np.add.at(from_ids[layer], logical[layer].ravel(), 1)
            if not np.array_equal(from_ids, c):
                layer = moe[int(np.nonzero((from_ids != c).any(-1))[0][0])]
                _fail(f"{what}: layer {layer}: global_physical_count does not match topk_ids_of_layer")
            topk.append(logical)
        counts.append(c)
        where.append(what)
        modes = {int(rec["forward_mode"]) for _, rec in recs if rec.get("forward_mode") is not None}
        # ForwardMode (model_executor/forward_batch_info.py): EXTEND=1, DECODE=2, MIXED=3
        phase.append("decode" if modes == {2} else "prefill" if modes else None)
    if not counts:
        _fail(f"{first}: no forward pass with routed tokens")
    r.counts = np.stack(counts)
    r.topk = topk if per_token else None
    r.where = where
    r.phase = phase if all(p is not None for p in phase) else None
    if per_token:
        r.top_k = int(topk[0].shape[2])
    return r


# ---- vLLM ---------------------------------------------------------------------

def _decode_npy_b64(s, what):
    try:
        return np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False)
    except Exception as e:       # noqa: BLE001 -- any decoding failure is the record's fault
        _fail(f"{what}: routed_experts is not a base64-encoded .npy ({e})")


def read_vllm_routed(paths, args):
    """Per-request routed experts (--enable-return-routed-experts):
    CompletionOutput.routed_experts, an int array [tokens, layers, top_k]
    (vllm/outputs.py), one row per forwarded token (prompt + completion - 1).
    Inputs: .npy (one request), .npz (one array per request), or the OpenAI
    API responses as JSON / JSON lines, where choices[i].routed_experts is a
    base64-encoded .npy and usage.prompt_tokens splits prefill from decode.
    Without prompt lengths every request's tokens form one step (requests of
    different lengths in one batch); with them (JSON), step 0 is every prompt
    (prefill) and step j the j-th forwarded generated token of every request
    still running (decode)."""
    reqs = []          # (what, array [T, L, k], prompt_tokens or None)
    for path in paths:
        if path.endswith(".npy"):
            reqs.append((path, np.load(path, allow_pickle=False), None))
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                for key in z.files:
                    reqs.append((f"{path}: array '{key}'", z[key], None))
        else:
            with open(path) as f:
                text = f.read()
            try:
                docs = [json.loads(text)]
            except json.JSONDecodeError:
                docs = []
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            docs.append((n, json.loads(line)))
                        except json.JSONDecodeError as e:
                            _fail(f"{path}:{n}: not JSON ({e.msg})")
            else:
                docs = [(1, d) for d in (docs[0] if isinstance(docs[0], list) else docs)]
            for n, d in docs:
                what = f"{path}:{n}"
                if not isinstance(d, dict) or not isinstance(d.get("choices"), list):
                    _fail(f"{what}: expected an API response with 'choices'")
                prompt = (d.get("usage") or {}).get("prompt_tokens")
                for c, ch in enumerate(d["choices"]):
                    if "routed_experts" not in ch or ch["routed_experts"] is None:
                        _fail(f"{what}: choices[{c}] has no routed_experts (server started without "
                              "--enable-return-routed-experts?)")
                    reqs.append((f"{what}: choices[{c}]", _decode_npy_b64(ch["routed_experts"], f"{what}: choices[{c}]"),
                                 prompt))
    if not reqs:
        _fail(f"{paths[0]}: no requests")
    L = k = None
    for what, a, _ in reqs:
        a = np.asarray(a)
        if a.ndim != 3:
            _fail(f"{what}: routed experts of shape {a.shape}, expected [tokens, layers, top_k]")
        if L is None:
            L, k = a.shape[1], a.shape[2]
        elif a.shape[1:] != (L, k):
            _fail(f"{what}: {a.shape[1]} layers x top-{a.shape[2]}, the first request has {L} x top-{k}")
        _int_array(a, what)
    r = _Routing(paths[0], "vllm-routed")
    r.top_k = k
    prompts = [p for _, _, p in reqs]
    if all(p is not None for p in prompts):
        steps = [("prefill", [(w, a[:p]) for w, a, p in reqs if p > 0], "prompts")]
        longest = max(a.shape[0] - p for _, a, p in reqs)
        for j in range(longest):
            rows = [(w, a[p + j: p + j + 1]) for w, a, p in reqs if a.shape[0] > p + j]
            steps.append(("decode", rows, f"generated token {j + 1}"))
    else:
        steps = [(None, [(w, a) for w, a, _ in reqs], "all requests")]
    r.topk, r.where, phase = [], [], []
    for ph, rows, label in steps:
        if not rows:
            continue
        ids = np.concatenate([np.asarray(a, np.int64) for _, a in rows], axis=0)   # [T, L, k]
        r.topk.append(np.ascontiguousarray(ids.transpose(1, 0, 2)))
        r.where.append(f"{label} ({len(rows)} requests, first {rows[0][0]})")
        phase.append(ph)
    r.phase = phase if all(p is not None for p in phase) else None
    return r


def read_vllm_eplb(paths, args):
    """EPLB load windows (vllm/distributed/eplb/eplb_state.py, EplbState):
    expert_load_window [window, layers, physical] (tokens per physical expert
    per forward pass) with physical_to_logical_map [layers, physical], saved
    with np.savez or torch.save under those names; optional
    expert_load_window_step (the circular buffer's next slot: rows are
    reordered oldest first). vLLM keeps each rank's window over its local
    physical experts: several files (rank order) are joined along the
    physical axis."""
    path = paths[0]
    wins, p2l = [], None
    for fp in paths:      # one file per EP rank (its local physical experts), in rank order, or one global
        obj = _npz_or_torch(fp)
        for key in ("expert_load_window", "physical_to_logical_map"):
            if key not in obj:
                _fail(f"{fp}: no '{key}' (a vLLM EPLB state needs expert_load_window and physical_to_logical_map)")
        win = np.asarray(obj["expert_load_window"])
        m = _int_array(obj["physical_to_logical_map"], f"{fp}: physical_to_logical_map")
        if p2l is not None and not np.array_equal(m, p2l):
            _fail(f"{fp}: physical_to_logical_map differs from {path}'s")
        p2l = m
        if win.ndim != 3:
            _fail(f"{fp}: expert_load_window has shape {win.shape}, expected [window, layers, physical]")
        if "expert_load_window_step" in obj:
            win = np.roll(win, -int(np.asarray(obj["expert_load_window_step"])), axis=0)
        if wins and win.shape[:2] != wins[0].shape[:2]:
            _fail(f"{fp}: expert_load_window is {win.shape}, {path}'s {wins[0].shape}")
        wins.append(win)
    win = np.concatenate(wins, axis=2)
    if win.shape[2] != p2l.shape[1]:
        _fail(f"{path}: the windows hold {win.shape[2]} physical experts, the map {p2l.shape[1]}"
              + (" (give every rank's file, in rank order)" if len(paths) > 1 or win.shape[2] < p2l.shape[1] else ""))
    E = args.experts or int(p2l.max()) + 1
    r = _Routing(path, "vllm-eplb")
    c = _scatter_logical(win, p2l, E, f"{path}: expert_load_window")
    keep = [s for s in range(c.shape[0]) if c[s].any()]
    if len(keep) < c.shape[0]:
        r.notes.append(f"{c.shape[0] - len(keep)} all-zero window rows dropped (window not yet filled)")
    _set_counts_or_loads(r, c[keep], path)
    r.where = [f"expert_load_window[{s}]" for s in keep]
    return r


# ---- TensorRT-LLM: tensorrt_llm/_torch/expert_statistic.py ---------------------

def read_trtllm(paths, args):
    """EXPERT_STATISTIC_PATH folder: meta_info.json {"num_experts",
    "num_experts_per_token"} and rank{r}.safetensors, each tensor "{iter}_{layer}"
    the int64 bincount of that rank's routed expert ids. Ranks are added up
    (examples/ep_load_balancer/utils.py does the same)."""
    from safetensors.numpy import load_file
    (path,) = _one(paths, "trtllm")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    meta_path = os.path.join(folder, "meta_info.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except OSError as e:
        _fail(f"{meta_path}: cannot open: {e.strerror}")
    except json.JSONDecodeError as e:
        _fail(f"{meta_path}:{e.lineno}: not JSON ({e.msg})")
    for key in ("num_experts", "num_experts_per_token"):
        if not isinstance(meta.get(key), int) or meta[key] < 1:
            _fail(f"{meta_path}: field '{key}' must be a positive integer")
    E, k = meta["num_experts"], meta["num_experts_per_token"]
    files = sorted(glob.glob(os.path.join(folder, "rank*.safetensors")))
    if not files:
        _fail(f"{folder}: no rank*.safetensors files")
    stat, keys0 = {}, None
    for fp in files:
        try:
            tensors = load_file(fp)
        except Exception as e:    # noqa: BLE001 -- the safetensors package's own message
            _fail(f"{fp}: not a safetensors file ({e})")
        if keys0 is None:
            keys0 = (fp, set(tensors))
        elif set(tensors) != keys0[1]:
            miss = sorted(keys0[1] - set(tensors)) or sorted(set(tensors) - keys0[1])
            _fail(f"{fp}: tensor '{miss[0]}' is in one of {keys0[0]} and {fp} only (every rank records the same "
                  "iterations and layers)")
        for key, v in tensors.items():
            m = re.fullmatch(r"(\d+)_(\d+)", key)
            if not m:
                _fail(f"{fp}: tensor '{key}' is not named ITER_LAYER")
            v = _int_array(v, f"{fp}: tensor '{key}'")
            if v.shape != (E,):
                _fail(f"{fp}: tensor '{key}' has shape {v.shape}, meta_info.json says {E} experts")
            it = (int(m.group(1)), int(m.group(2)))
            stat[it] = stat.get(it, 0) + v
    iters = sorted({i for i, _ in stat})
    layers = sorted({layer for _, layer in stat})
    for i in iters:
        for layer in layers:
            if (i, layer) not in stat:
                _fail(f"{folder}: iteration {i} has no tensor for layer {layer} ('{i}_{layer}')")
    r = _Routing(folder, "trtllm")
    r.counts = np.stack([np.stack([stat[(i, layer)] for layer in layers]) for i in iters])
    r.where = [f"iteration {i} (tensors '{i}_LAYER')" for i in iters]
    r.top_k, r.layer_ids = k, layers
    return r


# ---- Megatron-Core: megatron/core/transformer/moe/router_trace.py ------------------

def read_megatron(paths, args):
    """--moe-routing-trace-path: router_trace_rank{r}.jsonl, one record per
    (step, block, layer): {"step", "stage", "block", "layer", "rank",
    "num_tokens", "topk", "top_indices": [[...] per token]}. Records of one
    (step, layer) from several ranks or micro-batches are concatenated; MTP
    blocks are left out (they are not the decoder's layers)."""
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "router_trace_rank*.jsonl"))) if os.path.isdir(p) else [p]
    cells, k, mtp = {}, None, 0
    for fp in files:
        with open(fp) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                what = f"{fp}:{n}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    _fail(f"{what}: not JSON ({e.msg})")
                for key in ("step", "layer", "topk", "top_indices"):
                    if key not in rec:
                        _fail(f"{what}: record has no '{key}'")
                if rec.get("block", "decoder") != "decoder":
                    mtp += 1
                    continue
                ids = np.asarray(rec["top_indices"])
                if ids.size == 0:
                    continue
                ids = _int_array(ids, what)
                if ids.ndim != 2 or ids.shape[1] != rec["topk"]:
                    _fail(f"{what}: top_indices is {ids.shape}, expected [num_tokens, topk = {rec['topk']}]")
                if "num_tokens" in rec and ids.shape[0] != rec["num_tokens"]:
                    _fail(f"{what}: num_tokens says {rec['num_tokens']}, top_indices has {ids.shape[0]} rows")
                if k is None:
                    k = ids.shape[1]
                elif ids.shape[1] != k:
                    _fail(f"{what}: topk {ids.shape[1]}, earlier records {k}")
                cells.setdefault((int(rec["step"]), int(rec["layer"])), []).append((what, ids))
    if not cells:
        _fail(f"{paths[0]}: no decoder routing records")
    steps = sorted({s for s, _ in cells})
    layers = sorted({layer for _, layer in cells})
    r = _Routing(files[0], "megatron")
    r.top_k, r.layer_ids = k, layers
    r.topk, r.where = [], []
    for s in steps:
        per = []
        for layer in layers:
            if (s, layer) not in cells:
                _fail(f"{files[0]}: step {s} has no record for layer {layer}")
            per.append(np.concatenate([ids for _, ids in cells[(s, layer)]]))
        first = cells[(s, layers[0])][0][0]
        for layer, ids in zip(layers, per):
            if ids.shape[0] != per[0].shape[0]:
                _fail(f"{cells[(s, layer)][0][0]}: step {s}, layer {layer} routes {ids.shape[0]} tokens, layer "
                      f"{layers[0]} {per[0].shape[0]}: every layer of a step must see the same tokens")
        r.topk.append(np.stack(per))
        r.where.append(f"step {s} (first record {first})")
    if mtp:
        r.notes.append(f"{mtp} MTP records left out")
    return r


# ---- plain arrays ------------------------------------------------------------------

def read_npz(paths, args):
    """An .npz with 'counts' [steps, layers, experts] (integers) or 'loads'
    ([layers, experts] or [steps, layers, experts], floats allowed: decayed EPLB
    loads), optionally 'topk_ids' [steps, layers, tokens, k] and 'phase'
    (strings, one per step)."""
    (path,) = _one(paths, "npz")
    z = _npz_or_torch(path)
    r = _Routing(path, "npz")
    if "topk_ids" in z:
        ids = _int_array(z["topk_ids"], f"{path}: topk_ids")
        if ids.ndim != 4:
            _fail(f"{path}: topk_ids has shape {ids.shape}, expected [steps, layers, tokens, k]")
        r.topk = list(ids)
        r.top_k = ids.shape[3]
    key = "counts" if "counts" in z else "loads" if "loads" in z else None
    if key is None and r.topk is None:
        _fail(f"{path}: no 'counts', 'loads' or 'topk_ids' array (found: {', '.join(sorted(z)) or 'none'})")
    if key:
        a = np.asarray(z[key])
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            _fail(f"{path}: {key} has shape {a.shape}, expected [layers, experts] or [steps, layers, experts]")
        _set_counts_or_loads(r, a, f"{path}: {key}")
    n = len(r.topk) if r.topk is not None else (r.counts if r.counts is not None else r.loads).shape[0]
    r.where = [f"step {s}" for s in range(n)]
    if "phase" in z:
        ph = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(z["phase"]).ravel()]
        if len(ph) != n or any(p not in ("prefill", "decode") for p in ph):
            _fail(f"{path}: phase must hold {n} strings 'prefill' or 'decode'")
        r.phase = ph
    return r


def read_loads(paths, args):
    """A float .npy load matrix ([layers, experts] or [steps, layers, experts]):
    decayed EPLB weights that need not be whole token counts."""
    (path,) = _one(paths, "loads")
    if path.endswith(".npz"):
        return read_npz(paths, args)
    a = np.load(path, allow_pickle=False)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        _fail(f"{path}: shape {a.shape}, expected [layers, experts] or [steps, layers, experts]")
    r = _Routing(path, "loads")
    _set_counts_or_loads(r, a, path)
    r.where = [f"step {s}" for s in range(a.shape[0])]
    return r


def _set_counts_or_loads(r, a, what):
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a < 0).any():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a) | (a < 0))[0])
            _fail(f"{what}: element {list(idx)} = {a[idx]} is not a finite non-negative load")
        if (a == np.floor(a)).all():
            r.counts = a.astype(np.int64)
        else:
            r.loads = a.astype(np.float64)
    else:
        r.counts = _int_array(a, what)


def _npz_or_torch(path):
    if zipfile_is_torch(path):
        obj = torchfile.load(path)
        if not isinstance(obj, dict):
            _fail(f"{path}: a torch.save file holding {type(obj).__name__}, expected a dict of tensors")
        return obj
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        _fail(f"{path}: not an .npz file ({e})")


def zipfile_is_torch(path):
    import zipfile
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/data.pkl") and n.count("/") == 1 for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _one(paths, fmt):
    if len(paths) != 1:
        _fail(f"{fmt}: one input expected, got {len(paths)}")
    return paths


READERS = {
    "sglang-stat": read_sglang_stat, "sglang-detail": read_sglang_detail, "vllm-routed": read_vllm_routed,
    "vllm-eplb": read_vllm_eplb, "trtllm": read_trtllm, "megatron": read_megatron, "npz": read_npz,
    "loads": read_loads,
}


def detect(paths):
    """The format of the inputs, from their names and content; None if unknown."""
    p = paths[0]
    if os.path.isdir(p):
        if os.path.exists(os.path.join(p, "meta_info.json")):
            return "trtllm"
        if glob.glob(os.path.join(p, "router_trace_rank*.jsonl")):
            return "megatron"
        return None
    base = os.path.basename(p)
    if base == "meta_info.json" or p.endswith(".safetensors"):
        return "trtllm"
    if p.endswith(".jsonl") or p.endswith(".json"):
        try:
            with open(p) as f:
                first = json.loads(f.readline() or "null")
        except (OSError, json.JSONDecodeError):
            first = None
        if isinstance(first, dict) and "top_indices" in first:
            return "megatron"
        return "vllm-routed"
    if zipfile_is_torch(p):
        obj = torchfile.load(p)
        if isinstance(obj, dict):
            if "logical_count" in obj:
                return "sglang-stat"
            if "records" in obj:
                return "sglang-detail"
            if "expert_load_window" in obj:
                return "vllm-eplb"
            if "counts" in obj or "loads" in obj or "topk_ids" in obj:
                return "npz"
        return None
    if p.endswith(".npz"):
        try:
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
        except (OSError, ValueError):
            return None
        if "expert_load_window" in keys:
            return "vllm-eplb"
        if keys & {"counts", "loads", "topk_ids"}:
            return "npz"
        return "vllm-routed"
    if p.endswith(".npy"):
        return "loads"
    return None


# ---- checks and output -----------------------------------------------------------

def check(r, top_k, experts):
    """The promises of docs/trace-file.md; returns (counts, topk or None, E, k)."""
    k = r.top_k or top_k
    if r.top_k and top_k and top_k != r.top_k:
        _fail(f"{r.path}: the input routes top-{r.top_k}, --top-k says {top_k}")
    if not k:
        _fail(f"{r.path}: {r.fmt} does not record k: pass --top-k K")
    if not 1 <= k <= 64:
        _fail(f"{r.path}: top_k = {k} outside 1..64")
    if r.topk is not None:
        L = r.topk[0].shape[0]
        E = experts or max(int(t.max()) for t in r.topk if t.size) + 1
        counts = np.zeros((len(r.topk), L, E), np.int64)
        for s, ids in enumerate(r.topk):
            if ids.ndim != 3 or ids.shape[0] != L or ids.shape[2] != k:
                _fail(f"{r.path}: {r.where[s]}: choices of shape {ids.shape}, expected [{L} layers, tokens, {k}]")
            bad = (ids < 0) | (ids >= E)
            if bad.any():
                layer, tok, j = (int(x) for x in np.argwhere(bad)[0])
                _fail(f"{r.path}: {r.where[s]}: layer {layer}, token {tok}: expert id {ids[layer, tok, j]} "
                      f"outside 0..{E - 1}")
            srt = np.sort(ids, axis=-1)
            dup = (srt[..., 1:] == srt[..., :-1]).any(-1)
            if dup.any():
                layer, tok = (int(x) for x in np.argwhere(dup)[0])
                _fail(f"{r.path}: {r.where[s]}: layer {layer}, token {tok} chose expert "
                      f"{int(srt[layer, tok][1:][srt[layer, tok][1:] == srt[layer, tok][:-1]][0])} twice")
            for layer in range(L):
                counts[s, layer] = np.bincount(ids[layer].ravel(), minlength=E)
        if r.counts is not None and not np.array_equal(r.counts, counts):
            _fail(f"{r.path}: counts do not match the per-token choices")
        return counts, r.topk, E, k
    a = r.counts if r.counts is not None else r.loads
    E = experts or a.shape[2]
    if a.shape[2] != E:
        _fail(f"{r.path}: {a.shape[2]} experts, --experts says {E}")
    if k > E:
        _fail(f"{r.path}: top_k = {k} > {E} experts")
    if r.counts is not None:
        sums = r.counts.sum(-1)
        for s in range(sums.shape[0]):
            if (sums[s] != sums[s, 0]).any():
                layer = int(np.nonzero(sums[s] != sums[s, 0])[0][0])
                name = (lambda i: r.layer_ids[i]) if r.layer_ids is not None else (lambda i: i)
                _fail(f"{r.path}: {r.where[s]}: layer {name(layer)} counts {sums[s, layer]} slots, layer {name(0)} "
                      f"{sums[s, 0]}: "
                      "every layer of a step must see the same tokens")
            if sums[s, 0] % k:
                _fail(f"{r.path}: {r.where[s]}: {sums[s, 0]} slots per layer is not tokens x top_k = {k}")
        if (r.counts > np.iinfo(np.int32).max).any():
            _fail(f"{r.path}: a count exceeds int32")
        return r.counts, None, E, k
    return np.floor(r.loads + 0.5).astype(np.int64), None, E, k


def write(out, r, counts, topk, k, force, model, license_):
    import h5py
    if os.path.exists(out) and not force:
        _fail(f"{out}: file exists (use --force to overwrite)")
    d = os.path.dirname(out)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.create_dataset("counts", data=counts.astype(np.int32), compression="gzip", chunks=(1,) + counts.shape[1:])
        if topk is not None and len({t.shape[1] for t in topk}) == 1:
            f.create_dataset("topk_ids", data=np.stack(topk).astype(np.int32), compression="gzip")
        elif topk is not None:
            r.notes.append("per-token choices not kept: steps have different token counts (counts are)")
        if r.loads is not None:
            f.create_dataset("load", data=r.loads)
        f.attrs["top_k"] = np.int32(k)
        f.attrs["model"] = np.bytes_(model or r.model)
        f.attrs["source"] = np.bytes_(f"imported from {r.path} ({r.fmt})"[:500])
        f.attrs["license"] = np.bytes_(license_)
        f.attrs["format"] = np.bytes_("mplb-trace-1")
        if r.phase is not None:
            f.attrs["phase"] = np.array([p.encode() for p in r.phase], dtype="S8")
        if r.layer_ids is not None:
            f.attrs["layer_ids"] = np.asarray(r.layer_ids, np.int32)
    os.replace(tmp, out)


def import_files(paths, out, fmt=None, phase=None, top_k=None, experts=None, model="", license_="", force=False):
    """Convert; returns the _Routing (with notes) and the written counts."""
    for p in paths:
        if not os.path.exists(p):
            _fail(f"{p}: no such file or folder")
    fmt = fmt or detect(paths)
    if fmt is None:
        _fail(f"{paths[0]}: format not recognised: pass --format ({', '.join(FORMATS)})")
    if fmt not in READERS:
        _fail(f"--format {fmt}: unknown (known: {', '.join(FORMATS)})")

    class A:
        pass
    args = A()
    args.experts = experts
    r = READERS[fmt](paths, args)
    if phase:
        r.phase = [_phase_of(phase)] * len(r.where)
    counts, topk, E, k = check(r, top_k, experts)
    write(out, r, counts, topk, k, force, model, license_)
    return r, counts


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mplb trace import", description="engine routing dumps -> mplb trace")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--format", choices=FORMATS)
    ap.add_argument("--phase", choices=("prefill", "decode"))
    ap.add_argument("--top-k", type=int)
    ap.add_argument("--experts", type=int)
    ap.add_argument("--model", default="")
    ap.add_argument("--license", default="")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    try:
        r, counts = import_files(a.inputs, a.output, a.format, a.phase, a.top_k, a.experts, a.model, a.license,
                                 a.force)
    except (ImportError_, torchfile.TorchFileError) as e:
        print(f"mplb: {e}", file=sys.stderr)
        return 1
    S, L, E = counts.shape
    print(f"wrote {a.output}: {S} steps x {L} layers x {E} experts ({r.fmt}"
          f"{', float loads' if r.loads is not None else ''}{', per-token choices' if r.topk is not None else ''})")
    for n in r.notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
