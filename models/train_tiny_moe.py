#!/usr/bin/env python3
"""Train mplb's tiny MoE language model on the CPU (numpy, hand-written backprop).

The model is a Mixtral-architecture decoder: byte-level tokens (vocab 256, the
byte is the token), RMSNorm, multi-head causal attention with RoPE (HF
rotate-half convention), a sparse MoE block per layer (softmax router, top-k,
gates renormalised over the chosen experts as in Mixtral; SwiGLU experts), a
final RMSNorm and an untied LM head. It is saved in Hugging Face layout
(config.json + model.safetensors, bf16, Mixtral tensor names) so that the C
forward (core/accuracy/) and the numpy reference (analysis/mplb/moe_ref.py)
read it as they would read a real checkpoint.

Corpus (local, known licence; both parts are CPython 3.11 as shipped by
Debian in /usr/lib/python3.11, PSF License Version 2, see LICENSE.txt there):
  domain "code":  the Python source of the standard library's top-level modules;
  domain "prose": the reference-manual text in pydoc_data/topics.py (the text
                  `help('topic')` prints: English prose with a little code).
A few modules and topics are held out of training (HELD_OUT_*) and written to
OUT/eval/{code,prose}.txt: the evaluation text the accuracy backend reads.

Training: next-byte cross entropy plus the Switch-Transformer load-balancing
loss (alpha * E * sum_e f_e * P_e), Adam, cosine learning rate, batches drawn
half from each domain. --gradcheck compares every parameter's gradient with
central finite differences in float64 on a toy configuration first.

    python models/train_tiny_moe.py --out models/tiny-moe          # 1000 steps: ~10 min on an idle core
    python models/train_tiny_moe.py --gradcheck
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import struct
import sys
import time

import numpy as np

PYLIB = "/usr/lib/python3.11"
HELD_OUT_CODE = ("textwrap.py", "fractions.py", "shlex.py", "bisect.py", "heapq.py")
HELD_OUT_PROSE = ("for", "while", "lambda", "assert", "import", "try")

CONFIG = dict(vocab_size=256, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=4, num_local_experts=16, num_experts_per_tok=2, rms_norm_eps=1e-5,
              rope_theta=10000.0, max_position_embeddings=256)


# ---------------------------------------------------------------- corpus
def load_corpus(pylib=PYLIB):
    files = sorted(glob.glob(os.path.join(pylib, "*.py")))
    if not files:
        sys.exit(f"train_tiny_moe: no Python sources under {pylib} (Debian's python3.11 package)")
    code_tr, code_ev = [], []
    for f in files:
        with open(f, "rb") as fh:
            (code_ev if os.path.basename(f) in HELD_OUT_CODE else code_tr).append(fh.read())
    sys.path.insert(0, pylib)
    from pydoc_data.topics import topics  # noqa: E402 (CPython's own copy)
    prose_tr, prose_ev = [], []
    for k in sorted(topics):
        (prose_ev if k in HELD_OUT_PROSE else prose_tr).append(topics[k].encode("utf-8"))
    cat = lambda parts: np.frombuffer(b"\n".join(parts), dtype=np.uint8)
    return {"code": cat(code_tr), "prose": cat(prose_tr)}, {"code": b"\n".join(code_ev), "prose": b"\n".join(prose_ev)}


# ---------------------------------------------------------------- parameters
def init_params(cfg, rng, dtype=np.float32):
    d, f, E, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    n = lambda *s, scale: (rng.standard_normal(s) * scale).astype(dtype)
    p = {"embed": n(V, d, scale=1.0), "norm": np.ones(d, dtype), "lm_head": n(V, d, scale=d ** -0.5)}
    for l in range(cfg["num_hidden_layers"]):
        p[f"{l}.ln1"] = np.ones(d, dtype)
        p[f"{l}.ln2"] = np.ones(d, dtype)
        p[f"{l}.wq"] = n(d, d, scale=d ** -0.5)
        p[f"{l}.wk"] = n(kv, d, scale=d ** -0.5)
        p[f"{l}.wv"] = n(kv, d, scale=d ** -0.5)
        p[f"{l}.wo"] = n(d, d, scale=d ** -0.5 / np.sqrt(2 * cfg["num_hidden_layers"]))
        p[f"{l}.router"] = n(E, d, scale=d ** -0.5)
        p[f"{l}.w1"] = n(E, f, d, scale=d ** -0.5)
        p[f"{l}.w3"] = n(E, f, d, scale=d ** -0.5)
        p[f"{l}.w2"] = n(E, d, f, scale=f ** -0.5 / np.sqrt(2 * cfg["num_hidden_layers"]))
    return p


# ---------------------------------------------------------------- pieces with backward
def rms_fwd(x, g, eps):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return x * r * g, (x, r, g)


def rms_bwd(dy, c):
    x, r, g = c
    dg = (dy * x * r).reshape(-1, x.shape[-1]).sum(0)
    dxh = dy * g
    dx = r * (dxh - x * r * r * (dxh * x).mean(-1, keepdims=True))
    return dx, dg


def rope_tables(T, hd, theta, dtype):
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    fr = np.outer(np.arange(T, dtype=np.float64), inv)
    emb = np.concatenate([fr, fr], -1)
    return np.cos(emb).astype(dtype), np.sin(emb).astype(dtype)


def rot_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], -1)


def rot_half_t(z):   # transpose of rot_half
    h = z.shape[-1] // 2
    return np.concatenate([z[..., h:], -z[..., :h]], -1)


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = x.max(axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis, keepdims=True)


def forward_backward(p, cfg, tok, tgt, alpha, want_grad=True):
    """tok, tgt: [B, T] int. Returns (ce loss, aux loss, grads or None)."""
    B, T = tok.shape
    N = B * T
    d, E, K = cfg["hidden_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    H, Hk = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // H
    rep = H // Hk
    eps = cfg["rms_norm_eps"]
    dt = p["embed"].dtype
    cos, sin = rope_tables(T, hd, cfg["rope_theta"], dt)
    mask = np.triu(np.full((T, T), -np.inf, dt), 1)
    x = p["embed"][tok].reshape(N, d)
    caches, aux = [], 0.0
    for l in range(cfg["num_hidden_layers"]):
        c = {}
        h, c["n1"] = rms_fwd(x, p[f"{l}.ln1"], eps)
        q = (h @ p[f"{l}.wq"].T).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        k = (h @ p[f"{l}.wk"].T).reshape(B, T, Hk, hd).transpose(0, 2, 1, 3)
        v = (h @ p[f"{l}.wv"].T).reshape(B, T, Hk, hd).transpose(0, 2, 1, 3)
        k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
        qr = q * cos + rot_half(q) * sin
        kr = k * cos + rot_half(k) * sin
        s = qr @ kr.transpose(0, 1, 3, 2) / np.sqrt(hd) + mask
        P = softmax(s)
        o = (P @ v).transpose(0, 2, 1, 3).reshape(N, d)
        x = x + o @ p[f"{l}.wo"].T
        c.update(h=h, qr=qr, kr=kr, v=v, P=P, o=o)
        h2, c["n2"] = rms_fwd(x, p[f"{l}.ln2"], eps)
        lg = h2 @ p[f"{l}.router"].T
        pr = softmax(lg)
        top = np.argsort(-lg, -1, kind="stable")[:, :K]
        w = softmax(np.take_along_axis(lg, top, -1))
        y = np.zeros_like(x)
        ex = []
        for e in range(E):
            rows, slot = np.nonzero(top == e)
            if rows.size == 0:
                ex.append(None)
                continue
            xe = h2[rows]
            g = xe @ p[f"{l}.w1"][e].T
            u = xe @ p[f"{l}.w3"][e].T
            a = silu(g) * u
            oe = a @ p[f"{l}.w2"][e].T
            y[rows] += w[rows, slot][:, None] * oe
            ex.append((rows, slot, xe, g, u, a, oe))
        frac = np.bincount(top.ravel(), minlength=E) / (N * K)
        aux += alpha * E * float((frac * pr.mean(0)).sum())
        x = x + y
        c.update(h2=h2, pr=pr, top=top, w=w, ex=ex, frac=frac)
        caches.append(c)
    xf, cf = rms_fwd(x, p["norm"], eps)
    logits = xf @ p["lm_head"].T
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    t = tgt.reshape(N)
    ce = float(-lp[np.arange(N), t].mean())
    if not want_grad:
        return ce, aux, None
    gr = {k: np.zeros_like(v) for k, v in p.items()}
    dlog = np.exp(lp)
    dlog[np.arange(N), t] -= 1
    dlog /= N
    gr["lm_head"] = dlog.T @ xf
    dx, gr["norm"] = rms_bwd(dlog @ p["lm_head"], cf)
    for l in reversed(range(cfg["num_hidden_layers"])):
        c = caches[l]
        # MoE block: x_out = x_mid + sum_j w_j expert_j(h2)
        dh2 = np.zeros_like(dx)
        dw = np.zeros_like(c["w"])
        for e, item in enumerate(c["ex"]):
            if item is None:
                continue
            rows, slot, xe, g, u, a, oe = item
            dye = dx[rows]
            dw[rows, slot] = (dye * oe).sum(-1)
            doe = dye * c["w"][rows, slot][:, None]
            gr[f"{l}.w2"][e] += doe.T @ a
            da = doe @ p[f"{l}.w2"][e]
            sg = 1.0 / (1.0 + np.exp(-g))
            dg = da * u * sg * (1 + g * (1 - sg))
            du = da * g * sg
            gr[f"{l}.w1"][e] += dg.T @ xe
            gr[f"{l}.w3"][e] += du.T @ xe
            np.add.at(dh2, rows, dg @ p[f"{l}.w1"][e] + du @ p[f"{l}.w3"][e])
        w = c["w"]
        dsel = w * (dw - (w * dw).sum(-1, keepdims=True))
        dlg = np.zeros_like(c["pr"])
        np.put_along_axis(dlg, c["top"], dsel, -1)
        pr = c["pr"]
        dpr = np.broadcast_to(alpha * E * c["frac"] / N, pr.shape)
        dlg += pr * (dpr - (pr * dpr).sum(-1, keepdims=True))
        gr[f"{l}.router"] = dlg.T @ c["h2"]
        dh2 += dlg @ p[f"{l}.router"]
        dxm, gr[f"{l}.ln2"] = rms_bwd(dh2, c["n2"])
        dx = dx + dxm
        # attention block: x_mid = x_in + o Wo^T
        gr[f"{l}.wo"] = dx.T @ c["o"]
        do = (dx @ p[f"{l}.wo"]).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        P, v, qr, kr = c["P"], c["v"], c["qr"], c["kr"]
        dv = P.transpose(0, 1, 3, 2) @ do
        dP = do @ v.transpose(0, 1, 3, 2)
        ds = P * (dP - (dP * P).sum(-1, keepdims=True)) / np.sqrt(hd)
        dqr = ds @ kr
        dkr = ds.transpose(0, 1, 3, 2) @ qr
        dq = dqr * cos + rot_half_t(dqr * sin)
        dk = dkr * cos + rot_half_t(dkr * sin)
        dk = dk.reshape(B, Hk, rep, T, hd).sum(2)
        dv = dv.reshape(B, Hk, rep, T, hd).sum(2)
        fl = lambda z: z.transpose(0, 2, 1, 3).reshape(N, -1)
        dq, dk, dv = fl(dq), fl(dk), fl(dv)
        h = c["h"]
        gr[f"{l}.wq"], gr[f"{l}.wk"], gr[f"{l}.wv"] = dq.T @ h, dk.T @ h, dv.T @ h
        dh = dq @ p[f"{l}.wq"] + dk @ p[f"{l}.wk"] + dv @ p[f"{l}.wv"]
        dxi, gr[f"{l}.ln1"] = rms_bwd(dh, c["n1"])
        dx = dx + dxi
    np.add.at(gr["embed"], tok.reshape(N), dx)
    return ce, aux, gr


# ---------------------------------------------------------------- gradient check
def gradcheck():
    cfg = dict(CONFIG, vocab_size=11, hidden_size=8, intermediate_size=6, num_attention_heads=2,
               num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2)
    rng = np.random.default_rng(0)
    p = init_params(cfg, rng, np.float64)
    for k in p:
        if k.endswith(("ln1", "ln2")) or k == "norm":
            p[k] = 1 + 0.3 * rng.standard_normal(p[k].shape)
    tok = rng.integers(0, 11, (2, 5))
    tgt = rng.integers(0, 11, (2, 5))
    alpha = 0.1
    f = lambda: sum(forward_backward(p, cfg, tok, tgt, alpha, False)[:2])
    _, _, g = forward_backward(p, cfg, tok, tgt, alpha)
    worst = 0.0
    for k in p:
        flat = p[k].reshape(-1)
        num = np.zeros_like(flat)
        for i in range(flat.size):
            o = flat[i]
            flat[i] = o + 1e-6
            fp = f()
            flat[i] = o - 1e-6
            fm = f()
            flat[i] = o
            num[i] = (fp - fm) / 2e-6
        an = g[k].reshape(-1)
        # the routing (top-k, the balance loss's token fractions) is piecewise
        # constant: away from ties the analytic gradient is exact
        rel = np.abs(num - an).max() / max(np.abs(num).max(), 1e-8)
        worst = max(worst, rel)
        print(f"gradcheck {k:12s} max rel err {rel:.2e}")
    if worst > 1e-5:
        sys.exit(f"gradcheck FAILED (worst {worst:.2e})")
    print("gradcheck ok")


# ---------------------------------------------------------------- saving (HF layout)
def bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)   # round to nearest even


def save_safetensors(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = bf16_bits(arr).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def hf_tensors(p, cfg):
    t = {"model.embed_tokens.weight": p["embed"], "model.norm.weight": p["norm"], "lm_head.weight": p["lm_head"]}
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        t[pre + "input_layernorm.weight"] = p[f"{l}.ln1"]
        t[pre + "post_attention_layernorm.weight"] = p[f"{l}.ln2"]
        for n in "qkvo":
            t[pre + f"self_attn.{n}_proj.weight"] = p[f"{l}.w{n}"]
        t[pre + "block_sparse_moe.gate.weight"] = p[f"{l}.router"]
        for e in range(cfg["num_local_experts"]):
            for w in ("w1", "w2", "w3"):
                t[pre + f"block_sparse_moe.experts.{e}.{w}.weight"] = p[f"{l}.{w}"][e]
    return t


def hf_config(cfg):
    c = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "torch_dtype": "bfloat16",
         "hidden_act": "silu", "tie_word_embeddings": False, "output_router_logits": False,
         "tokenizer": "bytes"}
    c.update(cfg)
    return c


# ---------------------------------------------------------------- training
def batch(corpus, rng, B, T):
    toks = []
    for i in range(B):
        data = corpus["code" if i % 2 == 0 else "prose"]
        s = rng.integers(0, data.size - T - 1)
        toks.append(data[s:s + T + 1])
    a = np.stack(toks).astype(np.int64)
    return a[:, :-1], a[:, 1:]


def save(a, p, cfg, held, log, step):
    os.makedirs(os.path.join(a.out, "eval"), exist_ok=True)
    meta = {"format": "pt", "trained_by": "models/train_tiny_moe.py",
            "corpus": "CPython 3.11 stdlib source + pydoc_data/topics.py (PSF-2.0)",
            "steps": str(step), "seed": str(a.seed), "final_train_ce": f"{log[-1][1]:.4f}"}
    save_safetensors(os.path.join(a.out, "model.safetensors"), hf_tensors(p, cfg), meta)
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(hf_config(cfg), fh, indent=2)
        fh.write("\n")
    # the held-out evaluation text, cut to a few KB per domain
    for dom, text in held.items():
        with open(os.path.join(a.out, "eval", dom + ".txt"), "wb") as fh:
            fh.write(text[:16384])
    with open(os.path.join(a.out, "train_log.tsv"), "w") as fh:
        fh.write("step\tce_nats\taux\n")
        for r in log:
            fh.write(f"{r[0]}\t{r[1]:.4f}\t{r[2]:.5f}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/tiny-moe")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--alpha", type=float, default=0.01, help="load-balancing loss weight")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--gradcheck", action="store_true")
    a = ap.parse_args()
    if a.gradcheck:
        gradcheck()
        return
    train, held = load_corpus()
    cfg = dict(CONFIG)
    rng = np.random.default_rng(a.seed)
    p = init_params(cfg, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s2 = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, t0 = 0.9, 0.95, time.time()
    log = []
    for step in range(1, a.steps + 1):
        lr = a.lr * min(1.0, step / 50) * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        tok, tgt = batch(train, rng, a.batch, a.seq)
        ce, aux, g = forward_backward(p, cfg, tok, tgt, a.alpha)
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            s2[k] = b2 * s2[k] + (1 - b2) * g[k] * g[k]
            p[k] -= lr * (m[k] / (1 - b1 ** step)) / (np.sqrt(s2[k] / (1 - b2 ** step)) + 1e-8)
        if step % 50 == 0 or step == 1:
            print(f"step {step:5d} ce {ce:.3f} ({ce / np.log(2):.2f} bits/byte) aux {aux:.4f} "
                  f"lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
            log.append((step, ce, aux))
        if a.save_every and step % a.save_every == 0 and step < a.steps:
            save(a, p, cfg, held, log, step)   # a usable model if training is cut short
    save(a, p, cfg, held, log, a.steps)
    print(f"saved {a.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
