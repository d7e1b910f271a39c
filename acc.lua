-- Accuracy table measured by `mplb calibrate --accuracy` (mplb 0.1.0, git 5563e31):
-- relative L2 error and cosine of one expert's SwiGLU FFN (CPU kernel, weights
-- in each format, bf16 activations, 8 tokens) against a float64 reference.
-- Weights: expert.safetensors: e.gate_proj.weight, e.up_proj.weight, e.down_proj.weight.
-- Use it in an experiment: accuracy = "THIS_FILE" (the run's error proxy then
-- weighs these errors; bf16 is the reference format and counts its own error).
return {
  error = { bf16 = 0.00492016, fp16 = 0.00393048, fp8_e4m3 = 0.0420714, fp8_e5m2 = 0.0981192, fp4_e2m1 = 0.186143, mxfp8 = 0.0460886, mxfp4 = 0.19695, nvfp4 = 0.157764, int8 = 0.00780866, int4_g32 = 0.110115, int4_g128 = 0.131216, },
  cosine = { bf16 = 0.99999005, fp16 = 0.9999952, fp8_e4m3 = 0.99912059, fp8_e5m2 = 0.99541907, fp4_e2m1 = 0.98435621, mxfp8 = 0.99899946, mxfp4 = 0.98135293, nvfp4 = 0.98902391, int8 = 0.99997142, int4_g32 = 0.99392332, int4_g128 = 0.99150358, },
}
