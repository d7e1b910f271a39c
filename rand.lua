return { model = { layers = 2, experts = 4, top_k = 3, hidden = 512, ffn = 256 },
  cluster = { nodes = 1, gpus_per_node = 1, profile = 'h100' },
  workload = { steps = 4, tokens = 1202, zipf = 0.61, vision_frac = 0.5 },
  policies = { 'baseline', 'static', {'threshold', min_tokens=0}, 'redistribute', 'lis', 'expert_level', {'learned', min_tokens=0}, 'eplb', 'locality' }, seed = 5 }
