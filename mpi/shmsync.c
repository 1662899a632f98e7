#include "shmsync.h"

#include <stdlib.h>
#include <string.h>

int ft_shmsync_applies(const ft_mpi *w)
{
    return w->size > 1 && w->local_size == w->size;
}

int ft_shmsync_init(ft_shmsync *s, const ft_mpi *w, float *grads, size_t n, ft_err *err)
{
    memset(s, 0, sizeof *s);
    s->node = MPI_COMM_NULL;
    s->win = MPI_WIN_NULL;
    s->grads = grads;
    s->n = n;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &s->node);
    MPI_Comm_rank(s->node, &s->rank);
    MPI_Comm_size(s->node, &s->size);
    float *base = NULL;
    MPI_Aint bytes = (MPI_Aint)(2 * (n ? n : 1) * sizeof(float));
    int rc =
        MPI_Win_allocate_shared(bytes, (int)sizeof(float), MPI_INFO_NULL, s->node, &base, &s->win);
    s->buf = calloc((size_t)(2 * s->size), sizeof *s->buf);
    int ok = rc == MPI_SUCCESS && s->buf, all;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        ft_shmsync_free(s);
        return ft_fail(err, FT_ERUNTIME,
                       "cannot allocate %zu MiB of shared memory for the gradient all-reduce",
                       (size_t)bytes >> 20);
    }
    for (int q = 0; q < s->size; q++) {
        MPI_Aint sz;
        int disp;
        float *p;
        MPI_Win_shared_query(s->win, q, &sz, &disp, &p);
        s->buf[2 * q] = p;
        s->buf[2 * q + 1] = p + (n ? n : 1);
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win);
    s->locked = 1;
    return FT_OK;
}

void ft_shmsync_begin(ft_shmsync *s)
{
    s->active = 1;
    s->copied = 0;
}

static void copy_in(ft_shmsync *s, size_t upto)
{
    if (upto > s->copied) {
        memcpy(s->buf[2 * s->rank + s->cur] + s->copied, s->grads + s->copied,
               (upto - s->copied) * sizeof(float));
        s->copied = upto;
    }
}

void ft_shmsync_ready(const ft_layer *l, size_t lo, size_t hi, void *user)
{
    (void)l;
    (void)lo;
    ft_shmsync *s = user;
    if (s->active) /* the arena is final below hi (laid out last layer first) */
        copy_in(s, hi);
}

/* dst[i] = src[0][i] + src[1][i] + ... in rank order. */
static void sum_slice(float *dst, float *const *src, int k, int P, size_t lo, size_t hi)
{
    const float *a = src[k];
    if (P == 2) {
        const float *b = src[2 + k];
        for (size_t i = lo; i < hi; i++)
            dst[i] = a[i] + b[i];
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        float t = a[i];
        for (int q = 1; q < P; q++)
            t += src[2 * q + k][i];
        dst[i] = t;
    }
}

void ft_shmsync_finish(ft_shmsync *s)
{
    if (s->win == MPI_WIN_NULL)
        return;
    if (!s->active)
        s->copied = 0;
    copy_in(s, s->n);
    double t0 = MPI_Wtime();
    const int P = s->size, k = s->cur;
    MPI_Win_sync(s->win);
    MPI_Barrier(s->node);
    MPI_Win_sync(s->win);
    size_t lo = s->n * (size_t)s->rank / (size_t)P, hi = s->n * (size_t)(s->rank + 1) / (size_t)P;
    sum_slice(s->buf[2 * s->rank + k], s->buf, k, P, lo, hi);
    MPI_Win_sync(s->win);
    MPI_Barrier(s->node);
    MPI_Win_sync(s->win);
    for (int q = 0; q < P; q++) {
        size_t a = s->n * (size_t)q / (size_t)P, b = s->n * (size_t)(q + 1) / (size_t)P;
        memcpy(s->grads + a, s->buf[2 * q + k] + a, (b - a) * sizeof(float));
    }
    s->wait_seconds += MPI_Wtime() - t0;
    s->cur ^= 1;
    s->active = 0;
    s->copied = 0;
}

size_t ft_shmsync_bytes(const ft_shmsync *s)
{
    return s->win == MPI_WIN_NULL ? 0 : 2 * s->n * sizeof(float);
}

void ft_shmsync_free(ft_shmsync *s)
{
    if (s->win != MPI_WIN_NULL) {
        if (s->locked)
            MPI_Win_unlock_all(s->win);
        MPI_Win_free(&s->win);
    }
    s->locked = 0;
    if (s->node != MPI_COMM_NULL)
        MPI_Comm_free(&s->node);
    free(s->buf);
    s->buf = NULL;
}
