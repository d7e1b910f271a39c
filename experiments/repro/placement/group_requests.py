"""Requests from real OLMoE routing, grouped onto nodes two ways, as mplb traces.

Routing source: traces/olmoe-mixtral/olmoe.h5 (OLMoE-1B-7B, 64 experts, top-8,
decoder layers 0/7/15; per text domain the top-k counts of 208,896 real tokens;
Apache-2.0, allenai/OLMoE). It holds no per-request data, so a request is drawn
as: a domain d uniformly among the trace's six, then for each of its tokens and
each layer l, 8 distinct experts sampled from d's real per-layer distribution
(successive sampling without replacement, by the Gumbel top-k trick).

Grouping (the study's workload-aware micro-batch grouping, arXiv 2604.23150):
  arrival  requests fill the ranks in arrival order (no grouping: the default);
  kmeans   k-means (scipy.cluster.vq.kmeans2, k = nodes, k-means++ start) over
           the activation vectors of a separate profiling set of requests
           (per layer the request's expert-slot shares, concatenated); then
           every step's requests go to the node of their nearest centroid,
           at most requests/nodes per node (pairs taken nearest first), and
           inside a node to its GPUs in turn.
The domain labels are never given to the clustering; the purity of the
clusters against them is reported. Both traces hold the same requests per
step, only their order (= source rank) differs; tokens are in rank order, so
mplb (token i of T starts on rank i*R/T) sees each rank's requests.
usage: group_requests.py OLMOE.h5 OUTDIR --steps S --requests M --req-tokens L
                         --nodes N --gpus-per-node G [--profile P] [--seed X]"""
import argparse
import json
import os

import h5py
import numpy as np
from scipy.cluster.vq import kmeans2


def draw(rng, p, domains, tokens, k):
    """topk ids [requests, layers, tokens, k] for requests of the given domains."""
    logp = np.log(np.maximum(p, 1e-300))                 # [D, L, E]
    M, L, E = len(domains), p.shape[1], p.shape[2]
    g = rng.gumbel(size=(M, L, tokens, E)) + logp[domains][:, :, None, :]
    return np.argpartition(-g, k - 1, axis=-1)[..., :k].astype(np.int32)


def vectors(ids, E):
    """per request and layer the share of its slots per expert, concatenated."""
    M, L = ids.shape[:2]
    v = np.zeros((M, L, E))
    for m in range(M):
        for l in range(L):
            v[m, l] = np.bincount(ids[m, l].ravel(), minlength=E)
    return (v / v.sum(axis=2, keepdims=True)).reshape(M, L * E)


def assign(vec, cent, cap):
    """node of each request: nearest centroid first, at most cap per node."""
    d = ((vec[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)
    node = np.full(len(vec), -1)
    room = np.full(len(cent), cap)
    for flat in np.argsort(d, axis=None, kind="stable"):
        m, c = divmod(int(flat), len(cent))
        if node[m] < 0 and room[c] > 0:
            node[m], room[c] = c, room[c] - 1
    return node


def write(path, ids, k, src, note):
    S, L, T = ids.shape[:3]
    E = 64
    counts = np.zeros((S, L, E), np.int32)
    for s in range(S):
        for l in range(L):
            counts[s, l] = np.bincount(ids[s, l].ravel(), minlength=E)
    with h5py.File(path, "w") as f:
        f.create_dataset("counts", data=counts, compression="gzip")
        f.create_dataset("topk_ids", data=ids, compression="gzip")
        f.attrs["top_k"] = np.int32(k)
        f.attrs["model"] = np.bytes_("allenai/OLMoE-1B-7B-0924 (layers 0, 7, 15)")
        f.attrs["source"] = np.bytes_(src + "; " + note)
        f.attrs["license"] = np.bytes_("Apache-2.0 (routing counts from allenai/OLMoE, see traces/olmoe-mixtral/LICENSE)")
        f.attrs["format"] = np.bytes_("mplb-trace-1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--req-tokens", type=int, required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--gpus-per-node", type=int, required=True)
    ap.add_argument("--profile", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    R = a.nodes * a.gpus_per_node
    if a.requests % R:
        raise SystemExit(f"group_requests.py: --requests {a.requests} is not a multiple of the {R} ranks")
    with h5py.File(a.trace, "r") as f:
        counts = f["counts"][()].astype(np.float64)      # [domains, layers, E]
        k = int(f.attrs["top_k"])
        doms = f.attrs["domains"].decode().split(",") if "domains" in f.attrs else [str(i) for i in range(len(counts))]
    p = counts / counts.sum(axis=2, keepdims=True)
    D, L, E = p.shape
    rng = np.random.default_rng(a.seed)
    # profiling set -> centroids
    pd_ = rng.integers(D, size=a.profile)
    pv = vectors(draw(rng, p, pd_, a.req_tokens, k), E)
    cent, lab = kmeans2(pv, a.nodes, minit="++", seed=a.seed)
    purity = sum(np.bincount(pd_[lab == c], minlength=D).max() for c in range(a.nodes) if (lab == c).any()) / a.profile
    mix = {int(c): {doms[d]: int(n) for d, n in enumerate(np.bincount(pd_[lab == c], minlength=D)) if n}
           for c in range(a.nodes)}
    per_rank = a.requests // R
    T = a.requests * a.req_tokens
    arr = np.zeros((a.steps, L, T, k), np.int32)
    grp = np.zeros_like(arr)
    for s in range(a.steps):
        dom = rng.integers(D, size=a.requests)
        ids = draw(rng, p, dom, a.req_tokens, k)          # [M, L, tok, k]
        node = assign(vectors(ids, E), cent, a.requests // a.nodes)
        # kmeans order: node by node, inside a node its GPUs in turn
        slot = np.zeros(a.requests, int)
        for c in range(a.nodes):
            mine = np.flatnonzero(node == c)
            for j, m in enumerate(mine):
                gpu = c * a.gpus_per_node + j % a.gpus_per_node
                slot[m] = gpu * per_rank + j // a.gpus_per_node
        order = np.argsort(slot)
        for l in range(L):
            arr[s, l] = ids[:, l].reshape(T, k)
            grp[s, l] = ids[order, l].reshape(T, k)
    src = "requests drawn from traces/olmoe-mixtral/olmoe.h5 per-domain counts (experiments/repro/placement/group_requests.py)"
    os.makedirs(a.out, exist_ok=True)
    write(os.path.join(a.out, "arrival.trace.h5"), arr, k, src, "ranks filled in arrival order")
    write(os.path.join(a.out, "kmeans.trace.h5"), grp, k, src, "requests grouped to nodes by k-means")
    info = {"purity": purity, "clusters": mix, "requests_per_step": a.requests, "tokens_per_request": a.req_tokens,
            "profile_requests": a.profile, "tokens_per_step": T}
    with open(os.path.join(a.out, "clusters.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
