#include "ftune/parallel.h"

#include <pthread.h>

#define MAX_THREADS 64

static int n_threads = 1;

void ft_set_threads(int n)
{
    n_threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

int ft_get_threads(void)
{
    return n_threads;
}

typedef struct range_job {
    ft_range_fn fn;
    void *ctx;
    size_t lo, hi;
} range_job;

static void *run_job(void *arg)
{
    range_job *j = arg;
    j->fn(j->lo, j->hi, j->ctx);
    return NULL;
}

void ft_parallel_range(size_t n, size_t min_chunk, ft_range_fn fn, void *ctx)
{
    int t = n_threads;
    if (min_chunk < 1)
        min_chunk = 1;
    if ((size_t)t > n / min_chunk)
        t = (int)(n / min_chunk);
    if (t < 2) {
        fn(0, n, ctx);
        return;
    }
    range_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    size_t per = (n / (size_t)t + 15) & ~(size_t)15;
    t = (int)((n + per - 1) / per); /* rounding up per may leave the last threads nothing */
    if (t < 2) {
        fn(0, n, ctx);
        return;
    }
    for (int k = 0; k < t; k++) {
        size_t lo = per * (size_t)k, hi = lo + per;
        jobs[k] = (range_job){fn, ctx, lo, k == t - 1 || hi > n ? n : hi};
    }
    /* thread 0 is the caller; a thread that cannot start runs its range here instead */
    for (int k = 1; k < t; k++)
        started[k] = pthread_create(&tid[k], NULL, run_job, &jobs[k]) == 0;
    run_job(&jobs[0]);
    for (int k = 1; k < t; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_job(&jobs[k]);
    }
}
