return { model = 'deepseek-v3', cluster = { gpus_per_node = 8 }, backend = 'cpu',
  workload = { steps = 1, tokens = 8 }, policies = { 'baseline' } }
