/* Shared helpers for the cmocka tests. */
#ifndef MPLB_TESTUTIL_H
#define MPLB_TESTUTIL_H
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mplb.h"

/* Write text to a fresh file under the test's working directory. */
static inline void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define assert_close(a, b, rel)                                                        \
    do {                                                                               \
        double _a = (a), _b = (b);                                                     \
        double _tol = (rel) * (fabs(_b) > 1e-300 ? fabs(_b) : 1.0);                    \
        if (!(fabs(_a - _b) <= _tol)) fail_msg("%s = %.17g, expected %.17g", #a, _a, _b); \
    } while (0)

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        if (!strstr((hay), (needle))) fail_msg("'%s' does not contain '%s'", (hay), (needle)); \
    } while (0)

/* Fresh random seed per run, printed so a failure can be replayed with MPLB_TEST_SEED. */
static inline uint64_t test_seed(void) {
    const char *env = getenv("MPLB_TEST_SEED");
    uint64_t s = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("# MPLB_TEST_SEED=%llu\n", (unsigned long long)s);
    return s;
}
#endif
