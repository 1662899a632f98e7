/* Counter-based randomness: every random choice is a pure function of
 * (seed, stream keys), so results never depend on the number of ranks or on
 * where a run was resumed. */
#ifndef FTUNE_RNG_H
#define FTUNE_RNG_H

#include <stdint.h>

/* Mixes a key into a 64-bit hash (splitmix64 finaliser). */
uint64_t ft_hash64(uint64_t x);
/* Combines several keys: ft_key(seed, a, b) != ft_key(seed, b, a). */
uint64_t ft_key3(uint64_t a, uint64_t b, uint64_t c);
uint64_t ft_key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

/* A small sequential generator seeded from a key (xoshiro256**). */
typedef struct ft_rng {
    uint64_t s[4];
} ft_rng;

void ft_rng_seed(ft_rng *r, uint64_t key);
uint64_t ft_rng_next(ft_rng *r);
float ft_rng_uniform(ft_rng *r);              /* [0, 1) */
float ft_rng_normal(ft_rng *r);               /* N(0, 1), Box-Muller */
uint64_t ft_rng_below(ft_rng *r, uint64_t n); /* unbiased in [0, n) */

/* Domain-separation tags for ft_key*, so streams never collide. */
enum {
    FT_STREAM_INIT = 1,    /* weight initialisation: (seed, tag, layer hash) */
    FT_STREAM_SHUFFLE = 2, /* epoch permutation: (seed, tag, epoch) */
    FT_STREAM_DROPOUT = 3, /* dropout: (seed, tag, epoch, sample, layer) */
    FT_STREAM_KSHOT = 4,   /* few-shot selection: (seed, tag, class) */
    FT_STREAM_GENERATE = 5 /* sampling in generation: (seed, tag, sequence index) */
};

/* FNV-1a of a string, for keying streams by layer name. */
uint64_t ft_hash_str(const char *s);

#endif
