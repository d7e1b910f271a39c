/* mplb version and build identity. */
#ifndef MPLB_VERSION_H
#define MPLB_VERSION_H
#define MPLB_VERSION "0.1.0"
const char *mplb_git_revision(void);
#endif
