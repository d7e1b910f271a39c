/* mplb version and build identity. */
#ifndef MPLB_VERSION_H
#define MPLB_VERSION_H

#include "mplb/api.h"

MPLB_BEGIN_DECLS
#define MPLB_VERSION "0.1.0"
MPLB_API const char *mplb_git_revision(void);
MPLB_END_DECLS

#endif
