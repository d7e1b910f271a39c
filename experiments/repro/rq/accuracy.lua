-- R&Q card, importance by ablation and measured accuracy: the shipped tiny MoE
-- (models/tiny-moe: 2 layers, 16 experts, top-2; not one of R&Q's models) reads
-- held-out code and prose; each expert's importance is measured by ablation (the
-- KL of the output when it is removed, every step and layer: workload.ablation),
-- R&Q replicates the heavy hitters and stores the least important experts in
-- INT4 (weight-only, g128) to stay within each rank's bf16 footprint. The same
-- policy with gate-mass importance beside it. Accuracy: KL, top-1 agreement and
-- perplexity change against the bf16 model on the same tokens.
return {
  name = "repro_rq_accuracy",
  model = { name = "tiny-moe", layers = 2, experts = 16, top_k = 2, hidden = 64, ffn = 64 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = "h100" },
  workload = {
    kind = "lm", lm = "tiny-moe",
    text = { code = "tiny-moe/eval/code.txt", prose = "tiny-moe/eval/prose.txt" },
    seq = 64, batch = 16, steps = 4, acts = "matched", ablation = true,
  },
  policies = {
    "baseline",
    { "lis", label = "rq-1rep-ablation", bound = 1.0, max_replicas = 1, low = "int4_g128", importance = "ablation" },
    { "lis", label = "rq-2rep-ablation", bound = 1.0, max_replicas = 2, low = "int4_g128", importance = "ablation" },
    { "lis", label = "rq-4rep-ablation", bound = 1.0, max_replicas = 4, low = "int4_g128", importance = "ablation" },
    { "lis", label = "rq-2rep-mass", bound = 1.0, max_replicas = 2, low = "int4_g128", importance = "mass" },
  },
  seed = 3,
}
