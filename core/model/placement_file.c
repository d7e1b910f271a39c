/* Initial placements from an engine's physical->logical map: see
 * mplb_placement_load_map in include/mplb/routing.h. JSON through cJSON,
 * TensorRT-LLM's load-balancer YAML through libyaml; both become rows of
 * logical ids [layers][slots], then placements. */
#include "mplb/routing.h"
#include "lsandbox.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* One layer's slots -> placement p (from init_contiguous): slot x on rank
 * x / (slots / R), an expert's first slot its home. */
static int fill_layer(const char *path, const char *key, int l, const int *ids, int slots, int R, int E,
                      mplb_placement *p, mplb_err *err) {
    memset(p->has, 0, (size_t)E * R);
    for (int e = 0; e < E; e++) p->copies[e] = 0;
    for (int x = 0; x < slots; x++) {
        int e = ids[x], r = x / (slots / R);
        if (e < 0 || e >= E)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d][%d] is not a logical expert id in 0..%d", path, key, l, x,
                                E - 1);
        if (p->copies[e] == 0) {
            p->home[e] = r;
            p->ranks[(size_t)e * R] = r;
            p->has[(size_t)e * R + r] = 1;
            p->copies[e] = 1;
        } else mplb_placement_add(p, e, r);   /* two slots of e on one rank count once */
    }
    for (int e = 0; e < E; e++)
        if (p->copies[e] == 0)
            return mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d] gives logical expert %d no slot", path, key, l, e);
    return 0;
}

/* ids [n * slots]; a row of another length than row 0 makes slots -1 - its
 * index (the first such row is kept, with its length, for the error) */
typedef struct rows { int n, slots, bad_len, *ids; char key[64]; } rows;

static int add_row(rows *m, int l, const int *v, int len) {
    if (l == 0) {
        m->slots = len;
        m->ids = malloc((size_t)m->n * (len > 0 ? len : 1) * sizeof *m->ids);
        if (!m->ids) return -1;
    }
    if (m->slots < 0) return 0;
    if (len != m->slots) { m->slots = -1 - l; m->bad_len = len; return 0; }
    memcpy(m->ids + (size_t)l * len, v, (size_t)len * sizeof *v);
    return 0;
}

static int json_rows(const char *path, const char *text, rows *m, mplb_err *err) {
    cJSON *root = cJSON_Parse(text);
    if (!root) return mplb_err_set(err, MPLB_EFORMAT, "%s: not JSON", path);
    snprintf(m->key, sizeof m->key, "phy2log");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, m->key);
    if (!a) a = cJSON_GetObjectItemCaseSensitive(root, strcpy(m->key, "physical_to_logical_map"));
    int rc = 0;
    if (!cJSON_IsArray(a)) rc = mplb_err_set(err, MPLB_EFORMAT, "%s: no \"phy2log\" or \"physical_to_logical_map\" list", path);
    m->n = rc ? 0 : cJSON_GetArraySize(a);
    for (int l = 0; l < m->n && rc == 0; l++) {
        const cJSON *row = cJSON_GetArrayItem(a, l), *v;
        int len = cJSON_IsArray(row) ? cJSON_GetArraySize(row) : 0, x = 0;
        if (!cJSON_IsArray(row)) { rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d] is not a list", path, m->key, l); break; }
        int *tmp = malloc((size_t)(len > 0 ? len : 1) * sizeof *tmp);
        if (!tmp) { rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path); break; }
        cJSON_ArrayForEach(v, row) {   /* row is a list: at most len items */
            double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
            int ok = cJSON_IsNumber(v) && d >= 0 && d <= (1 << 30) && d == (double)(int)d;
            tmp[x] = ok ? (int)d : -1;
            if (!ok && rc == 0)
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d][%d] is not an expert id (an integer >= 0)", path,
                                  m->key, l, x);
            x++;
        }
        if (rc == 0 && add_row(m, l, tmp, len) < 0) rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
        free(tmp);
    }
    cJSON_Delete(root);
    return rc;
}

/* TensorRT-LLM's moe_config.load_balancer file (examples/ep_load_balancer/
 * generate_eplb_config.py): num_slots, initial_global_assignments {layer id:
 * [slots' logical experts, rank-major]}; layers in increasing id order. */
static int yaml_rows(const char *path, const char *text, rows *m, mplb_err *err) {
    yaml_parser_t ps;
    yaml_document_t doc;
    snprintf(m->key, sizeof m->key, "initial_global_assignments");
    if (!yaml_parser_initialize(&ps)) return mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&ps, &doc)) {
        int rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: not YAML (%s)", path, ps.problem_mark.line + 1,
                              ps.problem ? ps.problem : "parse error");
        yaml_parser_delete(&ps);
        return rc;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc), *asg = NULL, *nslots = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, m->key))
                asg = yaml_document_get_node(&doc, p->value);
            if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, "num_slots"))
                nslots = yaml_document_get_node(&doc, p->value);
        }
    if (!asg || asg->type != YAML_MAPPING_NODE)
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: no initial_global_assignments mapping (layer: [slots])", path);
    int n = rc ? 0 : (int)(asg->data.mapping.pairs.top - asg->data.mapping.pairs.start);
    long *lid = calloc((size_t)n + 1, sizeof *lid);
    int *order = calloc((size_t)n + 1, sizeof *order);
    if (!lid || !order) rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n && rc == 0; i++) {
        yaml_node_t *k = yaml_document_get_node(&doc, asg->data.mapping.pairs.start[i].key);
        char *end = NULL;
        lid[i] = k && k->type == YAML_SCALAR_NODE ? strtol((char *)k->data.scalar.value, &end, 10) : -1;
        if (!end || *end || lid[i] < 0)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: %s key %d is not a layer id", path,
                              k ? k->start_mark.line + 1 : 0, m->key, i + 1);
        order[i] = i;
    }
    for (int i = 1; i < n; i++)   /* layers by id */
        for (int j = i; j > 0 && lid[order[j]] < lid[order[j - 1]]; j--) { int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t; }
    for (int i = 1; i < n && rc == 0; i++)
        if (lid[order[i]] == lid[order[i - 1]]) {
            yaml_node_t *k = yaml_document_get_node(&doc, asg->data.mapping.pairs.start[order[i]].key);
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: %s lists layer %ld twice", path, k ? k->start_mark.line + 1 : 0,
                              m->key, lid[order[i]]);
        }
    long want = -1;   /* num_slots, when given, is every row's length */
    if (rc == 0 && nslots) {
        char *end = NULL;
        want = nslots->type == YAML_SCALAR_NODE ? strtol((char *)nslots->data.scalar.value, &end, 10) : -1;
        if (!end || *end || want < 1)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: num_slots is not a positive integer", path,
                              nslots->start_mark.line + 1);
    }
    m->n = n;
    for (int l = 0; l < n && rc == 0; l++) {
        yaml_node_t *seq = yaml_document_get_node(&doc, asg->data.mapping.pairs.start[order[l]].value);
        int len = seq && seq->type == YAML_SEQUENCE_NODE ? (int)(seq->data.sequence.items.top - seq->data.sequence.items.start) : -1;
        int *tmp = malloc((size_t)(len > 0 ? len : 1) * sizeof *tmp);
        size_t line = seq ? seq->start_mark.line + 1 : 0;
        if (len < 0) rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: %s[%ld] is not a list", path, line, m->key, lid[order[l]]);
        else if (!tmp) rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
        else if (want > 0 && len != want)
            rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: %s[%ld] lists %d slots, num_slots says %ld", path, line, m->key,
                              lid[order[l]], len, want);
        for (int x = 0; x < len && rc == 0; x++) {
            yaml_node_t *v = yaml_document_get_node(&doc, seq->data.sequence.items.start[x]);
            char *end = NULL;
            long e = v && v->type == YAML_SCALAR_NODE ? strtol((char *)v->data.scalar.value, &end, 10) : -1;
            if (!end || *end || e < 0 || e > 1 << 30)
                rc = mplb_err_set(err, MPLB_EFORMAT, "%s:%zu: %s[%ld][%d] is not an expert id", path,
                                  v ? v->start_mark.line + 1 : line, m->key, lid[order[l]], x);
            else tmp[x] = (int)e;
        }
        if (rc == 0 && add_row(m, l, tmp, len) < 0) rc = mplb_err_set(err, MPLB_ENOMEM, "%s: out of memory", path);
        free(tmp);
    }
    free(lid);
    free(order);
    yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    return rc;
}

int mplb_placement_load_map(const char *path, int layers, int R, int E, mplb_placement *out, mplb_err *err) {
    char *text = NULL;
    int rc = mplb_read_file(path, &text, NULL, err);
    if (rc < 0) return rc;
    rows m = {0};
    const char *dot = strrchr(path, '.');
    int yaml = dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml"));
    rc = yaml ? yaml_rows(path, text, &m, err) : json_rows(path, text, &m, err);
    free(text);
    if (rc == 0 && m.n != layers)
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s has %d rows, the model %d layers", path, m.key, m.n, layers);
    if (rc == 0 && (m.slots < 0 || m.slots < E || m.slots % R))
        rc = mplb_err_set(err, MPLB_EFORMAT, "%s: %s[%d] lists %d slots: need at least the %d experts, a multiple of the "
                          "%d ranks, the same in every row", path, m.key, m.slots < 0 ? -1 - m.slots : 0,
                          m.slots < 0 ? m.bad_len : m.slots, E, R);
    int done = 0;
    for (; done < layers && rc == 0; done++)
        if ((rc = mplb_placement_init_contiguous(&out[done], R, E, err)) == 0 &&
            (rc = fill_layer(path, m.key, done, m.ids + (size_t)done * m.slots, m.slots, R, E, &out[done], err)) < 0)
            mplb_placement_free(&out[done]);
    if (rc < 0) for (int j = 0; j < done - 1; j++) mplb_placement_free(&out[j]);
    free(m.ids);
    return rc;
}
