-- NVIDIA H100 SXM5 80 GB. Every value says where it comes from (src):
-- datasheet, published (a repository or paper and its table), measured, or
-- assumption (with the range `mplb run --sensitivity` explores).
-- Hopper has FP8 tensor cores but no FP4 ones: FP4 formats (fp4_e2m1, mxfp4,
-- nvfp4) are weight-only here, dequantised and computed at the FP8 rate, so
-- their weight bytes shrink and their FLOP rate does not. INT4 runs as bf16
-- after dequantisation (no INT4 tensor-core path in Hopper's MMA for these).
local DS = "NVIDIA H100 Tensor Core GPU datasheet (SXM5, dense, no sparsity)"
return {
  name = "h100",
  peak_tflops = {
    bf16 = { 989, src = "datasheet", ref = DS }, fp16 = { 989, src = "datasheet", ref = DS },
    fp8_e4m3 = { 1979, src = "datasheet", ref = DS }, fp8_e5m2 = { 1979, src = "datasheet", ref = DS },
    int8 = { 1979, src = "datasheet", ref = DS .. " (INT8 TOPS)" },
  },
  -- share of the peak a large, well-tuned grouped GEMM sustains; tile and wave
  -- quantisation at small token counts are modelled separately (sms, tile_m/n)
  mma_eff = {
    bf16 = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "large tuned GEMMs sustain 65-90% of dense peak (clocks under load)" },
    fp16 = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "as bf16" },
    fp8_e4m3 = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "as bf16; fine-grained scaling promotes partial sums on CUDA cores" },
    fp8_e5m2 = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "as fp8_e4m3" },
    int8 = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "as fp8_e4m3" },
  },
  compute_as = {
    mxfp8 = "fp8_e4m3", fp4_e2m1 = "fp8_e4m3", mxfp4 = "fp8_e4m3", nvfp4 = "fp8_e4m3",
    int4_g32 = "bf16", int4_g128 = "bf16",
  },
  sms = { 132, src = "datasheet", ref = "NVIDIA H100 whitepaper: 132 SMs on H100 SXM5" },
  tile_m = { 256, src = "published", ref = "deepseek-ai/DeepGEMM deep_gemm/jit_kernels/gemm.py at 327ec92, get_best_configs: block_m 64, 128, 256" },
  tile_n = { 160, src = "published", ref = "deepseek-ai/DeepGEMM deep_gemm/jit_kernels/gemm.py at 327ec92, get_best_configs: block_n 16..128 by 8, 144, 160" },
  hbm_gbps = { 3350, src = "datasheet", ref = DS .. ": HBM3 3.35 TB/s" },
  hbm_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "streaming kernels reach 60-90% of HBM peak" },
  nvlink_gbps = { 450, src = "datasheet", ref = DS .. ": NVLink 900 GB/s bidirectional = 450 per direction" },
  nvlink_eff = { 0.8, src = "assumption", range = { 0.7, 0.95 }, ref = "DeepEP README (legacy V1): H800 NVLink '~160 GB/s maximum' of 200 per direction" },
  nvlink_lat_us = { 10, src = "assumption", range = { 5, 25 }, ref = "kernel launch + barrier of an intranode all-to-all; not published" },
  net_gbps = { 50, src = "datasheet", ref = "ConnectX-7 400 Gb/s NIC per GPU = 50 GB/s per direction" },
  net_eff = { 0.9, src = "assumption", range = { 0.75, 1.0 }, ref = "DeepEP README (legacy V1): CX7 '~50 GB/s maximum bandwidth'" },
  net_lat_us = { 20, src = "assumption", range = { 10, 40 }, ref = "RDMA round trips of an internode all-to-all; not published separately" },
  host_gbps = { 64, src = "datasheet", ref = DS .. ": PCIe Gen5 128 GB/s bidirectional" },
  host_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "pinned host-to-device copies reach 60-90% of PCIe" },
  launch_us = { 5, src = "assumption", range = { 2, 10 }, ref = "launch and tail of one grouped GEMM" },
  -- a bf16 -> fp8/fp4 cast is one HBM stream (read bf16, write p and its block
  -- scales; the block max stays in registers): it streams like any kernel,
  -- so it takes hbm_eff's value and range (not fitted to the conversion rows)
  conv_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "as hbm_eff: a cast is one read and one write stream; checked by validation rows ao-* (pytorch/ao H100 FP8 blockwise casts) and fi-nvfp4-* (FlashInfer B200 NVFP4)" },
  memory_gb = { 80, src = "datasheet", ref = DS },
}
