/* Process-wide settings on request: see include/mplb/init.h. */
#include "mplb/init.h"

#include <hdf5.h>

/* OpenBLAS' own thread control; declared here since cblas.h need not. */
void openblas_set_num_threads(int num_threads);

void mplb_init(unsigned flags) {
    if (flags & MPLB_INIT_QUIET_HDF5) H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (flags & MPLB_INIT_BLAS_SERIAL) openblas_set_num_threads(1);
}
