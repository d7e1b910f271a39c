/* Per-element number-format conversions, shared by C and CUDA.
 *
 * Every function here is `MPLB_HD` (__host__ __device__ under nvcc, static
 * inline in C), so a CUDA kernel and the CPU reference run the same lines.
 * Rounding is round-to-nearest-even on the exact value of the float32 input;
 * no intermediate rounding. Formats (OCP FP8 v1.0, OCP MX v1.0):
 *   E4M3 "fn": bias 7, max 448, no Inf, NaN = S.1111.111 (sign kept);
 *              non-saturating: overflow and Inf -> NaN; saturating: -> +-448.
 *   E5M2: bias 15, max 57344, Inf = S.11111.00, NaN -> S.11111.10;
 *         non-saturating: overflow -> Inf; saturating: -> +-57344 (Inf too).
 *   E2M1: bias 1, values +-{0, .5, 1, 1.5, 2, 3, 4, 6}, always saturating;
 *         no NaN: mplb encodes NaN as +0 (block formats mark NaN in the scale).
 *   E8M0: 2^(c-127), c = 0xFF is NaN.  BF16, FP16: IEEE-style, RNE.
 */
#ifndef MPLB_QUANT_ELEM_H
#define MPLB_QUANT_ELEM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define MPLB_HD __host__ __device__ __forceinline__
#else
#define MPLB_HD static inline
#endif

MPLB_HD uint32_t mplb_f32_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
#endif
}

/* A scale from an amax: amax / maxv (the largest code), 1 for an all-zero
 * tensor, and the smallest subnormal where the division underflowed (a scale
 * of 0 would turn every value into NaN). The one rule every quantizer uses. */
MPLB_HD float mplb_amax_scale(float amax, float maxv) {
    float s = amax > 0 ? amax / maxv : 1.0f;
    return s == 0 ? 1.4e-45f : s;
}

MPLB_HD float mplb_bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, 4);
    return x;
#endif
}

/* Round-to-nearest-even right shift of v by s >= 1 bits. */
MPLB_HD uint64_t mplb_rne_shift(uint64_t v, int s) {
    if (s >= 63) return 0;
    return (v + (((uint64_t)1 << (s - 1)) - 1) + ((v >> s) & 1)) >> s;
}

/* Magnitude code of |x| (finite) in a format with E exponent bits, M mantissa
 * bits and bias: exponent field << M | mantissa, RNE, unbounded above (the
 * caller compares with its largest finite code). */
MPLB_HD uint32_t mplb_mag_code(uint32_t abs_bits, int M, int bias) {
    uint32_t e32 = abs_bits >> 23, m32 = abs_bits & 0x7FFFFFu;
    uint64_t full = e32 ? (m32 | 0x800000u) : m32;
    int eff_e = e32 ? (int)e32 : 1;
    int t = eff_e - 127 + bias;          /* target exponent field if normal */
    int shift = 23 - M;
    if (t >= 1 && e32) {
        uint64_t v = ((uint64_t)t << 23) | m32;
        return (uint32_t)mplb_rne_shift(v, shift);
    }
    /* subnormal in the target, or a float32 subnormal (bf16 shares its exponent range) */
    return (uint32_t)mplb_rne_shift(full, shift + 1 - (t < 1 ? t : 1));
}

MPLB_HD uint8_t mplb_f32_to_e4m3(float x, int saturate) {
    uint32_t u = mplb_f32_bits(x), sign = (u >> 24) & 0x80u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7F);                 /* NaN */
    if (a == 0x7F800000u) return (uint8_t)(sign | (saturate ? 0x7E : 0x7F));
    uint32_t c = mplb_mag_code(a, 3, 7);
    if (c > 0x7E) c = saturate ? 0x7E : 0x7F;
    return (uint8_t)(sign | c);
}

MPLB_HD uint8_t mplb_f32_to_e5m2(float x, int saturate) {
    uint32_t u = mplb_f32_bits(x), sign = (u >> 24) & 0x80u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7E);
    if (a == 0x7F800000u) return (uint8_t)(sign | (saturate ? 0x7B : 0x7C));
    uint32_t c = mplb_mag_code(a, 2, 15);
    if (c > 0x7B) c = saturate ? 0x7B : 0x7C;
    return (uint8_t)(sign | c);
}

MPLB_HD uint8_t mplb_f32_to_e2m1(float x) {
    uint32_t u = mplb_f32_bits(x), sign = (u >> 28) & 0x8u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return 0;
    if (a == 0x7F800000u) return (uint8_t)(sign | 0x7);
    uint32_t c = mplb_mag_code(a, 1, 1);
    if (c > 0x7) c = 0x7;
    return (uint8_t)(sign | c);
}

MPLB_HD uint16_t mplb_f32_to_bf16(float x) {
    uint32_t u = mplb_f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7FC0u | ((a >> 16) & 0x3F));
    if (a == 0x7F800000u) return (uint16_t)(sign | 0x7F80u);
    uint32_t c = mplb_mag_code(a, 7, 127);
    if (c > 0x7F7Fu) c = 0x7F80u;
    return (uint16_t)(sign | c);
}

MPLB_HD uint16_t mplb_f32_to_fp16(float x) {
    uint32_t u = mplb_f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x1FF));
    if (a == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
    uint32_t c = mplb_mag_code(a, 10, 15);
    if (c > 0x7BFFu) c = 0x7C00u;
    return (uint16_t)(sign | c);
}

/* Decode a code with E exponent bits, M mantissa bits, bias (finite part). */
MPLB_HD float mplb_code_to_f32(uint32_t mag, int M, int bias) {
    uint32_t e = mag >> M, m = mag & ((1u << M) - 1);
    if (e == 0) {
        /* subnormal: m * 2^(1 - bias - M), exact in float32 for these formats */
        float s = mplb_bits_f32((uint32_t)(127 + 1 - bias - M) << 23);
        return (float)m * s;
    }
    return mplb_bits_f32(((e - (uint32_t)bias + 127u) << 23) | (m << (23 - M)));
}

MPLB_HD float mplb_e4m3_to_f32(uint8_t c) {
    float v = (c & 0x7F) == 0x7F ? mplb_bits_f32(0x7FC00000u) : mplb_code_to_f32(c & 0x7F, 3, 7);
    return (c & 0x80) ? -v : v;
}

MPLB_HD float mplb_e5m2_to_f32(uint8_t c) {
    uint32_t mag = c & 0x7F;
    float v = mag > 0x7C ? mplb_bits_f32(0x7FC00000u)
            : mag == 0x7C ? mplb_bits_f32(0x7F800000u) : mplb_code_to_f32(mag, 2, 15);
    return (c & 0x80) ? -v : v;
}

MPLB_HD float mplb_e2m1_to_f32(uint8_t c) {
    float v = mplb_code_to_f32(c & 0x7, 1, 1);
    return (c & 0x8) ? -v : v;
}

MPLB_HD float mplb_bf16_to_f32(uint16_t h) { return mplb_bits_f32((uint32_t)h << 16); }

MPLB_HD float mplb_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, mag = h & 0x7FFFu;
    if (mag >= 0x7C00u) return mplb_bits_f32(sign | 0x7F800000u | ((mag & 0x3FFu) << 13));
    float v = mplb_code_to_f32(mag, 10, 15);
    return (h & 0x8000u) ? -v : v;
}

MPLB_HD float mplb_e8m0_to_f32(uint8_t c) {
    if (c == 0xFF) return mplb_bits_f32(0x7FC00000u);
    if (c == 0) return mplb_bits_f32(0x00400000u);      /* 2^-127 is a float32 subnormal */
    return mplb_bits_f32((uint32_t)c << 23);
}

/* Element i of a row of packed 4-bit codes, low nibble first. */
MPLB_HD uint8_t mplb_nibble(const uint8_t *row, int64_t i) {
    return (i & 1) ? (uint8_t)(row[i >> 1] >> 4) : (uint8_t)(row[i >> 1] & 0x0F);
}

/* The NaN every element function returns: quiet, no payload, the sign
 * given. Built from bits, never by arithmetic: a GPU's arithmetic NaN is
 * 0x7FFFFFFF and x86's propagates an operand, so bf16 codes of the same
 * NaN block would differ between the device and the CPU reference. */
MPLB_HD float mplb_nan_f32(int negative) { return mplb_bits_f32(negative ? 0xFFC00000u : 0x7FC00000u); }

/* NVFP4 element: (E2M1 code x E4M3 block scale) x tensor scale, in that
 * order; a NaN scale code (0x7F, 0xFF) marks a NaN block: the canonical
 * NaN with the scale code's sign (what x86's multiply propagates), and any
 * other NaN result (a NaN tensor scale) canonical too. */
MPLB_HD float mplb_nvfp4_value(uint8_t code, uint8_t sc, float gs) {
    if ((sc & 0x7F) == 0x7F) return mplb_nan_f32(sc & 0x80);
    float v = mplb_e2m1_to_f32(code) * mplb_e4m3_to_f32(sc) * gs;
    return v != v ? mplb_nan_f32((int)(mplb_f32_bits(v) >> 31)) : v;
}

/* MX element: the E2M1 (fp4) or E4M3 code times 2^(sc - 127), exactly
 * rounded; sc 0xFF marks a NaN block. */
MPLB_HD float mplb_mx_value(uint8_t code, uint8_t sc, int fp4) {
    if (sc == 0xFF) return mplb_nan_f32(0);
    return ldexpf(fp4 ? mplb_e2m1_to_f32(code) : mplb_e4m3_to_f32(code), (int)sc - 127);
}

/* MX element code of x in a block with exponent e (scale 2^e): the nearest
 * code (ties to even, saturating at the element max) among those whose value
 * x 2^e is finite in float32. Only at the top of the range does that bind:
 * under the round-up rule a block with amax above 3.5 x 2^126 (fp4) or
 * 248 x 2^120 (fp8) would round an element up to 2^128, which dequantizes to
 * Inf; it takes the code below (3 x 2^126, 240 x 2^120) instead. */
MPLB_HD uint8_t mplb_mx_code(float x, int e, int fp4) {
    float v = ldexpf(x, -e);
    uint8_t c = fp4 ? mplb_f32_to_e2m1(v) : mplb_f32_to_e4m3(v, 1);
    if (e > 0 && isinf(mplb_mx_value(c, (uint8_t)(e + 127), fp4))) c--;   /* magnitude >= 1: sign bit kept */
    return c;
}

/* The SwiGLU of an expert FFN: silu(g) * u. */
MPLB_HD float mplb_swiglu(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

/* floor(log2(a)) of a finite a > 0 (subnormals included), exactly. */
MPLB_HD int mplb_floor_log2(float a) {
    uint32_t u = mplb_f32_bits(a) & 0x7FFFFFFFu;
    int e = (int)(u >> 23);
    if (e) return e - 127;
    int k = 0;
    uint32_t m = u;
    while (m >>= 1) k++;
    return k - 149;
}

/* Nearest code to a / D among sorted magnitudes, ties to the even code,
 * saturating; decided by comparing a with midpoint * D in double, which is
 * exact for these formats (a float, D = scale * float, midpoints of few
 * bits), so no intermediate rounding. a >= 0, D > 0. */
MPLB_HD int mplb_e2m1_code_div(double a, double D) {
    /* midpoints between 0, .5, 1, 1.5, 2, 3, 4, 6; below an even code ties go up */
    const double mid[7] = {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0};
    int c = 0;
    for (int k = 0; k < 7; k++) {
        double m = mid[k] * D;
        if (a > m || (a == m && (k & 1))) c = k + 1;
    }
    return c;
}

MPLB_HD int mplb_e4m3_code_div(double a, double D) {
    int lo = 0, hi = 0x7E;
    while (lo < hi) {  /* largest code with value * D <= a */
        int mid = (lo + hi + 1) / 2;
        if ((double)mplb_code_to_f32((uint32_t)mid, 3, 7) * D <= a) lo = mid; else hi = mid - 1;
    }
    if (lo == 0x7E) return lo;
    double m = ((double)mplb_code_to_f32((uint32_t)lo, 3, 7) + (double)mplb_code_to_f32((uint32_t)lo + 1, 3, 7)) * 0.5 * D;
    if (a > m || (a == m && (lo & 1))) return lo + 1;
    return lo;
}

/* NVFP4 block: the E4M3 scale code of a block with amax bmax under tensor
 * scale gs (nearest E4M3 to bmax / (6 gs)). */
MPLB_HD uint8_t mplb_nvfp4_scale_code(float bmax, float gs) {
    return (uint8_t)mplb_e4m3_code_div((double)bmax, 6.0 * (double)gs);
}

/* NVFP4 element: the E2M1 code of v in a block with scale code sc. */
MPLB_HD uint8_t mplb_nvfp4_code(float v, uint8_t sc, float gs) {
    double D = (double)mplb_code_to_f32(sc, 3, 7) * (double)gs;
    uint8_t code = D > 0 ? (uint8_t)mplb_e2m1_code_div(v < 0 ? -(double)v : (double)v, D) : 0;
    return (uint8_t)(code | ((mplb_f32_bits(v) >> 28) & 8));   /* a zero keeps its sign */
}

/* MX block: the E8M0 scale code of a block with finite amax (bad = the
 * block holds NaN/Inf -> 0xFF; amax 0 -> 0), and its exponent in *e. The
 * spec's rule is 2^(floor(log2 amax) - emax_elem); round_up is the cuBLAS /
 * Transformer Engine rule 2^ceil(log2(amax / max_elem)). fp4 selects E2M1
 * elements (emax 2, max 6), else E4M3 (emax 8, max 448). */
MPLB_HD uint8_t mplb_mx_scale_code(float amax, int bad, int fp4, int round_up, int *e) {
    *e = 0;
    if (bad) return 0xFF;
    if (amax == 0) return 0;
    int emax = fp4 ? 2 : 8;
    float maxv = fp4 ? 6.0f : 448.0f;
    int x;
    if (round_up) {
        /* smallest x with max * 2^x >= amax */
        x = mplb_floor_log2(amax) - mplb_floor_log2(maxv);
        while ((double)maxv * ldexp(1.0, x) < (double)amax) x++;
        while ((double)maxv * ldexp(1.0, x - 1) >= (double)amax) x--;
    } else x = mplb_floor_log2(amax) - emax;
    if (x < -127) x = -127;
    if (x > 127) x = 127;
    *e = x;
    return (uint8_t)(x + 127);
}

/* One NVFP4 block of n <= 16 elements under tensor scale gs, as the CPU
 * reference quantizes it: the E4M3 scale code (0x7F: the block holds NaN or
 * Inf) and 8 bytes of E2M1 codes, low nibble first, zero past n. The
 * device quantizer runs this per block (kernels/quant.cu). */
MPLB_HD uint8_t mplb_nvfp4_block(const float *xb, int n, float gs, uint8_t *packed) {
    float bmax = 0;
    int bad = 0;
    for (int j = 0; j < n; j++) {
        uint32_t bits = mplb_f32_bits(xb[j]) & 0x7FFFFFFFu;
        if (bits >= 0x7F800000u) bad = 1;
        else if (mplb_bits_f32(bits) > bmax) bmax = mplb_bits_f32(bits);
    }
    uint8_t sc = bad ? 0x7F : mplb_nvfp4_scale_code(bmax, gs);
    for (int j = 0; j < 16; j += 2) {
        uint8_t lo = j < n && !bad ? mplb_nvfp4_code(xb[j], sc, gs) : 0;
        uint8_t hi = j + 1 < n && !bad ? mplb_nvfp4_code(xb[j + 1], sc, gs) : 0;
        packed[j / 2] = (uint8_t)(lo | (hi << 4));
    }
    return sc;
}

/* One MXFP4 block of n <= 32 elements: the E8M0 scale code (0xFF: NaN or
 * Inf in the block) and 16 bytes of E2M1 codes, as the CPU reference. */
MPLB_HD uint8_t mplb_mxfp4_block(const float *xb, int n, int round_up, uint8_t *packed) {
    float amax = 0;
    int bad = 0, e;
    for (int j = 0; j < n; j++) {
        uint32_t bits = mplb_f32_bits(xb[j]) & 0x7FFFFFFFu;
        if (bits >= 0x7F800000u) bad = 1;
        else if (mplb_bits_f32(bits) > amax) amax = mplb_bits_f32(bits);
    }
    uint8_t sc = mplb_mx_scale_code(amax, bad, 1, round_up, &e);
    for (int j = 0; j < 32; j += 2) {
        int live = sc != 0xFF && amax != 0;
        uint8_t lo = j < n && live ? mplb_mx_code(xb[j], e, 1) : 0;
        uint8_t hi = j + 1 < n && live ? mplb_mx_code(xb[j + 1], e, 1) : 0;
        packed[j / 2] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
    }
    return sc;
}

#endif
