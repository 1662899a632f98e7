#include "gradsync.h"

#include <stdlib.h>

int ft_gradsync_init(ft_gradsync *g, const ft_mpi *w, float *grads, size_t n, size_t bucket_bytes,
                     ft_err *err)
{
    g->w = w;
    g->grads = grads;
    g->n = n;
    g->bucket = bucket_bytes / sizeof(float);
    if (g->bucket < 1024)
        g->bucket = 1024;
    g->cap = (int)(n / g->bucket + 2);
    g->reqs = ft_calloc((size_t)g->cap, sizeof *g->reqs, err);
    g->launched = g->ready = 0;
    g->nreq = 0;
    g->active = 0;
    g->wait_seconds = 0;
    return g->reqs ? FT_OK : err->code;
}

void ft_gradsync_begin(ft_gradsync *g)
{
    g->active = g->w->size > 1;
    g->launched = g->ready = 0;
    g->nreq = 0;
}

static void launch(ft_gradsync *g, size_t upto)
{
    while (g->launched < upto && g->nreq < g->cap) {
        size_t len = upto - g->launched;
        if (len > g->bucket)
            len = g->bucket;
        MPI_Iallreduce(MPI_IN_PLACE, g->grads + g->launched, (int)len, MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &g->reqs[g->nreq++]);
        g->launched += len;
    }
}

void ft_gradsync_ready(const ft_layer *l, size_t lo, size_t hi, void *user)
{
    (void)l;
    (void)lo;
    ft_gradsync *g = user;
    if (!g->active)
        return;
    if (hi > g->ready)
        g->ready = hi;
    /* only whole buckets now; the tail goes in finish */
    size_t whole = g->launched + (g->ready - g->launched) / g->bucket * g->bucket;
    launch(g, whole);
    if (g->nreq) {
        int done; /* lets MPI progress the buckets already in flight */
        MPI_Testall(g->nreq, g->reqs, &done, MPI_STATUSES_IGNORE);
    }
}

void ft_gradsync_finish(ft_gradsync *g)
{
    if (g->w->size <= 1)
        return;
    if (!g->active) /* no overlap: everything at once */
        g->launched = 0, g->nreq = 0;
    launch(g, g->n);
    double t0 = MPI_Wtime();
    MPI_Waitall(g->nreq, g->reqs, MPI_STATUSES_IGNORE);
    g->wait_seconds += MPI_Wtime() - t0;
    g->nreq = 0;
    g->active = 0;
}

void ft_gradsync_free(ft_gradsync *g)
{
    free(g->reqs);
    g->reqs = NULL;
}
