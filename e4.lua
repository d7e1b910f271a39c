return {
  model = { layers = 3, experts = 4, top_k = 1, hidden = 256, ffn = 128 },
  cluster = { nodes = 1, gpus_per_node = 2, profile = 'h100' },
  workload = { steps = 5, tokens = 50, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5 },
  policies = { 'baseline', 'failing.lua' },
  seed = 11,
}
