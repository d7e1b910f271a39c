-- EPLB card (docs/reproductions/eplb.md): DeepSeek's EPLB on its own
-- deployment unit for prefill (EP32 = 4 nodes x 8 H800, DeepSeek-V3 shapes),
-- rebalanced every `period` steps from decayed past loads, each rebalance's
-- migration charged by cost model v2; hierarchical (8 expert groups packed to
-- the 4 nodes) and global (one group); beside it LPLB (policies/lplb.lua):
-- the same EPLB copies, each batch's tokens split over them by an LP.
-- Routing: the data-fitted default workload (log-normal popularity from the
-- shipped OLMoE/Mixtral traces, regime changes and drift; docs/trace-file.md),
-- since no public DeepSeek-V3 routing trace was found.
-- run.sh sets workload.steps and model.layers (full and --small).
return {
  name = "eplb_card",
  model = { preset = "deepseek-v3", layers = 4 },
  cluster = { nodes = 4, gpus_per_node = 8, profile = "h800" },
  workload = { steps = 60, tokens = 16384 },
  policies = {
    "baseline",
    { "eplb", redundant = 32, groups = 8, period = 1 },
    { "eplb", redundant = 32, groups = 8, period = 10 },
    { "eplb", redundant = 32, groups = 8, period = 30 },
    { "eplb", redundant = 32, groups = 1, period = 10 },
    { "eplb", redundant = 64, groups = 8, period = 10 },
    { "lplb", redundant = 32, groups = 8, period = 10 },
  },
  seed = 11,
}
