-- accuracy_small: accuracy measured, not proxied. The shipped tiny MoE
-- (models/tiny-moe: 2 layers, 16 experts, top-2, trained on CPython's
-- source and reference text) reads held-out Python code and prose; its own
-- router gives the routing every policy sees, and each policy's precisions
-- run for real (W8A8 / W4A4) against the bf16 model on the same tokens:
-- KL, top-1 agreement and perplexity change go into the run file beside
-- the error proxy. Times: cost model (h100 profile).
return {
  name = "accuracy_small",
  model = { name = "tiny-moe", layers = 2, experts = 16, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = "h100" },
  workload = {
    kind = "lm",
    lm = "tiny-moe",
    text = { code = "tiny-moe/eval/code.txt", prose = "tiny-moe/eval/prose.txt" },
    seq = 64, batch = 8, steps = 4,
    acts = "matched",          -- W8A8 for fp8, W4A4 for nvfp4
  },
  policies = {
    "baseline",
    { "static", prec = "fp8_e4m3", label = "fp8-everywhere" },
    { "static", prec = "nvfp4", label = "nvfp4-everywhere" },
    { "threshold", tau = 1.1, low = "nvfp4", min_tokens = 0, mode = "stored" },
  },
  seed = 3,
}
