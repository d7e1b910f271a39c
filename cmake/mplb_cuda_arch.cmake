# The CUDA architectures mplb builds for, from nvcc's version (CMake only
# knows CMAKE_CUDA_COMPILER_VERSION after enable_language, too late to choose
# them): Hopper sm_90 (FP8 tensor cores) from nvcc 11.8, Blackwell sm_100
# (FP4 tensor cores) from 12.8. out: "90;100", "90", or "" (too old), and
# msg: what to tell the user when not both. tests/cuda_arch_test.cmake checks it.
function(mplb_cuda_arch_for version out msg)
  if(version VERSION_GREATER_EQUAL 12.8)
    set(${out} "90;100" PARENT_SCOPE)
    set(${msg} "" PARENT_SCOPE)
  elseif(version VERSION_GREATER_EQUAL 11.8)
    set(${out} "90" PARENT_SCOPE)
    set(${msg} "nvcc ${version} predates Blackwell (sm_100 needs 12.8): building sm_90 only, so no FP4 tensor-core GEMMs; set CMAKE_CUDA_ARCHITECTURES to override" PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
    set(${msg} "nvcc '${version}' is older than 11.8 (no sm_90, no FP8): CUDA kernels not built" PARENT_SCOPE)
  endif()
endfunction()

# "release X.Y" from `nvcc --version`
function(mplb_nvcc_version text out)
  string(REGEX MATCH "release ([0-9]+\\.[0-9]+)" _m "${text}")
  set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()
