/* AVX2 quantize paths for the formats quant_simd.c leaves to the reference:
 * fp16 and fp4_e2m1 casts (with or without a tensor scale), int8 per row and
 * int4 per group (symmetric and asymmetric). Each equals the reference in
 * quant.c bit for bit (tests/test_quant.c runs both on the same inputs):
 *   - fp16: F16C's vcvtps2ph rounds to nearest even on the exact value,
 *     subnormals included, and turns NaN into sign | 0x7E00 | top payload
 *     bits, which is what mplb_f32_to_fp16 does.
 *   - fp4_e2m1: the code is the number of midpoints |v| lies above (ties to
 *     the even code), as mplb_f32_to_e2m1.
 *   - int8, int4: the reference rounds x / s in double; so do these (exact
 *     float -> double widening, one IEEE division, round-to-nearest-even).
 * Entry point: mplb_quant_cast_fast (core/internal/quant_fast.h). */
#include "mplb/quant.h"
#include "quant_elem.h"
#include "quant_fast.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* 32 codes (< 16, one per 32-bit lane of a..d, in order) -> 16 bytes, element
 * 2i in the low nibble. */
AVX2 static void pack_nibbles32(uint8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packus_epi32(a, b), cd = _mm256_packus_epi32(c, d);
    __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    /* 16-bit word i holds elements 2i (low byte) and 2i+1: fold to one byte */
    __m256i w = _mm256_or_si256(_mm256_and_si256(bytes, _mm256_set1_epi16(0x0F)),
                                _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi16(0xF0)));
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, _mm256_setzero_si256()), 0x08);
    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(p));
}

/* Same for codes that are small signed ints in 32-bit lanes: only the low
 * nibble of each is kept. */
AVX2 static void pack_low_nibbles32(uint8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i m = _mm256_set1_epi32(0xF);
    pack_nibbles32(dst, _mm256_and_si256(a, m), _mm256_and_si256(b, m), _mm256_and_si256(c, m), _mm256_and_si256(d, m));
}

/* E2M1 code of 8 floats: midpoints passed (strict below an odd code, >=
 * below an even one), the sign bit, NaN -> 0. */
AVX2 static __m256i e2m1_code8(__m256 v) {
    __m256 a = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
#define GT(m) _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(m), _CMP_GT_OQ))
#define GE(m) _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(m), _CMP_GE_OQ))
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(GT(0.25f), GE(0.75f)), _mm256_add_epi32(GT(1.25f), GE(1.75f)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(GT(2.5f), GE(3.5f)), GT(5.0f)));
#undef GT
#undef GE
    __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(), s);
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 28), _mm256_set1_epi32(8));
    __m256i isnan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_andnot_si256(isnan, _mm256_or_si256(c, sign));
}

/* the reference's per-tensor scale: amax over finite values / max */
AVX2 static float tensor_scale(const float *x, int64_t n, float maxv) {
    return mplb_amax_scale(mplb_quant_amax_finite_avx2(x, n), maxv);
}

AVX2 static void cast_fp16(const float *x, uint8_t *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) {
        uint16_t h = mplb_f32_to_fp16(x[i]);
        memcpy(out + 2 * i, &h, 2);
    }
}

/* fp4_e2m1 rows (each starts on a byte; an odd row's last byte keeps its
 * high nibble as the reference leaves it), values x / gs. */
AVX2 static void cast_e2m1(const float *x, mplb_qtensor *t, float gs) {
    int64_t C = t->cols, rowbytes = (C + 1) / 2;
    const __m256 g = _mm256_set1_ps(gs);
    int scaled = gs != 1.0f;
    for (int64_t r = 0; r < t->rows; r++) {
        const float *xr = x + r * C;
        uint8_t *row = t->data + r * rowbytes;
        int64_t c = 0;
        for (; c + 32 <= C; c += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_loadu_ps(xr + c + 8 * k);
                q[k] = e2m1_code8(scaled ? _mm256_div_ps(v, g) : v);
            }
            pack_nibbles32(row + c / 2, q[0], q[1], q[2], q[3]);
        }
        for (; c < C; c++) {
            uint8_t v = mplb_f32_to_e2m1(scaled ? xr[c] / gs : xr[c]);
            row[c >> 1] = (c & 1) ? (uint8_t)((row[c >> 1] & 0x0F) | (v << 4)) : (uint8_t)((row[c >> 1] & 0xF0) | v);
        }
    }
}

/* rint(x / s) of 8 floats in double, clamped to [lo, hi], as 32-bit ints */
AVX2 static __m256i div_round8(const float *x, __m256d s, __m256d add, __m256d lo, __m256d hi) {
    __m256 v = _mm256_loadu_ps(x);
#define rn (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m256d a = _mm256_round_pd(_mm256_div_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), s), rn);
    __m256d b = _mm256_round_pd(_mm256_div_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), s), rn);
    a = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(a, add), lo), hi);
    b = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(b, add), lo), hi);
    return _mm256_set_m128i(_mm256_cvtpd_epi32(b), _mm256_cvtpd_epi32(a));
}

/* amax of finite |x| over n (a multiple of 8); *bad = any NaN or Inf */
AVX2 static float amax_row(const float *x, int64_t n, int *bad) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), fmax = _mm256_set1_ps(3.4028235e38f);
    __m256 m = _mm256_setzero_ps(), okall = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int64_t i = 0; i < n; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absm);
        __m256 ok = _mm256_cmp_ps(a, fmax, _CMP_LE_OQ);
        okall = _mm256_and_ps(okall, ok);
        m = _mm256_max_ps(m, _mm256_and_ps(a, ok));
    }
    *bad = _mm256_movemask_ps(okall) != 0xFF;
    float l[8], r = 0;
    _mm256_storeu_ps(l, m);
    for (int k = 0; k < 8; k++) if (l[k] > r) r = l[k];
    return r;
}

/* int8, rows whose length is a multiple of 32 */
AVX2 static void q_int8(const float *x, mplb_qtensor *t) {
    int64_t C = t->cols;
    const __m256d zero = _mm256_setzero_pd(), lo = _mm256_set1_pd(-127), hi = _mm256_set1_pd(127);
    for (int64_t r = 0; r < t->rows; r++) {
        const float *xr = x + r * C;
        uint8_t *out = t->data + r * C;
        int bad;
        float amax = amax_row(xr, C, &bad);
        float s = bad ? NAN : mplb_amax_scale(amax, 127.0f);
        memcpy(t->scales + r * 4, &s, 4);
        if (bad) {
            memset(out, 0, (size_t)C);
            continue;
        }
        const __m256d sv = _mm256_set1_pd((double)s);
        for (int64_t c = 0; c < C; c += 32) {
            __m256i a = div_round8(xr + c, sv, zero, lo, hi), b = div_round8(xr + c + 8, sv, zero, lo, hi);
            __m256i d = div_round8(xr + c + 16, sv, zero, lo, hi), e = div_round8(xr + c + 24, sv, zero, lo, hi);
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(d, e));
            _mm256_storeu_si256((__m256i *)(out + c), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        }
    }
}

/* min and max of the finite values of n (a multiple of 8) floats, both
 * starting from 0 as the reference's; *bad = any NaN or Inf */
AVX2 static void minmax_group(const float *x, int64_t n, float *mn, float *mx, int *bad) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), fmax = _mm256_set1_ps(3.4028235e38f);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps(), okall = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 ok = _mm256_cmp_ps(_mm256_and_ps(v, absm), fmax, _CMP_LE_OQ);
        okall = _mm256_and_ps(okall, ok);
        v = _mm256_and_ps(v, ok);
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
    }
    *bad = _mm256_movemask_ps(okall) != 0xFF;
    /* horizontal reductions in registers (min and max of finite floats do
     * not depend on order) */
    __m128 l = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps(lo, 1));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1));
    l = _mm_min_ps(l, _mm_movehl_ps(l, l));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    l = _mm_min_ss(l, _mm_shuffle_ps(l, l, 1));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float a = _mm_cvtss_f32(l), b = _mm_cvtss_f32(h);
    *mn = a < 0 ? a : 0;   /* +0 as the reference's, never -0 (it would sign the scale) */
    *mx = b > 0 ? b : 0;
}

/* float -> fp16 -> float of a finite scale >= 0 through F16C: the same
 * bits as mplb_f32_to_fp16 / mplb_fp16_to_f32 (both round to nearest even,
 * overflow to Inf) */
AVX2 static uint16_t fp16_of(float v) {
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0);
}

AVX2 static float fp16_val(uint16_t h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }

/* int4 groups of g (32 or 128), rows of whole groups. Two passes per row:
 * every group's scale and zero point first (a short scalar chain per group),
 * then the divisions, which no longer wait on that chain. */
enum { INT4_ROW_GROUPS = 256 };

AVX2 static void q_int4(const float *x, mplb_qtensor *t) {
    int64_t g = mplb_quant_block(t->fmt), C = t->cols, nb = C / g, rowbytes = C / 2;
    int asym = t->opts.int4_asym;
    const __m256d lo = _mm256_set1_pd(asym ? 0 : -7), hi = _mm256_set1_pd(asym ? 15 : 7);
    double sd[INT4_ROW_GROUPS];
    int zps[INT4_ROW_GROUPS];
    for (int64_t r = 0; r < t->rows; r++) {
        uint8_t *row = t->data + r * rowbytes;
        for (int64_t b0 = 0; b0 < nb; b0 += INT4_ROW_GROUPS) {
            int64_t b1 = b0 + INT4_ROW_GROUPS < nb ? b0 + INT4_ROW_GROUPS : nb;
            for (int64_t b = b0; b < b1; b++) {
                int bad;
                float mn, mx;
                minmax_group(x + r * C + b * g, g, &mn, &mx, &bad);
                /* scale and zero point: the reference's scalar lines */
                float sf = asym ? (mx - mn) / 15.0f : (fabsf(mn) > mx ? fabsf(mn) : mx) / 7.0f;
                uint16_t sh = bad ? 0x7E00u : fp16_of(sf);
                if (!bad && sh == 0x7C00u) sh = 0x7BFFu;
                float s = bad ? NAN : fp16_val(sh);
                memcpy(t->scales + 2 * (r * nb + b), &sh, 2);
                int zp = 0;
                if (asym && s > 0 && !bad) {
                    double z = rint(-(double)mn / (double)s);
                    zp = z < 0 ? 0 : z > 15 ? 15 : (int)z;
                }
                if (asym) t->zeros[r * nb + b] = (uint8_t)zp;
                sd[b - b0] = s > 0 && !bad ? (double)s : 0;   /* 0: every code is the zero point */
                zps[b - b0] = zp;
            }
            for (int64_t b = b0; b < b1; b++) {
                const float *xb = x + r * C + b * g;
                uint8_t *dst = row + b * g / 2;
                int zp = zps[b - b0];
                if (sd[b - b0] == 0) {
                    memset(dst, zp | zp << 4, (size_t)g / 2);
                    continue;
                }
                const __m256d sv = _mm256_set1_pd(sd[b - b0]), zv = _mm256_set1_pd(zp);
                for (int64_t c = 0; c < g; c += 32)
                    pack_low_nibbles32(dst + c / 2, div_round8(xb + c, sv, zv, lo, hi), div_round8(xb + c + 8, sv, zv, lo, hi),
                                       div_round8(xb + c + 16, sv, zv, lo, hi), div_round8(xb + c + 24, sv, zv, lo, hi));
            }
        }
    }
}

int mplb_quant_cast_fast(const float *x, mplb_qtensor *t) {
    if (!x || !t->data || !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")))
        return 0;
    switch (t->fmt) {
    case MPLB_PREC_FP16:
        t->global_scale = 1.0f;
        cast_fp16(x, t->data, t->rows * t->cols);
        return 1;
    case MPLB_PREC_FP4_E2M1: {
        float gs = t->opts.scaling == MPLB_SCALE_TENSOR ? tensor_scale(x, t->rows * t->cols, 6.0f) : 1.0f;
        t->global_scale = gs;
        cast_e2m1(x, t, gs);
        return 1;
    }
    case MPLB_PREC_INT8:
        if (t->cols % 32) return 0;
        q_int8(x, t);
        return 1;
    case MPLB_PREC_INT4_G32: case MPLB_PREC_INT4_G128:
        if (t->cols % mplb_quant_block(t->fmt)) return 0;
        q_int4(x, t);
        return 1;
    default:
        return 0;
    }
}
#else
int mplb_quant_cast_fast(const float *x, mplb_qtensor *t) {
    (void)x;
    (void)t;
    return 0;
}
#endif
