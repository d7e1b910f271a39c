-- R&Q card, real routing: OLMoE-1B-7B's recorded routing (traces/olmoe-mixtral/olmoe:
-- decoder layers 0/7/15, one 208,896-token batch per text domain, 6 domains = 6 steps)
-- on 8 GPUs. R&Q per layer: replicate the heavy hitters (up to max_replicas copies a
-- layer, stopping once LIS <= bound; bound 1.0 = use every copy allowed), and store
-- the least important experts in INT4 (g128) so each rank stays within its all-bf16
-- footprint. The trace has no gate weights, so importance here is the gate mass
-- (= count / k): selection frequency, which R&Q argues against; importance by
-- ablation is in accuracy.lua. run.sh also runs Mixtral-8x7B's trace (--set).
-- LIS before (/steps.lis) and after (/steps.lis_after) the policy, per layer. The policies
-- above balance each batch with its own loads (an oracle); the calib3 ones as R&Q does.
return {
  name = "repro_rq_trace",
  model = { preset = "olmoe-1b-7b", layers = 3 },
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { kind = "trace", file = "olmoe-mixtral/olmoe", steps = 6 },
  policies = {
    "baseline",
    { "lis", label = "rq-1rep", bound = 1.0, max_replicas = 1, low = "int4_g128" },
    { "lis", label = "rq-2rep", bound = 1.0, max_replicas = 2, low = "int4_g128" },
    { "lis", label = "rq-4rep", bound = 1.0, max_replicas = 4, low = "int4_g128" },
    { "lis", label = "rq-8rep", bound = 1.0, max_replicas = 8, low = "int4_g128" },
    -- R&Q's protocol: statistics from a calibration set (here the first 3 batches: OLMoE's
    -- arxiv, book and c4 domains), then frozen for the batches that follow (github, tulu, wikipedia)
    { "lis", label = "rq-2rep-calib3", bound = 1.0, max_replicas = 2, low = "int4_g128", calib = 3 },
    { "lis", label = "rq-8rep-calib3", bound = 1.0, max_replicas = 8, low = "int4_g128", calib = 3 },
  },
  seed = 1,
}
