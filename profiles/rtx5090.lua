-- NVIDIA GeForce RTX 5090 (GB202, Blackwell, GDDR7): ReaLB's testbed
-- (8 x RTX 5090, EP = 8). No NVLink: the all-to-all runs over PCIe Gen5
-- (GeForce drivers disable peer-to-peer, so copies stage through host
-- memory). FP4 tensor cores: FP4 formats compute at FP4 rate (W4A4).
local DS = "NVIDIA GeForce RTX 5090 specifications / RTX Blackwell architecture whitepaper (sparse figures halved to dense)"
local PCIE = "PCIe Gen5 x16: 32 GT/s x 16 lanes, 128b/130b = 63 GB/s per direction"
local MMA = { 0.56, src = "published",
              ref = "zzc0721/torch-performance-test-data issues #96, #124: torch BF16 matmul 8192^2-10240^2 on RTX 5090 = 235-240 TFLOPS of 419 dense" }
local MMA_LOW = { 0.56, src = "assumption", range = { 0.4, 0.8 },
                  ref = "no tuned FP8/FP4 grouped-GEMM measurement on GB202 found; taken as the bf16 share (power-limited clocks)" }
return {
  name = "rtx5090",
  peak_tflops = {
    bf16 = { 419, src = "datasheet", ref = DS .. ": FP16/BF16 tensor 838 TFLOPS sparse" },
    fp16 = { 419, src = "datasheet", ref = DS .. ": FP16/BF16 tensor 838 TFLOPS sparse" },
    fp8_e4m3 = { 838, src = "datasheet", ref = DS .. ": FP8 tensor 1676 TFLOPS sparse" },
    fp8_e5m2 = { 838, src = "datasheet", ref = DS .. ": FP8 tensor 1676 TFLOPS sparse" },
    mxfp8 = { 838, src = "datasheet", ref = DS .. ": FP8 tensor 1676 TFLOPS sparse" },
    int8 = { 838, src = "datasheet", ref = DS .. ": INT8 tensor 1676 TOPS sparse" },
    fp4_e2m1 = { 1676, src = "datasheet", ref = DS .. ": FP4 tensor 3352 TFLOPS sparse (AI TOPS)" },
    mxfp4 = { 1676, src = "datasheet", ref = DS .. ": FP4 tensor 3352 TFLOPS sparse (AI TOPS)" },
    nvfp4 = { 1676, src = "datasheet", ref = DS .. ": FP4 tensor 3352 TFLOPS sparse (AI TOPS)" },
  },
  mma_eff = { bf16 = MMA, fp16 = MMA, fp8_e4m3 = MMA_LOW, fp8_e5m2 = MMA_LOW, mxfp8 = MMA_LOW, int8 = MMA_LOW,
              fp4_e2m1 = MMA_LOW, mxfp4 = MMA_LOW, nvfp4 = MMA_LOW },
  compute_as = { int4_g32 = "bf16", int4_g128 = "bf16" },
  sms = { 170, src = "datasheet", ref = DS .. ": 170 SMs" },
  tile_m = { 128, src = "assumption", range = { 64, 128 }, ref = "CUTLASS SM120 block-scaled tiles: 128 x 128" },
  tile_n = { 128, src = "assumption", range = { 64, 256 }, ref = "CUTLASS SM120 block-scaled tiles: 128 x 128" },
  hbm_gbps = { 1792, src = "datasheet", ref = DS .. ": 32 GB GDDR7, 512-bit, 28 Gb/s = 1792 GB/s" },
  hbm_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "streaming kernels reach 60-90% of DRAM peak" },
  nvlink_gbps = { 63, src = "datasheet", ref = "no NVLink on GeForce; " .. PCIE },
  nvlink_eff = { 0.5, src = "assumption", range = { 0.3, 0.8 }, ref = "P2P disabled on GeForce: GPU->host->GPU staging crosses PCIe twice" },
  nvlink_lat_us = { 20, src = "assumption", range = { 10, 50 }, ref = "host-staged all-to-all (NCCL over shared memory); not published" },
  net_gbps = { 12.5, src = "assumption", range = { 3, 50 }, ref = "ReaLB's testbed is one node; a 100 Gb/s NIC if a second node is modelled" },
  net_eff = { 0.8, src = "assumption", range = { 0.6, 1.0 }, ref = "as h100" },
  net_lat_us = { 30, src = "assumption", range = { 10, 60 }, ref = "as h100, slower NIC" },
  host_gbps = { 63, src = "datasheet", ref = PCIE },
  host_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "pinned host-to-device copies reach 60-90% of PCIe" },
  launch_us = { 5, src = "assumption", range = { 2, 10 }, ref = "launch and tail of one grouped GEMM" },
  conv_eff = { 0.8, src = "assumption", range = { 0.6, 0.9 }, ref = "as hbm_eff: a bf16->fp4 cast is one read and one write stream (no GB202 cast throughput published; H100 and B200 casts reach 0.79-0.87 of datasheet HBM, validation/measurements.lua)" },
  memory_gb = { 32, src = "datasheet", ref = DS .. ": 32 GB GDDR7" },
}
