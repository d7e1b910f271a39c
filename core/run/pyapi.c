/* mplb_py: the flat entry points of mplb/pyapi.h over mplb_exp_load and
 * mplb_run (what `mplb run` does for backends model and cpu). */
#include "mplb/pyapi.h"
#include "mplb/config.h"
#include "mplb/run.h"
#include "mplb/version.h"

#include <stddef.h>

const char *mplb_py_version(void) { return MPLB_VERSION; }
const char *mplb_py_git_revision(void) { return mplb_git_revision(); }

int mplb_py_run(const char *exp_path, const char *const *sets, int n_sets, const char *out_path,
                int force, int resume, const char *command, volatile sig_atomic_t *stop, mplb_err *err) {
    if (!exp_path || !out_path || n_sets < 0 || (n_sets > 0 && !sets))
        return mplb_err_set(err, MPLB_EINVAL, "mplb_py_run: exp_path and out_path are required");
    if (force && resume)
        return mplb_err_set(err, MPLB_EINVAL, "mplb_py_run: force and resume exclude each other");
    mplb_exp x;
    int rc = mplb_exp_load(exp_path, sets, n_sets, &x, err);
    if (rc < 0) return rc;
    /* a binding can give no transport or device: the library says so for
     * backend "cuda" (the mplb binary opens the device) */
    mplb_run_opts o = {.out_path = out_path, .force = force, .resume = resume,
                       .command = command ? command : "mplb_py_run", .stop = stop};
    mplb_run_summary sum = {0};
    rc = mplb_run(&x, &o, &sum, err);
    mplb_run_summary_free(&sum);
    mplb_exp_free(&x);
    return rc;
}
