-- NVIDIA H100 SXM5 80 GB: datasheet dense peaks (no sparsity).
-- Sources: NVIDIA H100 Tensor Core GPU datasheet (BF16 989 TFLOPS, FP8 1979
-- TFLOPS, HBM3 3.35 TB/s, NVLink 4 900 GB/s bidirectional = 450 GB/s per
-- direction); ConnectX-7 400 Gb/s NIC per GPU = 50 GB/s.
-- Hopper has FP8 tensor cores but no FP4 ones: FP4 formats (fp4_e2m1, mxfp4,
-- nvfp4) are weight-only here, dequantised and computed at the FP8 rate, so
-- their weight bytes shrink and their FLOP rate does not. INT4 runs as bf16
-- after dequantisation (no INT4 tensor-core path in Hopper's MMA for these).
-- eff(n): a first guess for a grouped GEMM's share of peak at n tokens per
-- expert, replaced by `mplb calibrate` measurements where a GPU is available.
return {
  name = "h100",
  peak_tflops = { bf16 = 989, fp16 = 989, fp8_e4m3 = 1979, fp8_e5m2 = 1979, int8 = 1979 },
  compute_as = {
    mxfp8 = "fp8_e4m3", fp4_e2m1 = "fp8_e4m3", mxfp4 = "fp8_e4m3", nvfp4 = "fp8_e4m3",
    int4_g32 = "bf16", int4_g128 = "bf16",
  },
  hbm_gbps = 3350,
  nvlink_gbps = 450,
  net_gbps = 50,
  nvlink_lat_us = 8,
  net_lat_us = 15,
  launch_us = 5,
  conv_eff = 0.5,
  memory_gb = 80,
  eff = {
    default = { {1, 0.01}, {16, 0.10}, {128, 0.45}, {1024, 0.70}, {8192, 0.80} },
  },
}
