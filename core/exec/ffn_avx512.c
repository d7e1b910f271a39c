/* The expert GEMM on AVX-512 BF16 (see mplb_ffn_gemm_bf16 in
 * include/mplb/ffn.h): out[n x rows(W)] = a[n x k] . W^T with vdpbf16ps,
 * which multiplies 32 bf16 pairs into 16 float32 sums per instruction, twice
 * the multiply rate of an fp32 FMA of the same width.
 *
 * Every weight format taken here is exact in bf16 once its per-tensor float32
 * scale is set aside (fp8: 4 or 3 significant bits; E2M1 codes times an E4M3
 * or power-of-two block scale: at most 6), so the weights are decoded once per
 * call (the dequantizers, tensor scale 1, then an exact narrowing) into rows
 * of bf16 pairs, and the tensor scale multiplies each finished sum.
 * Activations are rounded to bf16 (round to nearest even) into a panel of
 * pairs, 16 tokens to a 64-byte line, so that one vector load feeds 16 tokens
 * and each weight pair is one 32-bit broadcast. A kernel call keeps 3 x 8
 * accumulators (48 tokens x 8 weight rows) in registers over all of k; the
 * tokens go in chunks of 192 so that their panel stays in L2 while the weight
 * rows are swept. Each float32 lane accumulates one output over all of k in
 * order, so the error bound is that of a plain float32 dot product of the
 * bf16-rounded activations with the decoded weights (vdpbf16ps flushes bf16
 * subnormal inputs and float32 subnormal results to zero: below 2^-126). */
#include "mplb/ffn.h"
#include "quant_elem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define F32 __attribute__((target("avx512f")))

#define NR 8        /* weight rows per kernel call */
#define NTMAX 3     /* token vectors (of 16) per kernel call */
#define CHUNK 12    /* token vectors per L2 chunk */

int mplb_ffn_have_bf16(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

/* weights exact in bf16 once the tensor scale is set aside */
static int bf16_exact(mplb_prec f) {
    return f == MPLB_PREC_BF16 || f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2 || f == MPLB_PREC_FP4_E2M1 ||
           f == MPLB_PREC_MXFP8 || f == MPLB_PREC_MXFP4 || f == MPLB_PREC_NVFP4;
}

static int grow(void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    void *q = NULL;
    if (posix_memalign(&q, 64, bytes) != 0) return -1;
    free(*p);
    *p = q;
    *cap = bytes;
    return 0;
}

/* n floats -> bf16 (RNE) at dst, then zeros up to m (m even, >= n) */
BF16 static void narrow_row(const float *src, int n, uint16_t *dst, int m) {
    int c = 0;
    for (; c + 32 <= n; c += 32) {
        __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + c + 16), _mm512_loadu_ps(src + c));
        _mm512_storeu_si512(dst + c, (__m512i)b);
    }
    if (c < n) {
        int r = n - c;
        __mmask16 lo = (__mmask16)(r >= 16 ? 0xFFFF : (1u << r) - 1), hi = (__mmask16)(r > 16 ? (1u << (r - 16)) - 1 : 0);
        __m512bh b = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + c + 16), _mm512_maskz_loadu_ps(lo, src + c));
        _mm512_storeu_si512(dst + c, (__m512i)b);   /* dst has room up to a multiple of 32 */
        c += 32;
    }
    for (; c < m; c++) dst[c] = 0;
}

/* 16 x 16 transpose of 32-bit lanes: r[i] lane j <-> r[j] lane i */
F32 static void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* u[4i + m] holds column m (+4 per 128-bit lane) of rows 4i..4i+3 */
    for (int m = 0; m < 4; m++) {
        __m512i a0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x88), a1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xDD);
        __m512i b0 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x88), b1 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xDD);
        r[m] = _mm512_shuffle_i32x4(a0, b0, 0x88);
        r[m + 8] = _mm512_shuffle_i32x4(a0, b0, 0xDD);
        r[m + 4] = _mm512_shuffle_i32x4(a1, b1, 0x88);
        r[m + 12] = _mm512_shuffle_i32x4(a1, b1, 0xDD);
    }
}

/* The activation panel: token block b (16 tokens), pair p at
 * ab[(b * np + p) * 16 + lane] = (a[t][2p], a[t][2p+1]) as bf16, t = 16b +
 * lane; tokens past n and the pair past an odd k are zeros. row: scratch of
 * kp bf16 (kp a multiple of 32). */
BF16 static void pack_acts(const float *a, int n, int k, int kp, uint32_t *ab, uint16_t *row16) {
    int np = kp / 2, nb = (n + 15) / 16;
    for (int b = 0; b < nb; b++) {
        uint32_t *dst = ab + (size_t)b * np * 16;
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                int t = 16 * b + i;
                if (t >= n) { r[i] = _mm512_setzero_si512(); continue; }
                int c0 = 2 * p0, m = k - c0 < 32 ? k - c0 : 32;
                narrow_row(a + (size_t)t * k + c0, m, row16, 32);
                r[i] = _mm512_loadu_si512(row16);
            }
            transpose16(r);
            for (int j = 0; j < 16; j++) _mm512_store_si512(dst + (size_t)(p0 + j) * 16, r[j]);
        }
    }
}

/* NT token vectors x NR weight rows, over np pairs; the float32 sums times
 * gs go to out rows t0.., columns j0.. (only the nt tokens and nr rows that
 * exist) */
#define KERNEL(NT)                                                                                              \
    BF16 static void kern##NT(const uint16_t *wb, size_t kp, const uint32_t *ab, size_t bstride, int np,          \
                              float gs, float *out, int ldo, int t0, int nt, int j0, int nr) {                   \
        __m512 acc[NT][NR];                                                                                     \
        _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++)                                                    \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) acc[z][r] = _mm512_setzero_ps();               \
        for (int p = 0; p < np; p++) {                                                                          \
            __m512bh x[NT];                                                                                     \
            _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++)                                                \
                x[z] = (__m512bh)_mm512_load_si512(ab + z * bstride + (size_t)p * 16);                          \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) {                                              \
                int32_t w;                                                                                      \
                memcpy(&w, wb + r * kp + 2 * (size_t)p, 4);                                                     \
                __m512bh wv = (__m512bh)_mm512_set1_epi32(w);                                                   \
                _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++) acc[z][r] = _mm512_dpbf16_ps(acc[z][r], x[z], wv); \
            }                                                                                                   \
        }                                                                                                       \
        float tmp[NR][16];                                                                                      \
        _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++) {                                                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++)                                                \
                _mm512_storeu_ps(tmp[r], _mm512_mul_ps(acc[z][r], _mm512_set1_ps(gs)));                         \
            for (int l = 0; l < 16 && 16 * z + l < nt; l++)                                                     \
                for (int r = 0; r < nr; r++) out[(size_t)(t0 + 16 * z + l) * ldo + j0 + r] = tmp[r][l];          \
        }                                                                                                       \
    }
KERNEL(1)
KERNEL(2)
KERNEL(3)
#undef KERNEL

/* A row of fp8 codes -> bf16, zero codes up to kp: e5m2 is an fp16's top
 * byte; e4m3 moves into an fp16 worth 2^-8 of it (subnormals become fp16
 * normals), widened, times 256 (exact), narrowed (exact: 4 significant
 * bits); e4m3 NaN codes (S.1111.111) are set to NaN afterwards. */
BF16 static void fp8_row(const uint8_t *src, int k, int e5m2, uint16_t *dst, int kp) {
    for (int c = 0; c < kp; c += 32) {
        __mmask32 m = k - c >= 32 ? 0xFFFFFFFFu : k > c ? (1u << (k - c)) - 1 : 0;
        __m512i b = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, src + c));
        __m512i h = e5m2 ? _mm512_slli_epi16(b, 8)
                         : _mm512_or_si512(_mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x7F)), 7),
                                           _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8));
        __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h)), hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
        if (!e5m2) {
            lo = _mm512_mul_ps(lo, _mm512_set1_ps(256.0f));
            hi = _mm512_mul_ps(hi, _mm512_set1_ps(256.0f));
        }
        __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        if (!e5m2) {
            __mmask32 nan = _mm512_cmpeq_epi16_mask(_mm512_and_si512(b, _mm512_set1_epi16(0x7F)), _mm512_set1_epi16(0x7F));
            v = _mm512_mask_mov_epi16(v, nan, _mm512_or_si512(_mm512_set1_epi16(0x7FC0), _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8)));
        }
        _mm512_storeu_si512(dst + c, v);
    }
}

/* 16 E2M1 codes (8 bytes, low nibble first) -> their values in a table of
 * the 16 signed codes times the block scale */
BF16 static inline __m512 fp4_16(const uint8_t *p, __m512 table) {
    __m128i x = _mm_loadl_epi64((const __m128i *)p);
    __m128i lo = _mm_and_si128(x, _mm_set1_epi8(15)), hi = _mm_and_si128(_mm_srli_epi16(x, 4), _mm_set1_epi8(15));
    return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)), table);
}

/* A row of FP4 codes in blocks of bs (16 or 32; k a multiple of 16 and of
 * bs) -> bf16: each code's value times its block's scale (slut[scale code],
 * or 1 without scales) is exact in float32 and in bf16 */
BF16 static void fp4_row(const uint8_t *src, const uint8_t *sc, const float *slut, int bs, int k, uint16_t *dst,
                         int kp) {
    const __m512 e2m1 = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f,
                                       -2.0f, -3.0f, -4.0f, -6.0f);
    for (int c = 0; c < kp; c += 32) {
        __m512 v[2];
        for (int h = 0; h < 2; h++) {
            int c0 = c + 16 * h;
            if (c0 >= k) { v[h] = _mm512_setzero_ps(); continue; }
            __m512 t = slut ? _mm512_mul_ps(e2m1, _mm512_set1_ps(slut[sc[c0 / bs]])) : e2m1;
            v[h] = fp4_16(src + c0 / 2, t);
        }
        _mm512_storeu_si512(dst + c, (__m512i)_mm512_cvtne2ps_pbh(v[1], v[0]));
    }
}

/* the tensor scale set aside from W's values */
static float tensor_scale(const mplb_qtensor *W) {
    mplb_prec f = W->fmt;
    return f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2 || f == MPLB_PREC_FP4_E2M1 || f == MPLB_PREC_NVFP4
               ? W->global_scale : 1.0f;
}

static int fp4_block(mplb_prec f) { return f == MPLB_PREC_MXFP4 ? 32 : 16; }

/* decoded straight to bf16 by rows (else through the dequantizers) */
static int direct(const mplb_qtensor *W) {
    mplb_prec f = W->fmt;
    return f == MPLB_PREC_BF16 || f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2 ||
           ((f == MPLB_PREC_NVFP4 || f == MPLB_PREC_MXFP4 || f == MPLB_PREC_FP4_E2M1) && W->cols % fp4_block(f) == 0);
}

/* Rows r0..r0+nr-1 of W (a direct format) as NR rows of kp bf16, the rows
 * past nr zeros. slut: the block scale codes' values. */
BF16 static void decode_strip(const mplb_qtensor *W, const float *slut, int r0, int nr, int kp, uint16_t *dst) {
    mplb_prec f = W->fmt;
    int k = (int)W->cols, bs = fp4_block(f), nb = k / bs, tile16 = f == MPLB_PREC_NVFP4 && W->opts.nvfp4_2d ? 16 : 1;
    for (int i = 0; i < nr; i++) {
        int r = r0 + i;
        uint16_t *d = dst + (size_t)i * kp;
        if (f == MPLB_PREC_BF16) {
            memcpy(d, W->data + (size_t)r * k * 2, (size_t)k * 2);
            memset(d + k, 0, (size_t)(kp - k) * 2);
        } else if (f == MPLB_PREC_FP8_E4M3 || f == MPLB_PREC_FP8_E5M2) {
            fp8_row(W->data + (size_t)r * k, k, f == MPLB_PREC_FP8_E5M2, d, kp);
        } else {
            int sc = f != MPLB_PREC_FP4_E2M1;
            fp4_row(W->data + (size_t)r * (k / 2), sc ? W->scales + (size_t)(r / tile16) * nb : NULL, sc ? slut : NULL, bs,
                    k, d, kp);
        }
    }
    memset(dst + (size_t)nr * kp, 0, (size_t)(NR - nr) * kp * 2);
}

/* All of W (any format taken) as rows of kp bf16, rows padded to NR with
 * zeros: the dequantizers (tensor scale 1), then an exact narrowing. */
BF16 static int decode_all(const mplb_qtensor *W, int kp, uint16_t *wb, float *tile, mplb_err *err) {
    int rows = (int)W->rows, k = (int)W->cols;
    for (int r0 = 0; r0 < rows; r0 += 16) {
        int tr = rows - r0 < 16 ? rows - r0 : 16;
        mplb_qtensor v;
        if (mplb_qtensor_rows(W, r0, tr, &v) < 0) return mplb_err_set(err, MPLB_EINVAL, "ffn: bad tile view");
        v.global_scale = 1.0f;
        int rc = mplb_quant_dequantize(&v, tile, err);
        if (rc < 0) return rc;
        for (int r = 0; r < tr; r++) narrow_row(tile + (size_t)r * k, k, wb + (size_t)(r0 + r) * kp, kp);
    }
    int rp = (rows + NR - 1) / NR * NR;
    memset(wb + (size_t)rows * kp, 0, (size_t)(rp - rows) * kp * 2);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Direct formats are decoded 8 rows at a time right before the kernel reads
 * them (32 KB at k = 2048: they stay in L1 instead of a decoded copy of W
 * going out to memory and back), once per 192-token chunk; the others are
 * decoded whole first. */
int mplb_ffn_gemm_bf16(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws,
                       mplb_err *err) {
    if (n < 1 || W->cols != k || !bf16_exact(W->fmt) || !mplb_ffn_have_bf16()) return 1;
    int rows = (int)W->rows, kp = (k + 31) / 32 * 32, np = (k + 1) / 2, nb = (n + 15) / 16;
    int rp = (rows + NR - 1) / NR * NR, strips = direct(W);
    if (grow(&ws->wb, &ws->cap_wb, (size_t)(strips ? NR : rp) * kp * 2) < 0 ||
        grow(&ws->ab, &ws->cap_ab, (size_t)nb * kp * 32 + 64) < 0 ||
        (!strips && grow(&ws->dtile, &ws->cap_dtile, (size_t)16 * k * sizeof(float)) < 0))
        return mplb_err_set(err, MPLB_ENOMEM, "ffn: out of memory for a %d x %d bf16 GEMM", n, rows);
    float gs = tensor_scale(W), slut[256];
    if (W->fmt == MPLB_PREC_NVFP4 || W->fmt == MPLB_PREC_MXFP4)
        for (int c = 0; c < 256; c++)
            slut[c] = W->fmt == MPLB_PREC_NVFP4 ? mplb_e4m3_to_f32((uint8_t)c) : c == 0xFF ? NAN : ldexpf(1.0f, c - 127);
    double t0 = now_s();
    if (!strips) {
        int rc = decode_all(W, kp, ws->wb, ws->dtile, err);
        if (rc < 0) return rc;
    }
    ws->t_dequant_s += now_s() - t0;
    uint32_t *ab = ws->ab;
    pack_acts(a, n, k, kp, ab, (uint16_t *)(ab + (size_t)nb * kp / 2 * 16));
    size_t bstride = (size_t)(kp / 2) * 16;
    uint16_t *wb = ws->wb;
    for (int c0 = 0; c0 < nb; c0 += CHUNK) {
        int c1 = c0 + CHUNK < nb ? c0 + CHUNK : nb;
        for (int j0 = 0; j0 < rows; j0 += NR) {
            int nr = rows - j0 < NR ? rows - j0 : NR;
            const uint16_t *w = wb + (size_t)j0 * kp;
            if (strips) {
                t0 = now_s();
                decode_strip(W, slut, j0, nr, kp, wb);
                ws->t_dequant_s += now_s() - t0;
                w = wb;
            }
            for (int b = c0; b < c1; b += NTMAX) {
                int nv = c1 - b < NTMAX ? c1 - b : NTMAX, tb = 16 * b, nt = n - tb < 16 * nv ? n - tb : 16 * nv;
                const uint32_t *x = ab + (size_t)b * bstride;
                if (nv == 3) kern3(w, (size_t)kp, x, bstride, np, gs, out, rows, tb, nt, j0, nr);
                else if (nv == 2) kern2(w, (size_t)kp, x, bstride, np, gs, out, rows, tb, nt, j0, nr);
                else kern1(w, (size_t)kp, x, bstride, np, gs, out, rows, tb, nt, j0, nr);
            }
        }
    }
    return 0;
}

/* ---- float32 on AVX-512F: the same blocking for activations bf16 cannot
 * hold (fp8 with a per-token scale, nvfp4, int8) and weights it cannot
 * (int4, int8, fp16). Weights are dequantized (the same floats the sgemm
 * path multiplies) 16 rows at a time per chunk, activations go into a float
 * panel of 16 tokens per line; products and sums are float32, so results
 * differ from the sgemm path's only by summation order. */
int mplb_ffn_have_avx512f(void) { return __builtin_cpu_supports("avx512f"); }

/* ap[(b * k + c) * 16 + lane] = a[16 b + lane][c], zeros past n */
F32 static void pack_acts_f32(const float *a, int n, int k, float *ap) {
    int nb = (n + 15) / 16;
    for (int b = 0; b < nb; b++)
        for (int c0 = 0; c0 < k; c0 += 16) {
            __m512i r[16];
            __mmask16 m = (__mmask16)(k - c0 >= 16 ? 0xFFFF : (1u << (k - c0)) - 1);
            for (int i = 0; i < 16; i++) {
                int t = 16 * b + i;
                r[i] = t < n ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, a + (size_t)t * k + c0)) : _mm512_setzero_si512();
            }
            transpose16(r);
            for (int j = 0; j < 16 && c0 + j < k; j++) _mm512_store_si512(ap + ((size_t)b * k + c0 + j) * 16, r[j]);
        }
}

#define KERNEL_F32(NT)                                                                                          \
    F32 static void kf##NT(const float *wr, size_t k, const float *ap, size_t bstride, float *out, int ldo,      \
                           int t0, int nt, int j0, int nr) {                                                    \
        __m512 acc[NT][NR];                                                                                     \
        _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++)                                                    \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) acc[z][r] = _mm512_setzero_ps();               \
        for (size_t c = 0; c < k; c++) {                                                                        \
            __m512 x[NT];                                                                                       \
            _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++) x[z] = _mm512_load_ps(ap + z * bstride + c * 16); \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) {                                              \
                __m512 wv = _mm512_set1_ps(wr[r * k + c]);                                                      \
                _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++) acc[z][r] = _mm512_fmadd_ps(x[z], wv, acc[z][r]); \
            }                                                                                                   \
        }                                                                                                       \
        float tmp[NR][16];                                                                                      \
        _Pragma("GCC unroll 3") for (int z = 0; z < NT; z++) {                                                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) _mm512_storeu_ps(tmp[r], acc[z][r]);           \
            for (int l = 0; l < 16 && 16 * z + l < nt; l++)                                                     \
                for (int r = 0; r < nr; r++) out[(size_t)(t0 + 16 * z + l) * ldo + j0 + r] = tmp[r][l];          \
        }                                                                                                       \
    }
KERNEL_F32(1)
KERNEL_F32(2)
KERNEL_F32(3)
#undef KERNEL_F32

int mplb_ffn_gemm_f32(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws, mplb_err *err) {
    if (n < 1 || W->cols != k || !mplb_ffn_have_avx512f()) return 1;
    int rows = (int)W->rows, nb = (n + 15) / 16;
    /* a 16-row tile, then NR zero rows for a last strip past rows */
    if (grow(&ws->dtile, &ws->cap_dtile, (size_t)(16 + NR) * k * sizeof(float)) < 0 ||
        grow(&ws->ab, &ws->cap_ab, (size_t)nb * k * 64 + 64) < 0)
        return mplb_err_set(err, MPLB_ENOMEM, "ffn: out of memory for a %d x %d float32 GEMM", n, rows);
    float *ap = ws->ab, *tile = ws->dtile;
    memset(tile + (size_t)16 * k, 0, (size_t)NR * k * sizeof(float));
    pack_acts_f32(a, n, k, ap);
    size_t bstride = (size_t)k * 16;
    for (int c0 = 0; c0 < nb; c0 += CHUNK) {
        int c1 = c0 + CHUNK < nb ? c0 + CHUNK : nb;
        for (int r0 = 0; r0 < rows; r0 += 16) {
            int tr = rows - r0 < 16 ? rows - r0 : 16;
            mplb_qtensor v;
            if (mplb_qtensor_rows(W, r0, tr, &v) < 0) return mplb_err_set(err, MPLB_EINVAL, "ffn: bad tile view");
            double t0 = now_s();
            int rc = mplb_quant_dequantize(&v, tile, err);
            ws->t_dequant_s += now_s() - t0;
            if (rc < 0) return rc;
            if (tr < 16) memset(tile + (size_t)tr * k, 0, (size_t)(16 - tr) * k * sizeof(float));
            for (int j = 0; j < tr; j += NR) {
                int nr = tr - j < NR ? tr - j : NR;
                for (int b = c0; b < c1; b += NTMAX) {
                    int nv = c1 - b < NTMAX ? c1 - b : NTMAX, tb = 16 * b, nt = n - tb < 16 * nv ? n - tb : 16 * nv;
                    const float *x = ap + (size_t)b * bstride, *w = tile + (size_t)j * k;
                    if (nv == 3) kf3(w, (size_t)k, x, bstride, out, rows, tb, nt, r0 + j, nr);
                    else if (nv == 2) kf2(w, (size_t)k, x, bstride, out, rows, tb, nt, r0 + j, nr);
                    else kf1(w, (size_t)k, x, bstride, out, rows, tb, nt, r0 + j, nr);
                }
            }
        }
    }
    return 0;
}
#else
int mplb_ffn_have_bf16(void) { return 0; }
int mplb_ffn_have_avx512f(void) { return 0; }
int mplb_ffn_gemm_f32(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws, mplb_err *err) {
    (void)W; (void)a; (void)n; (void)k; (void)out; (void)ws; (void)err;
    return 1;
}
int mplb_ffn_gemm_bf16(const mplb_qtensor *W, const float *a, int n, int k, float *out, mplb_ffn_ws *ws,
                       mplb_err *err) {
    (void)W; (void)a; (void)n; (void)k; (void)out; (void)ws; (void)err;
    return 1;
}
#endif
