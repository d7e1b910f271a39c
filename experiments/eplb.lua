-- eplb: DeepSeek's EPLB (redundant experts, hierarchical packing) on a
-- DeepSeek-V3-sized layer stack, 4 nodes x 8 GPUs, with 32 or 64 redundant
-- slots, rebalanced every step from past loads.
return {
  name = "eplb",
  model = { preset = "deepseek-v3", layers = 8 },
  cluster = { nodes = 4, gpus_per_node = 8, profile = "h100", expert_memory_gb = 60 },
  workload = { steps = 6, tokens = 16384, zipf = 1.0, layer_corr = 0.5, vision_frac = 0.0 },
  -- one rebalance, at step 4 (EPLB's declared period): its migration is charged then
  policies = { "baseline", { "eplb", redundant = { 32, 64 }, groups = 8, period = 3 } },
  seed = 2,
}
