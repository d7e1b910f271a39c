return {
  model = { layers = 3, experts = 3, top_k = 1, hidden = 256, ffn = 128 },
  cluster = { nodes = 1, gpus_per_node = 1, profile = 'h100' },
  workload = { steps = 2, tokens = 0, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5 },
  policies = { 'baseline', 'threshold' },
  seed = 11,
}
