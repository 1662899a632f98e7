/* Shared helpers for the libFuzzer harnesses in tests/fuzz (see docs/reliability.md).
 *
 * Each harness defines LLVMFuzzerTestOneInput (and may use LLVMFuzzerInitialize). Built with
 * clang -fsanitize=fuzzer (cmake -DFTUNE_FUZZ=ON, scripts/fuzz.sh) they are fuzzers; built with
 * any compiler and replay_main.c they replay a corpus (ctest fuzz.replay.*), so committed seeds
 * and regression inputs run in every build, including the ASan and valgrind runs.
 *
 * The readers under test take file names, so inputs go through files in a private temporary
 * directory (removed at exit). FTUNE_MAX_ALLOC_MB is set to 256 unless already set, so an
 * absurd size in an input must be refused by ftune's own checks, not by running out of memory. */
#ifndef FTUNE_FUZZ_COMMON_H
#define FTUNE_FUZZ_COMMON_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/err.h"

static char fz_dir[256];

static inline void fz_cleanup(void)
{
    if (!fz_dir[0])
        return;
    DIR *d = opendir(fz_dir); /* flat: the harnesses create plain files only */
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(fz_dir);
    fz_dir[0] = '\0';
}

/* Creates the temporary directory once (on /dev/shm when it exists: faster). */
static inline const char *fz_tmpdir(void)
{
    if (fz_dir[0])
        return fz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/ftune-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    setenv("FTUNE_MAX_ALLOC_MB", "256", 0);
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
    atexit(fz_cleanup);
    return fz_dir;
}

/* path = <tmpdir>/<name> */
static inline void fz_path(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", fz_tmpdir(), name);
}

/* Writes data to <tmpdir>/<name>; the full path goes to path. */
static inline void fz_write(char *path, size_t len, const char *name, const uint8_t *data,
                            size_t size)
{
    fz_path(path, len, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Every error message must be a terminated string of the documented size. */
static inline void fz_check_err(const ft_err *err, int rc)
{
    if (rc != err->code || strnlen(err->msg, sizeof err->msg) >= sizeof err->msg)
        abort();
    if (rc != FT_OK && rc != FT_EINPUT && rc != FT_ERUNTIME)
        abort();
    if (rc != FT_OK && !err->msg[0])
        abort(); /* a failure always says why */
}

#endif
