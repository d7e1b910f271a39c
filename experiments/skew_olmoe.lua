-- skew_olmoe: realistic skew, synthetic time structure. Each layer's expert
-- popularity has the shape of OLMoE's measured per-layer loads; four task
-- families drift over 40 steps, consecutive layers are correlated, and every
-- fourth step is a prefill (the rest decode).
return {
  name = "skew_olmoe",
  model = "olmoe-1b-7b",
  cluster = { nodes = 2, gpus_per_node = 4, profile = "h100" },
  workload = {
    kind = "synthetic", steps = 40, tokens = 8192, decode_tokens = 256, prefill_every = 4,
    skew_from = "olmoe-mixtral/olmoe", families = 4, drift = 0.8, drift_period = 40,
    layer_corr = 0.7, src_affinity = 0.3, vision_frac = 0.0,
  },
  policies = { "baseline", { "threshold", min_tokens = 0, low = "fp8_e4m3" }, "learned", "eplb", "locality" },
  seed = 7,
}
