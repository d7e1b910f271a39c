-- demo: ReaLB-style per-rank precision switching on a skewed multimodal
-- prefill, under the cost model with the H100 profile.
return {
  name = "demo",
  model = "qwen3-30b-a3b",                        -- 48 layers, 128 experts, top-8
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = {
    kind = "synthetic",
    steps = 8,
    tokens = 8192,            -- a 8K-token prefill batch
    zipf = 0.8,               -- text routing skew
    vision_frac = 0.6,        -- share of vision tokens
    vision_zipf = 1.4,        -- vision tokens flood a few experts
  },
  policies = {
    "baseline",
    { "threshold", tau = 1.25, low = "fp8_e4m3" },
    { "threshold", tau = 1.25, low = "nvfp4" },
  },
  backend = "model",
  seed = 42,
}
