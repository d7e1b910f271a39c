"""The C MoE forward (core/accuracy/, via mplb_lm_eval) against the independent
numpy reference (analysis/mplb/moe_ref.py), on freshly drawn checkpoints of
every supported family and on the shipped tiny model, in bf16 and in
quantized plans (weights and activations through libmplb's quantizers)."""
import json
import os

import numpy as np
import pytest

from mplb import moe_ref as R

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TINY = os.path.join(ROOT, "models", "tiny-moe")


def rand_ckpt(path, family, rng):
    d, H, Hk, V, L, E, K, f = 64, 4, 2, 97, 3, 8, 2, 32
    hd = 16
    cfg = {"model_type": family, "vocab_size": V, "hidden_size": d, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": Hk, "num_experts_per_tok": K,
           "rms_norm_eps": 1e-5, "rope_theta": 500.0, "intermediate_size": 96}
    moe, gn, un, dn, shn, sgn, ek, fk = R.FAMILIES[family]
    cfg[ek] = E
    cfg[fk] = f if fk != "intermediate_size" else cfg[fk]
    if family == "mixtral":
        cfg["intermediate_size"] = f
    ffn = cfg[fk]
    if family == "olmoe":
        cfg["clip_qkv"] = 2.0
    if family == "qwen2_moe":
        cfg.update(shared_expert_intermediate_size=64, mlp_only_layers=[1], norm_topk_prob=False)
    if family == "qwen3_moe":
        hd = 24
        cfg.update(head_dim=hd, norm_topk_prob=True)
    if family == "deepseek":
        cfg.update(n_shared_experts=2, first_k_dense_replace=1, scoring_func="softmax")
    n = lambda *s, sc=1.0: rng.standard_normal(s) * sc
    t = {"model.embed_tokens.weight": n(V, d), "model.norm.weight": 1 + 0.1 * n(d), "lm_head.weight": n(V, d, sc=0.2)}
    dense = [R._dense_layer(cfg, l) for l in range(L)]
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * n(d)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * n(d)
        t[p + "self_attn.q_proj.weight"] = n(H * hd, d, sc=d ** -0.5)
        t[p + "self_attn.k_proj.weight"] = n(Hk * hd, d, sc=d ** -0.5)
        t[p + "self_attn.v_proj.weight"] = n(Hk * hd, d, sc=d ** -0.5)
        t[p + "self_attn.o_proj.weight"] = n(d, H * hd, sc=(H * hd) ** -0.5)
        if family == "qwen2_moe":
            for x, m in (("q", H), ("k", Hk), ("v", Hk)):
                t[p + f"self_attn.{x}_proj.bias"] = n(m * hd, sc=0.1)
        if family == "olmoe":
            t[p + "self_attn.q_norm.weight"] = 1 + 0.1 * n(H * hd)
            t[p + "self_attn.k_norm.weight"] = 1 + 0.1 * n(Hk * hd)
        if family == "qwen3_moe":
            t[p + "self_attn.q_norm.weight"] = 1 + 0.1 * n(hd)
            t[p + "self_attn.k_norm.weight"] = 1 + 0.1 * n(hd)
        if dense[l]:
            for w, sh in (("gate_proj", (96, d)), ("up_proj", (96, d)), ("down_proj", (d, 96))):
                t[p + f"mlp.{w}.weight"] = n(*sh, sc=sh[1] ** -0.5)
            continue
        t[p + f"{moe}.gate.weight"] = n(E, d, sc=0.5)
        for e in range(E):
            for w, sh in ((gn, (ffn, d)), (un, (ffn, d)), (dn, (d, ffn))):
                t[p + f"{moe}.experts.{e}.{w}.weight"] = n(*sh, sc=sh[1] ** -0.5)
        if shn:
            sf = cfg.get("shared_expert_intermediate_size") or ffn * cfg.get("n_shared_experts", 0)
            for w, sh in (("gate_proj", (sf, d)), ("up_proj", (sf, d)), ("down_proj", (d, sf))):
                t[p + f"{moe}.{shn}.{w}.weight"] = n(*sh, sc=sh[1] ** -0.5)
        if sgn:
            t[p + f"{moe}.{sgn}.weight"] = n(1, d, sc=0.3)
    R.write_checkpoint(path, cfg, t)
    return cfg


def draw_tokens(model, rng, S, T, V):
    """Tokens whose routing has no near-tie anywhere (float32 C and float64
    numpy may pick different experts at a tie; such draws are redrawn)."""
    for _ in range(50):
        tok = rng.integers(0, V, (S, T))
        _, routing = R.forward(model, tok, return_routing=True)
        if all(r is None or r[1] > 1e-3 for r in routing):
            return tok
    pytest.fail("no tie-free token draw in 50 tries")


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def token_rel(a, b):
    return (np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)).ravel()


@pytest.mark.parametrize("family", ["mixtral", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek"])
def test_families_bf16_and_quantized(tmp_path, family):
    rng = np.random.default_rng()
    cfg = rand_ckpt(str(tmp_path), family, rng)
    model = R.load(str(tmp_path))
    tok = draw_tokens(model, rng, 2, 24, cfg["vocab_size"])
    ref = R.forward(model, tok)
    got = R.c_forward(str(tmp_path), tok)
    # float32 (C) and float64 (numpy) values next to a rounding boundary of a
    # quantizer (bf16, and FP8/FP4 below) may round apart; one such flip moves
    # its token and, through attention, the later ones a little. So: the
    # typical token agrees closely, and the whole stays near (worst of 200
    # fresh draws: median 2.5e-4, overall 1.1e-3; a wrong format or scale
    # moves the median token by > 1e-2).
    assert np.median(token_rel(got, ref)) < 2e-3 and rel(got, ref) < 1e-2, family
    L, E = cfg["num_hidden_layers"], cfg[R.FAMILIES[family][6]]
    fmts = ["bf16", "fp8_e4m3", "nvfp4", "mxfp4", "int4_g32", "mxfp8", "int8"]
    prec = [[fmts[rng.integers(len(fmts))] for _ in range(E)] for _ in range(L)]
    for acts in ("matched", "bf16"):
        qref = R.forward(model, tok, prec, acts)
        qgot = R.c_forward(str(tmp_path), tok, prec, acts)
        err = np.median(token_rel(qgot, qref))
        assert err < 2e-3 and rel(qgot, qref) < 5e-2, (family, acts)
        # the plan moves the logits far more than C and numpy differ
        assert np.median(token_rel(qref, ref)) > 10 * err, (family, acts)


@pytest.mark.skipif(not os.path.exists(os.path.join(TINY, "model.safetensors")), reason="models/tiny-moe not trained")
@pytest.mark.parametrize("fmt", ["bf16", "fp8_e4m3", "nvfp4", "mxfp4"])
def test_tiny_model(fmt):
    model = R.load(TINY)
    cfg = model[0]
    rng = np.random.default_rng()
    text = open(os.path.join(TINY, "eval", "prose.txt"), "rb").read()
    s = rng.integers(0, len(text) - 64)
    tok = np.frombuffer(text[s:s + 64], np.uint8).astype(np.int64)[None]
    _, routing = R.forward(model, tok, return_routing=True)
    if any(r[1] < 1e-3 for r in routing):
        pytest.skip("a near-tie in this draw's routing")
    prec = [[fmt] * cfg["num_local_experts"]] * cfg["num_hidden_layers"]
    ref = R.forward(model, tok, prec)
    got = R.c_forward(TINY, tok, prec)
    assert np.median(token_rel(got, ref)) < 2e-3 and rel(got, ref) < 1e-2


def test_errors(tmp_path):
    rng = np.random.default_rng(1)
    rand_ckpt(str(tmp_path), "mixtral", rng)
    tok = np.zeros((1, 4), np.int32)
    with open(tmp_path / "config.json") as fh:
        cfg = json.load(fh)
    # a renamed tensor: the error names it and the closest name the file has
    t = R.read_safetensors(str(tmp_path / "model.safetensors"))
    t["model.layers.1.block_sparse_moe.gate.weightx"] = t.pop("model.layers.1.block_sparse_moe.gate.weight")
    bad = tmp_path / "bad"
    R.write_checkpoint(str(bad), cfg, t)
    with pytest.raises(ValueError, match=r"no tensor 'model.layers.1.block_sparse_moe.gate.weight'.*closest name there: 'model.layers."):
        R.c_forward(str(bad), tok)
    # an unknown family, MLA, a wrong shape, a token out of the vocabulary
    for change, msg in (({"model_type": "llama"}, "not a supported MoE family"),
                        ({"model_type": "deepseek_v3"}, "multi-head latent attention"),
                        ({"hidden_size": 32}, "has shape"),
                        ({"num_local_experts": None}, "num_local_experts' is missing")):
        c = dict(cfg, **change)
        with open(bad / "config.json", "w") as fh:
            json.dump({k: v for k, v in c.items() if v is not None}, fh)
        with pytest.raises(ValueError, match=msg):
            R.c_forward(str(bad), tok)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        R.c_forward(str(tmp_path), np.full((1, 4), 97, np.int32))


def write_shard(path, tensors, dtype):
    """A safetensors file with every tensor in dtype (BF16, F16 or F32) -- values bf16-rounded first."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        v = R.bf16_round(arr)
        bits = {"BF16": lambda: (v.view(np.uint32) >> 16).astype(np.uint16).tobytes(),
                "F16": lambda: v.astype(np.float16).tobytes(), "F32": lambda: v.astype(np.float32).tobytes()}[dtype]()
        header[name] = {"dtype": dtype, "shape": list(np.shape(arr)), "data_offsets": [off, off + len(bits)]}
        blobs.append(bits)
        off += len(bits)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


@pytest.mark.parametrize("family", ["olmoe", "deepseek"])
def test_sharded_checkpoint(tmp_path, family):
    """A checkpoint split into shards by model.safetensors.index.json (as Hugging
    Face saves large models), its tensors in BF16, F32 and F16, loads to the same
    model: the C forward gives the single-file checkpoint's logits bit for bit."""
    rng = np.random.default_rng()
    one, many = tmp_path / "one", tmp_path / "many"
    cfg = rand_ckpt(str(one), family, rng)
    t = R.read_safetensors(str(one / "model.safetensors"))
    names = list(t)
    rng.shuffle(names)
    # norms (values near 1, exact in fp16) in an F16 shard; the rest split between BF16 and F32
    norms = [n for n in names if "norm" in n]
    rest = [n for n in names if n not in norms]
    shards = {"model-00001-of-00003.safetensors": (rest[: len(rest) // 2], "BF16"),
              "model-00002-of-00003.safetensors": (rest[len(rest) // 2:], "F32"),
              "model-00003-of-00003.safetensors": (norms, "F16")}
    os.makedirs(many)
    wmap = {}
    for fname, (keys, dt) in shards.items():
        write_shard(str(many / fname), {k: t[k] for k in keys}, dt)
        wmap.update({k: fname for k in keys})
    with open(many / "model.safetensors.index.json", "w") as fh:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, fh)
    with open(many / "config.json", "w") as fh:
        json.dump(cfg, fh)
    tok = rng.integers(0, cfg["vocab_size"], (2, 12))
    E = cfg.get("num_experts") or cfg.get("n_routed_experts") or cfg.get("num_local_experts")
    prec = [["nvfp4"] * E] * cfg["num_hidden_layers"]
    for p in (None, prec):
        assert np.array_equal(R.c_forward(str(many), tok, p), R.c_forward(str(one), tok, p))
    # a shard the index names but the directory lacks: the error names it
    os.remove(many / "model-00002-of-00003.safetensors")
    with pytest.raises(ValueError, match="model-00002-of-00003.safetensors"):
        R.c_forward(str(many), tok)


@pytest.mark.skipif(not os.path.exists(os.path.join(TINY, "model.safetensors")), reason="models/tiny-moe not trained")
def test_tiny_model_full_batch_kl():
    """accuracy_small's batch (8 x 64 tokens: tens of tokens per expert, so the
    expert GEMMs take their wide-batch paths): the KL of each 4-bit and 8-bit
    plan from the C forward equals the float64 model's."""
    model = R.load(TINY)
    rng = np.random.default_rng()
    texts = [open(os.path.join(TINY, "eval", f"{d}.txt"), "rb").read() for d in ("code", "prose")]
    tok = np.stack([np.frombuffer(t[s:s + 64], np.uint8) for t in texts * 4
                    for s in [int(rng.integers(0, len(t) - 64))]]).astype(np.int64)

    def kl(ref, q):
        a, b = ref[:, :-1].astype(np.float64), q[:, :-1].astype(np.float64)
        la = a - np.logaddexp.reduce(a, axis=-1, keepdims=True)
        lb = b - np.logaddexp.reduce(b, axis=-1, keepdims=True)
        return float((np.exp(la) * (la - lb)).sum(-1).mean())
    ref_c, ref_n = R.c_forward(TINY, tok), R.forward(model, tok)
    for fmt in ("fp8_e4m3", "nvfp4", "mxfp4"):
        prec = [[fmt] * model[0]["num_local_experts"]] * model[0]["num_hidden_layers"]
        got, want = kl(ref_c, R.c_forward(TINY, tok, prec)), kl(ref_n, R.forward(model, tok, prec))
        assert got == pytest.approx(want, rel=5e-3), fmt   # bf16-rounded activations: 3.5% off
