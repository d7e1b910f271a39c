-- realb: ReaLB's setting under the cost model. EP=8 on one node, a
-- Qwen3-VL-30B-A3B-sized MoE (Qwen3-30B-A3B shapes), multimodal prefill
-- batches of 4K and 8K tokens (60% vision; vision tokens flood few experts),
-- on ReaLB's own testbed (RTX 5090: GDDR7, PCIe only, FP4 tensor cores),
-- Hopper (FP4 weight-only) and Blackwell B200 (FP4 tensor cores).
-- Policies: the paper's rule (overloaded + vision-dominated ranks -> NVFP4,
-- converted online behind the dispatch), the same without the modality test,
-- FP4 everywhere, and EPLB rebalancing once in the run, at step 4 (its declared
-- period: the cost model charges the rebalance's weight migration).
return {
  name = "realb",
  model = "qwen3-30b-a3b",
  cluster = { nodes = 1, gpus_per_node = 8, profile = { "rtx5090", "h100", "b200" } },
  workload = { steps = 6, tokens = { 4096, 8192 }, zipf = 0.8, vision_frac = 0.6, vision_zipf = 1.4 },
  policies = {
    "baseline",
    { "threshold", label = "realb(vision>=0.7)", tau = 1.1, vision_share = 0.7, low = "nvfp4" },
    { "threshold", label = "realb(no modality)", tau = 1.1, vision_share = 0.0, low = "nvfp4" },
    { "static", label = "fp4-everywhere", prec = "nvfp4", mode = "online" },
    { "eplb", period = 3 },
  },
  seed = 11,
}
