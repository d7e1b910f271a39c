/* mplb_st: read tensors from a safetensors file (weights a user gives, for
 * the accuracy measurement). Layout: an 8-byte little-endian header length,
 * a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, ...,
 * "__metadata__": {...}}, then the data. F32, F16 and BF16 tensors are read
 * as float32. Every malformed header, offset, dtype or size is an error
 * naming the file and the tensor.
 */
#ifndef MPLB_SAFETENSORS_H
#define MPLB_SAFETENSORS_H

#include "mplb/api.h"

#include <stdint.h>
#include "mplb/err.h"

MPLB_BEGIN_DECLS

typedef struct mplb_st_tensor {
    char name[256];
    char dtype[8];
    int ndim;
    int64_t shape[8];
    uint64_t begin, end;   /* byte offsets into the data section */
} mplb_st_tensor;

typedef struct mplb_st {
    char path[1024];
    int n;
    mplb_st_tensor *tensors;
    uint64_t data_start, file_size;
} mplb_st;

MPLB_API int mplb_st_open(const char *path, mplb_st *st, mplb_err *err);
MPLB_API void mplb_st_close(mplb_st *st);
/* Index of a tensor by name, or -1. */
MPLB_API int mplb_st_find(const mplb_st *st, const char *name);
/* Read tensor i as float32 into a malloc'd buffer of its element count. */
MPLB_API int mplb_st_read_f32(const mplb_st *st, int i, float **out, int64_t *count, mplb_err *err);

MPLB_END_DECLS

#endif
