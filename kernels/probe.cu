// Device-count probe: lets the CLI say whether a GPU is present. Kernels
// proper are in quant.cu (element-wise), ffn.cu (cuBLASLt expert FFN) and
// calibrate_gpu.cu.
#include <cuda_runtime.h>

extern "C" int mplb_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}
