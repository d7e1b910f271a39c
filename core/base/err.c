/* Error helpers: see include/mplb/err.h. */
#include "mplb/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

size_t mplb_escape_controls(char *s, size_t cap) {
    /* Terminal control characters in a message (from a file, a policy's
     * error, a path) would be obeyed by the terminal printing it: C0 controls
     * but newline and tab, DEL, and C1 controls (UTF-8 C2 80..C2 9F) become
     * \xNN. Grows in place, cut at cap. */
    char out[MPLB_ERR_MSG_MAX * 4];
    size_t o = 0, n = strnlen(s, cap ? cap - 1 : 0);
    int changed = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
            changed = 1;
        } else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f) {
            o += (size_t)snprintf(out + o, sizeof out - o, "\\u%04x", (unsigned char)s[++i]);
            changed = 1;
        } else out[o++] = (char)c;
    }
    if (!changed || !cap) return n;
    if (o > cap - 1) o = cap - 1;
    memcpy(s, out, o);
    s[o] = 0;
    return o;
}

int mplb_err_set(mplb_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        mplb_escape_controls(err->msg, sizeof err->msg);
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
    mplb_escape_controls(err->msg, sizeof err->msg);
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

/* Optimal-string-alignment distance (Levenshtein plus adjacent swaps),
 * capped at 255: names are short. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 255;
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

const char *mplb_closest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bestd = 255;
    size_t wl = strlen(word);
    for (int i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = edit_distance(word, cands[i]);
        /* a prefix ("rank" for "rank_load") counts as close too */
        size_t cl = strlen(cands[i]);
        if (wl >= 3 && cl > wl && strncmp(word, cands[i], wl) == 0 && d > 2) d = 2;
        if (d < bestd) { bestd = d; best = cands[i]; }
    }
    int limit = wl <= 4 ? 1 : wl <= 8 ? 2 : 3;
    return bestd <= limit ? best : NULL;
}
