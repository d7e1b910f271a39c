"""/accuracy/by_domain (workload kind "lm") against an independent recomputation:
the test rebuilds each step's token windows from the text files, takes each
policy's plan of the step from /experts/precision, runs the model (the C
forward through ctypes, and the float64 numpy reference analysis/mplb/moe_ref.py)
and recomputes KL, top-1 agreement and perplexities per domain with numpy."""
import os
import subprocess

import h5py
import numpy as np
import pytest

import mplb
from mplb import moe_ref as R

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPLB_BIN", os.path.join(ROOT, "build", "mplb"))
EXP = os.path.join(ROOT, "experiments", "accuracy_small.lua")
TINY = os.path.join(ROOT, "models", "tiny-moe")
STEPS = 2
_rng = np.random.default_rng()
S, T = int(_rng.integers(3, 9)), int(_rng.integers(24, 65))   # fresh windows of the text each time


def one_blas_thread():
    """OpenBLAS splits a GEMM's sums by thread count: with one thread in the
    run and here, the C forward gives the run's logits bit for bit. Returns
    the environment for the run; sets libmplb's OpenBLAS in this process."""
    from mplb import quant
    quant._load().openblas_set_num_threads(1)
    return dict(os.environ, OPENBLAS_NUM_THREADS="1")


def windows(texts, step):
    """The step's tokens [S, T] and each sequence's domain: sequence j reads
    domain j mod n, its next window (docs/accuracy.md, core/accuracy/acc_run.c)."""
    n = len(texts)
    tok, dom = np.zeros((S, T), np.int64), np.zeros(S, np.int64)
    for j in range(S):
        g = j % n
        per = (S - g + n - 1) // n
        start = ((step * per + j // n) * T) % (len(texts[g]) - T)
        tok[j] = texts[g][start:start + T]
        dom[j] = g
    return tok, dom


def metrics(ref, q, tok, dom, g):
    """Per-domain kl, top1, ppl_ref, ppl_q, positions over t < T-1 (float64)."""
    sel = dom == g
    a, b = ref[sel][:, :-1].astype(np.float64), q[sel][:, :-1].astype(np.float64)
    la = a - np.logaddexp.reduce(a, axis=-1, keepdims=True)
    lb = b - np.logaddexp.reduce(b, axis=-1, keepdims=True)
    kl = np.maximum((np.exp(la) * (la - lb)).sum(-1), 0)
    nxt = tok[sel][:, 1:]
    nll = lambda l: -np.take_along_axis(l, nxt[..., None], -1)[..., 0]
    return {"kl": kl.mean(), "top1_agree": (a.argmax(-1) == b.argmax(-1)).mean(),
            "ppl_ref": np.exp(nll(la).mean()), "ppl_q": np.exp(nll(lb).mean()), "positions": kl.size,
            "nll_q": nll(lb).ravel()}


@pytest.mark.skipif(not os.path.exists(os.path.join(TINY, "model.safetensors")), reason="models/tiny-moe not trained")
def test_by_domain_matches_recomputation(tmp_path):
    out = tmp_path / "dom.h5"
    subprocess.run([BIN, "run", EXP, "-o", str(out), "--set", f"workload.steps={STEPS}", "--set", f"workload.batch={S}",
                    "--set", f"workload.seq={T}"], check=True, capture_output=True, env=one_blas_thread())
    run = mplb.load(out)
    d = run.domains
    with h5py.File(out, "r") as f:
        names = [x.decode() for x in f["accuracy/domains"][()]]
        prec = f["experts/precision"][()]
    st = run.steps
    P, L = len(run.policies), st["layer"].max() + 1
    assert names == sorted(names) and len(d) == P * STEPS * len(names)
    texts = [np.frombuffer(open(os.path.join(TINY, "eval", f"{n}.txt"), "rb").read(), np.uint8).astype(np.int64)
             for n in names]
    model = R.load(TINY)
    compared = 0
    for step in range(STEPS):
        tok, dom = windows(texts, step)
        ref_np, rt = R.forward(model, tok, return_routing=True)
        ref_c = R.c_forward(TINY, tok)
        for p in range(P):
            rows = st[(st["policy"] == p) & (st["step"] == step)].sort_values("layer").index
            plan = [[mplb.PRECISIONS[c] for c in prec[i]] for i in rows]
            assert len(plan) == L
            q_c, (q_np, qrt) = R.c_forward(TINY, tok, plan), R.forward(model, tok, plan, return_routing=True)
            # a near-tie in either routing may send a token elsewhere in C than in float64, and with it
            # the rest of its sequence: the float64 model is compared on the other sequences
            gaps = np.min([r[2].reshape(S, T).min(1) for r in rt + qrt if r is not None], axis=0)
            clear = gaps >= 1e-3
            compared += int(clear.sum())
            for g, name in enumerate(names):
                got = d[(d["policy"] == p) & (d["step"] == step) & (d["domain"] == name)].iloc[0]
                exact = metrics(ref_c, q_c, tok, dom, g)   # the run's logits (one BLAS thread): the split and sums
                assert got["positions"] == exact["positions"] == (dom == g).sum() * (T - 1)
                for k in ("kl", "top1_agree", "ppl_ref", "ppl_q"):
                    assert got[k] == pytest.approx(exact[k], rel=1e-9, abs=1e-13), (p, step, name, k)
                assert got["ppl_delta"] == pytest.approx(got["ppl_q"] - got["ppl_ref"], rel=1e-12, abs=1e-15)
                if not (clear & (dom == g)).any():
                    continue
                # the float64 numpy model, on the same sequences, to its agreement with the C forward
                c = metrics(ref_c[clear], q_c[clear], tok[clear], dom[clear], g)
                ind = metrics(ref_np[clear], q_np[clear], tok[clear], dom[clear], g)
                assert c["ppl_ref"] == pytest.approx(ind["ppl_ref"], rel=2e-3)
                # a quantized plan: a value on a W8A8/W4A4 rounding boundary may round the other way in
                # float64 and move one position's loss; the typical position agrees closely
                dq = np.abs(c["nll_q"] - ind["nll_q"])
                assert np.median(dq) < 5e-3 and dq.mean() < 2e-2, (p, step, name, np.median(dq), dq.mean())
                assert c["kl"] == pytest.approx(ind["kl"], rel=0.15, abs=1e-4), (p, step, name)
                if p == 0:
                    assert got["kl"] == 0 and got["top1_agree"] == 1
    print(f"{compared} of {STEPS * P * S} sequences compared with the float64 model (S={S}, T={T})")
    assert compared > 0
    # the step's all-domain kl in /steps is the positions-weighted mean of the domains'
    for (p, step), grp in d.groupby(["policy", "step"]):
        row = st[(st["policy"] == p) & (st["step"] == step) & st["kl"].notna()].iloc[0]
        assert row["kl"] == pytest.approx(np.average(grp["kl"], weights=grp["positions"]), rel=1e-9, abs=1e-15)
    # the report shows the split
    s = run.domain_summary()
    assert set(s["domain"]) == set(names) and (s["steps"] == STEPS).all()


def test_by_domain_survives_resume(tmp_path):
    """--resume keeps the /accuracy rows of the kept steps: a complete run cut
    back to its first step (as an interrupted run leaves it) and resumed equals
    the complete one."""
    import shutil
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    args = [BIN, "run", EXP, "--set", "workload.batch=4", "--set", "workload.seq=32", "--set", "workload.steps=3"]
    subprocess.run(args + ["-o", str(full)], check=True, capture_output=True)
    shutil.copy(full, part)
    with h5py.File(part, "r+") as f:
        keep = int((f["steps"]["step"] == 0).sum())
        for name in ("steps", "ranks/load", "ranks/compute_us", "experts/load", "experts/precision"):
            f[name].resize(keep, axis=0)
        f["accuracy/by_domain"].resize(int((f["accuracy/by_domain"]["step"] == 0).sum()), axis=0)
        f.attrs["status"] = "interrupted"
    assert len(mplb.load(part).domains) < len(mplb.load(full).domains)
    subprocess.run(args + ["-o", str(part), "--resume"], check=True, capture_output=True)
    a, b = mplb.load(full).domains, mplb.load(part).domains
    assert len(a) == len(b) and a.drop(columns="policy_name").equals(b.drop(columns="policy_name"))
