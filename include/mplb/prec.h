/* mplb_prec: the precision names every part of mplb speaks.
 *
 * One X-macro table gives each format its name (used verbatim in Lua, the
 * HDF5 enum, the CLI and Python), the stored bits per weight element, and the
 * scale overhead in bits per element (block scales amortised over the block).
 * The enum values are the HDF5 enum values: append only, never renumber.
 */
#ifndef MPLB_PREC_H
#define MPLB_PREC_H

#include "mplb/api.h"

MPLB_BEGIN_DECLS

/*  X(id,        name,        elem_bits, scale_bits_per_elem, is_float4) */
#define MPLB_PREC_MAP(X)                                    \
    X(BF16,      "bf16",      16, 0.0,         0)           \
    X(FP16,      "fp16",      16, 0.0,         0)           \
    X(FP8_E4M3,  "fp8_e4m3",   8, 0.0,         0)           \
    X(FP8_E5M2,  "fp8_e5m2",   8, 0.0,         0)           \
    X(FP4_E2M1,  "fp4_e2m1",   4, 0.0,         1)           \
    X(MXFP8,     "mxfp8",      8, 8.0 / 32,    0)           \
    X(MXFP4,     "mxfp4",      4, 8.0 / 32,    1)           \
    X(NVFP4,     "nvfp4",      4, 8.0 / 16,    1)           \
    X(INT8,      "int8",       8, 0.0,         0)           \
    X(INT4_G32,  "int4_g32",   4, 16.0 / 32,   0)           \
    X(INT4_G128, "int4_g128",  4, 16.0 / 128,  0)

typedef enum mplb_prec {
#define MPLB_PREC_ENUM(id, name, b, s, f4) MPLB_PREC_##id,
    MPLB_PREC_MAP(MPLB_PREC_ENUM)
#undef MPLB_PREC_ENUM
    MPLB_PREC_COUNT
} mplb_prec;

/* Name of p, or NULL when p is out of range. */
MPLB_API const char *mplb_prec_name(int p);
/* 0 and *out set when name is a precision; MPLB_EINVAL otherwise. */
MPLB_API int mplb_prec_parse(const char *name, mplb_prec *out);
/* Stored bits per weight element including amortised block scales. */
MPLB_API double mplb_prec_bits(mplb_prec p);
/* Comma-separated list of all names, for error messages. */
MPLB_API const char *mplb_prec_all_names(void);

MPLB_END_DECLS

#endif
