/* Error helpers: see include/mplb/err.h. */
#include "mplb/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mplb_err_set(mplb_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int mplb_err_wrap(mplb_err *err, const char *fmt, ...) {
    if (!err) return MPLB_EINVAL;
    char prefix[256], old[MPLB_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t pl = strlen(prefix), cap = sizeof err->msg;
    if (pl > cap - 3) pl = cap - 3;
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, ": ", 2);
    size_t ol = strnlen(old, cap - 1);
    if (ol > cap - pl - 3) ol = cap - pl - 3;
    memcpy(err->msg + pl + 2, old, ol);
    err->msg[pl + 2 + ol] = 0;
    return err->code;
}

const char *mplb_strerror(int code) {
    switch (code) {
    case 0: return "success";
#define MPLB_ERR_CASE(name, c, text) case c: return text;
    MPLB_ERRNO_MAP(MPLB_ERR_CASE)
#undef MPLB_ERR_CASE
    }
    return "unknown error";
}
