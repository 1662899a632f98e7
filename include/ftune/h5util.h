/* Small HDF5 helpers shared by the dataset, model and checkpoint code: quiet
 * errors turned into ft_err messages, read-only opens that cope with file
 * systems without locking, attributes, and the write-to-temporary-then-rename
 * pattern. HDF5 itself never prints once ft_h5_quiet() has run. */
#ifndef FTUNE_H5UTIL_H
#define FTUNE_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

#include "ftune/err.h"

/* Turns off HDF5's automatic error printing (idempotent, cheap). Every
 * helper below calls it; call it before any other HDF5 call of your own. */
void ft_h5_quiet(void);

/* Fails with "<formatted message>: <innermost message on the HDF5 error
 * stack>" (or just the message when the stack is empty), then clears the
 * stack. Returns code. */
int ft_h5_fail(ft_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies the innermost HDF5 error message into buf ("" if none); does not
 * clear the stack. */
const char *ft_h5_last_error(char *buf, size_t len);

/* Opens an existing file read-only. Errors (FT_EINPUT) say whether the file
 * is missing, unreadable or not an HDF5 file. Where the file system does not
 * support locks (Lustre, NFS, GPFS), the open is retried once without file
 * locking (through the file access property list: HDF5 1.10.7+ reads the
 * environment only at start-up) unless HDF5_USE_FILE_LOCKING is set; a file
 * locked by a writer gives an error that names the variable. */
int ft_h5_open_read(const char *path, hid_t *file, ft_err *err);

/* Describes a datatype for messages: "float32", "float64", "int32",
 * "uint8", "string", "compound", ... */
const char *ft_h5_type_str(hid_t type, char *buf, size_t len);

/* Attributes on a file, group or dataset. The getters set *found to 0 and
 * succeed when the attribute is absent; a wrong type or shape is FT_EINPUT
 * (message names the attribute; callers prefix the file). */
int ft_h5_get_int_attr(hid_t loc, const char *name, int *found, long long *value, ft_err *err);
int ft_h5_set_int_attr(hid_t loc, const char *name, long long value, ft_err *err);
/* Scalar or one-element string attribute, fixed or variable length;
 * *value is malloc'd (free it). */
int ft_h5_get_str_attr(hid_t loc, const char *name, int *found, char **value, ft_err *err);
/* Writes a variable-length UTF-8 string (h5py reads it as str). */
int ft_h5_set_str_attr(hid_t loc, const char *name, const char *value, ft_err *err);
/* Scalar or 1-D array of strings, fixed or variable length; *values is a
 * malloc'd array of malloc'd strings (ft_h5_free_strings). */
int ft_h5_get_strs_attr(hid_t loc, const char *name, int *found, char ***values, size_t *count,
                        ft_err *err);
void ft_h5_free_strings(char **values, size_t count);

/* Creates "<path>.tmp.<pid>" (name returned in tmp) for writing. Commit
 * closes the file (objects still open in it are closed too), syncs it to
 * disk and renames it to path; on failure the temporary file is removed.
 * Discard closes and removes it. So a failed or interrupted write never
 * leaves a half-written file under the final name. */
int ft_h5_create_tmp(const char *path, char *tmp, size_t tmplen, hid_t *file, ft_err *err);
/* Checks, before any HDF5 write, that about `bytes` can be written next to path: reserves
 * them in an unlinked scratch file (fallocate) and releases them. A full disk, a quota or a
 * file-size limit is then an FT_ERUNTIME naming path and the reason, and HDF5 never sees a
 * failed write (HDF5 1.10 cannot close a file whose flush failed, and crashes at exit).
 * File systems without fallocate are not checked. */
int ft_h5_reserve(const char *path, unsigned long long bytes, ft_err *err);
int ft_h5_commit(hid_t file, const char *tmp, const char *path, ft_err *err);
void ft_h5_discard(hid_t file, const char *tmp);

#endif
