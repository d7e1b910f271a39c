-- accuracy_proxy: how well the error proxy tracks the measured KL on the
-- shipped tiny MoE. Many plans (every format everywhere, ReaLB thresholds,
-- expert_level budgets, R&Q bounds), each measured on the model's output;
-- docs/accuracy.md reports the correlation of error_proxy with kl over
-- (policy, step) and how it was computed.
return {
  name = "accuracy_proxy",
  model = { name = "tiny-moe", layers = 2, experts = 16, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = "b200" },
  workload = {
    kind = "lm", lm = "tiny-moe",
    text = { code = "tiny-moe/eval/code.txt", prose = "tiny-moe/eval/prose.txt" },
    seq = 64, batch = 8, steps = 6,
  },
  policies = {
    "baseline",
    { "static", prec = "fp8_e4m3", label = "all-fp8_e4m3" },
    { "static", prec = "fp8_e5m2", label = "all-fp8_e5m2" },
    { "static", prec = "mxfp8", label = "all-mxfp8" },
    { "static", prec = "int8", label = "all-int8" },
    { "static", prec = "nvfp4", label = "all-nvfp4" },
    { "static", prec = "mxfp4", label = "all-mxfp4" },
    { "static", prec = "int4_g32", label = "all-int4_g32" },
    { "static", prec = "int4_g128", label = "all-int4_g128" },
    { "threshold", tau = 1.0, low = "nvfp4", min_tokens = 0 },
    { "threshold", tau = 1.2, low = "nvfp4", min_tokens = 0 },
    { "threshold", tau = 1.0, low = "mxfp4", min_tokens = 0 },
    { "threshold", tau = 1.0, low = "fp8_e4m3", min_tokens = 0 },
    { "expert_level", budget = 0.01, low = "nvfp4" },
    { "expert_level", budget = 0.03, low = "nvfp4" },
    { "expert_level", budget = 0.06, low = "nvfp4" },
    { "lis", bound = 1.1, low = "nvfp4" },
    { "lis", bound = 1.1, low = "int4_g128" },
  },
  seed = 5,
}
