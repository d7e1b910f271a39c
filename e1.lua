return {
  model = { layers = 3, experts = 10, top_k = 2, hidden = 256, ffn = 128 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = 'h100' },
  workload = { steps = 3, tokens = 500, zipf = 1.0, vision_frac = 0.5, vision_zipf = 1.5 },
  policies = { 'baseline', { 'threshold', tau = 1.1, low = 'nvfp4', min_tokens = 0 } },
  seed = 11,
}
