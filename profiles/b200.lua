-- NVIDIA B200 (HGX B200, per GPU): datasheet dense peaks.
-- Sources: NVIDIA Blackwell datasheet (dense BF16 2.25 PFLOPS, FP8 4.5 PFLOPS,
-- FP4 9 PFLOPS; HBM3e 8 TB/s; NVLink 5 1.8 TB/s bidirectional = 900 GB/s per
-- direction). Blackwell has FP4 tensor cores: FP4 formats compute at FP4 rate.
return {
  inherit = "h100",
  name = "b200",
  peak_tflops = { bf16 = 2250, fp16 = 2250, fp8_e4m3 = 4500, fp8_e5m2 = 4500, mxfp8 = 4500,
                  int8 = 4500, fp4_e2m1 = 9000, mxfp4 = 9000, nvfp4 = 9000 },
  compute_as = { fp4_e2m1 = "fp4_e2m1", mxfp4 = "mxfp4", nvfp4 = "nvfp4", mxfp8 = "mxfp8" },
  hbm_gbps = 8000,
  nvlink_gbps = 900,
  memory_gb = 180,
}
