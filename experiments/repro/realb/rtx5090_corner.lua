-- ReaLB card, mismatch 1: the rtx5090 profile with its two deciding assumptions at their
-- pessimistic ends together (--sensitivity moves one at a time): the host-staged all-to-all's
-- link efficiency at 0.3 (range 0.3-0.8) and the FP8/FP4 grouped-GEMM share of peak at 0.4
-- (range 0.4-0.8). Used by run.sh (full size) for the joint-corner run the card reports.
local LOW = { 0.4, src = "assumption", range = { 0.4, 0.8 },
              ref = "rtx5090's MMA_LOW at the low end of its range (joint corner)" }
return {
  name = "rtx5090-corner",
  inherit = "rtx5090",
  nvlink_eff = { 0.3, src = "assumption", range = { 0.3, 0.8 }, ref = "rtx5090's nvlink_eff at the low end of its range (joint corner)" },
  mma_eff = { fp8_e4m3 = LOW, fp8_e5m2 = LOW, mxfp8 = LOW, int8 = LOW, fp4_e2m1 = LOW, mxfp4 = LOW, nvfp4 = LOW },
}
