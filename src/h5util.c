#define _GNU_SOURCE /* fallocate, memfd_create */
#include "ftune/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void ft_h5_quiet(void)
{
    /* Library code never prints: HDF5 errors come back through ft_err. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct walk_data {
    char last[512]; /* innermost message */
    char all[1024]; /* every message, for pattern checks */
} walk_data;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *user)
{
    walk_data *w = user;
    const char *desc = e->desc ? e->desc : "";
    snprintf(w->last, sizeof w->last, "%s", desc);
    size_t used = strlen(w->all);
    if (used + 2 < sizeof w->all)
        snprintf(w->all + used, sizeof w->all - used, "%s%s", used ? "; " : "", desc);
    return 0;
}

static void walk_stack(walk_data *w)
{
    memset(w, 0, sizeof *w);
    /* Downward: API function first, innermost cause last. */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, w);
}

const char *ft_h5_last_error(char *buf, size_t len)
{
    walk_data w;
    walk_stack(&w);
    snprintf(buf, len, "%s", w.last);
    return buf;
}

int ft_h5_fail(ft_err *err, int code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    walk_data w;
    walk_stack(&w);
    H5Eclear2(H5E_DEFAULT);
    if (w.last[0])
        return ft_fail(err, code, "%s: %s", msg, w.last);
    return ft_fail(err, code, "%s", msg);
}

/* errno reported by HDF5's system-error messages ("..., errno = 38, ..."). */
static int stack_errno(const walk_data *w)
{
    const char *p = strstr(w->all, "errno = ");
    return p ? atoi(p + 8) : 0;
}

/* File access: strong close for files we write (closing the file flushes and
 * closes everything in it); locks on or off. */
static hid_t make_fapl(int use_locks, int strong_close)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    if (strong_close)
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    /* Lock, but carry on where the file system has locks disabled (ENOSYS). */
    H5Pset_file_locking(fapl, use_locks ? 1 : 0, 1);
#else
    /* Before 1.10.7 only the environment variable exists, read at each open.
     * (1.10.7+ reads it once at start-up, where it overrides this fapl.) */
    if (!use_locks)
        setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
#endif
    return fapl;
}

/* Any HDF5 call clears the error stack, so it is captured into w at once. */
static hid_t open_or_create(const char *path, int create, int use_locks, walk_data *w)
{
    memset(w, 0, sizeof *w);
    hid_t fapl = make_fapl(use_locks, create);
    if (fapl < 0) {
        walk_stack(w);
        return fapl;
    }
    hid_t f = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                     : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0)
        walk_stack(w);
    H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    return f;
}

/* Opens (create == 0) or creates a file; if that fails because of file
 * locking and the user has not chosen a locking mode, retries once without
 * locks (cluster file systems often refuse flock). On failure w holds the
 * HDF5 messages. */
static hid_t open_with_lock_retry(const char *path, int create, int *locked_by_other, walk_data *w)
{
    *locked_by_other = 0;
    hid_t f = open_or_create(path, create, 1, w);
    if (f >= 0 || !strstr(w->all, "lock") || getenv("HDF5_USE_FILE_LOCKING"))
        return f;
    int e = stack_errno(w);
    if (e == EWOULDBLOCK || e == EAGAIN) {
        /* Someone holds the lock (a writer): do not read under its feet. */
        *locked_by_other = 1;
        return f;
    }
    return open_or_create(path, create, 0, w);
}

int ft_h5_open_read(const char *path, hid_t *file, ft_err *err)
{
    ft_h5_quiet();
    *file = H5I_INVALID_HID;
    struct stat st;
    if (stat(path, &st) != 0)
        return ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ft_fail(err, FT_EINPUT, "%s: is a directory, expected an HDF5 file", path);
    if (access(path, R_OK) != 0)
        return ft_fail(err, FT_EINPUT, "%s: cannot read: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is == 0) {
        H5Eclear2(H5E_DEFAULT);
        return ft_fail(err, FT_EINPUT, "%s: not an HDF5 file", path);
    }
    H5Eclear2(H5E_DEFAULT);
    int locked;
    walk_data w;
    hid_t f = open_with_lock_retry(path, 0, &locked, &w);
    if (f < 0) {
        if (locked)
            return ft_fail(err, FT_EINPUT,
                           "%s: locked by another process (is it still being written?); if "
                           "nothing writes it, set HDF5_USE_FILE_LOCKING=FALSE",
                           path);
        return ft_fail(err, FT_EINPUT, "%s: cannot open HDF5 file: %s", path,
                       w.last[0] ? w.last : "unknown HDF5 error");
    }
    *file = f;
    return FT_OK;
}

const char *ft_h5_type_str(hid_t type, char *buf, size_t len)
{
    size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_INTEGER:
        snprintf(buf, len, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
        break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum (bool?)"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    case H5T_VLEN: snprintf(buf, len, "variable-length"); break;
    case H5T_OPAQUE: snprintf(buf, len, "opaque"); break;
    case H5T_BITFIELD: snprintf(buf, len, "bitfield"); break;
    case H5T_REFERENCE: snprintf(buf, len, "reference"); break;
    default: snprintf(buf, len, "unknown type"); break;
    }
    return buf;
}

/* Opens attribute name on loc; *attr < 0 and FT_OK when absent. */
static int open_attr(hid_t loc, const char *name, hid_t *attr, ft_err *err)
{
    ft_h5_quiet();
    *attr = H5I_INVALID_HID;
    htri_t ex = H5Aexists(loc, name);
    if (ex < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "attribute \"%s\"", name);
    if (ex == 0)
        return FT_OK;
    *attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (*attr < 0)
        return ft_h5_fail(err, FT_EINPUT, "cannot open attribute \"%s\"", name);
    return FT_OK;
}

/* Number of elements of a scalar or simple dataspace; -1 on error. */
static long long space_points(hid_t space, int *rank)
{
    *rank = H5Sget_simple_extent_ndims(space);
    if (*rank < 0)
        return -1;
    return (long long)H5Sget_simple_extent_npoints(space);
}

int ft_h5_get_int_attr(hid_t loc, const char *name, int *found, long long *value, ft_err *err)
{
    hid_t attr;
    *found = 0;
    int rc = open_attr(loc, name, &attr, err);
    if (rc || attr < 0)
        return rc;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    int rank;
    long long points = space_points(space, &rank);
    char tbuf[32];
    if (H5Tget_class(type) != H5T_INTEGER) {
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" has type %s, expected an integer", name,
                     ft_h5_type_str(type, tbuf, sizeof tbuf));
    } else if (points != 1 || rank > 1) {
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" has %lld values, expected one integer", name,
                     points);
    } else if (H5Aread(attr, H5T_NATIVE_LLONG, value) < 0) {
        rc = ft_h5_fail(err, FT_EINPUT, "cannot read attribute \"%s\"", name);
    } else {
        *found = 1;
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Aclose(attr);
    return rc;
}

int ft_h5_set_int_attr(hid_t loc, const char *name, long long value, ft_err *err)
{
    ft_h5_quiet();
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "cannot replace attribute \"%s\"", name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = FT_OK;
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_LLONG, &value) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "cannot write attribute \"%s\"", name);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    return rc;
}

int ft_h5_set_str_attr(hid_t loc, const char *name, const char *value, ft_err *err)
{
    ft_h5_quiet();
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
        return ft_h5_fail(err, FT_ERUNTIME, "cannot replace attribute \"%s\"", name);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = FT_OK;
    if (attr < 0 || H5Awrite(attr, type, &value) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "cannot write attribute \"%s\"", name);
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

void ft_h5_free_strings(char **values, size_t count)
{
    if (!values)
        return;
    for (size_t i = 0; i < count; i++)
        free(values[i]);
    free(values);
}

static int read_strings(hid_t attr, hid_t ftype, hid_t space, size_t count, char **out,
                        const char *name, ft_err *err)
{
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mtype, H5Tget_cset(ftype)); /* HDF5 does not convert between csets */
    int rc = FT_OK;
    if (H5Tis_variable_str(ftype) > 0) {
        H5Tset_size(mtype, H5T_VARIABLE);
        char **buf = calloc(count ? count : 1, sizeof *buf);
        if (!buf) {
            rc = ft_fail(err, FT_ERUNTIME, "out of memory reading attribute \"%s\"", name);
        } else if (H5Aread(attr, mtype, buf) < 0) {
            rc = ft_h5_fail(err, FT_EINPUT, "cannot read attribute \"%s\"", name);
        } else {
            for (size_t i = 0; i < count && !rc; i++)
                if (!(out[i] = strdup(buf[i] ? buf[i] : "")))
                    rc = ft_fail(err, FT_ERUNTIME, "out of memory");
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mtype, space, H5P_DEFAULT, buf);
#else
            H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
#endif
        }
        free(buf);
    } else {
        /* Fixed length (h5py "S10"): read one byte wider, NUL-terminated. */
        size_t width = H5Tget_size(ftype) + 1;
        H5Tset_size(mtype, width);
        H5Tset_strpad(mtype, H5T_STR_NULLTERM);
        char *buf = calloc(count ? count : 1, width);
        if (!buf) {
            rc = ft_fail(err, FT_ERUNTIME, "out of memory reading attribute \"%s\"", name);
        } else if (H5Aread(attr, mtype, buf) < 0) {
            rc = ft_h5_fail(err, FT_EINPUT, "cannot read attribute \"%s\"", name);
        } else {
            for (size_t i = 0; i < count && !rc; i++)
                if (!(out[i] = strndup(buf + i * width, width)))
                    rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        }
        free(buf);
    }
    H5Tclose(mtype);
    return rc;
}

int ft_h5_get_strs_attr(hid_t loc, const char *name, int *found, char ***values, size_t *count,
                        ft_err *err)
{
    hid_t attr;
    *found = 0;
    *values = NULL;
    *count = 0;
    int rc = open_attr(loc, name, &attr, err);
    if (rc || attr < 0)
        return rc;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    int rank;
    long long points = space_points(space, &rank);
    char tbuf[32];
    char **out = NULL;
    if (H5Tget_class(type) != H5T_STRING) {
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" has type %s, expected strings", name,
                     ft_h5_type_str(type, tbuf, sizeof tbuf));
    } else if (points < 0 || rank > 1) {
        rc = ft_fail(err, FT_EINPUT, "attribute \"%s\" has rank %d, expected a list of strings",
                     name, rank);
    } else if (!(out = calloc(points ? (size_t)points : 1, sizeof *out))) {
        rc = ft_fail(err, FT_ERUNTIME, "out of memory reading attribute \"%s\"", name);
    } else {
        rc = read_strings(attr, type, space, (size_t)points, out, name, err);
    }
    if (rc) {
        ft_h5_free_strings(out, points > 0 ? (size_t)points : 0);
    } else {
        *values = out;
        *count = (size_t)points;
        *found = 1;
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Aclose(attr);
    return rc;
}

int ft_h5_get_str_attr(hid_t loc, const char *name, int *found, char **value, ft_err *err)
{
    char **vals;
    size_t n;
    *value = NULL;
    int rc = ft_h5_get_strs_attr(loc, name, found, &vals, &n, err);
    if (rc || !*found)
        return rc;
    if (n != 1) {
        ft_h5_free_strings(vals, n);
        *found = 0;
        return ft_fail(err, FT_EINPUT, "attribute \"%s\" has %zu strings, expected one", name, n);
    }
    *value = vals[0];
    free(vals);
    return FT_OK;
}

int ft_h5_create_tmp(const char *path, char *tmp, size_t tmplen, hid_t *file, ft_err *err)
{
    ft_h5_quiet();
    *file = H5I_INVALID_HID;
    int len = snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= tmplen)
        return ft_fail(err, FT_EINPUT, "%s: path too long", path);
    /* Plain open first: a missing directory or permission problem then
     * reads as such instead of as an HDF5 error stack. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return ft_fail(err, FT_EINPUT, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    close(fd);
    int locked;
    walk_data w;
    hid_t f = open_with_lock_retry(tmp, 1, &locked, &w);
    if (f < 0) {
        unlink(tmp);
        return ft_fail(err, FT_EINPUT, "%s: cannot create %s: %s", path, tmp,
                       w.last[0] ? w.last : "unknown HDF5 error");
    }
    *file = f;
    return FT_OK;
}

/* Best effort: a rename is only durable once the directory is synced. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int ft_h5_commit(hid_t file, const char *tmp, const char *path, ft_err *err)
{
    ft_h5_quiet();
    if (H5Fclose(file) < 0) {
        int rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot finish writing %s", path, tmp);
        unlink(tmp);
        return rc;
    }
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int rc = ft_fail(err, FT_ERUNTIME, "%s: cannot sync %s: %s", path, tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc =
            ft_fail(err, FT_EINPUT, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    sync_parent_dir(path);
    return FT_OK;
}

int ft_h5_reserve(const char *path, unsigned long long bytes, ft_err *err)
{
    char scratch[1100];
    if (snprintf(scratch, sizeof scratch, "%s.reserve.%ld", path, (long)getpid()) >=
        (int)sizeof scratch)
        return FT_OK;
    int fd = open(scratch, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return FT_OK; /* the write itself will report why */
    unlink(scratch);  /* nothing is left behind, whatever happens next */
    int rc = FT_OK;
    if (bytes > 0 && fallocate(fd, 0, 0, (off_t)bytes) != 0) {
        int e = errno;
        if (e == ENOSPC || e == EDQUOT || e == EFBIG)
            rc = ft_fail(err, FT_ERUNTIME, "%s: cannot write %.1f %s: %s", path,
                         bytes >= (1u << 20) ? (double)bytes / 1048576.0 : (double)bytes / 1024.0,
                         bytes >= (1u << 20) ? "MiB" : "KiB", strerror(e));
    }
    close(fd);
    return rc;
}

void ft_h5_discard(hid_t file, const char *tmp)
{
    ft_h5_quiet();
    if (file >= 0) {
        /* Closing flushes, and a flush that fails (disk full) leaves HDF5 1.10 with a file
         * it can neither close nor release at exit (a crash in H5F_term_package). The file
         * is being thrown away: point HDF5's descriptor at an anonymous memory file first,
         * so that the final flush cannot fail. */
        hid_t fapl = H5Fget_access_plist(file);
        void *handle = NULL;
        if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
            H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle) {
            int mfd = memfd_create("ftune-discard", 0);
            if (mfd >= 0) {
                dup2(mfd, *(int *)handle);
                close(mfd);
            }
        }
        if (fapl >= 0)
            H5Pclose(fapl);
        H5Fclose(file);
    }
    H5Eclear2(H5E_DEFAULT);
    if (tmp && tmp[0])
        unlink(tmp);
}
