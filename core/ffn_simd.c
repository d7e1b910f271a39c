/* Small-batch expert GEMM on packed weights (see mplb_ffn_gemm_small in
 * include/mplb/ffn.h): few tokens make OpenBLAS spend its time packing, and
 * the tiled path writes every weight out as a float before sgemm reads it
 * back. Here each 8-weight chunk of two weight rows is widened in registers
 * (the AVX2 dequantizers' conversions: bf16 is a shift, fp8 goes through
 * F16C) and multiplied into up to 6 tokens at once; the tensor scale is
 * applied to each finished dot product. */
#include "mplb/ffn.h"
#include "mplb/quant_elem.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* 8 weights of a row as floats (before the tensor scale); e4m3 NaN codes
 * stay NaN only when nan is set (the caller knows whether W has any) */
AVX2 static inline __m256 widen8(const uint8_t *w, mplb_prec f, int nan) {
    if (f == MPLB_PREC_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)w)), 16));
    __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)w));
    int e5m2 = f == MPLB_PREC_FP8_E5M2;
    __m128i h = e5m2 ? _mm_slli_epi16(b, 8)
                     : _mm_or_si128(_mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7F)), 7),
                                    _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8));
    __m256 v = _mm256_cvtph_ps(h);
    if (e5m2) return v;   /* e5m2 NaN and Inf are fp16's own */
    v = _mm256_mul_ps(v, _mm256_set1_ps(256.0f));
    if (!nan) return v;
    __m256i isnan = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_cvtepu16_epi32(b), _mm256_set1_epi32(0x7F)),
                                     _mm256_set1_epi32(0x7F));
    return _mm256_blendv_ps(v, _mm256_set1_ps(NAN), _mm256_castsi256_ps(isnan));
}

/* any e4m3 NaN code (S.1111.111) among n bytes */
AVX2 static int any_e4m3_nan(const uint8_t *w, size_t n) {
    const __m256i m = _mm256_set1_epi8(0x7F);
    __m256i hit = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        hit = _mm256_or_si256(hit, _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(w + i)), m), m));
    int any = !_mm256_testz_si256(hit, hit);
    for (; i < n; i++) any |= (w[i] & 0x7F) == 0x7F;
    return any;
}

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* out[t][j], out[t][j+1] for tokens t0..t0+NT-1: 2 x NT accumulators,
 * two widened weight vectors and one token vector stay in the 16 ymm
 * registers for NT <= 6; each call site passes a constant NT */
#define TWO_ROWS(NT)                                                                                           \
    do {                                                                                                       \
        __m256 acc0[NT], acc1[NT];                                                                             \
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();          \
        for (int c = 0; c < k; c += 8) {                                                                       \
            __m256 v0 = widen8(w0 + (size_t)c * esz, f, nan), v1 = widen8(w1 + (size_t)c * esz, f, nan);   \
            _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) {                                             \
                __m256 x = _mm256_loadu_ps(a + (size_t)(t0 + t) * k + c);                                     \
                acc0[t] = _mm256_fmadd_ps(v0, x, acc0[t]);                                                     \
                acc1[t] = _mm256_fmadd_ps(v1, x, acc1[t]);                                                     \
            }                                                                                                  \
        }                                                                                                      \
        for (int t = 0; t < NT; t++) {                                                                         \
            out[(size_t)(t0 + t) * ldo + j] = hsum(acc0[t]) * gs;                                              \
            out[(size_t)(t0 + t) * ldo + j + 1] = hsum(acc1[t]) * gs;                                          \
        }                                                                                                      \
    } while (0)

AVX2 static void two_rows(const uint8_t *w0, const uint8_t *w1, size_t esz, mplb_prec f, int nan, const float *a, int t0,
                          int nt, int k, float gs, float *out, int ldo, int j) {
    switch (nt) {
    case 1: TWO_ROWS(1); break;
    case 2: TWO_ROWS(2); break;
    case 3: TWO_ROWS(3); break;
    case 4: TWO_ROWS(4); break;
    case 5: TWO_ROWS(5); break;
    default: TWO_ROWS(6); break;
    }
}
#undef TWO_ROWS

static int have_simd(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

int mplb_ffn_gemm_small(const mplb_qtensor *W, const float *a, int n, int k, float *out) {
    mplb_prec f = W->fmt;
    if (f != MPLB_PREC_BF16 && f != MPLB_PREC_FP8_E4M3 && f != MPLB_PREC_FP8_E5M2) return 1;
    int most = f == MPLB_PREC_BF16 ? 96 : 24;   /* the crossovers measured by bench/gemm */
    if (n < 1 || n > most || k % 8 || W->rows % 2 || W->cols != k || !have_simd()) return 1;
    size_t esz = f == MPLB_PREC_BF16 ? 2 : 1;
    float gs = f == MPLB_PREC_BF16 ? 1.0f : W->global_scale;
    int rows = (int)W->rows;
    int nan = f == MPLB_PREC_FP8_E4M3 && any_e4m3_nan(W->data, (size_t)rows * k);
    for (int j = 0; j < rows; j += 2)
        for (int t0 = 0; t0 < n; t0 += 6)
            two_rows(W->data + (size_t)j * k * esz, W->data + (size_t)(j + 1) * k * esz, esz, f, nan, a, t0,
                     n - t0 < 6 ? n - t0 : 6, k, gs, out, rows, j);
    return 0;
}
#else
int mplb_ffn_gemm_small(const mplb_qtensor *W, const float *a, int n, int k, float *out) {
    (void)W; (void)a; (void)n; (void)k; (void)out;
    return 1;
}
#endif
