-- olmoe_domains: real OLMoE-1B-7B routing (per-domain batches, layers 0/7/15)
-- on 8 GPUs of one node: how much do precision, replication and placement
-- policies buy on real skew? (cost model, H100 profile). The trace has no
-- source ranks or per-token choices, so dispatch counts every token copy.
return {
  name = "olmoe_domains",
  model = { preset = "olmoe-1b-7b", layers = 3 },        -- the trace's 3 recorded layers
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { kind = "trace", file = "olmoe-mixtral/olmoe", steps = 6 },
  policies = {
    "baseline",
    { "threshold", tau = 1.1, low = "fp8_e4m3", min_tokens = 0 },
    { "lis", bound = 1.5 },
    "eplb",
    "redistribute",
  },
  seed = 1,
}
