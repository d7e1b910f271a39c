/* Run file: write rows, read them back through the HDF5 API, compare. */
#include <hdf5.h>
#include <math.h>
#include <time.h>
#include "testutil.h"

static void meta_init(mplb_runfile_meta *m, const char **names, const char **srcs, const char **params) {
    *m = (mplb_runfile_meta){.mplb_version = "0.0-test", .git_revision = "abc123", .command = "mplb run t.lua",
                             .config = "{x=1}", .hardware = "return {}", .host = "testhost", .seed = 99,
                             .n_policies = 2, .policy_names = names, .policy_sources = srcs, .policy_params = params};
}

static void test_round_trip(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed());
    const int R = 3, E = 5, N = 157; /* N not a multiple of the flush size */
    const char *names[] = {"baseline", "threshold(tau=1.5)"}, *srcs[] = {"-- a", "-- b"}, *params[] = {"{}", "{tau=1.5}"};
    mplb_runfile_meta meta;
    meta_init(&meta, names, srcs, params);
    mplb_runfile *rf;
    mplb_err err = {0};
    remove("rt.h5");
    int rc = mplb_runfile_create("rt.h5", &meta, R, E, 0, 16, 0, &rf, &err);
    if (rc) fail_msg("%s", err.msg);
    mplb_step_row *rows = calloc(N, sizeof *rows);
    double *rl = calloc((size_t)N * R, sizeof(double)), *rcmp = calloc((size_t)N * R, sizeof(double));
    int32_t *el = calloc((size_t)N * E, sizeof(int32_t));
    uint8_t *ep = calloc((size_t)N * E, 1);
    for (int i = 0; i < N; i++) {
        mplb_step_row *r = &rows[i];
        r->policy = i % 2; r->step = i / 10; r->layer = i % 10; r->tokens = (int64_t)(mplb_rng_next(&rng) >> 20);
        double *d = &r->t_layer_us;
        for (int k = 0; k < 12; k++) d[k] = (mplb_rng_uniform(&rng) - 0.5) * 1e6;
        if (i == 3) r->error_proxy = NAN;
        for (int j = 0; j < R; j++) { rl[i * R + j] = mplb_rng_uniform(&rng); rcmp[i * R + j] = mplb_rng_uniform(&rng); }
        for (int j = 0; j < E; j++) { el[i * E + j] = (int32_t)mplb_rng_next(&rng); ep[i * E + j] = (uint8_t)(mplb_rng_next(&rng) % MPLB_PREC_COUNT); }
        assert_int_equal(mplb_runfile_append(rf, r, rl + i * R, rcmp + i * R, el + i * E, ep + i * E, &err), 0);
    }
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);

    /* Through mplb's reader... */
    mplb_runfile_info info;
    rc = mplb_runfile_read("rt.h5", &info, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_string_equal(info.status, "complete");
    assert_int_equal(info.n_rows, N);
    assert_int_equal(info.n_policies, 2);
    assert_string_equal(info.policy_names[1], "threshold(tau=1.5)");
    assert_int_equal((int)info.seed, 99);
    assert_string_equal(info.config, "{x=1}");
    for (int i = 0; i < N; i++) {
        if (i == 3) { assert_true(isnan(info.rows[i].error_proxy)); info.rows[i].error_proxy = 0; rows[i].error_proxy = 0; }
        assert_memory_equal(&info.rows[i], &rows[i], sizeof rows[i]);
    }
    mplb_runfile_info_free(&info);

    /* ...and the per-rank / per-expert arrays through the raw HDF5 API. */
    hid_t f = H5Fopen("rt.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    double *rl2 = calloc((size_t)N * R, sizeof(double));
    int32_t *el2 = calloc((size_t)N * E, sizeof(int32_t));
    uint8_t *ep2 = calloc((size_t)N * E, 1);
    hid_t d = H5Dopen2(f, "ranks/load", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, rl2) >= 0);
    H5Dclose(d);
    d = H5Dopen2(f, "experts/load", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, el2) >= 0);
    H5Dclose(d);
    d = H5Dopen2(f, "experts/precision", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    assert_int_equal(H5Tget_class(t), H5T_ENUM);
    char name[32];
    uint8_t v = MPLB_PREC_NVFP4;
    assert_true(H5Tenum_nameof(t, &v, name, sizeof name) >= 0);
    assert_string_equal(name, "nvfp4");
    assert_true(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ep2) >= 0);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    assert_memory_equal(rl, rl2, (size_t)N * R * sizeof(double));
    assert_memory_equal(el, el2, (size_t)N * E * sizeof(int32_t));
    assert_memory_equal(ep, ep2, (size_t)N * E);
    free(rows); free(rl); free(rcmp); free(el); free(ep); free(rl2); free(el2); free(ep2);
}

static void test_no_silent_overwrite(void **st) {
    (void)st;
    const char *names[] = {"a", "b"}, *srcs[] = {"", ""}, *params[] = {"{}", "{}"};
    mplb_runfile_meta meta;
    meta_init(&meta, names, srcs, params);
    mplb_runfile *rf;
    mplb_err err = {0};
    remove("once.h5");
    assert_int_equal(mplb_runfile_create("once.h5", &meta, 1, 1, 0, 0, 0, &rf, &err), 0);
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);
    assert_int_equal(mplb_runfile_create("once.h5", &meta, 1, 1, 0, 0, 0, &rf, &err), MPLB_EEXISTS);
    assert_contains(err.msg, "--force");
    assert_int_equal(mplb_runfile_create("once.h5", &meta, 1, 1, 1, 0, 0, &rf, &err), 0);
    assert_int_equal(mplb_runfile_close(rf, "failed", "because", &err), 0);
    mplb_runfile_info info;
    assert_int_equal(mplb_runfile_read("once.h5", &info, &err), 0);
    assert_string_equal(info.status, "failed");
    assert_string_equal(info.error, "because");
    assert_int_equal(info.n_rows, 0);
    mplb_runfile_info_free(&info);
}

static void test_bad_files(void **st) {
    (void)st;
    mplb_runfile_info info;
    mplb_err err = {0};
    write_text("noth5.h5", "hello");
    assert_int_equal(mplb_runfile_read("noth5.h5", &info, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "noth5.h5");
    /* a missing file is not called "not an HDF5 file" (finding 11) */
    assert_int_equal(mplb_runfile_read("missing.h5", &info, &err), MPLB_EIO);
    assert_contains(err.msg, "missing.h5: no such file");
    hid_t f = H5Fcreate("other.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    assert_int_equal(mplb_runfile_read("other.h5", &info, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "not an mplb run file");
}

/* A newer major schema is refused with its version; a truncated file (a copy
 * cut short, not a killed writer) is refused as damaged. */
static void test_schema_and_truncation(void **st) {
    (void)st;
    const char *names[] = {"a", "b"}, *srcs[] = {"", ""}, *params[] = {"{}", "{}"};
    mplb_runfile_meta meta;
    meta_init(&meta, names, srcs, params);
    mplb_runfile *rf;
    mplb_err err = {0};
    assert_int_equal(mplb_runfile_create("v2.h5", &meta, 2, 3, 1, 0, 0, &rf, &err), 0);
    mplb_step_row row = {0};
    double rl[2] = {1, 2};
    int32_t el[3] = {1, 2, 3};
    uint8_t ep[3] = {0, 1, 2};
    for (int i = 0; i < 100; i++) assert_int_equal(mplb_runfile_append(rf, &row, rl, rl, el, ep, &err), 0);
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);
    /* truncated copy */
    FILE *in = fopen("v2.h5", "rb"), *out = fopen("cut.h5", "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, out);
    fclose(in);
    fclose(out);
    mplb_runfile_info info;
    int rc = mplb_runfile_read("cut.h5", &info, &err);
    assert_true(rc == MPLB_EFORMAT);
    assert_contains(err.msg, "cut.h5");
    /* newer schema */
    hid_t f = H5Fopen("v2.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Adelete(f, "schema_version");
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "schema_version", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *v = "2.0";
    H5Awrite(a, t, &v);
    H5Aclose(a); H5Sclose(sp); H5Tclose(t); H5Fclose(f);
    assert_int_equal(mplb_runfile_read("v2.h5", &info, &err), MPLB_EFORMAT);
    assert_contains(err.msg, "schema version 2.0 is not readable by this mplb (reads 1.0.x)");
}

/* Finding 8: resume compares config, every policy's source and params, and
 * the widths -- not only /config. Finding 5: a second writer is refused while
 * FILE.part exists, and the first one's file is left as it was. */
static void test_resumable_and_exclusive(void **st) {
    (void)st;
    const char *names[] = {"a", "b"}, *srcs[] = {"return A", "return B"}, *params[] = {"{}", "{t=1}"};
    mplb_runfile_meta meta;
    meta_init(&meta, names, srcs, params);
    mplb_runfile *rf;
    mplb_err err = {0};
    remove("res.h5");
    assert_int_equal(mplb_runfile_create("res.h5", &meta, 2, 3, 1, 0, 0, &rf, &err), 0);
    assert_int_equal(mplb_runfile_close(rf, "failed", "", &err), 0);
    mplb_runfile_info old;
    assert_int_equal(mplb_runfile_read_arrays("res.h5", &old, &err), 0);
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &meta, 2, 3, &err), 0);
    const char *srcs2[] = {"return A", "return B -- edited"}, *params2[] = {"{}", "{t=2}"}, *names2[] = {"a", "c"};
    mplb_runfile_meta m2 = meta;
    m2.policy_sources = srcs2;
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &m2, 2, 3, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "/policy/sources[1] (policy b) differs from this run's (the policy file changed)");
    m2 = meta;
    m2.policy_params = params2;
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &m2, 2, 3, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "/policy/params[1]");
    m2 = meta;
    m2.policy_names = names2;
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &m2, 2, 3, &err), MPLB_ECONFIG);
    m2 = meta;
    m2.config = "{x=2}";
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &m2, 2, 3, &err), MPLB_ECONFIG);
    assert_contains(err.msg, "/config differs");
    m2 = meta;
    m2.n_policies = 1;
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &m2, 2, 3, &err), MPLB_ECONFIG);
    assert_int_equal(mplb_runfile_resumable("res.h5", &old, &meta, 4, 3, &err), MPLB_ECONFIG);
    mplb_runfile_info_free(&old);
    /* exclusive FILE.part: even --force does not touch a writer's header */
    write_text("ex.h5.part", "a writer's half-written header");
    assert_int_equal(mplb_runfile_create("ex.h5", &meta, 2, 3, 1, 0, 0, &rf, &err), MPLB_EEXISTS);
    assert_contains(err.msg, "another mplb run is writing it");
    FILE *f = fopen("ex.h5.part", "r");
    char buf[64] = {0};
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "a writer's half-written header");
    remove("ex.h5.part");
}

/* /accuracy: per-domain rows, buffered until the next flush, read back by
 * mplb_runfile_read_arrays; appending to a file made without domains is an error. */
static void test_domains(void **st) {
    (void)st;
    mplb_rng rng;
    mplb_rng_seed(&rng, test_seed());
    const char *names[] = {"baseline", "static"}, *srcs[] = {"-- a", "-- b"}, *params[] = {"{}", "{}"};
    const char *doms[] = {"code", "prose", "vision"};
    mplb_runfile_meta meta;
    meta_init(&meta, names, srcs, params);
    meta.n_domains = 3;
    meta.domain_names = doms;
    mplb_runfile *rf;
    mplb_err err = {0};
    remove("dom.h5");
    assert_int_equal(mplb_runfile_create("dom.h5", &meta, 2, 3, 0, 4, 0, &rf, &err), 0);
    enum { N = 37 };
    mplb_domain_row d[N];
    mplb_step_row row = {0};
    double rl[2] = {0}, rc2[2] = {0};
    int32_t el[3] = {0};
    uint8_t ep[3] = {0};
    for (int i = 0; i < N; i++) {
        d[i] = (mplb_domain_row){i % 2, i / 6, i % 3, (int64_t)(mplb_rng_next(&rng) >> 40), mplb_rng_uniform(&rng),
                                 mplb_rng_uniform(&rng), mplb_rng_uniform(&rng) - 0.5, 1 + mplb_rng_uniform(&rng),
                                 1 + mplb_rng_uniform(&rng)};
        assert_int_equal(mplb_runfile_append_domain(rf, &d[i], &err), 0);
        if (i % 5 == 0) assert_int_equal(mplb_runfile_append(rf, &row, rl, rc2, el, ep, &err), 0);
    }
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);   /* the last rows: flushed at close */
    mplb_runfile_info info;
    if (mplb_runfile_read_arrays("dom.h5", &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.n_domains, 3);
    assert_string_equal(info.domain_names[2], "vision");
    assert_int_equal(info.n_domain_rows, N);
    for (int i = 0; i < N; i++) {   /* field by field: the struct has padding */
        const mplb_domain_row *a = &info.domain_rows[i], *b = &d[i];
        assert_true(a->policy == b->policy && a->step == b->step && a->domain == b->domain && a->positions == b->positions);
        assert_true(a->kl == b->kl && a->top1_agree == b->top1_agree && a->ppl_delta == b->ppl_delta &&
                    a->ppl_ref == b->ppl_ref && a->ppl_q == b->ppl_q);
    }
    mplb_runfile_info_free(&info);
    /* a file without domains has none, and takes none */
    meta.n_domains = 0;
    assert_int_equal(mplb_runfile_create("dom.h5", &meta, 2, 3, 1, 4, 0, &rf, &err), 0);
    assert_int_equal(mplb_runfile_append_domain(rf, &d[0], &err), MPLB_EINVAL);
    assert_int_equal(mplb_runfile_close(rf, "complete", "", &err), 0);
    if (mplb_runfile_read_arrays("dom.h5", &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(info.n_domains, 0);
    assert_int_equal(info.n_domain_rows, 0);
    mplb_runfile_info_free(&info);
    remove("dom.h5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_no_silent_overwrite),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_schema_and_truncation),
        cmocka_unit_test(test_resumable_and_exclusive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
