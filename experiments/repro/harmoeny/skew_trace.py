"""HarMoEny's synthetic router skew as an mplb counts trace (NPY [steps, layers,
experts], imported by run.sh with `mplb trace import`).

The counts follow the public code's Router.skew_forward (sacs-epfl/HarMoEny,
src/harmonymoe/router.py): with E experts, m of them skewed and a target Gini
index s, each skewed expert gets
    num_skewed = int((E*N*s + m*N) / (m*(E - 2m)))   (capped at N/m)
tokens of a batch of N, the others int((N - m*num_skewed)/(E - m)) each, and the
remainder goes one token at a time to the first experts. Top-1 (Switch
Transformer), the same skew in every layer and step, as there.
usage: skew_trace.py OUT.npy --tokens N --skew S [--experts 128] [--layers 6] [--steps 3] [--skewed 1]"""
import argparse

import numpy as np


def skew_counts(n, experts, skew, skewed=1):
    if skew > 1:
        skew = skew / 100
    ns = int((experts * n * skew + skewed * n) / (skewed * (experts - 2 * skewed)))
    ns = int(min(n / skewed, ns))
    rest = int((n - skewed * ns) / (experts - skewed))
    c = np.full(experts, rest, np.int64)
    c[:skewed] = ns
    for i in range(n - int(c.sum())):
        c[i] += 1
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, required=True)
    ap.add_argument("--skew", type=float, required=True)
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--skewed", type=int, default=1)
    a = ap.parse_args()
    c = skew_counts(a.tokens, a.experts, a.skew, a.skewed)
    assert c.sum() == a.tokens
    np.save(a.out, np.broadcast_to(c, (a.steps, a.layers, a.experts)).astype(np.int64))


if __name__ == "__main__":
    main()
