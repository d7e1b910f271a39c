/* mplb_err: error codes and the message a caller prints.
 *
 * Every fallible mplb call returns int: 0 on success, a negative MPLB_E* code
 * on failure, and fills a caller-owned mplb_err with a human message that
 * names the file, line and field at fault. The library never prints or exits.
 *
 *   mplb_err err = {0};
 *   if (mplb_exp_load("demo.lua", &exp, &err) < 0)
 *       fprintf(stderr, "mplb: %s\n", err.msg);
 */
#ifndef MPLB_ERR_H
#define MPLB_ERR_H

#include "mplb/api.h"

#include <stddef.h>

MPLB_BEGIN_DECLS

/* One table for codes and their names (libuv's X-macro pattern). */
#define MPLB_ERRNO_MAP(X)                                   \
    X(INVAL,   -1, "invalid argument")                      \
    X(CONFIG,  -2, "bad configuration")                     \
    X(IO,      -3, "input/output error")                    \
    X(NOMEM,   -4, "out of memory")                         \
    X(POLICY,  -5, "policy error")                          \
    X(LIMIT,   -6, "resource limit exceeded")               \
    X(FORMAT,  -7, "malformed file")                        \
    X(EXISTS,  -8, "file exists")                           \
    X(RANGE,   -9, "value out of range")                    \
    X(UNSUPP, -10, "not supported")

enum {
#define MPLB_ERR_ENUM(name, code, text) MPLB_E##name = code,
    MPLB_ERRNO_MAP(MPLB_ERR_ENUM)
#undef MPLB_ERR_ENUM
};

#define MPLB_ERR_MSG_MAX 1024

typedef struct mplb_err {
    int code;
    char msg[MPLB_ERR_MSG_MAX];
} mplb_err;

/* Fill err (may be NULL) and return code, so callers can `return mplb_err_set(...)`. */
MPLB_API int mplb_err_set(mplb_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Escape terminal control characters (C0 but newline and tab, DEL, C1) in
 * the NUL-terminated s (buffer of cap bytes) as \xNN; returns the length.
 * mplb_err_set and mplb_err_wrap apply it to every message. */
MPLB_API size_t mplb_escape_controls(char *s, size_t cap);

/* Prepend "prefix: " to an existing message (adds context on the way up). */
MPLB_API int mplb_err_wrap(mplb_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

MPLB_API const char *mplb_strerror(int code);

/* The candidate closest to word (edit distance, small enough to be a typo),
 * or NULL: for "did you mean" in messages about unknown names. */
MPLB_API const char *mplb_closest(const char *word, const char *const *cands, int n);

MPLB_END_DECLS

#endif
