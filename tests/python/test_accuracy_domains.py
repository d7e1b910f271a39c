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


def windows(texts, step, S=S, T=T):
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


@pytest.mark.parametrize("family", ["deepseek", "qwen2_moe"])
def test_dense_layers_are_not_run_layers(tmp_path, family):
    """DeepSeek-MoE's first_k_dense_replace and Qwen2-MoE's mlp_only_layers:
    the run's layers are the checkpoint's MoE layers (model.layers counts
    those), the dense ones run in bf16; the stored KL is the one of the plan
    applied to the MoE layers (C forward on one BLAS thread, numpy KL)."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_moe_forward import rand_ckpt
    rng = np.random.default_rng()
    ck = tmp_path / "ck"
    cfg = rand_ckpt(str(ck), family, rng)
    moe = [l for l in range(cfg["num_hidden_layers"]) if not R._dense_layer(cfg, l)]
    assert 0 < len(moe) < cfg["num_hidden_layers"]
    V, E = cfg["vocab_size"], cfg.get("num_experts") or cfg.get("n_routed_experts")
    ffn = cfg.get("moe_intermediate_size") or cfg["intermediate_size"]
    for dom in ("a", "b"):
        (tmp_path / f"{dom}.txt").write_text(" ".join(str(x) for x in rng.integers(0, V, 400)))
    exp = tmp_path / "exp.lua"
    exp.write_text(f"""return {{
  name = "dense_layers",
  model = {{ name = "rand", layers = {len(moe)}, experts = {E}, top_k = {cfg['num_experts_per_tok']},
            hidden = {cfg['hidden_size']}, ffn = {ffn} }},
  cluster = {{ nodes = 1, gpus_per_node = 2, profile = "h100" }},
  workload = {{ kind = "lm", lm = "{ck}", text = {{ a = "{tmp_path / 'a.txt'}", b = "{tmp_path / 'b.txt'}" }},
               seq = 16, batch = 4, steps = 1 }},
  policies = {{ "baseline", {{ "static", prec = "nvfp4" }} }},
}}""")
    out = tmp_path / "r.h5"
    subprocess.run([BIN, "run", str(exp), "-o", str(out)], check=True, capture_output=True, env=one_blas_thread())
    run = mplb.load(out)
    st = run.steps
    assert sorted(st["layer"].unique()) == list(range(len(moe)))
    kl = st[(st["policy"] == 1) & st["kl"].notna()]["kl"].iloc[0]
    texts = [np.array(open(tmp_path / f"{d}.txt").read().split(), np.int64) for d in ("a", "b")]
    tok, dom = windows(texts, 0, S=4, T=16)
    plan = [["nvfp4" if l in moe else "bf16"] * E for l in range(cfg["num_hidden_layers"])]
    ref, q = R.c_forward(str(ck), tok), R.c_forward(str(ck), tok, plan)
    want = np.average([metrics(ref, q, tok, dom, g)["kl"] for g in (0, 1)], weights=[(dom == g).sum() for g in (0, 1)])
    assert kl > 0 and kl == pytest.approx(want, rel=1e-9)
    p = subprocess.run([BIN, "run", str(exp), "-o", str(tmp_path / "x.h5"), "--set",
                        f"model.layers={cfg['num_hidden_layers']}"], capture_output=True, text=True)
    assert p.returncode != 0 and f"has {len(moe)} MoE layers" in p.stderr


def test_damaged_by_domain_is_refused(tmp_path):
    """A /accuracy/by_domain row naming a domain or policy the file does not
    have: mplb.load and the C reader (here through --resume) name the row."""
    import shutil
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    args = [BIN, "run", EXP, "--set", "workload.batch=2", "--set", "workload.seq=16", "--set", "workload.steps=2"]
    subprocess.run(args + ["-o", str(good)], check=True, capture_output=True)
    for field, value in (("domain", 2), ("policy", 9), ("domain", -1)):
        shutil.copy(good, bad)
        with h5py.File(bad, "r+") as f:
            rows = f["accuracy/by_domain"][()]
            rows[3][field] = value
            f["accuracy/by_domain"][...] = rows
            f.attrs["status"] = "interrupted"
        with pytest.raises(mplb.RunFileError, match=f"/accuracy/by_domain row 3: {field} {value}"):
            mplb.load(bad)
        p = subprocess.run(args + ["-o", str(bad), "--resume"], capture_output=True, text=True)
        assert p.returncode != 0 and "/accuracy/by_domain row 3" in p.stderr, p.stderr
