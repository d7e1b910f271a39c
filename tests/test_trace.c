/* Traces: round trip, statistics on hand-built traces with known answers,
 * bad input (named file, dataset, index, line), importers, and a bounded
 * fuzz of the CSV and HDF5 readers (run under ASan by `make test`). */
#include <hdf5.h>
#include <math.h>
#include <time.h>
#include "testutil.h"

static void small_trace(mplb_trace *t, int S, int L, int E, int k) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "mem");
    t->steps = S; t->layers = L; t->experts = E; t->top_k = k;
    t->counts = calloc((size_t)S * L * E, sizeof *t->counts);
}

static void test_round_trip(void **st) {
    (void)st;
    mplb_trace t, u;
    small_trace(&t, 2, 3, 4, 2);
    for (int i = 0; i < 24; i++) t.counts[i] = i * 3;
    t.importance = calloc(24, sizeof(double));
    t.vision_counts = calloc(24, sizeof(int32_t));
    for (int i = 0; i < 24; i++) { t.importance[i] = i * 0.5; t.vision_counts[i] = i; }
    t.src = 2;
    t.src_counts = calloc(48, sizeof(int32_t));
    for (int sl = 0; sl < 6; sl++)
        for (int e = 0; e < 4; e++) {
            int c = t.counts[sl * 4 + e];
            t.src_counts[(sl * 2 + 0) * 4 + e] = c / 2;
            t.src_counts[(sl * 2 + 1) * 4 + e] = c - c / 2;
        }
    snprintf(t.model, sizeof t.model, "m");
    snprintf(t.license, sizeof t.license, "CC0");
    mplb_err err = {0};
    assert_int_equal(mplb_trace_write("rt.h5", &t, 1, &err), 0);
    int rc = mplb_trace_read("rt.h5", &u, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(u.steps, 2); assert_int_equal(u.layers, 3); assert_int_equal(u.experts, 4); assert_int_equal(u.top_k, 2);
    assert_memory_equal(u.counts, t.counts, 24 * sizeof(int32_t));
    assert_memory_equal(u.src_counts, t.src_counts, 48 * sizeof(int32_t));
    assert_memory_equal(u.importance, t.importance, 24 * sizeof(double));
    assert_string_equal(u.license, "CC0");
    assert_int_equal(mplb_trace_write("rt.h5", &t, 0, &err), MPLB_EEXISTS);
    /* routing with sources = ranks uses them; tokens = sum / k */
    mplb_placement pl;
    mplb_routing rt;
    assert_int_equal(mplb_placement_init_contiguous(&pl, 2, 4, &err), 0);
    assert_int_equal(mplb_routing_alloc(&rt, 2, 4, 1, 2, &err), 0);
    assert_int_equal(mplb_trace_routing(&u, 1, 2, &pl, 2, &rt, &err), 0);
    int64_t sum = 0;
    for (int e = 0; e < 4; e++) sum += u.counts[(1 * 3 + 2) * 4 + e];
    assert_int_equal(rt.tokens, sum / 2);
    assert_int_equal(rt.src_counts[1 * 4 + 3], u.src_counts[((1 * 3 + 2) * 2 + 1) * 4 + 3]);
    assert_int_equal(mplb_trace_routing(&u, 2, 0, &pl, 2, &rt, &err), MPLB_ERANGE);
    mplb_routing_free(&rt);
    mplb_placement_free(&pl);
    mplb_trace_free(&t);
    mplb_trace_free(&u);
}

static void test_stats_known(void **st) {
    (void)st;
    mplb_trace_stats s;
    int32_t one[4] = {4, 0, 0, 0};
    mplb_stats_counts(one, 4, 1, 2, &s);
    assert_close(s.max_over_mean, 4, 1e-15);
    assert_close(s.lis, 4, 1e-15);
    assert_close(s.gini, 0.75, 1e-15);           /* sum (2i - E + 1) x_(i) / (E sum) = 12 / 16 */
    assert_close(s.entropy_norm, 0, 1e-15);
    assert_close(s.rank_imbalance, 2, 1e-15);    /* ranks get 4 and 0 */
    int32_t flat[4] = {3, 3, 3, 3};
    mplb_stats_counts(flat, 4, 2, 3, &s);          /* E=4 on R=3: ranks 0,0,1,2 -> 6,3,3 */
    assert_close(s.gini, 0, 1e-15);
    assert_close(s.entropy_norm, 1, 1e-12);
    assert_close(s.lis, 1, 1e-15);
    assert_close(s.rank_imbalance, 1.5, 1e-15);
    mplb_trace t;
    small_trace(&t, 3, 1, 3, 1);
    int32_t c[9] = {5, 1, 0, 5, 0, 1, 0, 0, 9};   /* top-1: 0, 0, 2 -> persistence (1 + 0) / 2 */
    memcpy(t.counts, c, sizeof c);
    assert_close(mplb_trace_persistence(&t, 1), 0.5, 1e-15);
    assert_true(isnan(mplb_trace_phase_correlation(&t)));
    t.is_decode = calloc(3, 1);
    t.is_decode[2] = 1;                            /* prefill sum (10,1,1), decode (0,0,9) */
    double r = mplb_trace_phase_correlation(&t);
    double ma = 4, mb = 3, sab = (6 * -3) + (-3 * -3) + (-3 * 6), saa = 36 + 9 + 9, sbb = 9 + 9 + 36;
    (void)ma; (void)mb;
    assert_close(r, sab / sqrt(saa * sbb), 1e-12);
    mplb_trace_free(&t);
}

static void test_bad_traces(void **st) {
    (void)st;
    mplb_err err = {0};
    mplb_trace t, u;
    small_trace(&t, 1, 2, 3, 1);
    t.counts[4] = -2;
    assert_int_equal(mplb_trace_write("neg.h5", &t, 1, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "/counts[0][1][1] = -2 is negative");
    t.counts[4] = 2;
    t.importance = calloc(6, sizeof(double));
    t.importance[5] = NAN;
    assert_int_equal(mplb_trace_validate(&t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "/importance[0][1][2] is not finite");
    free(t.importance);
    t.importance = NULL;
    t.tokens_per_step = 2;
    t.topk_ids = calloc(4, sizeof(int32_t));
    t.topk_ids[3] = 7;
    assert_int_equal(mplb_trace_validate(&t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "= 7 is not an expert id in 0..2");
    free(t.topk_ids);
    t.topk_ids = NULL;
    t.tokens_per_step = 0;
    t.top_k = 5;
    assert_int_equal(mplb_trace_validate(&t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "top_k = 5");
    t.top_k = 1;
    assert_int_equal(mplb_trace_write("ok.h5", &t, 1, &err), 0);
    /* truncated copy */
    FILE *in = fopen("ok.h5", "rb"), *out = fopen("cut.h5", "wb");
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n * 2 / 3, out);
    fclose(in); fclose(out);
    assert_true(mplb_trace_read("cut.h5", &u, &err) < 0);
    assert_contains(err.msg, "cut.h5");
    assert_int_equal(mplb_trace_read("nope.h5", &u, &err), MPLB_EIO);
    assert_contains(err.msg, "nope.h5: no such file");
    write_text("text.h5", "not hdf5");
    assert_int_equal(mplb_trace_read("text.h5", &u, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "text.h5: not an HDF5 file");
    mplb_trace_free(&t);
}

static void test_csv_import(void **st) {
    (void)st;
    mplb_trace t;
    mplb_err err = {0};
    write_text("c.csv", "step,layer,expert,count\n0,0,0,5\n0,0,2,3\n1,1,1,4\n0,0,0,1\n");
    int rc = mplb_trace_import_csv("c.csv", 2, 0, &t, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(t.steps, 2); assert_int_equal(t.layers, 2); assert_int_equal(t.experts, 3);
    assert_int_equal(t.counts[0], 6);
    assert_int_equal(t.counts[2], 3);
    assert_int_equal(t.counts[(1 * 2 + 1) * 3 + 1], 4);
    mplb_trace_free(&t);
    write_text("tok.csv", "step,layer,token,expert,weight\n0,0,0,1,0.7\n0,0,0,2,0.3\n0,0,1,0,0.5\n0,0,1,1,0.5\n");
    rc = mplb_trace_import_csv("tok.csv", 2, 4, &t, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(t.tokens_per_step, 2);
    assert_int_equal(t.experts, 4);
    assert_int_equal(t.topk_ids[0], 1); assert_int_equal(t.topk_ids[1], 2); assert_int_equal(t.topk_ids[2], 0);
    assert_int_equal(t.counts[1], 2);
    mplb_trace_free(&t);
    struct { const char *text; const char *needle; } bad[] = {
        {"step,layer,expert,count\n0,0,x,1\n", "c2.csv:2: field 'expert': 'x' is not an integer"},
        {"step,layer,expert,count\n0,0,1\n", "c2.csv:2: 3 fields, the header has 4"},
        {"step,layer,expert,bogus\n", "c2.csv:1: unknown column 'bogus'"},
        {"step,layer,expert,count\n0,0,-1,1\n", "c2.csv:2: field 'expert': -1 is out of range"},
        {"step,layer,token,expert\n0,0,0,1\n0,0,0,2\n0,0,0,3\n", "more than top_k = 2"},
        {"step,layer,token,expert\n0,0,0,1\n0,0,0,2\n0,0,1,3\n", "token 1 has 1 experts, expected top_k = 2"},
        {"step,layer,token,expert,weight\n0,0,0,1,nan\n0,0,0,2,1\n", "field 'weight': 'nan' is not a finite number"},
        {"", "c2.csv:1: empty file"},
        {"step,layer,expert,count\n", "no data rows"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text("c2.csv", bad[i].text);
        rc = mplb_trace_import_csv("c2.csv", 2, 0, &t, &err);
        if (rc == 0) fail_msg("case %zu imported", i);
        if (!strstr(err.msg, bad[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
    }
}

static void write_npy(const char *path, const char *descr, const char *shape, const void *data, size_t bytes, size_t cut) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned short hl = (unsigned short)(n + pad + 1);
    fputc(hl & 0xFF, f);
    fputc(hl >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes - cut, f);
    fclose(f);
}

static void test_npy_import(void **st) {
    (void)st;
    mplb_trace t;
    mplb_err err = {0};
    int32_t m[6] = {1, 2, 3, 4, 5, 6};
    write_npy("m.npy", "<i4", "(2, 3)", m, sizeof m, 0);   /* a [layers x experts] load matrix */
    int rc = mplb_trace_import_npy("m.npy", 1, &t, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(t.steps, 1); assert_int_equal(t.layers, 2); assert_int_equal(t.experts, 3);
    assert_memory_equal(t.counts, m, sizeof m);
    mplb_trace_free(&t);
    double d[4] = {1, 2, 3, 4};
    write_npy("d.npy", "<f8", "(2, 1, 2)", d, sizeof d, 0);
    assert_int_equal(mplb_trace_import_npy("d.npy", 1, &t, &err), 0);
    assert_int_equal(t.steps, 2);
    assert_int_equal(t.counts[3], 4);
    mplb_trace_free(&t);
    double frac[2] = {1.5, 2};
    write_npy("f.npy", "<f8", "(1, 2)", frac, sizeof frac, 0);
    assert_int_equal(mplb_trace_import_npy("f.npy", 1, &t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "[0][0][0] = 1.5 is not a count");
    write_npy("t.npy", "<i4", "(2, 3)", m, sizeof m, 8);
    assert_int_equal(mplb_trace_import_npy("t.npy", 1, &t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "truncated: 4 of 6 elements");
    write_npy("u.npy", ">i2", "(2, 3)", m, 12, 0);
    assert_int_equal(mplb_trace_import_npy("u.npy", 1, &t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "dtype '>i2' not supported");
    write_text("x.npy", "hello");
    assert_int_equal(mplb_trace_import_npy("x.npy", 1, &t, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "bad magic");
}

/* Bounded fuzz: random flips, insertions and cuts of valid inputs must give
 * a trace or an error, never a crash (ASan/UBSan watch the build). */
static void test_fuzz_readers(void **st) {
    (void)st;
    mplb_rng g;
    mplb_rng_seed(&g, test_seed());
    const char *csv = "step,layer,token,expert,weight\n0,0,0,1,0.7\n0,0,0,2,0.3\n0,0,1,0,0.5\n0,0,1,1,0.5\n1,0,0,3,1\n1,0,0,0,1\n1,0,1,2,1\n1,0,1,1,1\n";
    size_t cl = strlen(csv);
    static const char alphabet[] = "0123456789,-\n.xe \r";
    for (int it = 0; it < 400; it++) {
        char buf[512];
        memcpy(buf, csv, cl);
        size_t n = cl;
        int edits = 1 + (int)(mplb_rng_next(&g) % 6);
        for (int q = 0; q < edits; q++) {
            size_t at = (size_t)(mplb_rng_next(&g) % n);
            int kind = (int)(mplb_rng_next(&g) % 3);
            if (kind == 0) buf[at] = alphabet[mplb_rng_next(&g) % (sizeof alphabet - 1)];
            else if (kind == 1 && n < sizeof buf - 1) { memmove(buf + at + 1, buf + at, n - at); buf[at] = alphabet[mplb_rng_next(&g) % (sizeof alphabet - 1)]; n++; }
            else n = at + 1;
        }
        FILE *f = fopen("fz.csv", "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        mplb_trace t;
        mplb_err err = {0};
        if (mplb_trace_import_csv("fz.csv", 2, 0, &t, &err) == 0) mplb_trace_free(&t);
        else assert_true(strstr(err.msg, "fz.csv") != NULL);
    }
    /* HDF5, truncated at random lengths */
    mplb_trace t;
    small_trace(&t, 2, 2, 4, 2);
    for (int i = 0; i < 16; i++) t.counts[i] = i;
    mplb_err err = {0};
    assert_int_equal(mplb_trace_write("fz0.h5", &t, 1, &err), 0);
    mplb_trace_free(&t);
    FILE *f = fopen("fz0.h5", "rb");
    static unsigned char orig[1 << 16];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    for (int it = 0; it < 100; it++) {
        size_t m = (size_t)(mplb_rng_next(&g) % n);
        f = fopen("fz.h5", "wb");
        fwrite(orig, 1, m, f);
        fclose(f);
        mplb_trace u;
        if (mplb_trace_read("fz.h5", &u, &err) == 0) mplb_trace_free(&u);
        else assert_true(strstr(err.msg, "fz.h5") != NULL);
    }
    /* HDF5, well-formed files with hostile contents written through the raw
     * API (random shapes, negative counts, ids out of range, NaN importance,
     * odd top_k). Byte-level corruption of HDF5 metadata is not fuzzed here:
     * it crashes libhdf5 1.10 itself (heap overflows in H5Dread/H5Aread,
     * found by an earlier version of this test), which mplb cannot guard. */
    for (int it = 0; it < 150; it++) {
        hid_t h = H5Fcreate("fz.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t d3[3] = {1 + mplb_rng_next(&g) % 3, 1 + mplb_rng_next(&g) % 3, 1 + mplb_rng_next(&g) % 5};
        int rank = 1 + (int)(mplb_rng_next(&g) % 4);
        size_t cnt = (size_t)(d3[0] * d3[1] * d3[2]) * 8;
        int32_t *vals = malloc(cnt * sizeof *vals);
        for (size_t i = 0; i < cnt; i++) vals[i] = (int32_t)(mplb_rng_next(&g) % 20) - 2;
        hsize_t dims4[4] = {d3[0], d3[1], d3[2], 2};
        hid_t sp = H5Screate_simple(rank, dims4, NULL);
        hid_t d = H5Dcreate2(h, mplb_rng_next(&g) % 5 ? "counts" : "other", H5T_NATIVE_INT32, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
        H5Dclose(d);
        H5Sclose(sp);
        if (mplb_rng_next(&g) % 2) {
            hsize_t d4[4] = {d3[0], d3[1], 1 + mplb_rng_next(&g) % 3, 1 + mplb_rng_next(&g) % 3};
            hid_t s4 = H5Screate_simple(4, d4, NULL);
            hid_t d2 = H5Dcreate2(h, mplb_rng_next(&g) % 2 ? "topk_ids" : "src_counts", H5T_NATIVE_INT32, s4,
                                  H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            size_t m4 = (size_t)(d4[0] * d4[1] * d4[2] * d4[3]);
            int32_t *v4 = malloc(m4 * sizeof *v4);
            for (size_t i = 0; i < m4; i++) v4[i] = (int32_t)(mplb_rng_next(&g) % 12) - 2;
            H5Dwrite(d2, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v4);
            free(v4);
            H5Dclose(d2);
            H5Sclose(s4);
        }
        if (mplb_rng_next(&g) % 2) {
            hid_t s3 = H5Screate_simple(3, d3, NULL);
            hid_t d2 = H5Dcreate2(h, "importance", H5T_NATIVE_DOUBLE, s3, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            size_t m3 = (size_t)(d3[0] * d3[1] * d3[2]);
            double *v3 = malloc(m3 * sizeof *v3);
            for (size_t i = 0; i < m3; i++) v3[i] = mplb_rng_next(&g) % 7 ? 1.0 : NAN;
            H5Dwrite(d2, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v3);
            free(v3);
            H5Dclose(d2);
            H5Sclose(s3);
        }
        if (mplb_rng_next(&g) % 5) {
            int k = (int)(mplb_rng_next(&g) % 8) - 1;
            hid_t s0 = H5Screate(H5S_SCALAR);
            hid_t at = H5Acreate2(h, "top_k", H5T_NATIVE_INT, s0, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(at, H5T_NATIVE_INT, &k);
            H5Aclose(at);
            H5Sclose(s0);
        }
        H5Fclose(h);
        free(vals);
        mplb_trace u;
        if (mplb_trace_read("fz.h5", &u, &err) == 0) {
            assert_int_equal(mplb_trace_validate(&u, &err), 0);
            mplb_trace_free(&u);
        } else assert_true(strstr(err.msg, "fz.h5") != NULL);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_stats_known),
        cmocka_unit_test(test_bad_traces),
        cmocka_unit_test(test_csv_import),
        cmocka_unit_test(test_npy_import),
        cmocka_unit_test(test_fuzz_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
