/* Quantizers in C (and so under ASan/UBSan): fast path equals the scalar
 * reference bit for bit; element decoders against an independent ldexp
 * formula; edge shapes. The exact-value oracles (ml_dtypes, fractions) are
 * in tests/python/test_quant.py. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "quant_elem.h"

static float rand_float(mplb_rng *g) {
    uint64_t r = mplb_rng_next(g);
    if (r & 1) return mplb_bits_f32((uint32_t)(r >> 32));          /* any bit pattern */
    return (float)((mplb_rng_uniform(g) - 0.5) * ldexp(1.0, (int)(r >> 40) % 40 - 20));
}

/* The instruction sets this CPU has, each fast path forced in turn (so the
 * AVX2 paths are checked on an AVX-512 machine too). */
static int isa_list(mplb_isa *out) {
    int n = 0;
    out[n++] = MPLB_ISA_AUTO;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        out[n++] = MPLB_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) out[n++] = MPLB_ISA_AVX2;
    return n;
}

static void test_decode_formula(void **st) {
    (void)st;
    for (int c = 0; c < 256; c++) {
        int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
        double v = e ? ldexp(1 + m / 8.0, e - 7) : ldexp(m / 8.0, -6);
        float got = mplb_e4m3_to_f32((uint8_t)c);
        if (e == 15 && m == 7) assert_true(isnan(got));
        else assert_true(got == (float)(s ? -v : v));
        int e5 = (c >> 2) & 31, m5 = c & 3;
        double v5 = e5 ? ldexp(1 + m5 / 4.0, e5 - 15) : ldexp(m5 / 4.0, -14);
        float g5 = mplb_e5m2_to_f32((uint8_t)c);
        if (e5 == 31) assert_true(m5 ? isnan(g5) : isinf(g5));
        else assert_true(g5 == (float)(s ? -v5 : v5));
        /* every finite code encodes back to itself */
        if (!(e == 15 && m == 7)) assert_int_equal(mplb_f32_to_e4m3(got, 0), c);
        if (e5 != 31) assert_int_equal(mplb_f32_to_e5m2(g5, 0), c);
    }
    assert_int_equal(mplb_f32_to_e4m3(464.0f, 0), 0x7E);   /* tie below max: to even (448) */
    assert_int_equal(mplb_f32_to_e4m3(464.1f, 0), 0x7F);   /* above: NaN when not saturating */
    assert_int_equal(mplb_f32_to_e4m3(1e30f, 1), 0x7E);
    assert_int_equal(mplb_f32_to_e4m3(-INFINITY, 1), 0xFE);
    assert_int_equal(mplb_f32_to_e5m2(61440.0f, 0), 0x7C);   /* tie above max: to even = Inf */
    assert_int_equal(mplb_f32_to_e2m1(5.0f), 0x6);           /* tie 4|6 -> 4 (even) */
    assert_int_equal(mplb_f32_to_e2m1(-0.25f), 0x8);         /* tie 0|0.5 -> -0 */
    assert_true(mplb_e8m0_to_f32(127) == 1.0f);
    assert_true(mplb_e8m0_to_f32(0) == ldexpf(1.0f, -127));
    assert_true(isnan(mplb_e8m0_to_f32(255)));
}

/* Every fp8 and bf16 code through the fast dequantizer equals the
 * reference bit for bit (NaN bits included), with and without a scale. */
static void test_fast_dequant_every_code(void **st) {
    (void)st;
    const mplb_prec ps[] = {MPLB_PREC_FP8_E4M3, MPLB_PREC_FP8_E5M2, MPLB_PREC_BF16};
    const float scales[] = {1.0f, 3.0e-3f, 1.7e5f, 1.4e-45f};
    for (int pi = 0; pi < 3; pi++)
        for (int si = 0; si < 4; si++) {
            int64_t n = ps[pi] == MPLB_PREC_BF16 ? 65536 + 5 : 256 + 5;   /* + a tail past the vector width */
            mplb_qopts o = {.scaling = MPLB_SCALE_TENSOR};
            mplb_qtensor q;
            mplb_err err;
            assert_int_equal(mplb_qtensor_alloc(&q, ps[pi], &o, 1, n, &err), 0);
            for (int64_t i = 0; i < n; i++) {
                if (ps[pi] == MPLB_PREC_BF16) { uint16_t h = (uint16_t)i; memcpy(q.data + 2 * i, &h, 2); }
                else q.data[i] = (uint8_t)i;
            }
            q.global_scale = ps[pi] == MPLB_PREC_BF16 ? 1.0f : scales[si];
            float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
            assert_int_equal(mplb_quant_dequantize(&q, a, &err), 0);
            assert_int_equal(mplb_quant_dequantize_ref(&q, b, &err), 0);
            for (int64_t i = 0; i < n; i++)
                if (mplb_f32_bits(a[i]) != mplb_f32_bits(b[i]))
                    fail_msg("%s code %lld scale %g: %08x != ref %08x", mplb_prec_name(ps[pi]), (long long)i,
                             (double)q.global_scale, mplb_f32_bits(a[i]), mplb_f32_bits(b[i]));
            free(a); free(b);
            mplb_qtensor_free(&q);
        }
}

/* Block dequantization, fast against the reference bit for bit (NaN bits
 * too): 1x16 and 16x16 nvfp4, mxfp4, int4 (signed and with zero points),
 * with NaN blocks, zero blocks, negative zeros and random packed bytes
 * (every code, every scale, every zero point). */
static void test_fast_dequant_fp4_blocks(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const mplb_prec ps[] = {MPLB_PREC_NVFP4, MPLB_PREC_NVFP4, MPLB_PREC_MXFP4, MPLB_PREC_INT4_G32, MPLB_PREC_INT4_G32};
    for (int it = 0; it < 30; it++)
        for (int pi = 0; pi < 5; pi++) {
            mplb_qopts o = {.nvfp4_2d = pi == 1, .int4_asym = pi == 4};
            mplb_qtensor q;
            mplb_err err;
            int64_t R = 32, C = 96;
            assert_int_equal(mplb_qtensor_alloc(&q, ps[pi], &o, R, C, &err), 0);
            for (size_t i = 0; i < q.data_bytes; i++) q.data[i] = (uint8_t)mplb_rng_next(&g);
            for (size_t i = 0; i < q.scale_bytes; i++) q.scales[i] = (uint8_t)mplb_rng_next(&g);
            for (size_t i = 0; i < q.zero_bytes; i++) q.zeros[i] = (uint8_t)(mplb_rng_next(&g) % 16);
            q.global_scale = it % 3 == 0 ? 1.0f : (float)(mplb_rng_uniform(&g) * 1e-3);
            float *a = malloc((size_t)(R * C) * sizeof *a), *b = malloc((size_t)(R * C) * sizeof *b);
            assert_int_equal(mplb_quant_dequantize(&q, a, &err), 0);
            assert_int_equal(mplb_quant_dequantize_ref(&q, b, &err), 0);
            for (int64_t i = 0; i < R * C; i++)
                if (mplb_f32_bits(a[i]) != mplb_f32_bits(b[i]))
                    fail_msg("%s%s element %lld: %08x != ref %08x", mplb_prec_name(ps[pi]), pi == 1 ? " 16x16" : pi == 4 ? " asym" : "",
                             (long long)i, mplb_f32_bits(a[i]), mplb_f32_bits(b[i]));
            free(a); free(b);
            mplb_qtensor_free(&q);
        }
}

/* NVFP4 block scales at and around every E4M3 midpoint: with amax = 2688 x
 * 2^-k the tensor scale is exactly 2^-k, and a block whose amax is
 * (e4[c] + e4[c+1]) / 2 x 6 x 2^-k sits exactly on the tie between codes c
 * and c+1 (ties go to the even code). Fast and reference agree bit for bit
 * on the tie and one float step either side, for every c. */
static void test_nvfp4_scale_ties(void **st) {
    (void)st;
    mplb_isa isas[4];
    int nisa = isa_list(isas);
    mplb_qopts o = {0};
    for (int k = 0; k <= 20; k += 5)
        for (int c = 0; c < 0x7E; c++)
            for (int nudge = -1; nudge <= 1; nudge++) {
                float x[32] = {0};
                x[0] = ldexpf(2688.0f, -k);                   /* the tensor amax: gs = 2^-k */
                double mid = ((double)mplb_e4m3_to_f32((uint8_t)c) + mplb_e4m3_to_f32((uint8_t)(c + 1))) * 0.5;
                float b = (float)(mid * 6.0 * ldexp(1.0, -k));
                if (nudge) b = nextafterf(b, nudge > 0 ? INFINITY : 0.0f);
                x[16] = b;                                    /* the second block's amax */
                x[17] = -b / 3;
                mplb_qtensor a, r;
                mplb_err err;
                assert_int_equal(mplb_qtensor_alloc(&a, MPLB_PREC_NVFP4, &o, 1, 32, &err), 0);
                assert_int_equal(mplb_qtensor_alloc(&r, MPLB_PREC_NVFP4, &o, 1, 32, &err), 0);
                assert_int_equal(mplb_quant_quantize_ref(x, &r, &err), 0);
                for (int ii = 0; ii < nisa; ii++) {
                    assert_int_equal(mplb_quant_quantize_isa(x, &a, isas[ii], &err), 0);
                    if (a.scales[1] != r.scales[1] || memcmp(a.data, r.data, a.data_bytes))
                        fail_msg("isa %d k=%d code %d nudge %d: scale %d vs ref %d", isas[ii], k, c, nudge, a.scales[1], r.scales[1]);
                }
                if (nudge == 0 && x[16] == b) assert_int_equal(r.scales[1], (c & 1) ? c + 1 : c);
                mplb_qtensor_free(&a);
                mplb_qtensor_free(&r);
            }
}

/* Subnormal tensors: amax / 2688 underflows float32 (or lands among its
 * subnormals), so the NVFP4 tensor scale and every element threshold are
 * subnormal. The fast path must still equal the reference bit for bit. */
static void test_nvfp4_subnormal_tensor(void **st) {
    (void)st;
    mplb_isa isas[4];
    int nisa = isa_list(isas);
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    mplb_qopts o = {0};
    const int64_t R = 4, C = 64;
    float x[4 * 64];
    for (int k = 100; k <= 160; k += 3) {
        for (int64_t i = 0; i < R * C; i++)
            x[i] = ldexpf((float)(mplb_rng_uniform(&g) * 2 - 1), -k - (int)(mplb_rng_next(&g) % 12));
        x[5] = ldexpf(1.0f, -149);   /* the smallest subnormal */
        mplb_qtensor a, r;
        mplb_err err;
        assert_int_equal(mplb_qtensor_alloc(&a, MPLB_PREC_NVFP4, &o, R, C, &err), 0);
        assert_int_equal(mplb_qtensor_alloc(&r, MPLB_PREC_NVFP4, &o, R, C, &err), 0);
        assert_int_equal(mplb_quant_quantize_ref(x, &r, &err), 0);
        for (int ii = 0; ii < nisa; ii++) {
            assert_int_equal(mplb_quant_quantize_isa(x, &a, isas[ii], &err), 0);
            assert_int_equal(mplb_f32_bits(a.global_scale), mplb_f32_bits(r.global_scale));
            assert_memory_equal(a.scales, r.scales, r.scale_bytes);
            if (memcmp(a.data, r.data, r.data_bytes)) fail_msg("isa %d 2^-%d: nvfp4 codes differ from the reference", isas[ii], k);
        }
        mplb_qtensor_free(&a);
        mplb_qtensor_free(&r);
    }
}

/* MX round-up near the top of float32: the scale rule never clips, but an
 * element rounding up to 4 x 2^126 (fp4) or 256 x 2^120 (fp8) would be 2^128,
 * which float32 cannot hold. Such elements saturate to the largest code that
 * stays finite; nothing a finite input gives dequantizes to Inf. */
static void test_mx_round_up_stays_finite(void **st) {
    (void)st;
    mplb_qopts o = {.mx_round_up = 1};
    const float big[] = {2.98e38f, 3.0e38f, 3.3e38f, 3.4028235e38f, -3.4028235e38f, 2.5e38f, 1.7014118e38f};
    for (int fp4 = 0; fp4 <= 1; fp4++)
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
            float x[64], y[64], yr[64];
            for (int j = 0; j < 64; j++) x[j] = (float)j - 20.0f;
            x[3] = big[i];
            x[40] = big[i];
            x[41] = -big[i] / 2;
            mplb_err err;
            mplb_qtensor a, r;
            mplb_prec f = fp4 ? MPLB_PREC_MXFP4 : MPLB_PREC_MXFP8;
            assert_int_equal(mplb_qtensor_alloc(&a, f, &o, 1, 64, &err), 0);
            assert_int_equal(mplb_qtensor_alloc(&r, f, &o, 1, 64, &err), 0);
            assert_int_equal(mplb_quant_quantize(x, &a, &err), 0);
            assert_int_equal(mplb_quant_quantize_ref(x, &r, &err), 0);
            assert_memory_equal(a.data, r.data, r.data_bytes);
            assert_memory_equal(a.scales, r.scales, r.scale_bytes);
            assert_int_equal(mplb_quant_dequantize(&a, y, &err), 0);
            assert_int_equal(mplb_quant_dequantize_ref(&r, yr, &err), 0);
            for (int j = 0; j < 64; j++) {
                if (!isfinite(y[j]) || !isfinite(yr[j])) fail_msg("%s x=%g: element %d -> %g", mplb_prec_name(f), x[j], j, y[j]);
                assert_int_equal(mplb_f32_bits(y[j]), mplb_f32_bits(yr[j]));
            }
            /* the saturated element is the largest finite value of its block:
             * 3 x 2^126 (fp4) or 240 x 2^120 (fp8) when the scale is at the top */
            float top = fp4 ? ldexpf(3.0f, 126) : ldexpf(240.0f, 120);
            if (fabsf(x[3]) > (fp4 ? ldexpf(3.5f, 126) : ldexpf(248.0f, 120)))
                assert_true(fabsf(y[3]) == top);
            mplb_qtensor_free(&a);
            mplb_qtensor_free(&r);
        }
}

/* fp16 and fp4_e2m1 casts over every sign, exponent and top 11 mantissa
 * bits of float32 (2^20 patterns), each with its low 12 bits zero (exact
 * fp16 ties where bit 12 is set), all ones, one, and random: fast path and
 * reference agree bit for bit, with and without a tensor scale. */
static void test_fast_casts_bit_sweep(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int64_t R = 1024, C = 4096;   /* 2^20 patterns x 4 low-bit variants */
    float *x = malloc((size_t)(R * C) * sizeof(float));
    for (int64_t i = 0; i < R * C; i++) {
        uint32_t top = (uint32_t)(i >> 2) << 12, v = (uint32_t)(i & 3);
        uint32_t low = v == 0 ? 0 : v == 1 ? 0xFFF : v == 2 ? 1 : (uint32_t)(mplb_rng_next(&g) & 0xFFF);
        x[i] = mplb_bits_f32(top | low);
    }
    const mplb_prec ps[] = {MPLB_PREC_FP16, MPLB_PREC_FP4_E2M1, MPLB_PREC_FP4_E2M1};
    for (int k = 0; k < 3; k++) {
        mplb_qopts o = {.scaling = k == 2 ? MPLB_SCALE_TENSOR : MPLB_SCALE_NONE};
        mplb_qtensor a, r;
        mplb_err err;
        assert_int_equal(mplb_qtensor_alloc(&a, ps[k], &o, R, C, &err), 0);
        assert_int_equal(mplb_qtensor_alloc(&r, ps[k], &o, R, C, &err), 0);
        assert_int_equal(mplb_quant_quantize(x, &a, &err), 0);
        assert_int_equal(mplb_quant_quantize_ref(x, &r, &err), 0);
        assert_int_equal(mplb_f32_bits(a.global_scale), mplb_f32_bits(r.global_scale));
        for (size_t i = 0; i < r.data_bytes; i++)
            if (a.data[i] != r.data[i]) fail_msg("%s%s byte %zu: %02x != ref %02x", mplb_prec_name(ps[k]), k == 2 ? " scaled" : "", i, a.data[i], r.data[i]);
        mplb_qtensor_free(&a);
        mplb_qtensor_free(&r);
    }
    free(x);
}

/* int8 rows and int4 groups on random data with sparse NaN, Inf, subnormals
 * and signed zeros, all-zero and all-minus-zero groups, tiny groups (fp16
 * scale underflows), huge ones (fp16 scale clamps to 65504), exact rounding
 * ties (x = (k + 1/2) s), odd row lengths (reference fallback): fast path ==
 * reference, scales and zero points included. */
static void test_fast_int_equals_ref(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int64_t shapes[][2] = {{9, 256}, {7, 128}, {4, 96}, {3, 37}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t R = shapes[si][0], C = shapes[si][1];
        float *x = malloc((size_t)(R * C) * sizeof(float));
        for (int it = 0; it < 30; it++) {
            for (int64_t r = 0; r < R; r++) {
                int kind = (int)(mplb_rng_next(&g) % 7);
                int ex = (int)(mplb_rng_next(&g) % 260) - 140;
                for (int64_t c = 0; c < C; c++) {
                    float v = (float)ldexp(mplb_rng_uniform(&g) * 2 - 1, ex);
                    if (kind == 1) v = 0;
                    if (kind == 2) v = (float)((double)((int)(mplb_rng_next(&g) % 15) - 7) + 0.5);   /* ties at s = 1 */
                    if (kind == 3) v = (float)ldexp(mplb_rng_uniform(&g), 100);                         /* fp16 scale clamps */
                    if (kind == 4) v = -0.0f;
                    uint64_t u = mplb_rng_next(&g) % 400;
                    if (u == 0) v = NAN;
                    else if (u == 1) v = (mplb_rng_next(&g) & 1) ? INFINITY : -INFINITY;
                    else if (u == 2) v = mplb_bits_f32((uint32_t)(mplb_rng_next(&g) & 0x807FFFFF));  /* subnormal */
                    else if (u == 3) v = -0.0f;
                    x[r * C + c] = v;
                }
                if (kind == 2) x[r * C] = 7, x[r * C + C - 1] = 127;   /* pins s to 1 (int8 rows, int4 first/last groups) */
            }
            const mplb_prec ps[] = {MPLB_PREC_INT8, MPLB_PREC_INT4_G32, MPLB_PREC_INT4_G128};
            for (int k = 0; k < 3; k++)
                for (int asym = 0; asym <= 1; asym++) {
                    mplb_qopts o = {.int4_asym = asym};
                    mplb_qtensor a, r;
                    mplb_err err;
                    assert_int_equal(mplb_qtensor_alloc(&a, ps[k], &o, R, C, &err), 0);
                    assert_int_equal(mplb_qtensor_alloc(&r, ps[k], &o, R, C, &err), 0);
                    assert_int_equal(mplb_quant_quantize(x, &a, &err), 0);
                    assert_int_equal(mplb_quant_quantize_ref(x, &r, &err), 0);
                    if (memcmp(a.data, r.data, r.data_bytes) || memcmp(a.scales, r.scales, r.scale_bytes) ||
                        memcmp(a.zeros, r.zeros, r.zero_bytes))
                        fail_msg("%s asym=%d %lldx%lld: fast != ref", mplb_prec_name(ps[k]), asym, (long long)R, (long long)C);
                    mplb_qtensor_free(&a);
                    mplb_qtensor_free(&r);
                }
        }
        free(x);
    }
}

static void test_fast_equals_ref(void **st) {
    (void)st;
    mplb_isa isas[4];
    int nisa = isa_list(isas);
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int64_t shapes[][2] = {{7, 64}, {3, 96}, {5, 33}, {1, 1}, {2, 160}, {2, 272}, {3, 48}};   /* 272: 17 nvfp4 blocks */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t R = shapes[si][0], C = shapes[si][1], n = R * C;
        float *x = malloc((size_t)n * sizeof(float)), *ya = malloc((size_t)n * sizeof(float)), *yb = malloc((size_t)n * sizeof(float));
        for (int it = 0; it < 40; it++) {
            for (int64_t i = 0; i < n; i++) x[i] = it % 4 == 0 ? (float)(mplb_rng_uniform(&g) - 0.5) : rand_float(&g);
            for (int p = 0; p < MPLB_PREC_COUNT; p++) {
                for (int variant = 0; variant < 3; variant++) {
                    mplb_qopts o = {.saturate = variant & 1, .mx_round_up = variant & 1, .int4_asym = variant & 1,
                                    .scaling = variant == 2 ? MPLB_SCALE_TENSOR : MPLB_SCALE_NONE};
                    mplb_qtensor a, b;
                    mplb_err err;
                    assert_int_equal(mplb_qtensor_alloc(&a, (mplb_prec)p, &o, R, C, &err), 0);
                    assert_int_equal(mplb_qtensor_alloc(&b, (mplb_prec)p, &o, R, C, &err), 0);
                    assert_int_equal(mplb_quant_quantize_ref(x, &b, &err), 0);
                    for (int ii = nisa - 1; ii >= 0; ii--) {   /* AUTO last: the dequantize check below reads it */
                        assert_int_equal(mplb_quant_quantize_isa(x, &a, isas[ii], &err), 0);
                        if (memcmp(a.data, b.data, a.data_bytes) || memcmp(a.scales, b.scales, a.scale_bytes) ||
                            mplb_f32_bits(a.global_scale) != mplb_f32_bits(b.global_scale))
                            fail_msg("%s %lldx%lld variant %d isa %d: fast != ref", mplb_prec_name(p), (long long)R,
                                     (long long)C, variant, isas[ii]);
                    }
                    assert_int_equal(mplb_quant_dequantize(&a, ya, &err), 0);
                    assert_int_equal(mplb_quant_dequantize_ref(&b, yb, &err), 0);
                    for (int64_t i = 0; i < n; i++)
                        if (mplb_f32_bits(ya[i]) != mplb_f32_bits(yb[i]) && !(isnan(ya[i]) && isnan(yb[i])))
                            fail_msg("%s dequant %lld differs", mplb_prec_name(p), (long long)i);
                    mplb_qtensor_free(&a);
                    mplb_qtensor_free(&b);
                }
            }
        }
        free(x); free(ya); free(yb);
    }
}

static void test_empty_and_errors(void **st) {
    (void)st;
    mplb_err err;
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        assert_int_equal(mplb_quant_fake(NULL, NULL, 0, 16, (mplb_prec)p, NULL, &err), 0);
        assert_int_equal(mplb_quant_fake(NULL, NULL, 4, 0, (mplb_prec)p, NULL, &err), 0);
    }
    assert_int_equal(mplb_quant_fake(NULL, NULL, 1, 1, (mplb_prec)99, NULL, &err), MPLB_EINVAL);
    assert_contains(err.msg, "unknown precision");
    assert_int_equal(mplb_quant_fake(NULL, NULL, -1, 1, MPLB_PREC_INT8, NULL, &err), MPLB_EINVAL);
    mplb_qtensor q;
    float x[32] = {0};
    assert_int_equal(mplb_qtensor_alloc(&q, MPLB_PREC_NVFP4, NULL, 1, 32, &err), 0);
    assert_int_equal(mplb_quant_quantize_isa(x, &q, (mplb_isa)7, &err), MPLB_EINVAL);
    assert_contains(err.msg, "instruction set");
    mplb_qtensor_free(&q);
}

static void test_error_stats(void **st) {
    (void)st;
    float x[4] = {1, -2, 3, NAN}, y[4] = {1.5f, -2, 3, 0};
    mplb_qstats s;
    mplb_quant_stats(x, y, 4, &s);
    assert_close(s.max_abs, 0.5, 0);
    assert_close(s.rms_rel, sqrt(0.25 / 14.0), 1e-12);
    assert_close(s.snr_db, 10 * log10(14.0 / 0.25), 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_formula),
        cmocka_unit_test(test_fast_equals_ref),
        cmocka_unit_test(test_fast_dequant_every_code),
        cmocka_unit_test(test_fast_dequant_fp4_blocks),
        cmocka_unit_test(test_nvfp4_scale_ties),
        cmocka_unit_test(test_nvfp4_subnormal_tensor),
        cmocka_unit_test(test_mx_round_up_stays_finite),
        cmocka_unit_test(test_fast_casts_bit_sweep),
        cmocka_unit_test(test_fast_int_equals_ref),
        cmocka_unit_test(test_empty_and_errors),
        cmocka_unit_test(test_error_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
