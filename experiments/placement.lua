-- placement: expert placement from activation patterns (the Maverick /
-- DeepSeek-V3 / Qwen3-235B study) versus EPLB and the default placement, on
-- 4 nodes x 8 GPUs where each node's requests lean to one task family
-- (src_affinity). The study reports all-to-all bytes up to 20% lower (~6%
-- layer time).
return {
  name = "placement",
  model = "qwen3-235b-a22b",
  cluster = { nodes = 4, gpus_per_node = 8, profile = "h100" },
  workload = { steps = 8, tokens = 8192, zipf = 1.0, families = 4, src_affinity = { 0.3, 0.7 },
               layer_corr = 0.5, vision_frac = 0.0 },
  -- one rebalance, at step 5 (the period each placement policy declares): the
  -- cost model charges its weight migration in that step
  policies = { "baseline", { "locality", period = 4 }, { "eplb", period = 4 } },
  seed = 3,
}
