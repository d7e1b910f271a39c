-- ReaLB card, accuracy: measured on the shipped tiny MoE (models/tiny-moe, 2 layers,
-- 16 experts, top-2; NOT Qwen3-VL, which cannot run here). The model has no vision
-- tower: its held-out Python code is labelled as the "vision" domain so that
-- ReaLB's modality test has a token stream to act on; prose is the text domain.
-- 16 sequences of 128 bytes a step = 2048 tokens, ReaLB's compute-bound threshold.
-- Each plan's NVFP4 experts run W4A4 against the bf16 model on the same tokens:
-- KL, top-1 agreement and perplexity change (docs/accuracy.md). Half the sequences are
-- "vision" (the domains alternate), less vision-heavy than ReaLB's batches: the modality
-- threshold is also run at 0.5 and 0 (the paper's own threshold study used 0 / 0.7 / 0.9).
return {
  name = "repro_realb_accuracy",
  model = { name = "tiny-moe", layers = 2, experts = 16, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 8, profile = "rtx5090" },
  workload = {
    kind = "lm", lm = "tiny-moe",
    text = { vision = "tiny-moe/eval/code.txt", text = "tiny-moe/eval/prose.txt" },
    seq = 128, batch = 16, steps = 4, acts = "matched",
  },
  policies = {
    "baseline",
    { "threshold", label = "realb", tau = 1.1, vision_share = 0.7, low = "nvfp4", mode = "online", min_tokens = 2048 },
    { "threshold", label = "realb-modality-0.5", tau = 1.1, vision_share = 0.5, low = "nvfp4", mode = "online", min_tokens = 2048 },
    { "threshold", label = "realb-no-modality", tau = 1.1, vision_share = 0.0, low = "nvfp4", mode = "online", min_tokens = 2048 },
    -- not in ReaLB: the rule without the modality test, capped by a measured KL budget per step
    { "threshold", label = "realb-kl-budget-3e-3", tau = 1.1, vision_share = 0.0, low = "nvfp4", mode = "online", min_tokens = 2048, kl_budget = 3e-3 },
    { "static", label = "fp4-everywhere", prec = "nvfp4", mode = "online" },
    { "eplb", label = "eplb", period = 3 },
  },
  seed = 11,
}
