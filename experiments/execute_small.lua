-- execute_small: a small MoE (16 experts of 256x128, top-2) small enough to
-- run every expert's FFN for real on the CPU backend. Run it both ways and
-- compare in one notebook (same run-file schema):
--   mplb run experiments/execute_small.lua -o sim.h5
--   mplb run experiments/execute_small.lua -o exec.h5 --backend cpu
return {
  name = "execute_small",
  model = { name = "tiny-moe", layers = 4, experts = 16, top_k = 2, hidden = 256, ffn = 128 },
  cluster = { nodes = 1, gpus_per_node = 4, profile = "h100" },
  workload = { steps = 4, tokens = 2048, zipf = 1.2, vision_frac = 0.5 },
  policies = {
    "baseline",
    { "threshold", tau = 1.1, low = "fp8_e4m3", min_tokens = 0, mode = "stored" },
    { "threshold", tau = 1.1, low = "nvfp4", min_tokens = 0, mode = "stored" },
    "lis",
  },
  backend = "model",
  seed = 9,
}
