-- NVIDIA H200 SXM 141 GB: H100's compute with HBM3e (inherits the rest).
local DS = "NVIDIA H200 Tensor Core GPU datasheet"
return {
  inherit = "h100",
  name = "h200",
  hbm_gbps = { 4800, src = "datasheet", ref = DS .. ": HBM3e 4.8 TB/s" },
  memory_gb = { 141, src = "datasheet", ref = DS .. ": 141 GB" },
}
