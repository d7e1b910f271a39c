/* Small-batch expert GEMM on packed weights (see mplb_ffn_gemm_small in
 * include/mplb/ffn.h): few tokens make OpenBLAS spend its time packing, and
 * the tiled path writes every weight out as a float before sgemm reads it
 * back. Here each 8-weight chunk of two weight rows is widened in registers
 * (the AVX2 dequantizers' conversions: bf16 is a shift, fp8 goes through
 * F16C, FP4 codes through a per-block table) and multiplied into up to 6
 * tokens at once; the tensor scale is applied to each finished dot product. */
#include "mplb/ffn.h"
#include "cpu.h"
#include "quant_elem.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "simd_widen.h"
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* How to read weights: the format, and for block formats the scale of a
 * block code as a float (lut) and the block size. */
typedef struct wfmt {
    mplb_prec f;
    int nan;            /* e4m3: W has NaN codes (else their blend is skipped) */
    int bs;             /* block size */
    const float *lut;   /* nvfp4: E4M3 scale codes; mxfp4: 2^(c-127) (NaN for 0xFF) */
} wfmt;

/* One weight row: its bytes and its block scales. */
typedef struct wrow {
    const uint8_t *data, *scales;
} wrow;

/* Weights c..c+7 of a row as floats (before the tensor scale). Always
 * inlined with a constant f, so each kernel keeps only its format's lines. */
AVX2 __attribute__((always_inline)) static inline __m256 widen8(const mplb_prec f, const int nan, const wfmt *F, const wrow *r,
                                                                int c) {
    if (f == MPLB_PREC_BF16) return mplb_widen_bf16(r->data + 2 * (size_t)c);
    if (f == MPLB_PREC_FP8_E5M2) return mplb_widen_fp8(r->data + c, 1, NULL);   /* its NaN and Inf are fp16's own */
    if (f == MPLB_PREC_FP8_E4M3) {
        __m256i b;
        __m256 v = mplb_widen_fp8(r->data + c, 0, &b);
        if (!nan) return v;
        __m256i isnan = _mm256_cmpeq_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7F)), _mm256_set1_epi32(0x7F));
        return _mm256_blendv_ps(v, _mm256_set1_ps(NAN), _mm256_castsi256_ps(isnan));
    }
    /* nvfp4, mxfp4: the magnitudes times the block scale (a NaN scale makes NaN) */
    __m256 T = _mm256_mul_ps(mplb_e2m1_magnitudes(), _mm256_set1_ps(F->lut[r->scales[c / F->bs]]));
    return mplb_e2m1_values(mplb_nibbles8(r->data + c / 2), T);
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
#define TWO_ROWS(NT, FMT, NANC)                                                                                \
    do {                                                                                                       \
        __m256 acc0[NT], acc1[NT];                                                                             \
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();          \
        for (int c = 0; c < k; c += 8) {                                                                       \
            __m256 v0 = widen8(FMT, NANC, F, r0, c), v1 = widen8(FMT, NANC, F, r1, c);                        \
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

/* one kernel per weight format (FMT a constant), each for 1..6 tokens */
#define DEFINE_TWO_ROWS(NAME, FMT, NANC)                                                                       \
    AVX2 static void NAME(const wfmt *F, const wrow *r0, const wrow *r1, const float *a, int t0, int nt, int k,  \
                          float gs, float *out, int ldo, int j) {                                              \
        switch (nt) {                                                                                          \
        case 1: TWO_ROWS(1, FMT, NANC); break;                                                                 \
        case 2: TWO_ROWS(2, FMT, NANC); break;                                                                 \
        case 3: TWO_ROWS(3, FMT, NANC); break;                                                                 \
        case 4: TWO_ROWS(4, FMT, NANC); break;                                                                 \
        case 5: TWO_ROWS(5, FMT, NANC); break;                                                                 \
        default: TWO_ROWS(6, FMT, NANC); break;                                                                \
        }                                                                                                      \
    }
DEFINE_TWO_ROWS(rows_bf16, MPLB_PREC_BF16, 0)
DEFINE_TWO_ROWS(rows_e4m3, MPLB_PREC_FP8_E4M3, 0)
DEFINE_TWO_ROWS(rows_e4m3_nan, MPLB_PREC_FP8_E4M3, 1)
DEFINE_TWO_ROWS(rows_e5m2, MPLB_PREC_FP8_E5M2, 0)
DEFINE_TWO_ROWS(rows_nvfp4, MPLB_PREC_NVFP4, 0)
DEFINE_TWO_ROWS(rows_mxfp4, MPLB_PREC_MXFP4, 0)
#undef DEFINE_TWO_ROWS
#undef TWO_ROWS

typedef void (*rows_fn)(const wfmt *, const wrow *, const wrow *, const float *, int, int, int, float, float *, int, int);

/* The row r of W, as widen8 reads it. */
static wrow row_of(const mplb_qtensor *W, const wfmt *F, int r) {
    mplb_prec f = W->fmt;
    int64_t k = W->cols;
    wrow w = {0};
    if (f == MPLB_PREC_BF16) { w.data = W->data + (size_t)r * k * 2; return w; }
    if (f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2) { w.data = W->data + (size_t)r * k; return w; }
    int64_t nb = k / F->bs;
    w.data = W->data + (size_t)r * (k / 2);
    int srow = f == MPLB_PREC_NVFP4 && W->opts.nvfp4_2d ? r / 16 : r;
    w.scales = W->scales + (size_t)srow * nb;
    return w;
}

int mplb_ffn_gemm_small(const mplb_qtensor *W, const float *a, int n, int k, float *out) {
    mplb_prec f = W->fmt;
    /* the crossovers with dequantize + sgemm measured by bench/gemm */
    int most = f == MPLB_PREC_BF16 ? 64 : f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2 ? 24
             : f == MPLB_PREC_NVFP4 || f == MPLB_PREC_MXFP4 ? 16 : 0;
    wfmt F = {.f = f, .bs = f == MPLB_PREC_NVFP4 ? 16 : 32};
    if (n < 1 || n > most || k % 8 || k % F.bs || W->rows % 2 || W->cols != k || !mplb_cpu_avx2()) return 1;
    float lut[256], gs = f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2 || f == MPLB_PREC_NVFP4 ? W->global_scale : 1.0f;
    if (f == MPLB_PREC_NVFP4)
        for (int c = 0; c < 256; c++) lut[c] = mplb_e4m3_to_f32((uint8_t)c);
    if (f == MPLB_PREC_MXFP4)
        for (int c = 0; c < 256; c++) lut[c] = c == 0xFF ? NAN : ldexpf(1.0f, c - 127);
    F.lut = lut;
    int rows = (int)W->rows;
    F.nan = f == MPLB_PREC_FP8_E4M3 && any_e4m3_nan(W->data, (size_t)rows * k);
    rows_fn kernel = f == MPLB_PREC_BF16 ? rows_bf16 : f == MPLB_PREC_FP8_E4M3 ? (F.nan ? rows_e4m3_nan : rows_e4m3)
                   : f == MPLB_PREC_FP8_E5M2 ? rows_e5m2 : f == MPLB_PREC_NVFP4 ? rows_nvfp4 : rows_mxfp4;
    for (int j = 0; j < rows; j += 2) {
        wrow r0 = row_of(W, &F, j), r1 = row_of(W, &F, j + 1);
        for (int t0 = 0; t0 < n; t0 += 6) kernel(&F, &r0, &r1, a, t0, n - t0 < 6 ? n - t0 : 6, k, gs, out, rows, j);
    }
    return 0;
}
#else
int mplb_ffn_gemm_small(const mplb_qtensor *W, const float *a, int n, int k, float *out) {
    (void)W; (void)a; (void)n; (void)k; (void)out;
    return 1;
}
#endif
