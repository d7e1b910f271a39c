/* mplb/api.h: what every public header shares. MPLB_API marks the
 * library's exported functions: libmplb is built with hidden default
 * visibility, so only the declared API is exported from libmplb.so.
 * MPLB_BEGIN_DECLS/MPLB_END_DECLS give C linkage to C++ users.
 *
 * The error contract (mplb/err.h): every function that can fail returns 0
 * or a negative MPLB_E* code and fills the caller's mplb_err, which must
 * not be NULL (the message is the error; a code alone rarely says which
 * file, line or field is at fault). */
#ifndef MPLB_API_H
#define MPLB_API_H

#if defined(__GNUC__) || defined(__clang__)
#define MPLB_API __attribute__((visibility("default")))
#else
#define MPLB_API
#endif

#ifdef __cplusplus
#define MPLB_BEGIN_DECLS extern "C" {
#define MPLB_END_DECLS }
#else
#define MPLB_BEGIN_DECLS
#define MPLB_END_DECLS
#endif

#endif
