#include "prefetch.h"

#include <stdlib.h>
#include <string.h>

#include "progress.h"

enum { PF_FREE = 0, PF_QUEUED, PF_READING, PF_READY, PF_INUSE };

/* Fills b (ids and n already set) from the current source. Called without
 * the lock: the slot belongs to the reader while it is PF_READING. */
static void read_batch(ft_prefetch *p, ft_batch *b)
{
    ft_err_clear(&b->err);
    b->has_len = p->mem_len != NULL || (!p->mem_x && p->d->lengths != NULL);
    b->has_plen = 0;
    if (b->n <= 0)
        return;
    if (p->mem_len) /* lengths by sample index, whatever the rows' source */
        for (int i = 0; i < b->n; i++)
            b->len[i] = b->ids[i] < p->mem_n ? p->mem_len[b->ids[i]] : 0;
    if (p->mem_x) {
        const size_t f = p->sample_floats;
        for (int i = 0; i < b->n; i++) {
            memcpy(b->x + (size_t)i * f, p->mem_x + b->ids[i] * f, f * sizeof(float));
            b->y[i] = p->mem_y[b->ids[i]];
        }
        return;
    }
    int has;
    if (!ft_dataset_read_len(p->d, b->ids, b->n, b->x, b->y, p->mem_len ? NULL : b->len, &has,
                             &b->err))
        b->has_plen = ft_dataset_prompts(p->d, b->ids, b->n, b->plen);
}

static void *reader(void *arg)
{
    ft_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int k = -1;
        while (!p->stop) {
            for (int j = 0; j < 2 && k < 0; j++)
                if (p->state[j] == PF_QUEUED)
                    k = j;
            if (k >= 0)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->stop)
            break;
        p->state[k] = PF_READING;
        pthread_mutex_unlock(&p->mu);
        double t0 = ft_now();
        read_batch(p, &p->slot[k]);
        double dt = ft_now() - t0;
        pthread_mutex_lock(&p->mu);
        p->read_seconds += dt;
        p->state[k] = PF_READY;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int ft_prefetch_init(ft_prefetch *p, ft_dataset *d, int max_rows, size_t max_floats, int threaded,
                     ft_err *err)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->d = d;
    p->sample_floats = d->sample_floats;
    p->max_rows = max_rows > 0 ? max_rows : 1;
    p->max_floats = max_floats > d->sample_floats ? max_floats : d->sample_floats;
    size_t rows = (size_t)p->max_rows;
    for (int k = 0; k < 2; k++) {
        ft_batch *b = &p->slot[k];
        b->x = ft_alloc_floats(rows * p->max_floats, err);
        b->y = ft_calloc(rows, sizeof *b->y, err);
        b->ids = ft_calloc(rows, sizeof *b->ids, err);
        b->len = ft_calloc(rows, sizeof *b->len, err);
        b->plen = ft_calloc(rows, sizeof *b->plen, err);
        if (!b->x || !b->y || !b->ids || !b->len || !b->plen)
            return err->code;
        b->epoch = b->pos = UINT64_MAX;
    }
    if (threaded && pthread_create(&p->thread, NULL, reader, p) == 0)
        p->threaded = 1;
    return FT_OK;
}

/* With the lock held: waits until nothing is being read and drops queued
 * reads. */
static void quiesce_locked(ft_prefetch *p)
{
    for (int k = 0; k < 2; k++)
        if (p->state[k] == PF_QUEUED)
            p->state[k] = PF_FREE;
    while (p->state[0] == PF_READING || p->state[1] == PF_READING)
        pthread_cond_wait(&p->cv, &p->mu);
}

void ft_prefetch_idle(ft_prefetch *p)
{
    if (!p->slot[0].x)
        return;
    pthread_mutex_lock(&p->mu);
    quiesce_locked(p);
    pthread_mutex_unlock(&p->mu);
}

void ft_prefetch_use_memory(ft_prefetch *p, const float *x, const int *y, const int *len,
                            uint64_t n, size_t sample_floats)
{
    pthread_mutex_lock(&p->mu);
    quiesce_locked(p);
    for (int k = 0; k < 2; k++) /* batches read from the old source are stale */
        if (p->state[k] == PF_READY)
            p->state[k] = PF_FREE;
    p->mem_x = x;
    p->mem_y = y;
    p->mem_len = len;
    p->mem_n = n;
    p->sample_floats = sample_floats;
    pthread_mutex_unlock(&p->mu);
}

void ft_prefetch_use_dataset(ft_prefetch *p, ft_dataset *d, const int *len, uint64_t n)
{
    pthread_mutex_lock(&p->mu);
    quiesce_locked(p);
    for (int k = 0; k < 2; k++)
        if (p->state[k] == PF_READY)
            p->state[k] = PF_FREE;
    p->d = d;
    p->mem_x = NULL;
    p->mem_y = NULL;
    p->mem_len = len;
    p->mem_n = n;
    p->sample_floats = d->sample_floats;
    pthread_mutex_unlock(&p->mu);
}

static int find_slot(const ft_prefetch *p, uint64_t epoch, uint64_t pos, int n)
{
    for (int k = 0; k < 2; k++)
        if (p->state[k] != PF_FREE && p->state[k] != PF_INUSE && p->slot[k].epoch == epoch &&
            p->slot[k].pos == pos && p->slot[k].n == n)
            return k;
    return -1;
}

static void fill_request(ft_batch *b, uint64_t epoch, uint64_t pos, const uint64_t *ids, int n)
{
    b->epoch = epoch;
    b->pos = pos;
    b->n = n;
    memcpy(b->ids, ids, (size_t)n * sizeof *ids);
}

void ft_prefetch_post(ft_prefetch *p, uint64_t epoch, uint64_t pos, const uint64_t *ids, int n)
{
    if (!p->threaded || n < 0 || n > p->max_rows)
        return;
    pthread_mutex_lock(&p->mu);
    if (find_slot(p, epoch, pos, n) < 0) {
        for (int k = 0; k < 2; k++)
            if (p->state[k] == PF_FREE || p->state[k] == PF_READY) {
                fill_request(&p->slot[k], epoch, pos, ids, n);
                p->state[k] = PF_QUEUED;
                pthread_cond_broadcast(&p->cv);
                break;
            }
    }
    pthread_mutex_unlock(&p->mu);
}

ft_batch *ft_prefetch_get(ft_prefetch *p, uint64_t epoch, uint64_t pos, const uint64_t *ids, int n)
{
    double t0 = ft_now();
    pthread_mutex_lock(&p->mu);
    for (int k = 0; k < 2; k++) /* the caller is done with the previous batch */
        if (p->state[k] == PF_INUSE)
            p->state[k] = PF_FREE;
    int k = find_slot(p, epoch, pos, n);
    if (k < 0) { /* not posted: read it now, on this thread */
        quiesce_locked(p);
        k = 0;
        ft_batch *b = &p->slot[k];
        if (n > p->max_rows) {
            ft_fail(&b->err, FT_ERUNTIME, "batch of %d rows exceeds the %d prefetch rows", n,
                    p->max_rows);
            p->state[k] = PF_INUSE;
            pthread_mutex_unlock(&p->mu);
            return b;
        }
        fill_request(b, epoch, pos, ids, n);
        p->state[k] = PF_READING;
        pthread_mutex_unlock(&p->mu);
        double r0 = ft_now();
        read_batch(p, b);
        double dt = ft_now() - r0;
        pthread_mutex_lock(&p->mu);
        p->read_seconds += dt;
        p->state[k] = PF_READY;
        pthread_cond_broadcast(&p->cv);
    }
    while (p->state[k] != PF_READY)
        pthread_cond_wait(&p->cv, &p->mu);
    p->state[k] = PF_INUSE;
    p->wait_seconds += ft_now() - t0;
    pthread_mutex_unlock(&p->mu);
    return &p->slot[k];
}

size_t ft_prefetch_bytes(const ft_prefetch *p)
{
    size_t rows = (size_t)p->max_rows;
    return 2 * rows * (p->max_floats * sizeof(float) + 3 * sizeof(int) + sizeof(uint64_t));
}

void ft_prefetch_free(ft_prefetch *p)
{
    if (!p->max_rows) /* never initialised */
        return;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        p->threaded = 0;
    }
    for (int k = 0; k < 2; k++) {
        ft_free_floats(p->slot[k].x);
        free(p->slot[k].y);
        free(p->slot[k].ids);
        free(p->slot[k].len);
        free(p->slot[k].plen);
        p->slot[k].x = NULL;
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    p->max_rows = 0;
}
