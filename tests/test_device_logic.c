/* Host tests of the logic the CUDA kernels share with the CPU (no GPU
 * needed): the element functions' canonical NaN, the per-block NVFP4 and
 * MXFP4 quantizers of the device against the CPU reference, and the tiled
 * layout of cuBLASLt's block-scaling factors against a direct
 * implementation of the cuBLAS documentation's description. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "lt_scales.h"
#include "quant_elem.h"

/* Every NaN an element function returns is 0x7FC00000 or 0xFFC00000,
 * whatever produced it (a NaN block scale, or a NaN operand as a GPU's
 * arithmetic makes it: 0x7FFFFFFF), so host and device agree on bf16 bits. */
static void test_nan_canonical(void **st) {
    (void)st;
    const uint32_t gs_bits[] = {0x3F800000u, 0x3EBD70A4u, 0x0DA24260u, 0x7FFFFFFFu, 0xFFBFFFFFu, 0x7F800001u};
    for (int g = 0; g < (int)(sizeof gs_bits / sizeof gs_bits[0]); g++)
        for (int sc = 0; sc < 256; sc++)
            for (int code = 0; code < 16; code++) {
                float gs = mplb_bits_f32(gs_bits[g]);
                float v = mplb_nvfp4_value((uint8_t)code, (uint8_t)sc, gs);
                uint32_t b = mplb_f32_bits(v);
                if ((sc & 0x7F) == 0x7F) {
                    assert_int_equal(b, (sc & 0x80) ? 0xFFC00000u : 0x7FC00000u);
                    assert_int_equal(mplb_f32_to_bf16(v), (sc & 0x80) ? 0xFFC0u : 0x7FC0u);
                } else if (isnan(gs)) {
                    assert_true(b == 0x7FC00000u || b == 0xFFC00000u);
                } else {
                    /* finite blocks: the product in the documented order, unchanged */
                    float want = mplb_e2m1_to_f32((uint8_t)code) * mplb_e4m3_to_f32((uint8_t)sc) * gs;
                    assert_int_equal(b, mplb_f32_bits(want));
                }
            }
    for (int code = 0; code < 16; code++) {
        assert_int_equal(mplb_f32_bits(mplb_mx_value((uint8_t)code, 0xFF, 1)), 0x7FC00000u);
        assert_int_equal(mplb_f32_to_bf16(mplb_mx_value((uint8_t)code, 0xFF, 1)), 0x7FC0u);
    }
}

static void fill(mplb_rng *g, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double u = mplb_rng_uniform(g);
        x[i] = (float)((mplb_rng_uniform(g) - 0.5) * 8.0 * exp(-6.0 * mplb_rng_uniform(g)));
        if (u < 0.002) x[i] = NAN;
        else if (u < 0.003) x[i] = -INFINITY;
        else if (u < 0.006) x[i] = 1e-41f;   /* float32 subnormal */
        else if (u < 0.008) x[i] = 0.0f;
    }
}

/* The device quantizers' per-block functions equal the CPU reference bit
 * for bit, short last blocks, NaN/Inf blocks and subnormals included. */
static void test_fp4_blocks_equal_ref(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const int64_t shapes[][2] = {{1, 16}, {3, 50}, {17, 200}, {64, 1000}, {5, 7}};
    for (int s = 0; s < 5; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *x = malloc((size_t)(rows * cols) * sizeof *x);
        fill(&g, x, rows * cols);
        mplb_err err;
        for (int fmt = 0; fmt < 3; fmt++) {
            mplb_qopts o = {0};
            o.mx_round_up = fmt == 2;
            mplb_qtensor t;
            mplb_prec p = fmt == 0 ? MPLB_PREC_NVFP4 : MPLB_PREC_MXFP4;
            assert_int_equal(mplb_qtensor_alloc(&t, p, &o, rows, cols, &err), 0);
            assert_int_equal(mplb_quant_quantize_ref(x, &t, &err), 0);
            int bs = fmt == 0 ? 16 : 32;
            int64_t nb = (cols + bs - 1) / bs, rowbytes = (nb * bs + 1) / 2;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t b = 0; b < nb; b++) {
                    uint8_t packed[16], sc;
                    int n = (int)(cols - b * bs < bs ? cols - b * bs : bs);
                    const float *xb = x + r * cols + b * bs;
                    sc = fmt == 0 ? mplb_nvfp4_block(xb, n, t.global_scale, packed) : mplb_mxfp4_block(xb, n, o.mx_round_up, packed);
                    assert_int_equal(sc, t.scales[r * nb + b]);
                    assert_memory_equal(packed, t.data + r * rowbytes + b * bs / 2, (size_t)bs / 2);
                }
            mplb_qtensor_free(&t);
        }
        free(x);
    }
}

/* The documentation's worked examples: a 128 x 128 NVFP4 operand (8
 * k-blocks of 16), block (5, 2) at 82 and (5, 5) at 593. */
static void test_lt_scale_documented_examples(void **st) {
    (void)st;
    assert_int_equal(mplb_lt_scale_offset(5, 2, 8), 82);
    assert_int_equal(mplb_lt_scale_offset(5, 5, 8), 593);
    assert_int_equal(mplb_lt_scale_bytes(128, 8), 1024);
    assert_int_equal(mplb_lt_scale_bytes(1, 1), 512);     /* one padded tile */
    assert_int_equal(mplb_lt_scale_bytes(129, 5), 2048);  /* 2 x 2 tiles */
}

/* A direct implementation of the documented layout: tiles of 128 outer x 4
 * k-blocks, k tile fastest, each tile written as 32 lines of 16 bytes, line
 * i holding outer rows i, i+32, i+64, i+96 (4 k-blocks each); past the
 * matrix, zeros. */
static void direct_layout(const uint8_t *s, int64_t rows, int64_t kb, int tile, uint8_t *out) {
    int64_t pos = 0, rt = (rows + 127) / 128, kt = (kb + 3) / 4;
    for (int64_t a = 0; a < rt; a++)
        for (int64_t b = 0; b < kt; b++)
            for (int i = 0; i < 32; i++)
                for (int q = 0; q < 4; q++)
                    for (int j = 0; j < 4; j++) {
                        int64_t r = a * 128 + q * 32 + i, k = b * 4 + j;
                        out[pos++] = r < rows && k < kb ? s[(r / tile) * kb + k] : 0;
                    }
}

static void test_lt_scale_layout_direct(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    for (int trial = 0; trial < 200; trial++) {
        int64_t rows = 1 + (int64_t)(mplb_rng_next(&g) % 400), kb = 1 + (int64_t)(mplb_rng_next(&g) % 24);
        int tile = trial % 3 == 0 ? 16 : 1;
        int64_t srows = (rows + tile - 1) / tile, n = mplb_lt_scale_bytes(rows, kb);
        uint8_t *s = malloc((size_t)(srows * kb)), *a = malloc((size_t)n), *b = malloc((size_t)n);
        for (int64_t i = 0; i < srows * kb; i++) s[i] = (uint8_t)(1 + mplb_rng_next(&g) % 255);
        memset(a, 0xAA, (size_t)n);   /* the builder must write the padding too */
        mplb_lt_scales_from_rows(s, rows, kb, tile, a);
        direct_layout(s, rows, kb, tile, b);
        assert_memory_equal(a, b, (size_t)n);
        free(s); free(a); free(b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_canonical),
        cmocka_unit_test(test_fp4_blocks_equal_ref),
        cmocka_unit_test(test_lt_scale_documented_examples),
        cmocka_unit_test(test_lt_scale_layout_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
