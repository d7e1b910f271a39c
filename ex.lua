return { model = { layers = 2, experts = 6, top_k = 2, hidden = 64, ffn = 32 },
  cluster = { gpus_per_node = 4 }, backend = 'cpu',
  workload = { steps = 2, tokens = 256, zipf = 1.0 },
  policies = { 'baseline', {'static', prec = 'fp8_e4m3'}, {'static', prec = 'nvfp4'},
               {'static', label = 'online', prec = 'nvfp4', mode = 'online'} }, seed = 3 }
