-- rq: R&Q (replicate heavy hitters, quantize the least important experts so
-- memory stays flat) on real OLMoE routing: per-domain batches of ~209k
-- tokens, decoder layers 0/7/15, 8 GPUs. Bounds on LIS as the knob.
return {
  name = "rq",
  model = { preset = "olmoe-1b-7b", layers = 3 },
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { kind = "trace", file = "olmoe-mixtral/olmoe", steps = 6 },
  policies = {
    "baseline",
    { "lis", label = "rq(bound=2.0)", bound = 2.0 },
    { "lis", label = "rq(bound=1.5)", bound = 1.5 },
    { "lis", label = "rq(bound=1.2)", bound = 1.2 },
    { "lis", label = "rq(bound=1.2,int8)", bound = 1.2, low = "int8" },
  },
  seed = 1,
}
