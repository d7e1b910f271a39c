/* mplb_py: flat entry points for foreign-function callers (Python's ctypes
 * in analysis/mplb/api.py). They take and return only strings, ints and the
 * mplb_err struct, so a binding needs no copy of mplb_exp or mplb_run_opts,
 * whose layouts change as the library grows.
 *
 *   const char *sets[] = {"workload.steps=2"};
 *   mplb_err err;
 *   if (mplb_py_run("experiments/demo.lua", sets, 1, "demo.h5", 0, 0, "python", NULL, &err) < 0)
 *       fprintf(stderr, "%s\n", err.msg);
 */
#ifndef MPLB_PYAPI_H
#define MPLB_PYAPI_H

#include "mplb/api.h"

#include <signal.h>

#include "mplb/err.h"

MPLB_BEGIN_DECLS

/* The library's version (MPLB_VERSION) and git revision, for checks that the
 * Python package and the library it loads belong together. */
MPLB_API const char *mplb_py_version(void);
MPLB_API const char *mplb_py_git_revision(void);

/* Load the experiment at exp_path with sets[] ("path.to.field=lua-expression",
 * as `mplb run --set`), run it and write the run file out_path (required;
 * force overwrites, resume continues it). command is recorded in the file.
 * stop (may be NULL), set by another thread, ends the run before the next
 * layer: status "interrupted", every row kept, resumable. Returns 0 (also
 * when stopped) or a negative MPLB_E* code with err filled; the rows written
 * before a policy error stay in the file (status "failed"). */
MPLB_API int mplb_py_run(const char *exp_path, const char *const *sets, int n_sets, const char *out_path,
                         int force, int resume, const char *command, volatile sig_atomic_t *stop,
                         mplb_err *err);

MPLB_END_DECLS

#endif
