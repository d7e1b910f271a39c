/* safetensors: a file the test writes reads back exactly (F32, F16, BF16);
 * malformed or truncated files give errors naming the file and tensor; the
 * accuracy calibration runs on weights from such a file. */
#include <math.h>
#include <time.h>
#include "testutil.h"
#include "lsandbox.h"
#include "quant_elem.h"

static void write_st(const char *path, const char *header, const void *data, size_t n, size_t cut) {
    FILE *f = fopen(path, "wb");
    uint64_t hl = strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)(hl >> (8 * i)) & 0xFF, f);
    fwrite(header, 1, hl, f);
    fwrite(data, 1, n - cut, f);
    fclose(f);
}

static void test_round_trip(void **st_) {
    (void)st_;
    float a[6] = {1.5f, -2.25f, 0, 3e-3f, 1e6f, -7};
    uint16_t b[4], h[4];
    float bv[4] = {1, -0.5f, 3.140625f, 65280}, hv[4] = {1, -0.5f, 0.000061035156f, 65504};
    for (int i = 0; i < 4; i++) { b[i] = mplb_f32_to_bf16(bv[i]); h[i] = mplb_f32_to_fp16(hv[i]); }
    unsigned char data[24 + 8 + 8];
    memcpy(data, a, 24);
    memcpy(data + 24, b, 8);
    memcpy(data + 32, h, 8);
    write_st("t.safetensors",
             "{\"__metadata__\":{\"format\":\"pt\"},\"x.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
             "\"y\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
             "\"z\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[32,40]}}", data, sizeof data, 0);
    mplb_st st;
    mplb_err err = {0};
    int rc = mplb_st_open("t.safetensors", &st, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(st.n, 3);
    int i = mplb_st_find(&st, "x.weight");
    assert_true(i >= 0);
    assert_int_equal(st.tensors[i].ndim, 2);
    assert_int_equal(st.tensors[i].shape[1], 3);
    float *v;
    int64_t n;
    assert_int_equal(mplb_st_read_f32(&st, i, &v, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(v, a, 24);
    free(v);
    assert_int_equal(mplb_st_read_f32(&st, mplb_st_find(&st, "y"), &v, &n, &err), 0);
    for (int k = 0; k < 4; k++) assert_true(v[k] == bv[k]);
    free(v);
    assert_int_equal(mplb_st_read_f32(&st, mplb_st_find(&st, "z"), &v, &n, &err), 0);
    for (int k = 0; k < 4; k++) assert_true(v[k] == hv[k]);
    free(v);
    assert_int_equal(mplb_st_find(&st, "nope"), -1);
    mplb_st_close(&st);
}

static void test_malformed(void **st_) {
    (void)st_;
    float a[4] = {1, 2, 3, 4};
    struct { const char *hdr; size_t cut; const char *needle; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "beyond the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}", 0, "16 bytes for 5 elements"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", 0, "tensor 'a': needs dtype, shape and data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", 0, "bad data_offsets"},
        {"[1,2,3]", 0, "not a JSON object"},
        {"{\"a\": ", 0, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st("bad.safetensors", cases[i].hdr, a, sizeof a, cases[i].cut);
        mplb_st st;
        mplb_err err = {0};
        if (mplb_st_open("bad.safetensors", &st, &err) == 0) fail_msg("case %zu opened", i);
        if (!strstr(err.msg, cases[i].needle) || !strstr(err.msg, "bad.safetensors"))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].needle);
    }
    /* a header length beyond the file, and an unsupported dtype */
    FILE *f = fopen("short.safetensors", "wb");
    fwrite("\xff\xff\x00\x00\x00\x00\x00\x00{}", 1, 10, f);
    fclose(f);
    mplb_st st;
    mplb_err err = {0};
    assert_int_equal(mplb_st_open("short.safetensors", &st, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "header length 65535 does not fit");
    write_st("i8.safetensors", "{\"a\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", a, 4, 0);
    assert_int_equal(mplb_st_open("i8.safetensors", &st, &err), 0);
    float *v;
    int64_t n;
    assert_int_equal(mplb_st_read_f32(&st, 0, &v, &n, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "dtype I8 not supported");
    mplb_st_close(&st);
}

/* calibrate --accuracy on an expert stored in safetensors: errors grow from
 * bf16 to fp8 to fp4, each within (0, 2). */
static void test_accuracy_on_safetensors(void **st_) {
    (void)st_;
    const int d = 64, f = 32;
    size_t nw = (size_t)d * f;
    float *w = malloc(3 * nw * sizeof *w);
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    for (size_t i = 0; i < 3 * nw; i++) w[i] = (float)((mplb_rng_uniform(&g) - 0.5) * 0.1);
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "{\"e.gate_proj.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%zu]},"
             "\"e.up_proj.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]},"
             "\"e.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}}",
             f, d, nw * 4, f, d, nw * 4, 2 * nw * 4, d, f, 2 * nw * 4, 3 * nw * 4);
    write_st("expert.safetensors", hdr, w, 3 * nw * 4, 0);
    free(w);
    FILE *out = fopen("acc.lua", "w");
    mplb_acc_opts o = {.weights = "expert.safetensors", .tokens = 8, .seed = 3};
    mplb_err err = {0};
    int rc = mplb_calibrate_accuracy(&o, out, &err);
    fclose(out);
    if (rc) fail_msg("%s", err.msg);
    double e[MPLB_PREC_COUNT];
    rc = mplb_accuracy_load("acc.lua", e, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_true(e[MPLB_PREC_BF16] == 0);   /* the reference */
    assert_true(e[MPLB_PREC_FP8_E4M3] > 0 && e[MPLB_PREC_FP8_E4M3] < e[MPLB_PREC_NVFP4]);
    assert_true(e[MPLB_PREC_NVFP4] < 2);
    char *txt;
    assert_int_equal(mplb_read_file("acc.lua", &txt, NULL, &err), 0);
    assert_contains(txt, "e.gate_proj.weight");
    free(txt);
    mplb_acc_opts bad = {.weights = "expert.safetensors", .prefix = "zzz"};
    out = fopen("acc2.lua", "w");
    assert_int_equal(mplb_calibrate_accuracy(&bad, out, &err), MPLB_EFORMAT);
    fclose(out);
    assert_contains(err.msg, "no expert found");
    write_text("partial.lua", "return { error = { bf16 = 0 } }\n");
    assert_int_equal(mplb_accuracy_load("partial.lua", e, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "partial.lua: field error.fp16");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_accuracy_on_safetensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
