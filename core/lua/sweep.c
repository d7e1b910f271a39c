/* Sweep expansion: see include/mplb/sweep.h. The expansion itself is Lua
 * run in the config sandbox (walking and copying tables is what Lua is for). */
#include "mplb/sweep.h"
#include "mplb/config.h"
#include "lsandbox.h"

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#define SWEEP_MAX_POINTS 100000

/* expand(exp) -> axes {name...}, points {{label=, text=, values={...}}...} */
static const char *expand_lua =
    "local exp, serialize, max_points = ...\n"
    "local zip = exp.zip\n"
    "exp.zip = nil\n"
    "local function is_list(v)\n"
    "  if type(v) ~= 'table' or #v == 0 then return false end\n"
    "  local n = 0\n"
    "  for _ in pairs(v) do n = n + 1 end\n"
    "  return n == #v\n"
    "end\n"
    "local function sorted_keys(t)\n"
    "  local ks = {}\n"
    "  for k in pairs(t) do if type(k) == 'string' then ks[#ks + 1] = k end end\n"
    "  table.sort(ks)\n"
    "  return ks\n"
    "end\n"
    "local axes = {}\n"
    "local function walk(t, path, name)\n"
    "  for _, k in ipairs(sorted_keys(t)) do\n"
    "    local v = t[k]\n"
    "    local p = { table.unpack(path) }\n"
    "    p[#p + 1] = k\n"
    "    local n = name == '' and k or (name .. '.' .. k)\n"
    "    if name == '' and k == 'policies' and type(v) == 'table' then\n"
    "      for i, pol in ipairs(v) do\n"
    "        if type(pol) == 'table' then\n"
    "          local pname = tostring(pol[1]):gsub('^.*/', ''):gsub('%.lua$', '')\n"
    "          for _, pk in ipairs(sorted_keys(pol)) do\n"
    "            if is_list(pol[pk]) then\n"
    "              axes[#axes + 1] = { path = { 'policies', i, pk }, name = ('policies[%d].%s'):format(i, pk),\n"
    "                                  alias = ('policies.%s.%s'):format(pname, pk), values = pol[pk] }\n"
    "            end\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    elseif n == 'workload.popularity' or n == 'workload.layer_sigma' then\n"
    "      -- per-layer fitted lists (mplb trace fit), data rather than sweep axes\n"
    "    elseif is_list(v) then\n"
    "      axes[#axes + 1] = { path = p, name = n, values = v }\n"
    "    elseif type(v) == 'table' then\n"
    "      walk(v, p, n)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "walk(exp, {}, '')\n"
    /* dims: each zip group is one dimension whose axes take their values side
     * by side; every other axis is a dimension of its own (cross product) */
    "local dims, group_of = {}, {}\n"
    "local function axis_names()\n"
    "  local t = {}\n"
    "  for _, a in ipairs(axes) do t[#t + 1] = a.alias and (a.name .. ' or ' .. a.alias) or a.name end\n"
    "  return #t > 0 and table.concat(t, ', ') or 'none'\n"
    "end\n"
    "if zip ~= nil then\n"
    "  if type(zip) ~= 'table' then error('zip: expected a list of lists of axis names, e.g. zip = {{\"workload.tokens\", \"policies.threshold.min_tokens\"}}', 0) end\n"
    "  for gi, g in ipairs(zip) do\n"
    "    if type(g) ~= 'table' or #g < 2 then error(('zip[%d]: expected a list of two or more axis names'):format(gi), 0) end\n"
    "    local dim = { axes = {} }\n"
    "    for _, nm in ipairs(g) do\n"
    "      local found\n"
    "      for ai, a in ipairs(axes) do\n"
    "        if a.name == nm or a.alias == nm then\n"
    "          if found and a.alias == nm then error(('zip[%d]: %s names several axes (write policies[i].param)'):format(gi, nm), 0) end\n"
    "          found = ai\n"
    "        end\n"
    "      end\n"
    "      if not found then error((\"zip[%d]: '%s' is not a sweep axis (axes: %s)\"):format(gi, tostring(nm), axis_names()), 0) end\n"
    "      if group_of[found] then error((\"zip[%d]: '%s' is already tied in zip[%d]\"):format(gi, nm, group_of[found]), 0) end\n"
    "      group_of[found] = gi\n"
    "      dim.axes[#dim.axes + 1] = found\n"
    "    end\n"
    "    local a1 = axes[dim.axes[1]]\n"
    "    for _, ai in ipairs(dim.axes) do\n"
    "      local a = axes[ai]\n"
    "      if #a.values ~= #a1.values then\n"
    "        error(('zip[%d]: %s has %d values but %s has %d (tied axes take their values side by side)')\n"
    "          :format(gi, a1.name, #a1.values, a.name, #a.values), 0)\n"
    "      end\n"
    "    end\n"
    "    dim.n = #a1.values\n"
    "    table.sort(dim.axes)\n"
    "    dims[#dims + 1] = dim\n"
    "  end\n"
    "end\n"
    "for ai, a in ipairs(axes) do\n"
    "  if not group_of[ai] then dims[#dims + 1] = { axes = { ai }, n = #a.values } end\n"
    "end\n"
    "table.sort(dims, function(x, y) return x.axes[1] < y.axes[1] end)\n"
    "local total = 1\n"
    "for _, d in ipairs(dims) do total = total * d.n end\n"
    "if total > max_points then error(('the sweep has %d points (more than %d)'):format(total, max_points), 0) end\n"
    "local function deepcopy(v)\n"
    "  if type(v) ~= 'table' then return v end\n"
    "  local c = {}\n"
    "  for k, x in pairs(v) do c[k] = deepcopy(x) end\n"
    "  return c\n"
    "end\n"
    "local function set(t, path, v)\n"
    "  for i = 1, #path - 1 do t = t[path[i]] end\n"
    "  t[path[#path]] = v\n"
    "end\n"
    "local function show(v)\n"
    "  if type(v) == 'string' then return v end\n"
    "  if type(v) == 'table' then return serialize(v) end\n"
    "  return tostring(v)\n"
    "end\n"
    "local points = {}\n"
    "for idx = 0, total - 1 do\n"
    "  local e = deepcopy(exp)\n"
    "  local rest, labels, values = idx, {}, {}\n"
    "  local pick = {}\n"
    "  for di = #dims, 1, -1 do\n"
    "    local d = dims[di]\n"
    "    for _, ai in ipairs(d.axes) do pick[ai] = rest % d.n + 1 end\n"
    "    rest = rest // d.n\n"
    "  end\n"
    "  for ai, a in ipairs(axes) do\n"
    "    local v = a.values[pick[ai]]\n"
    "    set(e, a.path, deepcopy(v))\n"
    "    labels[#labels + 1] = a.name .. '=' .. show(v)\n"
    "    values[ai] = show(v)\n"
    "  end\n"
    "  points[#points + 1] = { label = table.concat(labels, ' '), text = 'return ' .. serialize(e), values = values }\n"
    "end\n"
    "local names = {}\n"
    "for i, a in ipairs(axes) do names[i] = a.name end\n"
    "return names, points\n";

/* serialize(t) for the expansion chunk: mplb_lua_serialize as a Lua function */
static int l_serialize(lua_State *L) {
    char *s = mplb_lua_serialize(L, 1);
    if (!s) return luaL_error(L, "the experiment may hold only data (numbers, strings, booleans, tables)");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static char *dup_field(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    const char *s = lua_tostring(L, -1);
    char *d = strdup(s ? s : "");
    lua_pop(L, 1);
    return d;
}

int mplb_sweep_expand(const char *path, const char *const *sets, int n_sets, mplb_sweep *out, mplb_err *err) {
    memset(out, 0, sizeof *out);
    /* load (and check) through the normal path first, so errors read the same */
    mplb_exp x;
    int rc;
    mplb_lsb sb;
    char *src;
    if ((rc = mplb_read_file(path, &src, NULL, err)) < 0) return rc;
    if ((rc = mplb_lsb_open(&sb, 256u << 20, 200000000LL, err)) < 0) { free(src); return rc; }
    lua_State *L = sb.L;
    char chunk[MPLB_PATH_MAX + 1];
    snprintf(chunk, sizeof chunk, "@%s", path);
    rc = mplb_lsb_dostring(&sb, src, chunk, 1, err);
    free(src);
    if (rc < 0) goto out;
    if (!lua_istable(L, -1)) { rc = mplb_err_set(err, MPLB_ECONFIG, "%s: the experiment file must return a table", path); goto out; }
    (void)x;
    if ((rc = mplb_lsb_check_plain(&sb, -1, 1, path, err)) < 0) goto out;
    /* --set overrides, as mplb run applies them */
    for (int i = 0; i < n_sets; i++)
        if ((rc = mplb_lua_apply_set(&sb, lua_gettop(L), sets[i], path, err)) < 0) goto out;
    if (n_sets && (rc = mplb_lsb_check_plain(&sb, -1, 1, path, err)) < 0) goto out;
    if (luaL_loadbufferx(L, expand_lua, strlen(expand_lua), "=sweep", "t") != LUA_OK) {
        rc = mplb_err_set(err, MPLB_EINVAL, "sweep: %s", lua_tostring(L, -1));
        goto out;
    }
    lua_insert(L, -2);
    lua_pushcfunction(L, l_serialize);
    lua_pushinteger(L, SWEEP_MAX_POINTS);
    if ((rc = mplb_lsb_pcall(&sb, 3, 2, NULL, err)) < 0) {
        char *tb = strstr(err->msg, "\nstack traceback:");   /* the expansion's own lines say nothing to a user */
        if (tb) *tb = 0;
        mplb_err_wrap(err, "%s: sweep", path);
        goto out;
    }
    int names = lua_gettop(L) - 1, pts = lua_gettop(L);
    out->n_axes = (int)luaL_len(L, names);
    out->n_points = (int)luaL_len(L, pts);
    out->axis_names = calloc((size_t)out->n_axes + 1, sizeof(char *));
    out->points = calloc((size_t)out->n_points + 1, sizeof *out->points);
    out->values = calloc((size_t)out->n_points * out->n_axes + 1, sizeof(char *));
    if (!out->axis_names || !out->points || !out->values) { rc = mplb_err_set(err, MPLB_ENOMEM, "sweep: out of memory"); goto out; }
    for (int a = 0; a < out->n_axes; a++) {
        lua_geti(L, names, a + 1);
        out->axis_names[a] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    for (int p = 0; p < out->n_points; p++) {
        lua_geti(L, pts, p + 1);
        int pi = lua_gettop(L);
        out->points[p].label = dup_field(L, pi, "label");
        out->points[p].text = dup_field(L, pi, "text");
        lua_getfield(L, pi, "values");
        for (int a = 0; a < out->n_axes; a++) {
            lua_geti(L, -1, a + 1);
            const char *v = lua_tostring(L, -1);
            out->values[(size_t)p * out->n_axes + a] = strdup(v ? v : "");
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    rc = 0;
out:
    mplb_lsb_close(&sb);
    if (rc < 0) mplb_sweep_free(out);
    return rc;
}

void mplb_sweep_free(mplb_sweep *s) {
    for (int a = 0; a < s->n_axes && s->axis_names; a++) free(s->axis_names[a]);
    for (int p = 0; p < s->n_points && s->points; p++) { free(s->points[p].label); free(s->points[p].text); }
    for (size_t i = 0; s->values && i < (size_t)s->n_points * s->n_axes; i++) free(s->values[i]);
    free(s->axis_names);
    free(s->points);
    free(s->values);
    memset(s, 0, sizeof *s);
}
