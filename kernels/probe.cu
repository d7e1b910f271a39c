// Device-count probe: lets the CLI say whether a GPU is present. Kernels
// proper (quantizers, permute/combine, grouped GEMMs) arrive with their issues.
#include <cuda_runtime.h>

extern "C" int mplb_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}
