"""A numpy port of DeepSeek's EPLB (deepseek-ai/EPLB, eplb.py, commit d52c72d),
written from that file's algorithm for mplb's tests and bench: the same three
steps (groups to nodes, replicas within nodes, physical experts to GPUs), float32
arithmetic as there (weight.float()), replicate_experts vectorised over rows and
balanced_packing a Python loop, as in the original. Ties: the sort is stable
(equal loads keep the lower index first), the pack and the replica choice take
the first minimum / maximum, as Python's min and torch.max do."""
import numpy as np


def balanced_packing(weight, num_packs):
    """weight [X, n] -> pack_index, rank_in_pack [X, n]: n/num_packs items per pack,
    heaviest first into the lightest pack that still has room."""
    rows, n = weight.shape
    assert n % num_packs == 0
    per = n // num_packs
    if per == 1:
        return np.tile(np.arange(n), (rows, 1)), np.zeros((rows, n), np.int64)
    order = np.argsort(-weight, axis=-1, kind="stable")
    pack_index = np.full((rows, n), -1, np.int64)
    rank_in_pack = np.full((rows, n), -1, np.int64)
    for i in range(rows):
        pw = [np.float32(0)] * num_packs
        pc = [0] * num_packs
        for g in order[i]:
            pack = min((k for k in range(num_packs) if pc[k] < per), key=pw.__getitem__)
            pack_index[i, g] = pack
            rank_in_pack[i, g] = pc[pack]
            pw[pack] = np.float32(pw[pack] + weight[i, g])
            pc[pack] += 1
    return pack_index, rank_in_pack


def replicate_experts(weight, num_phy):
    """weight [X, num_log] -> phy2log, rank [X, num_phy], logcnt [X, num_log]: each
    extra slot to the expert with the most load per copy."""
    rows, num_log = weight.shape
    assert num_phy >= num_log
    phy2log = np.tile(np.arange(num_phy), (rows, 1))
    rank = np.zeros((rows, num_phy), np.int64)
    logcnt = np.ones((rows, num_log), np.int64)
    ar = np.arange(rows)
    for i in range(num_log, num_phy):
        best = np.argmax(weight / logcnt.astype(np.float32), axis=-1)
        phy2log[:, i] = best
        rank[:, i] = logcnt[ar, best]
        logcnt[ar, best] += 1
    return phy2log, rank, logcnt


def _inverse(perm):
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1]), perm.shape), axis=1)
    return inv


def rebalance_hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus):
    layers, num_log = weight.shape
    assert num_log % num_groups == 0 and num_groups % num_nodes == 0
    assert num_gpus % num_nodes == 0 and num_phy % num_gpus == 0
    gsize, gpn, per_gpu = num_log // num_groups, num_groups // num_nodes, num_phy // num_gpus
    m = num_log // num_nodes
    # 1: groups to nodes
    tpg = weight.reshape(layers, num_groups, gsize).sum(-1, dtype=np.float32)
    gpi, gri = balanced_packing(tpg, num_nodes)
    log2mlog = (((gpi * gpn + gri) * gsize)[:, :, None] + np.arange(gsize)).reshape(layers, -1)
    mlog2log = _inverse(log2mlog)
    # 2: replicas within nodes, one row per (layer, node)
    tpm = np.take_along_axis(weight, mlog2log, -1).reshape(-1, m)
    phy2mlog, phyrank, mlogcnt = replicate_experts(tpm, num_phy // num_nodes)
    # 3: physical experts to the node's GPUs
    tpp = np.take_along_axis(tpm / mlogcnt.astype(np.float32), phy2mlog, -1)
    pack, rip = balanced_packing(tpp, num_gpus // num_nodes)
    pphy2phy = _inverse(pack * per_gpu + rip)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, -1)
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) + np.arange(0, num_log, m)[None, :, None]).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, -1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, -1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, -1)
    return pphy2log, pphyrank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    """-> phy2log [layers, num_replicas], logcnt [layers, num_log] (EPLB's entry
    point; its log2phy is derived from these two)."""
    weight = np.asarray(weight, np.float32)
    if num_groups % num_nodes == 0:
        p2l, _, cnt = rebalance_hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        p2l, _, cnt = rebalance_hierarchical(weight, num_replicas, 1, 1, num_gpus)
    return p2l, cnt
