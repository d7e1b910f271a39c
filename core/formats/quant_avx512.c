/* NVFP4 (1x16) quantize on AVX-512, bit-identical to the reference q_nv in
 * quant.c (tests run both on the same inputs). One 16-element block is one
 * vector. The reference's decisions are exact comparisons of a float with a
 * product in double (a block amax with the midpoints between E4M3 scale
 * codes times 6 gs; an element with the E2M1 midpoints times the block's
 * scale times gs), ties to the even code. For a float a and a double T,
 *   a > T  <=>  a > P,  P = T rounded down to float, when T is not a float;
 *   a >= T <=>  a > P,  P = the float below T, when T is a float;
 * so every decision becomes one float compare against a threshold P computed
 * once (the scale midpoints once per tensor; the element thresholds once per
 * block, 16 blocks per vector in double with round-down conversion), which
 * also holds for subnormal thresholds: no per-element fallback. A code is
 * the number of thresholds below its value. */
#include "mplb/quant.h"
#include "quant_elem.h"
#include "quant_fast.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

int mplb_quant_have_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

/* P for "a passes T" where a tie passes when tie_up (see above) */
static float pass_threshold(double T, int tie_up) {
    float f = (float)T;
    if ((double)f > T) f = nextafterf(f, -INFINITY);
    if ((double)f == T && tie_up) f = nextafterf(f, -INFINITY);
    return f;
}

/* amax of |x| over finite elements (NaN, Inf skipped), as the reference's amax_of */
AVX512 static float amax_finite512(const float *x, int64_t n) {
    __m512 m[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const __m512 inf = _mm512_set1_ps(INFINITY);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)   /* four independent maxima: a load stream, not a dependency chain */
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
            __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + i + 16 * j));
            m[j] = _mm512_mask_max_ps(m[j], _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ), m[j], a);
        }
    float r = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])));
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a < INFINITY && a > r) r = a;
    }
    return r;
}

/* Per-block work of 16 blocks (lanes), g of them real: their amax and NaN/Inf
 * flags in, scale codes and 7 element thresholds (thr[k][lane]) out. */
AVX512 static __m512i group_scales(__m512 bmax, __mmask16 bad, const float *Pm, const float *e4, double gs,
                                   float thr[7][16]) {
    /* scale code = number of scale thresholds below bmax. Estimate e = the
     * E4M3 code of the largest value <= bmax / 6gs (from the quotient's bits,
     * in double: 6gs may be subnormal); the quotient's rounding can move e by
     * one only next to a code value, far from any threshold, so the count is
     * e - 1 plus the two thresholds P[e - 1], P[e] that bmax passes (Pm: P
     * shifted up by one behind a -1 that everything passes). */
    __m512d inv = _mm512_set1_pd(1.0 / (6.0 * gs));
    __m256 q0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(bmax)), inv));
    __m256 q1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(bmax, 1)), inv));
    __m512 q = _mm512_insertf32x8(_mm512_castps256_ps512(q0), q1, 1);
    __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(q), 20), _mm512_set1_epi32(120 << 3));
    e = _mm512_mask_mov_epi32(e, _mm512_cmp_ps_mask(q, _mm512_set1_ps(0x1p-6f), _CMP_LT_OQ),
                              _mm512_cvttps_epi32(_mm512_mul_ps(q, _mm512_set1_ps(512.0f))));
    e = _mm512_mask_mov_epi32(e, _mm512_cmp_ps_mask(q, _mm512_set1_ps(448.0f), _CMP_NLT_UQ), _mm512_set1_epi32(0x7E));
    __m512 p0 = _mm512_i32gather_ps(e, Pm, 4), p1 = _mm512_i32gather_ps(_mm512_add_epi32(e, _mm512_set1_epi32(1)), Pm, 4);
    __m512i sc = _mm512_sub_epi32(e, _mm512_set1_epi32(1));
    sc = _mm512_mask_add_epi32(sc, _mm512_cmp_ps_mask(bmax, p0, _CMP_GT_OQ), sc, _mm512_set1_epi32(1));
    sc = _mm512_mask_add_epi32(sc, _mm512_cmp_ps_mask(bmax, p1, _CMP_GT_OQ), sc, _mm512_set1_epi32(1));
    sc = _mm512_mask_mov_epi32(sc, bad, _mm512_set1_epi32(0x7F));
    /* D = e4[sc] * gs in double (exact); a zero scale or a NaN block passes no threshold */
    __m512 s = _mm512_i32gather_ps(_mm512_and_si512(sc, _mm512_set1_epi32(0x7F)), e4, 4);
    __mmask16 none = bad | _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_EQ_OQ);
    __m512d d0 = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(s)), _mm512_set1_pd(gs));
    __m512d d1 = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1))),
                               _mm512_set1_pd(gs));
    static const double mids[7] = {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0};
    for (int k = 0; k < 7; k++) {
        __m512d t0 = _mm512_mul_pd(d0, _mm512_set1_pd(mids[k])), t1 = _mm512_mul_pd(d1, _mm512_set1_pd(mids[k]));
        __m256 f0 = _mm512_cvt_roundpd_ps(t0, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m256 f1 = _mm512_cvt_roundpd_ps(t1, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512 p = _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1);
        if (k & 1) {
            /* odd k: a tie goes up to the even code k + 1, so a float T steps one float down */
            __mmask8 e0 = _mm512_cmp_pd_mask(_mm512_cvtps_pd(f0), t0, _CMP_EQ_OQ);
            __mmask8 e1 = _mm512_cmp_pd_mask(_mm512_cvtps_pd(f1), t1, _CMP_EQ_OQ);
            __mmask16 ex = (__mmask16)(e0 | (e1 << 8)) & (__mmask16)~none;
            p = _mm512_castsi512_ps(_mm512_mask_sub_epi32(_mm512_castps_si512(p), ex, _mm512_castps_si512(p),
                                                          _mm512_set1_epi32(1)));
        }
        _mm512_storeu_ps(thr[k], _mm512_mask_mov_ps(p, none, _mm512_set1_ps(INFINITY)));
    }
    return sc;
}

/* 16 codes (< 16) in 32-bit lanes -> 8 bytes, element 2i in the low nibble */
AVX512 static inline void store_nibbles16(uint8_t *dst, __m512i c) {
    __m128i b = _mm512_cvtepi32_epi8(c);
    __m128i w = _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x000F)), _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi16(0x00F0)));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(w, w));
}

AVX512 static void nv_avx512(const float *x, mplb_qtensor *t, float gs) {
    int64_t C = t->cols, nb = C / 16, rowbytes = C / 2;
    /* scale thresholds: code c+1 or above when bmax passes mid[c] = (e4[c] + e4[c+1]) / 2 x 6 gs,
     * a tie to the even code; 126 of them at Pm[c + 1], -1 before, +Inf after */
    float e4[128], Pm[128];
    double D6 = 6.0 * (double)gs;
    for (int c = 0; c < 128; c++) e4[c] = c < 127 ? mplb_code_to_f32((uint32_t)c, 3, 7) : 0.0f;
    Pm[0] = -1.0f;
    Pm[127] = INFINITY;
    for (int c = 0; c < 126; c++) Pm[c + 1] = pass_threshold(((double)e4[c] + (double)e4[c + 1]) * 0.5 * D6, c & 1);
    float thr[7][16], bm[16];
    for (int64_t r = 0; r < t->rows; r++) {
        const float *xr = x + r * C;
        uint8_t *dr = t->data + r * rowbytes, *sr = t->scales + r * nb;
        for (int64_t b0 = 0; b0 < nb; b0 += 16) {
            int g = nb - b0 < 16 ? (int)(nb - b0) : 16;
            __mmask16 bad = 0;
            for (int i = 0; i < g; i++) {
                __m512 a = _mm512_abs_ps(_mm512_loadu_ps(xr + (b0 + i) * 16));
                if (_mm512_cmp_ps_mask(a, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ)) bad |= (__mmask16)(1u << i);
                bm[i] = _mm512_reduce_max_ps(a);
            }
            __mmask16 live = (__mmask16)(g == 16 ? 0xFFFF : (1u << g) - 1);
            __m512i sc = group_scales(_mm512_maskz_loadu_ps(live, bm), bad, Pm, e4, (double)gs, thr);
            _mm512_mask_cvtepi32_storeu_epi8(sr + b0, live, sc);
            for (int i = 0; i < g; i++) {
                __m512 v = _mm512_loadu_ps(xr + (b0 + i) * 16), a = _mm512_abs_ps(v);
                __m512i c = _mm512_setzero_si512();
                _Pragma("GCC unroll 7") for (int k = 0; k < 7; k++)
                    c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(thr[k][i]), _CMP_GT_OQ), c,
                                              _mm512_set1_epi32(1));
                /* the sign bit (a zero keeps it); a NaN block is all zero codes */
                __m512i sign = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(v), 28), _mm512_set1_epi32(8));
                c = _mm512_or_si512(c, sign);
                if (bad & (1u << i)) c = _mm512_setzero_si512();
                store_nibbles16(dr + (b0 + i) * 8, c);
            }
        }
    }
}

int mplb_quant_nvfp4_avx512(const float *x, mplb_qtensor *t) {
    if (!x || !t->data || t->fmt != MPLB_PREC_NVFP4 || t->opts.nvfp4_2d || t->cols % 16 || !mplb_quant_have_avx512())
        return 0;
    float amax = amax_finite512(x, t->rows * t->cols);
    float gs = mplb_amax_scale(amax, 2688.0f);
    t->global_scale = gs;
    nv_avx512(x, t, gs);
    return 1;
}
#else
int mplb_quant_have_avx512(void) { return 0; }
int mplb_quant_nvfp4_avx512(const float *x, mplb_qtensor *t) {
    (void)x;
    (void)t;
    return 0;
}
#endif
