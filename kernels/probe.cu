// Device-count probe: tells "this machine has no GPU" (a skip) apart from
// "the CUDA runtime cannot talk to the driver" (an error to fix: a driver
// older than the runtime, a missing kernel module, a device busy elsewhere).
// Kernels proper are in quant.cu (element-wise), ffn.cu (cuBLASLt expert
// FFN) and calibrate_gpu.cu.
#include <cuda_runtime.h>
#include "mplb.h"
#include "mplb/cuda.h"

extern "C" int mplb_cuda_devices(int *n, mplb_err *err) {
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e == cudaSuccess && *n > 0) return 0;
    *n = 0;
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);   // 0: no driver installed (libcuda absent), as on CI
    cudaRuntimeGetVersion(&rt);
    if (e == cudaSuccess || e == cudaErrorNoDevice)
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: this machine has no CUDA device");
    if (e == cudaErrorInsufficientDriver && drv == 0)
        return mplb_err_set(err, MPLB_EUNSUPP, "cuda: this machine has no CUDA device (no CUDA driver is installed)");
    return mplb_err_set(err, MPLB_EIO,
                        "cuda: cudaGetDeviceCount failed: %s (%s); driver supports CUDA %d.%d, runtime is %d.%d%s",
                        cudaGetErrorName(e), cudaGetErrorString(e), drv / 1000, drv % 1000 / 10, rt / 1000,
                        rt % 1000 / 10, drv && drv < rt ? ": the driver is older than the runtime" : "");
}
