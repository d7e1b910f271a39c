/* Initial placements from an engine's physical->logical map (JSON, cJSON):
 * see mplb_placement_load_map in include/mplb/routing.h. */
#include "mplb/routing.h"
#include "lsandbox.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int fill_layer(const char *path, const char *key, int l, const cJSON *row, int slots, int R, int E,
                      mplb_placement *p, mplb_err *err) {
    /* p is contiguous from init: rebuild it from the slots, first slot = home */
    memset(p->has, 0, (size_t)E * R);
    for (int e = 0; e < E; e++) p->copies[e] = 0;
    int x = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, row) {
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        int e = (int)d;
        if (d != e || e < 0 || e >= E)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d][%d] is not a logical expert id in 0..%d", path, key, l, x,
                                E - 1);
        int r = x / (slots / R);
        if (p->copies[e] == 0) {
            p->home[e] = r;
            p->ranks[(size_t)e * R] = r;
            p->has[(size_t)e * R + r] = 1;
            p->copies[e] = 1;
        } else mplb_placement_add(p, e, r);   /* two slots of e on one rank count once */
        x++;
    }
    for (int e = 0; e < E; e++)
        if (p->copies[e] == 0)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d] gives logical expert %d no slot", path, key, l, e);
    return 0;
}

int mplb_placement_load_map(const char *path, int layers, int R, int E, mplb_placement *out, mplb_err *err) {
    char *text = NULL;
    int rc = mplb_read_file(path, &text, NULL, err);
    if (rc < 0) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return mplb_err_set(err, MPLB_EFORMAT, "%s: not JSON (near byte %zu)", path,
                                   (size_t)(cJSON_GetErrorPtr() ? strlen(cJSON_GetErrorPtr()) : 0));
    const char *key = "phy2log";
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!m) m = cJSON_GetObjectItemCaseSensitive(root, key = "physical_to_logical_map");
    int n = m && cJSON_IsArray(m) ? cJSON_GetArraySize(m) : -1, slots = -1;
    if (n < 0) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: no \"phy2log\" or \"physical_to_logical_map\" list", path);
    else if (n != layers)
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s has %d rows, the model %d layers", path, key, n, layers);
    for (int l = 0; l < layers && rc == 0; l++) {
        const cJSON *row = cJSON_GetArrayItem(m, l);
        int len = cJSON_IsArray(row) ? cJSON_GetArraySize(row) : -1;
        if (slots < 0) slots = len;
        if (len < E || len != slots || len % R)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d] lists %d slots: need at least the %d experts, a multiple "
                              "of the %d ranks, the same in every row", path, key, l, len, E, R);
        else if ((rc = mplb_placement_init_contiguous(&out[l], R, E, err)) == 0 &&
                 (rc = fill_layer(path, key, l, row, slots, R, E, &out[l], err)) < 0)
            mplb_placement_free(&out[l]);
        if (rc < 0) for (int j = 0; j < l; j++) mplb_placement_free(&out[j]);
    }
    cJSON_Delete(root);
    return rc;
}
