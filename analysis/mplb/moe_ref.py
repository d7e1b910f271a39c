"""mplb.moe_ref: an independent numpy implementation of the MoE decoder that
libmplb's accuracy backend runs (core/accuracy/, include/mplb/accuracy.h), and
a ctypes binding of the C forward, so each can be checked against the other.

The reference computes in float64 from the checkpoint's tensors (read here
with numpy, not through libmplb). It reproduces what the C forward does on
purpose: expert inputs and the SwiGLU product rounded to bf16 (the CPU
kernel's bf16 activations), and, for a quantized plan, expert weights and
activations rounded with libmplb's quantizers (mplb.quant, themselves tested
against ml_dtypes), with the same scaling choices (weights: per-tensor scale
for fp8 casts, saturating; fp8 activations: one scale per token).

    logits = forward(load("models/tiny-moe"), tokens)            # [S, T, V]
    logits_c = c_forward("models/tiny-moe", tokens, prec)         # the C one
"""
from __future__ import annotations

import ctypes
import json
import os
import struct

import numpy as np

from . import quant
from .runfile import PRECISIONS

# family -> (moe block, gate, up, down, shared expert, shared gate, experts key, expert ffn key)
FAMILIES = {
    "mixtral": ("block_sparse_moe", "w1", "w3", "w2", None, None, "num_local_experts", "intermediate_size"),
    "olmoe": ("mlp", "gate_proj", "up_proj", "down_proj", None, None, "num_experts", "intermediate_size"),
    "qwen2_moe": ("mlp", "gate_proj", "up_proj", "down_proj", "shared_expert", "shared_expert_gate", "num_experts",
                  "moe_intermediate_size"),
    "qwen3_moe": ("mlp", "gate_proj", "up_proj", "down_proj", None, None, "num_experts", "moe_intermediate_size"),
    "deepseek": ("mlp", "gate_proj", "up_proj", "down_proj", "shared_experts", None, "n_routed_experts",
                 "moe_intermediate_size"),
}
# activation format of an expert whose weights are in p (acts="matched")
_ACT = {"fp16", "fp8_e4m3", "fp8_e5m2", "mxfp8", "mxfp4", "nvfp4", "int8"}


# ------------------------------------------------------------------ safetensors
def read_safetensors(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = np.frombuffer(data[b:e], dtype=np.uint8)
        if info["dtype"] == "BF16":
            a = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            a = raw.view(np.float16).astype(np.float32)
        elif info["dtype"] == "F32":
            a = raw.view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {info['dtype']}")
        out[name] = a.reshape(info["shape"]).astype(np.float64)
    return out


def bf16_round(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).reshape(np.shape(a))


def write_checkpoint(path, config, tensors):
    """config dict + {name: float array} -> path/config.json, path/model.safetensors (BF16)."""
    os.makedirs(path, exist_ok=True)
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        bits = (bf16_round(arr).view(np.uint32) >> 16).astype(np.uint16).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(np.shape(arr)), "data_offsets": [off, off + len(bits)]}
        blobs.append(bits)
        off += len(bits)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(config, fh)


def load(path):
    with open(os.path.join(path, "config.json")) as fh:
        cfg = json.load(fh)
    return cfg, read_safetensors(os.path.join(path, "model.safetensors"))


# ------------------------------------------------------------------ forward
def _rms(x, g, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


def _dense_layer(cfg, l):
    mt = cfg["model_type"]
    if mt in ("qwen2_moe", "qwen3_moe"):
        step = cfg.get("decoder_sparse_step", 1) or 1
        return l in (cfg.get("mlp_only_layers") or []) or (l + 1) % step != 0
    if mt == "deepseek":
        return l < (cfg.get("first_k_dense_replace") or 0) or l % (cfg.get("moe_layer_freq") or 1) != 0
    return False


def _swiglu(x, g, u, d, wq=None, act=None):
    """x [n, d] float64; weights float64 [f, d], [f, d], [d, f]."""
    rnd = (lambda a: bf16_round(a).astype(np.float64)) if act is None else act
    xa = rnd(x)
    gg, uu = xa @ g.T, xa @ u.T
    h = rnd(gg / (1 + np.exp(-gg)) * uu)
    return h @ d.T


def _act_fn(p, acts):
    a = p if (acts == "matched" and p in _ACT) else "bf16"
    if a == "bf16":
        return lambda x: bf16_round(x).astype(np.float64)
    if a in ("fp8_e4m3", "fp8_e5m2"):   # one scale per token
        return lambda x: np.stack([quant.fake_quant(r[None], a, saturate=True, scaling="tensor")[0]
                                   for r in np.asarray(x, np.float32)]).astype(np.float64)
    return lambda x: quant.fake_quant(np.asarray(x, np.float32), a, saturate=True).astype(np.float64)


def _wq(w, p):
    if p == "bf16":
        return w
    o = {"saturate": True, "scaling": "tensor"} if p in ("fp8_e4m3", "fp8_e5m2", "fp4_e2m1") else {"saturate": True}
    return quant.fake_quant(np.asarray(w, np.float32), p, **o).astype(np.float64)


def forward(model, tokens, prec=None, acts="matched", return_routing=False):
    """tokens [S, T] ints; prec None or [layers][experts] precision names.
    Returns logits [S, T, V] (float64) and, with return_routing, per layer the
    top-k ids, the smallest gap between the k-th and (k+1)-th router logit and
    that gap per token [S*T]."""
    cfg, W = model
    mt = cfg["model_type"]
    moe, gn, un, dn, shn, sgn, ek, fk = FAMILIES[mt]
    S, T = tokens.shape
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hk = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    E, K = cfg[ek], cfg["num_experts_per_tok"]
    norm_topk = True if mt == "mixtral" else bool(cfg.get("norm_topk_prob", False))
    scale = cfg.get("routed_scaling_factor", 1.0) or 1.0
    clip = cfg.get("clip_qkv")
    x = W["model.embed_tokens.weight"][tokens]                      # [S, T, d]
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(T), inv)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rot = lambda z: np.concatenate([-z[..., hd // 2:], z[..., :hd // 2]], -1)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    routing = []
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        g = lambda n: W.get(pre + n)
        h = _rms(x, g("input_layernorm.weight"), eps)
        q, k, v = (h @ g(f"self_attn.{n}_proj.weight").T for n in "qkv")
        if g("self_attn.q_proj.bias") is not None:
            q, k, v = q + g("self_attn.q_proj.bias"), k + g("self_attn.k_proj.bias"), v + g("self_attn.v_proj.bias")
        if g("self_attn.q_norm.weight") is not None:
            if mt == "qwen3_moe":
                q = _rms(q.reshape(S, T, H, hd), g("self_attn.q_norm.weight"), eps).reshape(S, T, -1)
                k = _rms(k.reshape(S, T, Hk, hd), g("self_attn.k_norm.weight"), eps).reshape(S, T, -1)
            else:
                q, k = _rms(q, g("self_attn.q_norm.weight"), eps), _rms(k, g("self_attn.k_norm.weight"), eps)
        if clip:
            q, k, v = np.clip(q, -clip, clip), np.clip(k, -clip, clip), np.clip(v, -clip, clip)
        q = q.reshape(S, T, H, hd).transpose(0, 2, 1, 3)
        k = np.repeat(k.reshape(S, T, Hk, hd).transpose(0, 2, 1, 3), H // Hk, 1)
        v = np.repeat(v.reshape(S, T, Hk, hd).transpose(0, 2, 1, 3), H // Hk, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + mask
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        o = (p @ v).transpose(0, 2, 1, 3).reshape(S, T, H * hd)
        x = x + o @ g("self_attn.o_proj.weight").T
        h2 = _rms(x, g("post_attention_layernorm.weight"), eps).reshape(S * T, d)
        y = np.zeros_like(h2)
        if _dense_layer(cfg, l):
            y += _swiglu(h2, g("mlp.gate_proj.weight"), g("mlp.up_proj.weight"), g("mlp.down_proj.weight"), d)
            x = x + y.reshape(S, T, d)
            routing.append(None)
            continue
        lg = h2 @ g(f"{moe}.gate.weight").T
        pr = np.exp(lg - lg.max(-1, keepdims=True))
        pr /= pr.sum(-1, keepdims=True)
        order = np.argsort(-lg, -1, kind="stable")
        top = order[:, :K]
        srt = np.take_along_axis(lg, order, -1)
        gaps = srt[:, K - 1] - srt[:, K] if K < E else np.full(len(lg), np.inf)
        gap = float(gaps.min())
        w = np.take_along_axis(pr, top, -1)
        if norm_topk:
            w = w / w.sum(-1, keepdims=True)
        w = w * scale
        routing.append((top, gap, gaps))
        for e in range(E):
            rows, slot = np.nonzero(top == e)
            if rows.size == 0:
                continue
            pe = prec[l][e] if prec is not None else "bf16"
            ex = f"{moe}.experts.{e}."
            out = _swiglu(h2[rows], _wq(g(ex + gn + ".weight"), pe), _wq(g(ex + un + ".weight"), pe),
                          _wq(g(ex + dn + ".weight"), pe), d, act=_act_fn(pe, acts))
            np.add.at(y, rows, w[rows, slot][:, None] * out)
        if shn:
            sp = f"{moe}.{shn}."
            so = _swiglu(h2, g(sp + "gate_proj.weight"), g(sp + "up_proj.weight"), g(sp + "down_proj.weight"), d)
            if sgn:
                so = so / (1 + np.exp(-(h2 @ g(f"{moe}.{sgn}.weight").reshape(-1))))[:, None]
            y += so
        x = x + y.reshape(S, T, d)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = _rms(x, W["model.norm.weight"], eps) @ head.T
    return (logits, routing) if return_routing else logits


# ------------------------------------------------------------------ the C forward
class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 1024)]


def c_forward(path, tokens, prec=None, acts="matched"):
    """Logits [S, T, V] (float32) from libmplb's mplb_lm_eval."""
    lib = quant._load()
    tokens = np.ascontiguousarray(tokens, dtype=np.int32)
    S, T = tokens.shape
    with open(os.path.join(path, "config.json")) as fh:
        V = json.load(fh)["vocab_size"]
    out = np.empty((S, T, V), np.float32)
    pp = None
    if prec is not None:
        pp = np.ascontiguousarray([[PRECISIONS.index(p) for p in row] for row in prec], dtype=np.int32)
    fn = lib.mplb_lm_eval
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                   ctypes.c_void_p, ctypes.POINTER(_Err)]
    err = _Err()
    rc = fn(path.encode(), tokens.ctypes.data, S, T, None if pp is None else pp.ctypes.data,
            0 if acts == "matched" else 1, out.ctypes.data, ctypes.byref(err))
    if rc < 0:
        raise ValueError(err.msg.decode())
    return out
