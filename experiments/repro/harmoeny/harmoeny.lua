-- HarMoEny card (docs/reproductions/harmoeny.md): its own setting as far as
-- the public code states it (sacs-epfl/HarMoEny scripts/experiment_systems_skew.sh):
-- google/switch-base-128 (128 experts, top-1, d_model 768, d_ff 3072), 8 GPUs,
-- sequences of 120 tokens, batch 2500 sequences per GPU, the router forced to
-- a Gini skew (skew_trace.py), every GPU holding its 16 experts and the
-- rest in host memory. HarMoEny's scheduler (policies/redistribute.lua,
-- q = eq_tokens = 150 as there) against the static expert-parallel schedule
-- its DeepSpeed/FastMoE baselines use. run.sh writes the trace and sets
-- workload.file, steps and layers.
return {
  name = "harmoeny_card",
  -- Switch's expert is a ReLU FFN of 2 x 768 x 3072 weights; mplb's experts
  -- are SwiGLU (3 x d x f): f = 2048 has the same weights and FLOPs
  model = { name = "switch-base-128", layers = 6, experts = 128, top_k = 1, hidden = 768, ffn = 2048 },
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { kind = "trace", file = "skew.h5", steps = 3 },
  -- baselines beside it: static EP (the code's DeepSpeed/FastMoE schedule),
  -- FasterMoE-style shadowing (policies/shadow.lua: popular experts copied to
  -- every GPU, the copies' transfer charged when the shadowed set changes),
  -- and replication by EPLB (one redundant slot per GPU, from past loads)
  policies = { "baseline", { "redistribute", q = 150 }, "shadow", { "eplb", redundant = 8, period = 1 } },
  seed = 1,
}
