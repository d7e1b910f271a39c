-- ReaLB card, timing: the paper's testbed under cost model v2 (profiles/rtx5090.lua:
-- 8 x RTX 5090, EP = 8 on one node, all-to-all over PCIe Gen5, FP4 tensor cores).
-- Model: Qwen3-VL-30B-A3B's language model, whose MoE layers have Qwen3-30B-A3B's
-- shapes (48 layers, 128 experts, top-8, hidden 2048, expert FFN 768).
-- Workload: vision-heavy prefill batches (run.sh sets tokens 4096/8192 and the
-- vision share); text routing from the log-normal popularity model fitted to
-- traces/ (zipf unset), vision tokens flooding few experts (vision_zipf). No real
-- multimodal routing trace is available to this project (docs/reproductions/realb.md).
-- Policies: ReaLB's rule (overloaded and vision-dominated ranks -> NVFP4 W4A4, weights
-- converted online behind the dispatch), the rule without its modality test, and the
-- paper's two baselines: FP4 everywhere and EPLB (rebalancing once, at step 4, paying
-- the migration of its new copies over PCIe).
return {
  name = "repro_realb_timing",
  model = { preset = "qwen3-30b-a3b", name = "qwen3-vl-30b-a3b-like" },
  cluster = { nodes = 1, gpus_per_node = 8, profile = "rtx5090" },
  workload = { steps = 6, tokens = 8192, vision_frac = 0.75, vision_zipf = 1.4 },
  policies = {
    "baseline",
    { "threshold", label = "realb", tau = 1.1, vision_share = 0.7, low = "nvfp4", mode = "online", min_tokens = 2048 },
    { "threshold", label = "realb-no-modality", tau = 1.1, vision_share = 0.0, low = "nvfp4", mode = "online", min_tokens = 2048 },
    { "static", label = "fp4-everywhere", prec = "nvfp4", mode = "online" },
    { "eplb", label = "eplb", period = 3 },
  },
  seed = 11,
}
