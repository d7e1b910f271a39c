-- NVIDIA H200 SXM 141 GB: H100's compute with HBM3e.
-- Sources: NVIDIA H200 Tensor Core GPU datasheet (same dense BF16/FP8 peaks as
-- H100 SXM: 989 / 1979 TFLOPS; HBM3e 4.8 TB/s; 141 GB; NVLink 900 GB/s
-- bidirectional = 450 GB/s per direction). Hopper: no FP4 tensor cores, so
-- FP4 formats stay weight-only at the FP8 rate (inherited from h100).
return {
  inherit = "h100",
  name = "h200",
  hbm_gbps = 4800,
  memory_gb = 141,
}
