#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double ft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ft_progress_init(ft_progress *p, int mode, long total_steps)
{
    p->bar = mode < 0 ? isatty(STDERR_FILENO) : mode;
    p->drawn = 0;
    p->t_start = ft_now();
    p->t_draw = 0;
    p->total_steps = total_steps;
}

static void clear_bar(ft_progress *p)
{
    if (p->bar && p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = 0;
    }
}

void ft_progress_update(ft_progress *p, int epoch, int epochs, long step, double loss,
                        double samples_per_s)
{
    if (!p->bar)
        return;
    double now = ft_now();
    if (now - p->t_draw < 0.1 && step < p->total_steps)
        return;
    p->t_draw = now;
    double frac = p->total_steps > 0 ? (double)step / (double)p->total_steps : 0;
    if (frac > 1)
        frac = 1;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    double elapsed = now - p->t_start;
    long eta = frac > 0 ? (long)(elapsed / frac - elapsed) : 0;
    fprintf(stderr,
            "\r\033[Kepoch %d/%d [%s] %3.0f%% step %ld/%ld loss %.4f %.0f samples/s ETA %ld:%02ld",
            epoch + 1, epochs, bar, 100 * frac, step, p->total_steps, loss, samples_per_s, eta / 60,
            eta % 60);
    fflush(stderr);
    p->drawn = 1;
}

void ft_progress_print(ft_progress *p, const char *fmt, ...)
{
    clear_bar(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void ft_progress_done(ft_progress *p)
{
    clear_bar(p);
}
