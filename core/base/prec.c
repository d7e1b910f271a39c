/* Precision table: see include/mplb/prec.h. */
#include "mplb/prec.h"
#include "mplb/err.h"

#include <string.h>

static const struct { const char *name; double bits; } prec_tab[] = {
#define MPLB_PREC_ROW(id, name, b, s, f4) { name, (double)(b) + (s) },
    MPLB_PREC_MAP(MPLB_PREC_ROW)
#undef MPLB_PREC_ROW
};

const char *mplb_prec_name(int p) {
    if (p < 0 || p >= MPLB_PREC_COUNT) return NULL;
    return prec_tab[p].name;
}

int mplb_prec_parse(const char *name, mplb_prec *out) {
    if (!name) return MPLB_EINVAL;
    for (int p = 0; p < MPLB_PREC_COUNT; p++)
        if (strcmp(name, prec_tab[p].name) == 0) { *out = (mplb_prec)p; return 0; }
    return MPLB_EINVAL;
}

double mplb_prec_bits(mplb_prec p) { return prec_tab[p].bits; }

const char *mplb_prec_all_names(void) {
    return
#define MPLB_PREC_STR(id, name, b, s, f4) name " "
        MPLB_PREC_MAP(MPLB_PREC_STR)
#undef MPLB_PREC_STR
        ;
}
