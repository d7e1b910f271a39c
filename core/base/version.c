#include "mplb/version.h"
#ifndef MPLB_GIT_REV
#define MPLB_GIT_REV "unknown"
#endif
const char *mplb_git_revision(void) { return MPLB_GIT_REV; }
