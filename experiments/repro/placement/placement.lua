-- Placement card (docs/reproductions/placement.md): the activation-pattern
-- study (arXiv 2604.23150) on real OLMoE-1B-7B routing (3 recorded layers),
-- 4 nodes x 8 GPUs. run.sh builds two traces of the same requests
-- (group_requests.py: arrival order, or grouped to nodes by k-means) and runs
-- this file on each: the default placement against cluster_place
-- (capacity-bounded placement from the first step's per-node demand, kept).
return {
  name = "placement_card",
  model = { preset = "olmoe-1b-7b", layers = 3 },
  cluster = { nodes = 4, gpus_per_node = 8, profile = "h100" },
  workload = { kind = "trace", file = "arrival.trace.h5", steps = 6 },
  policies = { "baseline", { "cluster_place", warmup = 1 } },
  seed = 1,
}
