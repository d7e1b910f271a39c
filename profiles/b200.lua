-- NVIDIA B200 (HGX B200, per GPU). Blackwell has FP4 tensor cores: FP4
-- formats compute at FP4 rate, with activations quantised to FP4 (W4A4).
local DS = "NVIDIA HGX B200 datasheet (per GPU; sparse figures halved to dense)"
local MMA = { 0.8, src = "assumption", range = { 0.65, 0.9 }, ref = "as h100" }
-- FP4 grouped GEMMs reach a much smaller share of their peak than bf16/fp8
-- ones in every public number found (none is a validation row): NVIDIA
-- TransformerEngine issue #2281 (B200: NVFP4 GroupedLinear at most 1.15x
-- MXFP8, i.e. ~0.58 of FP8's share), flashinfer pull request #5301 (B300,
-- DeepSeek-V3 EP8 shard, 16384 tokens: TRTLLM NVFP4 MoE 2318 TFLOPS, ~15% of
-- dense FP4 peak including routing and quantisation), vllm pull request
-- #38338 (RTX 5090 Triton NVFP4 at 52% of FP4 peak, BF16 56%).
local MMA4 = { 0.4, src = "assumption", range = { 0.25, 0.8 },
               ref = "FP4 grouped GEMMs: TE #2281 (B200 NVFP4 <= 1.15x MXFP8), flashinfer #5301 (B300 NVFP4 MoE ~15% of peak)" }
return {
  inherit = "h100",
  name = "b200",
  peak_tflops = {
    bf16 = { 2250, src = "datasheet", ref = DS .. ": BF16 4.5 PFLOPS sparse" },
    fp16 = { 2250, src = "datasheet", ref = DS .. ": FP16 4.5 PFLOPS sparse" },
    fp8_e4m3 = { 4500, src = "datasheet", ref = DS .. ": FP8 9 PFLOPS sparse" },
    fp8_e5m2 = { 4500, src = "datasheet", ref = DS .. ": FP8 9 PFLOPS sparse" },
    mxfp8 = { 4500, src = "datasheet", ref = DS .. ": FP8 9 PFLOPS sparse" },
    int8 = { 4500, src = "datasheet", ref = DS .. ": INT8 9 POPS sparse" },
    fp4_e2m1 = { 9000, src = "datasheet", ref = DS .. ": FP4 18 PFLOPS sparse" },
    mxfp4 = { 9000, src = "datasheet", ref = DS .. ": FP4 18 PFLOPS sparse" },
    nvfp4 = { 9000, src = "datasheet", ref = DS .. ": FP4 18 PFLOPS sparse" },
  },
  mma_eff = { mxfp8 = MMA, fp4_e2m1 = MMA4, mxfp4 = MMA4, nvfp4 = MMA4 },
  compute_as = { fp4_e2m1 = "fp4_e2m1", mxfp4 = "mxfp4", nvfp4 = "nvfp4", mxfp8 = "mxfp8" },
  sms = { 148, src = "datasheet", ref = "NVIDIA Blackwell architecture technical brief: 148 SMs per B200" },
  hbm_gbps = { 8000, src = "datasheet", ref = DS .. ": HBM3e 8 TB/s" },
  nvlink_gbps = { 900, src = "datasheet", ref = DS .. ": NVLink 5 1.8 TB/s bidirectional = 900 per direction" },
  memory_gb = { 180, src = "datasheet", ref = DS .. ": 180 GB (HGX B200 1.44 TB / 8)" },
}
