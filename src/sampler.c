/* Epoch order and rank split: pure functions of their arguments, so every
 * rank computes the same global order without communicating. */
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
