/* Epoch order and rank split: pure functions of their arguments, so every
 * rank computes the same global order without communicating. */
#include <stdlib.h>

#include "ftune/data.h"
#include "ftune/rng.h"

int ft_epoch_order(uint64_t n, uint64_t seed, uint64_t epoch, int shuffle, uint64_t *out)
{
    if (n > 0 && !out)
        return FT_ERUNTIME;
    for (uint64_t i = 0; i < n; i++)
        out[i] = i;
    if (!shuffle || n < 2)
        return FT_OK;
    ft_rng r;
    ft_rng_seed(&r, ft_key3(seed, FT_STREAM_SHUFFLE, epoch));
    /* Fisher-Yates, from the back: every permutation equally likely. */
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = ft_rng_below(&r, i + 1);
        uint64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return FT_OK;
}

void ft_split(uint64_t count, int parts, int part, uint64_t *begin, uint64_t *len)
{
    if (parts < 1 || part < 0 || part >= parts) {
        *begin = 0;
        *len = 0;
        return;
    }
    uint64_t base = count / (uint64_t)parts, extra = count % (uint64_t)parts;
    uint64_t p = (uint64_t)part;
    /* The first `extra` parts take one more item each. */
    *begin = p * base + (p < extra ? p : extra);
    *len = base + (p < extra ? 1 : 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int ft_kshot_select(const int *labels, uint64_t n, int classes, int k, uint64_t seed, uint64_t *out,
                    uint64_t *nout, int *short_class, uint64_t *short_count)
{
    *nout = 0;
    if (k <= 0 || classes <= 0)
        return FT_ERUNTIME;
    uint64_t *rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows)
        return FT_ERUNTIME;
    int rc = FT_OK;
    for (int c = 0; c < classes && !rc; c++) {
        uint64_t m = 0;
        for (uint64_t i = 0; i < n; i++)
            if (labels[i] == c)
                rows[m++] = i;
        if (m < (uint64_t)k) {
            *short_class = c;
            *short_count = m;
            rc = FT_EINPUT;
            break;
        }
        /* The first k of a partial Fisher-Yates shuffle keyed by (seed, class):
         * a class's choice does not depend on the other classes' sizes. */
        ft_rng r;
        ft_rng_seed(&r, ft_key3(seed, FT_STREAM_KSHOT, (uint64_t)c));
        for (uint64_t i = 0; i < (uint64_t)k; i++) {
            uint64_t j = i + ft_rng_below(&r, m - i);
            uint64_t t = rows[i];
            rows[i] = rows[j];
            rows[j] = t;
            out[(*nout)++] = rows[i];
        }
    }
    free(rows);
    if (rc)
        return rc;
    qsort(out, *nout, sizeof *out, cmp_u64);
    return FT_OK;
}
