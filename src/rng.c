#include "ftune/rng.h"

#include <math.h>

uint64_t ft_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t ft_key3(uint64_t a, uint64_t b, uint64_t c)
{
    return ft_hash64(ft_hash64(ft_hash64(a) ^ b) ^ c);
}

uint64_t ft_key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return ft_hash64(ft_key3(a, b, c) ^ d);
}

uint64_t ft_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void ft_rng_seed(ft_rng *r, uint64_t key)
{
    /* splitmix64 expansion: never yields the all-zero state */
    uint64_t x = key;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = ft_hash64(x);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ft_rng_next(ft_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float ft_rng_uniform(ft_rng *r)
{
    /* top 24 bits: exactly representable, strictly below 1 */
    return (float)(ft_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float ft_rng_normal(ft_rng *r)
{
    double u1 = ((double)(ft_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(ft_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t ft_rng_below(ft_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = ft_rng_next(r);
    } while (x >= limit);
    return x % n;
}
