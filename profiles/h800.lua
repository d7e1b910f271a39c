-- NVIDIA H800 SXM5 80 GB: H100 SXM5 silicon with NVLink cut to 400 GB/s
-- (bidirectional). The testbed of DeepEP's and DeepGEMM's published numbers.
local DS = "NVIDIA H800 SXM5 specifications (H100 SXM5 compute and HBM3; NVLink 400 GB/s bidirectional)"
return {
  inherit = "h100",
  name = "h800",
  nvlink_gbps = { 200, src = "datasheet", ref = DS .. " = 200 per direction" },
}
