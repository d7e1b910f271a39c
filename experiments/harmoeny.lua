-- harmoeny: HarMoEny-style token redistribution to the least loaded GPUs
-- (weights prefetched from host memory over PCIe, as cost model v2 charges),
-- against the baseline's idle time, on a
-- skewed synthetic prefill; q = the minimum tokens worth moving.
return {
  name = "harmoeny",
  model = "qwen3-30b-a3b",
  cluster = { nodes = 1, gpus_per_node = 8, profile = "h100" },
  workload = { steps = 6, tokens = 8192, zipf = { 0.8, 1.2 }, vision_frac = 0.0 },
  policies = {
    "baseline",
    { "redistribute", q = { 50, 150, 500 } },
  },
  seed = 5,
}
