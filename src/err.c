#include "ftune/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ft_fail(ft_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int ft_err_prefix(ft_err *err, const char *fmt, ...)
{
    if (!err)
        return FT_ERUNTIME;
    char prefix[512];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t plen = strlen(prefix);
    if (plen > sizeof err->msg - 3)
        plen = sizeof err->msg - 3;
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, ": ", 2);
    size_t rest = sizeof err->msg - plen - 3;
    size_t olen = strnlen(old, rest);
    memcpy(err->msg + plen + 2, old, olen);
    err->msg[plen + 2 + olen] = '\0';
    if (!err->code)
        err->code = FT_ERUNTIME;
    return err->code;
}

void ft_err_clear(ft_err *err)
{
    if (err) {
        err->code = FT_OK;
        err->msg[0] = '\0';
    }
}

int ft_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

size_t ft_alloc_limit(void)
{
    const char *env = getenv("FTUNE_MAX_ALLOC_MB");
    if (env && *env) {
        char *end;
        unsigned long long mb = strtoull(env, &end, 10);
        if (*end == '\0' && mb > 0)
            return mb >= SIZE_MAX >> 20 ? SIZE_MAX : (size_t)mb << 20;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0 || (unsigned long long)pages > SIZE_MAX / (unsigned long long)page)
        return SIZE_MAX;
    return (size_t)pages * (size_t)page;
}

static double mib(size_t bytes)
{
    return (double)bytes / 1048576.0;
}

int ft_check_alloc(size_t count, size_t size, const char *what, ft_err *err)
{
    size_t bytes, limit = ft_alloc_limit();
    if (!ft_mul_size(count, size, &bytes) || bytes > limit)
        return ft_fail(err, FT_EINPUT,
                       "%s needs %.0f MiB, above the memory limit of %.0f MiB (physical memory, or "
                       "FTUNE_MAX_ALLOC_MB)",
                       what, (double)count * (double)size / 1048576.0, mib(limit));
    return FT_OK;
}

static int over_limit(size_t bytes, ft_err *err)
{
    size_t limit = ft_alloc_limit();
    if (bytes <= limit)
        return 0;
    ft_fail(err, FT_ERUNTIME,
            "allocation of %.0f MiB is above the memory limit of %.0f MiB (physical memory, or "
            "FTUNE_MAX_ALLOC_MB)",
            mib(bytes), mib(limit));
    return 1;
}

void *ft_calloc(size_t count, size_t size, ft_err *err)
{
    size_t bytes;
    if (!ft_mul_size(count, size, &bytes)) {
        ft_fail(err, FT_ERUNTIME, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    if (over_limit(bytes, err))
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        ft_fail(err, FT_ERUNTIME, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *ft_alloc_floats(size_t count, ft_err *err)
{
    size_t bytes;
    if (!ft_mul_size(count ? count : 1, sizeof(float), &bytes) || bytes > SIZE_MAX - 64) {
        ft_fail(err, FT_ERUNTIME, "allocation of %zu floats overflows", count);
        return NULL;
    }
    bytes = (bytes + 63) & ~(size_t)63;
    if (over_limit(bytes, err))
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) {
        ft_fail(err, FT_ERUNTIME, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

void ft_free_floats(void *p)
{
    free(p);
}
