/* mplb_init: the process-wide settings libmplb never changes by itself.
 * The mplb binary calls it once at start; a program embedding the library
 * decides for itself (none of it is needed for correct results).
 *
 *   MPLB_INIT_QUIET_HDF5   HDF5 prints no error stacks on stderr (mplb's
 *                          own message names the file and object instead)
 *   MPLB_INIT_BLAS_SERIAL  OpenBLAS runs one thread: execute mode times
 *                          ranks one after another on one core, calibrate
 *                          measures one core, and float results do not
 *                          depend on how many cores the machine has
 */
#ifndef MPLB_INIT_H
#define MPLB_INIT_H

#include "mplb/api.h"

MPLB_BEGIN_DECLS

enum { MPLB_INIT_QUIET_HDF5 = 1u << 0, MPLB_INIT_BLAS_SERIAL = 1u << 1, MPLB_INIT_ALL = 3u };

MPLB_API void mplb_init(unsigned flags);

MPLB_END_DECLS

#endif
