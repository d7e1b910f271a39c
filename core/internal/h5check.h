/* mplb_h5: checked reads from HDF5 files mplb did not necessarily write.
 *
 * Every reader of run files and traces goes through these: each object's
 * class, rank, shape and size is checked before a byte is read into a
 * caller's buffer, and the error names the file, the object and what was
 * expected. Sizes are capped by what the file itself can hold: a dataset
 * may not decompress to more than MPLB_H5_MAX_RATIO times its stored bytes
 * (deflate cannot exceed ~1032:1, zlib's technical notes), plus a small
 * allowance, so a 1.5 KB file cannot claim 8 GB of chunks it never wrote.
 *
 *   mplb_h5_file h;
 *   if (mplb_h5_open(path, &h, err) < 0) return err->code;
 *   int64_t k;
 *   rc = mplb_h5_attr_int(&h, h.id, "top_k", 1, 64, &k, err);   // 1 = absent
 *   mplb_h5_close(&h);
 */
#ifndef MPLB_H5CHECK_H
#define MPLB_H5CHECK_H

#include <hdf5.h>
#include <stdint.h>
#include "mplb/err.h"

#define MPLB_H5_MAX_RATIO 1100        /* deflate's 1032:1 bound, rounded up */
#define MPLB_H5_SLACK ((hsize_t)1 << 20) /* bytes any dataset may claim */
#define MPLB_H5_READ_ATTEMPTS 3       /* SWMR metadata read attempts (libhdf5's default is 100) */

typedef struct mplb_h5_file {
    hid_t id;
    const char *path;
    int unclosed;                     /* opened through SWMR read: a running or killed writer */
    hsize_t size;                     /* bytes on disk */
} mplb_h5_file;

/* Open read-only: normally, or (a writer still holds it / was killed) with
 * SWMR read access and bounded metadata retries, so a damaged file fails
 * fast instead of hanging. Distinguishes missing, not-HDF5 and damaged. */
int mplb_h5_open(const char *path, mplb_h5_file *h, mplb_err *err);
void mplb_h5_close(mplb_h5_file *h);
/* A file-access property list with bounded SWMR retries (caller closes). */
hid_t mplb_h5_fapl(void);

/* Scalar (or one-element) integer attribute in [lo, hi]. 1 = absent,
 * 0 = read, <0 = error. */
int mplb_h5_attr_int(const mplb_h5_file *h, hid_t obj, const char *name, int64_t lo, int64_t hi,
                     int64_t *out, mplb_err *err);
int mplb_h5_attr_u64(const mplb_h5_file *h, hid_t obj, const char *name, uint64_t *out, mplb_err *err);
/* Scalar string attribute (fixed or variable length), malloc'd in *out. */
int mplb_h5_attr_str(const mplb_h5_file *h, hid_t obj, const char *name, char **out, mplb_err *err);
/* Scalar string dataset, malloc'd in *out. 1 = absent. */
int mplb_h5_dset_str(const mplb_h5_file *h, const char *name, char **out, mplb_err *err);
/* One-dimensional string dataset of exactly n elements (n < 0: any count,
 * returned in *n_out), malloc'd array of malloc'd strings. */
int mplb_h5_dset_strs(const mplb_h5_file *h, const char *name, int64_t n, char ***out, int64_t *n_out,
                      mplb_err *err);

/* Open dataset name, check its class (H5T_NO_CLASS = any numeric: integer
 * or float), rank and every dim whose want[i] is not MPLB_H5_ANY; dims out.
 * The storage cap above is checked against elem bytes per element.
 * Returns the open dataset (caller closes), 0 when absent (err untouched),
 * -1 on error. */
#define MPLB_H5_ANY ((hsize_t)-1)
hid_t mplb_h5_dset_open(const mplb_h5_file *h, const char *name, H5T_class_t cls, int rank,
                        const hsize_t *want, size_t elem, hsize_t *dims, mplb_err *err);
/* Read the first `rows` rows of an open [N x ...] dataset into a new buffer
 * (rows <= dims[0], checked by the caller). NULL with err set on failure. */
void *mplb_h5_read_rows(const mplb_h5_file *h, hid_t d, const char *name, hid_t mem_t, size_t elem,
                        int rank, const hsize_t *dims, hsize_t rows, mplb_err *err);

#endif
