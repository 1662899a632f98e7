#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *dir, ft_err *err)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return ft_fail(err, FT_EINPUT, "run directory path is too long: %s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ft_fail(err, FT_EINPUT, "cannot create run directory %s: %s", buf,
                           strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ft_fail(err, FT_EINPUT, "cannot create run directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return ft_fail(err, FT_EINPUT, "run directory %s exists but is not a directory", buf);
    return FT_OK;
}

int ft_rundir_prepare(const char *dir, ft_err *err)
{
    if (mkdir_p(dir, err))
        return err->code;
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    if (mkdir_p(sub, err))
        return err->code;
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/.ftune-write-test.%ld", sub, (long)getpid());
    FILE *f = fopen(probe, "w");
    if (!f)
        return ft_fail(err, FT_EINPUT, "run directory %s is not writable: %s", dir,
                       strerror(errno));
    int bad = fputs("ok\n", f) < 0;
    bad |= fclose(f) != 0;
    unlink(probe);
    if (bad)
        return ft_fail(err, FT_EINPUT, "run directory %s is not writable: %s", dir,
                       strerror(errno));
    return FT_OK;
}

void ft_rundir_ckpt_path(const char *dir, long step, char *out, size_t len)
{
    snprintf(out, len, "%s/checkpoints/ckpt-%08ld.h5", dir, step);
}

static int parse_step(const char *name, long *step)
{
    int used = 0;
    if (sscanf(name, "ckpt-%ld.h5%n", step, &used) != 1)
        return 0;
    return name[used] == '\0';
}

int ft_rundir_list_ckpts(const char *dir, char (*paths)[1024], int max)
{
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    DIR *d = opendir(sub);
    if (!d)
        return 0;
    long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long s;
        if (parse_step(e->d_name, &s))
            steps[n++] = s;
    }
    closedir(d);
    /* newest first */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            long t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    int out = n < max ? n : max;
    for (int i = 0; i < out; i++)
        ft_rundir_ckpt_path(dir, steps[i], paths[i], sizeof paths[i]);
    return out;
}

void ft_rundir_prune(const char *dir, int keep)
{
    static char paths[256][1024];
    int n = ft_rundir_list_ckpts(dir, paths, 256);
    for (int i = keep > 0 ? keep : 1; i < n; i++)
        unlink(paths[i]);
}
