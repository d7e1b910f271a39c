/* The CPU expert FFN: every weight format against a float64 reference within
 * a bound derived from the format's own measured error on the same tensors;
 * the tiled kernel against a float64 product of the dequantized weights (which
 * isolates tiling and BLAS from quantization); n = 0, 1, odd sizes. */
#include <math.h>
#include <time.h>
#include "testutil.h"

static void heavy(mplb_rng *g, float *w, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) {
        double u1 = mplb_rng_uniform(g), u2 = mplb_rng_uniform(g);
        double z = sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2);
        w[i] = (float)(scale * z * (mplb_rng_uniform(g) < 0.01 ? 8 : 1));
    }
}

static double weight_err(const float *w, int rows, int cols, mplb_prec p) {
    float *y = malloc(sizeof(float) * rows * cols);
    mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
    mplb_err err;
    assert_int_equal(mplb_quant_fake(w, y, rows, cols, p, &o, &err), 0);
    mplb_qstats s;
    mplb_quant_stats(w, y, (int64_t)rows * cols, &s);
    free(y);
    return s.rms_rel;
}

/* Every format through the FFN on one path (each path forced in turn, so the
 * AVX2 and scalar paths are checked on an AVX-512 machine too). */
static void formats_on_path(mplb_rng *g, const float *gate, const float *up, const float *down, int d, int f,
                            mplb_ffn_path path) {
    const int ns[] = {1, 7, 33, 200};   /* 200: more than one 192-token chunk of the bf16 path */
    for (int p = 0; p < MPLB_PREC_COUNT; p++) {
        mplb_expert_w w;
        mplb_err err = {0};
        int rc = mplb_expert_quantize(gate, up, down, d, f, (mplb_prec)p, NULL, &w, &err);
        if (rc) fail_msg("%s", err.msg);
        double ew = fmax(weight_err(gate, f, d, (mplb_prec)p), fmax(weight_err(up, f, d, (mplb_prec)p),
                                                                    weight_err(down, d, f, (mplb_prec)p)));
        for (size_t ni = 0; ni < 4; ni++) {
            int n = ns[ni];
            float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d);
            double *ref = malloc(sizeof(double) * n * d), *dq = malloc(sizeof(double) * n * d);
            heavy(g, x, (size_t)n * d, 1.0);
            mplb_ffn_ws ws = {.path = (mplb_ffn_path)path};
            if (mplb_ffn_forward(&w, x, n, MPLB_PREC_BF16, y, &ws, &err) != 0) fail_msg("%s", err.msg);
            mplb_ffn_ref_f64(gate, up, down, d, f, x, n, ref);
            /* The format's own error on these weights: the float64 FFN of the
             * dequantized weights and bf16-rounded inputs against the exact one. */
            float *gq = malloc(sizeof(float) * d * f), *uq = malloc(sizeof(float) * d * f), *dq2 = malloc(sizeof(float) * d * f);
            assert_int_equal(mplb_quant_dequantize(&w.gate, gq, &err), 0);
            assert_int_equal(mplb_quant_dequantize(&w.up, uq, &err), 0);
            assert_int_equal(mplb_quant_dequantize(&w.down, dq2, &err), 0);
            float *xb = malloc(sizeof(float) * n * d);
            mplb_qopts ob = {0};
            assert_int_equal(mplb_quant_fake(x, xb, n, d, MPLB_PREC_BF16, &ob, &err), 0);
            mplb_ffn_ref_f64(gq, uq, dq2, d, f, xb, n, dq);
            double e_fmt, e_kernel, rel, cosv;
            mplb_ffn_compare(y, dq, (int64_t)n * d, &e_kernel, &cosv);   /* tiling + BLAS + bf16 of h */
            double ref_fmt_cos;
            float *dqf = malloc(sizeof(float) * n * d);
            for (int i = 0; i < n * d; i++) dqf[i] = (float)dq[i];
            mplb_ffn_compare(dqf, ref, (int64_t)n * d, &e_fmt, &ref_fmt_cos);
            free(dqf);
            mplb_ffn_compare(y, ref, (int64_t)n * d, &rel, &cosv);
            /* the kernel adds only float32 accumulation and the bf16 rounding
             * of the hidden activations (2^-9 relative each, with SiLU's slope) */
            if (!(e_kernel <= 1.5 / 256))
                fail_msg("%s n=%d path %s: kernel vs dequantized reference %.6f", mplb_prec_name(p), n,
                         mplb_ffn_path_name((mplb_ffn_path)path), e_kernel);
            /* so the total error is the format's plus that (triangle inequality) */
            if (!(rel <= e_fmt + 2 * 1.5 / 256)) fail_msg("%s n=%d: rel err %.5f > format error %.5f + kernel", mplb_prec_name(p), n, rel, e_fmt);
            /* and the format's FFN error is of the order of its weight error:
             * SiLU amplifies the relative error of negative pre-activations,
             * hence the loose factor */
            if (path == MPLB_FFN_AUTO && !(e_fmt <= 10 * ew + 1.0 / 256))   /* references only: once per format and n */
                fail_msg("%s n=%d: FFN error %.5f vs weight error %.5f", mplb_prec_name(p), n, e_fmt, ew);
            if (p == MPLB_PREC_BF16 && !(cosv > 0.9999)) fail_msg("bf16 cosine %.6f", cosv);
            free(gq); free(uq); free(dq2); free(xb);
            free(x); free(y); free(ref); free(dq);
            mplb_ffn_ws_free(&ws);
        }
        mplb_expert_free(&w);
    }
}

static void test_formats_against_f64(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int d = 100, f = 72;   /* neither a multiple of 32 nor of the 64-row tile */
    float *gate = malloc(sizeof(float) * d * f), *up = malloc(sizeof(float) * d * f), *down = malloc(sizeof(float) * d * f);
    heavy(&g, gate, (size_t)d * f, 0.1);
    heavy(&g, up, (size_t)d * f, 0.1);
    heavy(&g, down, (size_t)d * f, 0.1);
    for (int path = MPLB_FFN_AUTO; path < MPLB_FFN_PATH_COUNT; path++) {
        if (path == MPLB_FFN_AVX512_BF16 && !mplb_ffn_have_bf16()) continue;
        if (path == MPLB_FFN_AVX512_F32 && !mplb_ffn_have_avx512f()) continue;
        if (path == MPLB_FFN_AVX2 && !__builtin_cpu_supports("avx2")) continue;
        formats_on_path(&g, gate, up, down, d, f, (mplb_ffn_path)path);
    }
    free(gate); free(up); free(down);
}

/* The small-batch GEMM (weights widened in registers) against float64 dot
 * products of the dequantized weights: every token count up to its limit
 * (remainders of the 6-token blocks included), bf16, both fp8 formats,
 * nvfp4 (1x16 and 16x16) and mxfp4; an e4m3 NaN weight and a NaN block
 * make their output column NaN; shapes and formats it does not take are
 * left alone. */
static void test_gemm_small(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int rows = 34, k = 96;
    const mplb_prec fs[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_FP8_E5M2, MPLB_PREC_NVFP4, MPLB_PREC_NVFP4,
                            MPLB_PREC_MXFP4};
    float *w = malloc(sizeof(float) * rows * k), *wd = malloc(sizeof(float) * rows * k);
    float *a = malloc(sizeof(float) * 96 * k), *out = malloc(sizeof(float) * 96 * rows);
    heavy(&g, w, (size_t)rows * k, 0.3);
    heavy(&g, a, (size_t)96 * k, 1.0);
    mplb_err err = {0};
    for (int fi = 0; fi < 6; fi++) {
        mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR, .nvfp4_2d = fi == 4};
        mplb_qtensor q;
        assert_int_equal(mplb_qtensor_alloc(&q, fs[fi], &o, rows, k, &err), 0);
        assert_int_equal(mplb_quant_quantize(w, &q, &err), 0);
        if (fs[fi] == MPLB_PREC_FP8_E4M3) q.data[3 * k + 17] = 0xFF;   /* a NaN weight in row 3 */
        if (fs[fi] == MPLB_PREC_NVFP4 && fi == 3) q.scales[3 * (k / 16) + 1] = 0x7F;   /* a NaN block in row 3 */
        if (fs[fi] == MPLB_PREC_MXFP4) q.scales[3 * (k / 32) + 2] = 0xFF;
        assert_int_equal(mplb_quant_dequantize_ref(&q, wd, &err), 0);
        int most = fs[fi] == MPLB_PREC_BF16 ? 64 : fs[fi] == MPLB_PREC_NVFP4 || fs[fi] == MPLB_PREC_MXFP4 ? 16 : 24;
        for (int n = 1; n <= most; n += n < 14 ? 1 : 5) {
            if (mplb_ffn_gemm_small(&q, a, n, k, out) != 0) {
                if (__builtin_cpu_supports("avx2")) fail_msg("%s n=%d: not taken", mplb_prec_name(fs[fi]), n);
                continue;
            }
            for (int t = 0; t < n; t++)
                for (int j = 0; j < rows; j++) {
                    double ref = 0, mag = 0;
                    for (int c = 0; c < k; c++) {
                        ref += (double)wd[j * k + c] * a[t * k + c];
                        mag += fabs((double)wd[j * k + c] * a[t * k + c]);
                    }
                    float got = out[t * rows + j];
                    if (isnan(ref)) { if (!isnan(got)) fail_msg("%s n=%d: NaN weight lost", mplb_prec_name(fs[fi]), n); continue; }
                    if (!(fabs(got - ref) <= 1e-5 * mag + 1e-30))
                        fail_msg("%s n=%d t=%d j=%d: %g vs %g", mplb_prec_name(fs[fi]), n, t, j, (double)got, ref);
                }
        }
        assert_int_equal(mplb_ffn_gemm_small(&q, a, most + 1, k, out), 1);   /* past its crossover */
        int64_t keep = q.rows;
        q.rows = rows - 1;
        assert_int_equal(mplb_ffn_gemm_small(&q, a, 4, k, out), 1);          /* an odd number of rows */
        q.rows = keep;
        mplb_qtensor_free(&q);
    }
    mplb_qtensor q4;
    mplb_qopts o4 = {0};
    assert_int_equal(mplb_qtensor_alloc(&q4, MPLB_PREC_INT4_G32, &o4, rows, k, &err), 0);
    assert_int_equal(mplb_ffn_gemm_small(&q4, a, 4, k, out), 1);              /* not a format it widens */
    mplb_qtensor_free(&q4);
    free(w); free(wd); free(a); free(out);
}

/* The AVX-512 BF16 GEMM against float64 sums of the decoded weights (tensor
 * scale set aside) times the bf16-rounded activations, within the bound the
 * header states: (k + 2) 2^-24 sum |w x| times the tensor scale, plus what
 * flushing subnormal inputs and partial sums may lose. Shapes with tails in
 * every dimension (rows not a multiple of 8 or 16, odd k, k not a multiple of
 * 32 or of a block, tokens not a multiple of 16, more than one 192-token
 * chunk); every format it takes, nvfp4 both ways; NaN weights make their
 * column NaN; subnormal activations; formats it does not take are left alone. */
static void test_gemm_bf16(void **st) {
    (void)st;
    if (!mplb_ffn_have_bf16()) { printf("# no AVX-512 BF16 on this CPU: skipped\n"); skip(); }
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const struct { int rows, k; } shapes[] = {{34, 96}, {37, 101}, {9, 33}, {16, 64}, {3, 1}, {40, 160}};
    const mplb_prec fs[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_FP8_E5M2, MPLB_PREC_FP4_E2M1,
                            MPLB_PREC_MXFP8, MPLB_PREC_MXFP4, MPLB_PREC_NVFP4, MPLB_PREC_NVFP4};
    const int ns[] = {1, 15, 16, 17, 48, 49, 100, 211};
    const int nmax = 211, kmax = 160, rmax = 40;
    float *w = malloc(sizeof(float) * rmax * kmax), *wd = malloc(sizeof(float) * rmax * kmax);
    float *a = malloc(sizeof(float) * nmax * kmax), *ab = malloc(sizeof(float) * nmax * kmax);
    float *out = malloc(sizeof(float) * nmax * rmax);
    mplb_err err = {0};
    mplb_ffn_ws ws = {0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int rows = shapes[si].rows, k = shapes[si].k;
        for (size_t fi = 0; fi < sizeof fs / sizeof fs[0]; fi++) {
            mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR, .nvfp4_2d = fi == 7};
            heavy(&g, w, (size_t)rows * k, 0.3);
            mplb_qtensor q;
            assert_int_equal(mplb_qtensor_alloc(&q, fs[fi], &o, rows, k, &err), 0);
            assert_int_equal(mplb_quant_quantize(w, &q, &err), 0);
            int nanrow = si == 0 ? 3 : -1;   /* a NaN weight / NaN block in row 3 of the first shape */
            if (nanrow >= 0 && fs[fi] == MPLB_PREC_FP8_E4M3) q.data[3 * k + 17] = 0xFF;
            else if (nanrow >= 0 && fs[fi] == MPLB_PREC_NVFP4 && fi == 6) q.scales[3 * (k / 16) + 1] = 0x7F;
            else if (nanrow >= 0 && fs[fi] == MPLB_PREC_MXFP4) q.scales[3 * (k / 32) + 2] = 0xFF;
            else nanrow = -1;
            float gs = q.global_scale;
            int tensor_scaled = fs[fi] == MPLB_PREC_FP8_E4M3 || fs[fi] == MPLB_PREC_FP8_E5M2 ||
                                fs[fi] == MPLB_PREC_FP4_E2M1 || fs[fi] == MPLB_PREC_NVFP4;
            if (!tensor_scaled) gs = 1.0f;
            q.global_scale = 1.0f;   /* the codes' values, exact */
            assert_int_equal(mplb_quant_dequantize_ref(&q, wd, &err), 0);
            q.global_scale = tensor_scaled ? gs : q.global_scale;
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                int n = ns[ni];
                heavy(&g, a, (size_t)n * k, 1.0);
                if (ni == 1) for (int c = 0; c < k; c += 3) a[c] = 1e-39f * (c % 2 ? 1 : -1);   /* subnormal */
                mplb_qopts ob = {0};
                assert_int_equal(mplb_quant_fake(a, ab, n, k, MPLB_PREC_BF16, &ob, &err), 0);
                int rc = mplb_ffn_gemm_bf16(&q, a, n, k, out, &ws, &err);
                if (rc != 0) fail_msg("%s %dx%d n=%d: rc %d %s", mplb_prec_name(fs[fi]), rows, k, n, rc, err.msg);
                for (int t = 0; t < n; t++)
                    for (int j = 0; j < rows; j++) {
                        double ref = 0, mag = 0, flushed = 0;
                        for (int c = 0; c < k; c++) {
                            double pr = (double)wd[j * k + c] * ab[t * k + c];
                            ref += pr;
                            mag += fabs(pr);
                            if (fabsf(ab[t * k + c]) < 0x1p-126f || fabsf(wd[j * k + c]) < 0x1p-126f) flushed += fabs(pr);
                        }
                        ref *= gs;
                        double tol = ((k + 2) * 0x1p-24 * mag + flushed + k * 0x1p-126) * fabs((double)gs);
                        float got = out[t * rows + j];
                        if (j == nanrow) { if (!isnan(got)) fail_msg("%s n=%d: NaN weight lost", mplb_prec_name(fs[fi]), n); continue; }
                        if (!(fabs(got - ref) <= tol))
                            fail_msg("%s %dx%d n=%d t=%d j=%d: %.9g vs %.9g (tol %.3g)", mplb_prec_name(fs[fi]), rows, k, n,
                                     t, j, (double)got, ref, tol);
                    }
            }
            mplb_qtensor_free(&q);
        }
    }
    mplb_qtensor q;
    mplb_qopts o = {0};
    const mplb_prec not_taken[] = {MPLB_PREC_FP16, MPLB_PREC_INT8, MPLB_PREC_INT4_G32};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mplb_qtensor_alloc(&q, not_taken[i], &o, 32, 64, &err), 0);
        out[0] = 7;
        assert_int_equal(mplb_ffn_gemm_bf16(&q, a, 4, 64, out, &ws, &err), 1);
        assert_true(out[0] == 7);
        mplb_qtensor_free(&q);
    }
    mplb_ffn_ws_free(&ws);
    free(w); free(wd); free(a); free(ab); free(out);
}

/* Path names round-trip; a path value out of range is an error naming them. */
static void test_paths(void **st) {
    (void)st;
    for (int p = MPLB_FFN_AUTO; p < MPLB_FFN_PATH_COUNT; p++)
        assert_int_equal(mplb_ffn_path_parse(mplb_ffn_path_name((mplb_ffn_path)p)), p);
    assert_int_equal(mplb_ffn_path_parse("avx512"), -1);
    float gate[16 * 16] = {0}, x[16] = {0}, y[16];
    mplb_expert_w w;
    mplb_err err = {0};
    assert_int_equal(mplb_expert_quantize(gate, gate, gate, 16, 16, MPLB_PREC_BF16, NULL, &w, &err), 0);
    mplb_ffn_ws ws = {.path = (mplb_ffn_path)9};
    assert_int_equal(mplb_ffn_forward(&w, x, 1, MPLB_PREC_BF16, y, &ws, &err), MPLB_EINVAL);
    assert_contains(err.msg, "avx512_bf16");
    mplb_ffn_ws_free(&ws);
    mplb_expert_free(&w);
    /* auto runs activations that bf16 cannot hold (fp8 with a per-token
     * scale) on the float32 AVX-512 path where there is one (the same bits as
     * forcing it), which agrees with the AVX2 path but for summation order
     * (and the rare fp8 rounding of a hidden activation that order flips) */
    if (__builtin_cpu_supports("avx2")) {
        enum { D = 64, F = 48, N = 40 };
        float *wg = malloc(sizeof(float) * D * F), *xs = malloc(sizeof(float) * N * D);
        float *y1 = malloc(sizeof(float) * N * D), *y2 = malloc(sizeof(float) * N * D), *y3 = malloc(sizeof(float) * N * D);
        mplb_rng g;
        mplb_rng_seed(&g, test_seed());
        heavy(&g, wg, (size_t)D * F, 0.1);
        heavy(&g, xs, (size_t)N * D, 1.0);
        assert_int_equal(mplb_expert_quantize(wg, wg, wg, D, F, MPLB_PREC_FP8_E4M3, NULL, &w, &err), 0);
        mplb_ffn_ws wa = {.path = MPLB_FFN_AUTO}, w2 = {.path = MPLB_FFN_AVX2};
        mplb_ffn_ws w3 = {.path = mplb_ffn_have_avx512f() ? MPLB_FFN_AVX512_F32 : MPLB_FFN_AVX2};
        assert_int_equal(mplb_ffn_forward(&w, xs, N, MPLB_PREC_FP8_E4M3, y1, &wa, &err), 0);
        assert_int_equal(mplb_ffn_forward(&w, xs, N, MPLB_PREC_FP8_E4M3, y2, &w2, &err), 0);
        assert_int_equal(mplb_ffn_forward(&w, xs, N, MPLB_PREC_FP8_E4M3, y3, &w3, &err), 0);
        assert_memory_equal(y1, y3, sizeof(float) * N * D);
        double se = 0, sr = 0;
        for (int i = 0; i < N * D; i++) { se += ((double)y1[i] - y2[i]) * ((double)y1[i] - y2[i]); sr += (double)y2[i] * y2[i]; }
        if (!(sqrt(se / sr) < 1e-3)) fail_msg("fp8 activations: auto vs avx2 %.3g", sqrt(se / sr));
        mplb_ffn_ws_free(&wa);
        mplb_ffn_ws_free(&w2);
        mplb_ffn_ws_free(&w3);
        mplb_expert_free(&w);
        free(wg); free(xs); free(y1); free(y2); free(y3);
    }
}

/* The float32 AVX-512 GEMM against float64 sums of the dequantized weights
 * (what sgemm would multiply): |err| <= (k + 2) 2^-24 sum |w x| per output,
 * every format, shapes with tails in rows, k and tokens. */
static void test_gemm_f32(void **st) {
    (void)st;
    if (!mplb_ffn_have_avx512f()) { printf("# no AVX-512F on this CPU: skipped\n"); skip(); }
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const struct { int rows, k; } shapes[] = {{34, 96}, {37, 101}, {9, 33}, {3, 1}, {40, 160}};
    const int ns[] = {1, 17, 49, 211};
    float *w = malloc(sizeof(float) * 40 * 160), *wd = malloc(sizeof(float) * 40 * 160);
    float *a = malloc(sizeof(float) * 211 * 160), *out = malloc(sizeof(float) * 211 * 40);
    mplb_err err = {0};
    mplb_ffn_ws ws = {0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int p = 0; p < MPLB_PREC_COUNT; p++) {
            int rows = shapes[si].rows, k = shapes[si].k;
            mplb_qopts o = {.saturate = 1, .scaling = MPLB_SCALE_TENSOR};
            heavy(&g, w, (size_t)rows * k, 0.3);
            mplb_qtensor q;
            assert_int_equal(mplb_qtensor_alloc(&q, (mplb_prec)p, &o, rows, k, &err), 0);
            assert_int_equal(mplb_quant_quantize(w, &q, &err), 0);
            assert_int_equal(mplb_quant_dequantize_ref(&q, wd, &err), 0);
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                int n = ns[ni];
                heavy(&g, a, (size_t)n * k, 1.0);
                if (mplb_ffn_gemm_f32(&q, a, n, k, out, &ws, &err) != 0) fail_msg("%s: %s", mplb_prec_name(p), err.msg);
                for (int t = 0; t < n; t++)
                    for (int j = 0; j < rows; j++) {
                        double ref = 0, mag = 0;
                        for (int c = 0; c < k; c++) {
                            ref += (double)wd[j * k + c] * a[t * k + c];
                            mag += fabs((double)wd[j * k + c] * a[t * k + c]);
                        }
                        if (!(fabs(out[t * rows + j] - ref) <= (k + 2) * 0x1p-24 * mag + 1e-35))
                            fail_msg("%s %dx%d n=%d t=%d j=%d: %.9g vs %.9g", mplb_prec_name(p), rows, k, n, t, j,
                                     (double)out[t * rows + j], ref);
                    }
            }
            mplb_qtensor_free(&q);
        }
    mplb_ffn_ws_free(&ws);
    free(w); free(wd); free(a); free(out);
}

static void test_activation_formats_and_edges(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int d = 64, f = 32;
    float gate[64 * 32], up[64 * 32], down[64 * 32], x[3 * 64], y[3 * 64];
    double ref[3 * 64];
    heavy(&g, gate, sizeof gate / 4, 0.1);
    heavy(&g, up, sizeof up / 4, 0.1);
    heavy(&g, down, sizeof down / 4, 0.1);
    heavy(&g, x, sizeof x / 4, 1.0);
    mplb_expert_w w;
    mplb_err err = {0};
    assert_int_equal(mplb_expert_quantize(gate, up, down, d, f, MPLB_PREC_BF16, NULL, &w, &err), 0);
    mplb_ffn_ref_f64(gate, up, down, d, f, x, 3, ref);
    mplb_ffn_ws ws = {0};
    double last = 0;
    mplb_prec acts[] = {MPLB_PREC_BF16, MPLB_PREC_FP8_E4M3, MPLB_PREC_MXFP8};
    for (int i = 0; i < 3; i++) {
        double rel, cosv;
        assert_int_equal(mplb_ffn_forward(&w, x, 3, acts[i], y, &ws, &err), 0);
        mplb_ffn_compare(y, ref, 3 * d, &rel, &cosv);
        assert_true(rel < 0.2);
        if (i == 0) last = rel;
        else assert_true(rel > last * 0.9);   /* fp8 activations are not more accurate than bf16 */
    }
    /* n = 0 touches nothing */
    y[0] = 123;
    assert_int_equal(mplb_ffn_forward(&w, x, 0, MPLB_PREC_BF16, y, &ws, &err), 0);
    assert_true(y[0] == 123);
    assert_int_equal(mplb_ffn_forward(&w, x, -1, MPLB_PREC_BF16, y, &ws, &err), MPLB_EINVAL);
    assert_true(ws.t_total_s > 0 && ws.t_dequant_s < ws.t_total_s);
    /* the tiled path (int4: weights the small-batch GEMM does not widen) times its dequantization */
    mplb_expert_w w4;
    mplb_ffn_ws ws4 = {0};
    assert_int_equal(mplb_expert_quantize(gate, up, down, d, f, MPLB_PREC_INT4_G32, NULL, &w4, &err), 0);
    assert_int_equal(mplb_ffn_forward(&w4, x, 3, MPLB_PREC_BF16, y, &ws4, &err), 0);
    assert_true(ws4.t_total_s > 0 && ws4.t_dequant_s > 0 && ws4.t_dequant_s < ws4.t_total_s);
    mplb_ffn_ws_free(&ws4);
    mplb_expert_free(&w4);
    mplb_ffn_ws_free(&ws);
    mplb_expert_free(&w);
    assert_int_equal(mplb_expert_quantize(gate, up, down, 0, f, MPLB_PREC_BF16, NULL, &w, &err), MPLB_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_against_f64),
        cmocka_unit_test(test_gemm_small),
        cmocka_unit_test(test_gemm_bf16),
        cmocka_unit_test(test_gemm_f32),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_activation_formats_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
