/* Fast quantizer paths: AVX2 where the CPU has it (checked at run time),
 * the scalar reference otherwise. Each fast path must equal the reference
 * in quant.c bit for bit; tests run both on the same inputs.
 *
 * Covered: fp8_e4m3 / fp8_e5m2 casts (no tensor scaling), mxfp8, mxfp4 and
 * nvfp4 (1x16) quantize (nvfp4 on AVX-512 first where the CPU has it:
 * quant_avx512.c); e4m3/e2m1 dequantize through 256/16-entry tables.
 * fp16, fp4_e2m1, int8 and int4 quantize are in quant_cast.c. Everything
 * else falls back to the reference. */
#include "mplb/quant.h"
#include "cpu.h"
#include "quant_elem.h"
#include "quant_fast.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MPLB_X86 1
#include <immintrin.h>
#include "simd_widen.h"
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

#ifdef MPLB_X86
/* 8 floats -> 8 FP8 codes (in the low byte of each 32-bit lane).
 * M mantissa bits, bias, largest finite code, NaN code, overflow code.
 * Normal results: integer RNE of the float's bits. Subnormal results: the
 * float add |x| + 2^23 q rounds |x| to a multiple of the subnormal quantum q
 * (RNE, by IEEE), and the code is the difference of bit patterns. */
AVX2 static __m256i fp8_codes(__m256 x, int M, int bias, int maxc, int nanc, int ovc) {
    const __m256i xi = _mm256_castps_si256(x);
    __m256i a = _mm256_and_si256(xi, _mm256_set1_epi32(0x7FFFFFFF));
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(xi, 24), _mm256_set1_epi32(0x80));
    const int shift = 23 - M;
    __m256i v = _mm256_sub_epi32(a, _mm256_set1_epi32((127 - bias) << 23));
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(v, shift), _mm256_set1_epi32(1));
    __m256i cn = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(v, _mm256_set1_epi32((1 << (shift - 1)) - 1)), odd), shift);
    const int magic_bits = (127 + 23 + 1 - bias - M) << 23;   /* 2^23 * 2^(1-bias-M) */
    __m256 sum = _mm256_add_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(_mm256_set1_epi32(magic_bits)));
    __m256i cs = _mm256_sub_epi32(_mm256_castps_si256(sum), _mm256_set1_epi32(magic_bits));
    __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32((128 - bias) << 23), a); /* |x| < 2^(1-bias) */
    __m256i c = _mm256_blendv_epi8(cn, cs, is_sub);
    __m256i over = _mm256_cmpgt_epi32(c, _mm256_set1_epi32(maxc));
    c = _mm256_blendv_epi8(c, _mm256_set1_epi32(ovc), over);
    __m256i isnan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
    c = _mm256_blendv_epi8(c, _mm256_set1_epi32(nanc), isnan);
    return _mm256_or_si256(c, sign);
}

/* Pack 4 x 8 lanes of codes (each < 256) into 32 bytes in order. */
AVX2 static void store32(uint8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packus_epi32(a, b), cd = _mm256_packus_epi32(c, d);
    __m256i abcd = _mm256_packus_epi16(ab, cd);
    abcd = _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, abcd);
}

AVX2 static void cast_fp8_avx2(const float *x, uint8_t *out, int64_t n, int e5m2, int sat) {
    int M = e5m2 ? 2 : 3, bias = e5m2 ? 15 : 7, maxc = e5m2 ? 0x7B : 0x7E;
    int nanc = e5m2 ? 0x7E : 0x7F, ovc = sat ? maxc : (e5m2 ? 0x7C : 0x7F);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        store32(out + i, fp8_codes(_mm256_loadu_ps(x + i), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_loadu_ps(x + i + 8), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_loadu_ps(x + i + 16), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_loadu_ps(x + i + 24), M, bias, maxc, nanc, ovc));
    for (; i < n; i++) out[i] = e5m2 ? mplb_f32_to_e5m2(x[i], sat) : mplb_f32_to_e4m3(x[i], sat);
}

/* E2M1 code of |v| by counting midpoints passed; ties go to the even code,
 * so boundaries below an even code use >=. */
AVX2 static __m256i e2m1_codes(__m256 v) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 a = _mm256_and_ps(v, absm);
    __m256i c = _mm256_setzero_si256();
    static const float mids[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
    for (int k = 0; k < 7; k++) {
        __m256 m = _mm256_set1_ps(mids[k]);
        __m256 ge = (k & 1) ? _mm256_cmp_ps(a, m, _CMP_GE_OQ) : _mm256_cmp_ps(a, m, _CMP_GT_OQ);
        c = _mm256_sub_epi32(c, _mm256_castps_si256(ge));
    }
    /* Inf counts as above every midpoint; NaN as none (its block is marked NaN) */
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 28), _mm256_set1_epi32(8));
    __m256i isnan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_andnot_si256(isnan, _mm256_or_si256(c, sign));
}

/* 32 codes (< 16) -> 16 bytes, element 2i low nibble. */
AVX2 static void store_nibbles32(uint8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    uint8_t tmp[32];
    store32(tmp, a, b, c, d);
    __m128i lo = _mm_loadu_si128((const __m128i *)tmp), hi = _mm_loadu_si128((const __m128i *)(tmp + 16));
    /* gather even and odd bytes, then combine */
    const __m128i ev = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i od = _mm_setr_epi8(1, 3, 5, 7, 9, 11, 13, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    __m128i e = _mm_unpacklo_epi64(_mm_shuffle_epi8(lo, ev), _mm_shuffle_epi8(hi, ev));
    __m128i o = _mm_unpacklo_epi64(_mm_shuffle_epi8(lo, od), _mm_shuffle_epi8(hi, od));
    _mm_storeu_si128((__m128i *)dst, _mm_or_si128(e, _mm_slli_epi16(o, 4)));
}

AVX2 static float amax32(const float *x, int *bad) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(x), absm), a1 = _mm256_and_ps(_mm256_loadu_ps(x + 8), absm);
    __m256 a2 = _mm256_and_ps(_mm256_loadu_ps(x + 16), absm), a3 = _mm256_and_ps(_mm256_loadu_ps(x + 24), absm);
    __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 nf = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(a0, inf, _CMP_NLT_UQ), _mm256_cmp_ps(a1, inf, _CMP_NLT_UQ)),
                             _mm256_or_ps(_mm256_cmp_ps(a2, inf, _CMP_NLT_UQ), _mm256_cmp_ps(a3, inf, _CMP_NLT_UQ)));
    *bad = _mm256_movemask_ps(nf) != 0;
    __m256 m = _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* MX quantize for rows whose length is a multiple of 32 (others: reference). */
AVX2 static void mx_avx2(const float *x, mplb_qtensor *t) {
    int fp4 = t->fmt == MPLB_PREC_MXFP4;
    int64_t nb = t->cols / 32, rowbytes = fp4 ? t->cols / 2 : t->cols;
    for (int64_t r = 0; r < t->rows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = x + r * t->cols + b * 32;
            uint8_t *dst = t->data + r * rowbytes + (fp4 ? b * 16 : b * 32);
            int bad;
            float amax = amax32(xb, &bad);
            int e;
            uint8_t sc = mplb_mx_scale_code(amax, bad, fp4, t->opts.mx_round_up, &e);
            t->scales[r * nb + b] = sc;
            if (sc == 0xFF || amax == 0) {
                memset(dst, 0, fp4 ? 16 : 32);
                continue;
            }
            if (e >= 119) {
                /* top of float32: an element may have to step down to stay finite */
                for (int j = 0; j < 32; j++) {
                    uint8_t c = mplb_mx_code(xb[j], e, fp4);
                    if (!fp4) dst[j] = c;
                    else if (j & 1) dst[j >> 1] = (uint8_t)(dst[j >> 1] | (c << 4));
                    else dst[j >> 1] = c;
                }
                continue;
            }
            /* 2^-e as a float: exact (2^127 and the subnormal 2^-127 both are) */
            __m256 inv = _mm256_set1_ps(ldexpf(1.0f, -e));
            __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(xb), inv), v1 = _mm256_mul_ps(_mm256_loadu_ps(xb + 8), inv);
            __m256 v2 = _mm256_mul_ps(_mm256_loadu_ps(xb + 16), inv), v3 = _mm256_mul_ps(_mm256_loadu_ps(xb + 24), inv);
            if (fp4) store_nibbles32(dst, e2m1_codes(v0), e2m1_codes(v1), e2m1_codes(v2), e2m1_codes(v3));
            else store32(dst, fp8_codes(v0, 3, 7, 0x7E, 0x7F, 0x7E), fp8_codes(v1, 3, 7, 0x7E, 0x7F, 0x7E),
                         fp8_codes(v2, 3, 7, 0x7E, 0x7F, 0x7E), fp8_codes(v3, 3, 7, 0x7E, 0x7F, 0x7E));
        }
    }
}

/* E2M1 codes of 8 values: the number of thresholds |v| is above, plus the sign. */
AVX2 static inline __m256i nv_codes8(__m256 v, const float *th) {
    __m256 a = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
    /* the code is the number of thresholds below |v|: seven independent
     * compares (each true is -1), summed as a tree */
#define GT(k) _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_broadcast_ss(th + k), _CMP_GT_OQ))
    __m256i s01 = _mm256_add_epi32(GT(0), GT(1)), s23 = _mm256_add_epi32(GT(2), GT(3));
    __m256i s45 = _mm256_add_epi32(GT(4), GT(5)), s6 = GT(6);
#undef GT
    __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(),
                                 _mm256_add_epi32(_mm256_add_epi32(s01, s23), _mm256_add_epi32(s45, s6)));
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 28), _mm256_set1_epi32(8));
    return _mm256_or_si256(c, sign);
}

/* Block scale: nearest E4M3 to bmax / (6 gs), ties to even, exactly. An
 * estimate from a float multiply, settled against the midpoints between
 * neighbouring codes, mid[c] = (e4[c] + e4[c+1]) * 0.5 * 6 gs in double
 * (the reference's operations), which the caller computes once per tensor:
 * no division per block. */
static int nv_scale(float bmax, float inv6gs, const double *mid) {
    /* estimate: the largest E4M3 code not above q, from q's bits (NaN, from
     * 0 x inf under a tiny tensor scale, and q >= 448 give the top code) */
    float q = bmax * inv6gs;
    int sc = !(q < 448.0f) ? 0x7E : q < 0x1p-6f ? (int)(q * 512.0f) : (int)((mplb_f32_bits(q) >> 20) - (120u << 3));
    double b = bmax;
    while (sc > 0 && (b < mid[sc - 1] || (b == mid[sc - 1] && (sc & 1)))) sc--;
    while (sc < 0x7E && (b > mid[sc] || (b == mid[sc] && (sc & 1)))) sc++;
    return sc;
}

AVX2 static float amax16(const float *x, int *bad) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(x), absm), a1 = _mm256_and_ps(_mm256_loadu_ps(x + 8), absm);
    __m256 inf = _mm256_set1_ps(INFINITY);
    *bad = _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(a0, inf, _CMP_NLT_UQ), _mm256_cmp_ps(a1, inf, _CMP_NLT_UQ))) != 0;
    __m256 m = _mm256_max_ps(a0, a1);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* NVFP4 1x16 for rows whose length is a multiple of 32. */
AVX2 static void nv_avx2(const float *x, mplb_qtensor *t, float gs) {
    int64_t nb = t->cols / 16, rowbytes = t->cols / 2;
    double e4[127], mid[126], D6 = 6.0 * (double)gs;
    for (int c = 0; c < 127; c++) e4[c] = mplb_code_to_f32((uint32_t)c, 3, 7);
    for (int c = 0; c < 126; c++) mid[c] = (e4[c] + e4[c + 1]) * 0.5 * D6;
    float inv6gs = (float)(1.0 / D6);
    const __m256 mids = _mm256_setr_ps(0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 1e30f);
    const __m256 gsv = _mm256_set1_ps(gs), zero = _mm256_setzero_ps();
    const __m256 odd_k = _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1));
    for (int64_t r = 0; r < t->rows; r++) {
        for (int64_t b = 0; b < nb; b += 2) {
            __m256i codes[4];
            for (int h = 0; h < 2; h++) {
                const float *xb = x + r * t->cols + (b + h) * 16;
                int bad;
                float bmax = amax16(xb, &bad);
                int sc = bad ? 0x7F : nv_scale(bmax, inv6gs, mid);
                t->scales[r * nb + b + h] = (uint8_t)sc;
                float s = bad ? 0.0f : (float)e4[sc];
                if (s == 0) {
                    /* NaN block: all codes 0; zero scale: signed zeros */
                    __m256i keep = bad ? _mm256_setzero_si256() : _mm256_set1_epi32(8);
                    for (int q = 0; q < 2; q++)
                        codes[2 * h + q] = _mm256_and_si256(
                            _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(_mm256_loadu_ps(xb + 8 * q)), 28), _mm256_set1_epi32(8)), keep);
                    continue;
                }
                if ((double)s * (double)gs < 0x1p-98) {
                    /* tiny (subnormal) thresholds: the FMA remainder below is
                     * no longer exact, so this block takes the reference's
                     * per-element rule */
                    int32_t cs[16];
                    for (int j = 0; j < 16; j++) cs[j] = mplb_nvfp4_code(xb[j], (uint8_t)sc, gs);
                    codes[2 * h] = _mm256_loadu_si256((const __m256i *)cs);
                    codes[2 * h + 1] = _mm256_loadu_si256((const __m256i *)(cs + 8));
                    continue;
                }
                /* T_k = (mid_k * s) * gs: mid_k * s is exact in float, the
                 * product with gs is th_k plus an exact FMA remainder lo_k.
                 * For a float a: a > T <=> a > th, or a == th and lo < 0; a >= T
                 * <=> a > th, or a == th and lo <= 0. Ties go to the even code:
                 * strict below an odd code (k even), >= below an even one. Where
                 * the test includes a == th, compare with the float below th. */
                __m256 A = _mm256_mul_ps(mids, _mm256_set1_ps(s));
                __m256 th = _mm256_mul_ps(A, gsv);
                __m256 lo = _mm256_fmsub_ps(A, gsv, th);
                __m256 incl = _mm256_or_ps(_mm256_and_ps(odd_k, _mm256_cmp_ps(lo, zero, _CMP_LE_OQ)),
                                           _mm256_andnot_ps(odd_k, _mm256_cmp_ps(lo, zero, _CMP_LT_OQ)));
                __m256i below = _mm256_sub_epi32(_mm256_castps_si256(th), _mm256_set1_epi32(1));
                __m256 thb = _mm256_blendv_ps(_mm256_castsi256_ps(below), _mm256_set1_ps(-1.0f),
                                              _mm256_cmp_ps(th, zero, _CMP_EQ_OQ));
                th = _mm256_blendv_ps(th, thb, incl);
                float thr[8];
                _mm256_storeu_ps(thr, th);
                codes[2 * h] = nv_codes8(_mm256_loadu_ps(xb), thr);
                codes[2 * h + 1] = nv_codes8(_mm256_loadu_ps(xb + 8), thr);
            }
            store_nibbles32(t->data + r * rowbytes + b * 8, codes[0], codes[1], codes[2], codes[3]);
        }
    }
}
/* amax over finite values (NaN and Inf skipped), as the reference's amax_of */
AVX2 float mplb_quant_amax_finite_avx2(const float *x, int64_t n) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), inf = _mm256_set1_ps(INFINITY);
    __m256 m = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absm);
        m = _mm256_max_ps(m, _mm256_and_ps(a, _mm256_cmp_ps(a, inf, _CMP_LT_OQ)));
    }
    float lanes[8], r = 0;
    _mm256_storeu_ps(lanes, m);
    for (int k = 0; k < 8; k++) if (lanes[k] > r) r = lanes[k];
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a < INFINITY && a > r) r = a;
    }
    return r;
}

/* fp8 with a per-tensor scale: codes of x / gs (IEEE division, as the reference) */
AVX2 static void cast_fp8_scaled_avx2(const float *x, uint8_t *out, int64_t n, int e5m2, int sat, float gs) {
    int M = e5m2 ? 2 : 3, bias = e5m2 ? 15 : 7, maxc = e5m2 ? 0x7B : 0x7E;
    int nanc = e5m2 ? 0x7E : 0x7F, ovc = sat ? maxc : (e5m2 ? 0x7C : 0x7F);
    const __m256 g = _mm256_set1_ps(gs);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        store32(out + i, fp8_codes(_mm256_div_ps(_mm256_loadu_ps(x + i), g), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_div_ps(_mm256_loadu_ps(x + i + 8), g), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_div_ps(_mm256_loadu_ps(x + i + 16), g), M, bias, maxc, nanc, ovc),
                fp8_codes(_mm256_div_ps(_mm256_loadu_ps(x + i + 24), g), M, bias, maxc, nanc, ovc));
    for (; i < n; i++) {
        float v = gs == 1.0f ? x[i] : x[i] / gs;
        out[i] = e5m2 ? mplb_f32_to_e5m2(v, sat) : mplb_f32_to_e4m3(v, sat);
    }
}

/* 8 floats -> 8 bf16 codes: RNE on the bits, NaN kept quiet with its top
 * payload bits, as mplb_f32_to_bf16 does. */
AVX2 static void cast_bf16_avx2(const float *x, uint8_t *out, int64_t n) {
    int64_t i = 0;
    const __m256i absm = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i a = _mm256_and_si256(u, absm);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
        __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
        r = _mm256_blendv_epi8(r, nan, _mm256_cmpgt_epi32(a, inf));
        r = _mm256_and_si256(r, _mm256_set1_epi32(0xFFFF));
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(out + 2 * i), packed);
    }
    for (; i < n; i++) {
        uint16_t h = mplb_f32_to_bf16(x[i]);
        memcpy(out + 2 * i, &h, 2);
    }
}
#endif

/* Casts back to float, 8 codes at a time, bit-identical to the reference:
 * bf16 is the top half of a float; e5m2 is the top byte of an fp16 and
 * e4m3 moves into an fp16 whose value is 2^-8 of it (both exact through
 * F16C); NaN codes become the reference's NaN (its sign kept). */
#ifdef MPLB_X86
AVX2 static void bf16_to_f32_avx2(const uint8_t *in, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, mplb_widen_bf16(in + 2 * i));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        y[i] = mplb_bf16_to_f32(h);
    }
}

AVX2 static void fp8_to_f32_avx2(const uint8_t *in, float *y, int64_t n, int e5m2, float gs) {
    const __m256 g = _mm256_set1_ps(gs);
    const __m256i mag = _mm256_set1_epi32(0x7F), nan_bits = _mm256_set1_epi32(0x7FC00000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i b32;
        __m256 v = mplb_widen_fp8(in + i, e5m2, &b32);
        __m256i m = _mm256_and_si256(b32, mag);
        __m256i isnan = e5m2 ? _mm256_cmpgt_epi32(m, _mm256_set1_epi32(0x7C)) : _mm256_cmpeq_epi32(m, mag);
        __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(b32, 7), 31);
        v = _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_or_si256(nan_bits, sign)), _mm256_castsi256_ps(isnan));
        if (gs != 1.0f) v = _mm256_mul_ps(v, g);
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = e5m2 ? mplb_e5m2_to_f32(in[i]) : mplb_e4m3_to_f32(in[i]);
        y[i] = gs == 1.0f ? v : v * gs;
    }
}
#endif

int mplb_quant_quantize(const float *x, mplb_qtensor *t, mplb_err *err) {
    return mplb_quant_quantize_isa(x, t, MPLB_ISA_AUTO, err);
}

int mplb_quant_quantize_isa(const float *x, mplb_qtensor *t, mplb_isa isa, mplb_err *err) {
    if ((isa == MPLB_ISA_AVX512 && !mplb_quant_have_avx512()) || (isa == MPLB_ISA_AVX2 && !mplb_cpu_avx2()) ||
        (int)isa < 0 || isa > MPLB_ISA_SCALAR)
        return mplb_err_set(err, MPLB_EINVAL, "quantize: instruction set %s forced, but this CPU does not have it",
                            isa == MPLB_ISA_AVX512 ? "avx512" : isa == MPLB_ISA_AVX2 ? "avx2" : "(not an mplb_isa)");
    if (isa == MPLB_ISA_SCALAR) return mplb_quant_quantize_ref(x, t, err);
    if (isa != MPLB_ISA_AVX2 && mplb_quant_nvfp4_avx512(x, t)) return 0;
#ifdef MPLB_X86
    if (mplb_cpu_avx2() && x && t->data) {
        mplb_prec f = t->fmt;
        if ((f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2) && t->opts.scaling == MPLB_SCALE_TENSOR) {
            int64_t n = t->rows * t->cols;
            float amax = mplb_quant_amax_finite_avx2(x, n), mx = f == MPLB_PREC_FP8_E4M3 ? 448.0f : 57344.0f;
            float gs = mplb_amax_scale(amax, mx);
            t->global_scale = gs;
            cast_fp8_scaled_avx2(x, t->data, n, f == MPLB_PREC_FP8_E5M2, t->opts.saturate, gs);
            return 0;
        }
        if ((f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2) && t->opts.scaling == MPLB_SCALE_NONE) {
            t->global_scale = 1.0f;
            cast_fp8_avx2(x, t->data, t->rows * t->cols, f == MPLB_PREC_FP8_E5M2, t->opts.saturate);
            return 0;
        }
        if (f == MPLB_PREC_BF16) {
            t->global_scale = 1.0f;
            cast_bf16_avx2(x, t->data, t->rows * t->cols);
            return 0;
        }
        if ((f == MPLB_PREC_MXFP8 || f == MPLB_PREC_MXFP4) && t->cols % 32 == 0) {
            mx_avx2(x, t);
            return 0;
        }
        if (f == MPLB_PREC_NVFP4 && !t->opts.nvfp4_2d && t->cols % 32 == 0) {
            /* NaN/Inf do not enter the tensor amax; their blocks are marked */
            float amax = mplb_quant_amax_finite_avx2(x, t->rows * t->cols);
            float gs = mplb_amax_scale(amax, 2688.0f);
            t->global_scale = gs;
            nv_avx2(x, t, gs);
            return 0;
        }
    }
#endif
    if (mplb_quant_cast_fast(x, t)) return 0;
    return mplb_quant_quantize_ref(x, t, err);
}

/* Block-format dequantization through small tables: one scale per block,
 * one table lookup and one multiply per element (the same float operations
 * as the reference, so the same bits). */
#ifdef MPLB_X86
/* FP4 blocks (nvfp4 1x16/16x16, mxfp4) with whole blocks per row: per block
 * the 8 magnitudes times its scale (the reference's operations, in its
 * order), then 8 elements per permute with the code's sign bit xor-ed in
 * (exact: a product's sign is the xor of its factors'). NaN blocks take the
 * scalar path, whose NaN sign the xor would not reproduce. */
AVX2 static void fp4_blocks_avx2(const mplb_qtensor *t, float *y) {
    int nv = t->fmt == MPLB_PREC_NVFP4, bs = nv ? 16 : 32, tile = nv && t->opts.nvfp4_2d ? 16 : 1;
    int64_t C = t->cols, nb = C / bs, rowbytes = C / 2;
    const __m256 mag = mplb_e2m1_magnitudes();
    float g = t->global_scale;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        float *yr = y + r * C;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t sc = t->scales[(r / tile) * nb + b];
            int64_t c0 = b * bs;
            if (nv ? (sc & 0x7F) == 0x7F : sc == 0xFF) {
                for (int64_t c = c0; c < c0 + bs; c++)
                    yr[c] = nv ? mplb_nvfp4_value(mplb_nibble(row, c), sc, g) : mplb_mx_value(mplb_nibble(row, c), sc, 1);
                continue;
            }
            __m256 T = nv ? _mm256_mul_ps(_mm256_mul_ps(mag, _mm256_set1_ps(mplb_e4m3_to_f32(sc))), _mm256_set1_ps(g))
                          : _mm256_mul_ps(mag, _mm256_set1_ps(ldexpf(1.0f, (int)sc - 127)));
            for (int64_t c = c0; c < c0 + bs; c += 8) _mm256_storeu_ps(yr + c, mplb_e2m1_values(mplb_nibbles8(row + c / 2), T));
        }
    }
}
#endif

#ifdef MPLB_X86
/* INT4 groups (rows of whole groups): q (signed, or minus the zero point)
 * times the group's fp16 scale, the reference's one multiply. */
AVX2 static void int4_avx2(const mplb_qtensor *t, float *y) {
    int64_t g = mplb_quant_block(t->fmt), C = t->cols, nb = C / g, rowbytes = C / 2;
    int asym = t->opts.int4_asym;
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        for (int64_t b = 0; b < nb; b++) {
            uint16_t sh;
            memcpy(&sh, t->scales + 2 * (r * nb + b), 2);
            __m256 s = _mm256_set1_ps(mplb_fp16_to_f32(sh));
            __m256i zp = _mm256_set1_epi32(asym ? t->zeros[r * nb + b] : 0);
            for (int64_t c = b * g; c < (b + 1) * g; c += 8) {
                __m256i q = mplb_nibbles8(row + c / 2);
                /* signed: q > 7 is q - 16 (shift the nibble's sign bit up and back) */
                q = asym ? _mm256_sub_epi32(q, zp) : _mm256_srai_epi32(_mm256_slli_epi32(q, 28), 28);
                _mm256_storeu_ps(y + r * C + c, _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
            }
        }
    }
}
#endif

static int dequant_blocks(const mplb_qtensor *t, float *y) {
    mplb_prec f = t->fmt;
    int fp4 = f != MPLB_PREC_MXFP8, nv = f == MPLB_PREC_NVFP4;
    int bs = nv ? 16 : 32, tile = nv && t->opts.nvfp4_2d ? 16 : 1;
    int64_t C = t->cols, nb = (C + bs - 1) / bs, rowbytes = fp4 ? (nb * bs + 1) / 2 : nb * bs;
    float lut[256];
    for (int c = 0; c < 256; c++) lut[c] = fp4 ? mplb_e2m1_to_f32((uint8_t)(c & 15)) : mplb_e4m3_to_f32((uint8_t)c);
    for (int64_t r = 0; r < t->rows; r++) {
        const uint8_t *row = t->data + (size_t)(r * rowbytes);
        float *yr = y + r * C;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t sc = t->scales[(r / tile) * nb + b];
            int64_t c0 = b * bs, c1 = c0 + bs < C ? c0 + bs : C;
            if (nv) {
                float s = mplb_e4m3_to_f32(sc), g = t->global_scale;
                for (int64_t c = c0; c < c1; c++) {
                    uint8_t code = (c & 1) ? (uint8_t)(row[c >> 1] >> 4) : (uint8_t)(row[c >> 1] & 15);
                    yr[c] = lut[code] * s * g;
                }
            } else if (sc == 0xFF) {
                for (int64_t c = c0; c < c1; c++) yr[c] = NAN;
            } else {
                float s = ldexpf(1.0f, (int)sc - 127);
                for (int64_t c = c0; c < c1; c++) {
                    uint8_t code = fp4 ? ((c & 1) ? (uint8_t)(row[c >> 1] >> 4) : (uint8_t)(row[c >> 1] & 15)) : row[c];
                    yr[c] = lut[code] * s;
                }
            }
        }
    }
    return 0;
}

int mplb_quant_dequantize(const mplb_qtensor *t, float *y, mplb_err *err) {
    mplb_prec f = t->fmt;
#ifdef MPLB_X86
    if (mplb_cpu_avx2() && y && t->data && f == MPLB_PREC_BF16) {
        bf16_to_f32_avx2(t->data, y, t->rows * t->cols);
        return 0;
    }
    if (mplb_cpu_avx2() && y && t->data && (f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2)) {
        fp8_to_f32_avx2(t->data, y, t->rows * t->cols, f == MPLB_PREC_FP8_E5M2, t->global_scale);
        return 0;
    }
    if (mplb_cpu_avx2() && y && t->data && (f == MPLB_PREC_NVFP4 || f == MPLB_PREC_MXFP4) &&
        t->cols % (f == MPLB_PREC_NVFP4 ? 16 : 32) == 0 && isfinite(t->global_scale)) {
        fp4_blocks_avx2(t, y);
        return 0;
    }
    if (mplb_cpu_avx2() && y && t->data && (f == MPLB_PREC_INT4_G32 || f == MPLB_PREC_INT4_G128) &&
        t->cols % mplb_quant_block(f) == 0) {
        int4_avx2(t, y);
        return 0;
    }
#endif
    if (y && t->data && f == MPLB_PREC_BF16) {
        /* bf16 -> f32 is a shift: exact, NaN payloads included */
        int64_t n = t->rows * t->cols;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            y[i] = mplb_bf16_to_f32(h);
        }
        return 0;
    }
    if (y && t->data && (f == MPLB_PREC_MXFP8 || f == MPLB_PREC_MXFP4 || f == MPLB_PREC_NVFP4))
        return dequant_blocks(t, y);
    if (y && t->data && (f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2)) {
        float lut[256];
        for (int c = 0; c < 256; c++)
            lut[c] = f == MPLB_PREC_FP8_E4M3 ? mplb_e4m3_to_f32((uint8_t)c) : mplb_e5m2_to_f32((uint8_t)c);
        int64_t n = t->rows * t->cols;
        float gs = t->global_scale;
        if (gs == 1.0f)
            for (int64_t i = 0; i < n; i++) y[i] = lut[t->data[i]];
        else
            for (int64_t i = 0; i < n; i++) y[i] = lut[t->data[i]] * gs;
        return 0;
    }
    return mplb_quant_dequantize_ref(t, y, err);
}
