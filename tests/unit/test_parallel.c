/* ft_parallel_range (include/ftune/parallel.h): every index exactly once, in ranges on
 * 16-float boundaries, for any thread count; and the loops that use it (GELU, AdamW) give
 * bit-identical results on 1 and 3 threads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/optim.h"
#include "ftune/parallel.h"
#include "ftune/rng.h"

#include "../../src/layers/seqcommon.h"
#include "testutil.h"

static void mark(size_t lo, size_t hi, void *ctx)
{
    unsigned char *seen = ctx;
    for (size_t i = lo; i < hi; i++)
        seen[i]++;
}

static size_t first_lo;
static void lows(size_t lo, size_t hi, void *ctx)
{
    (void)hi;
    (void)ctx;
    if (lo % 16 != 0)
        first_lo = lo; /* a range that does not start on a 16-float boundary */
}

static void test_cover(void)
{
    enum { N = 5000 };
    static unsigned char seen[N];
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1023, 4096, 4999};
    int ok = 1;
    for (int t = 1; t <= 5; t++) {
        ft_set_threads(t);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            for (size_t chunk = 1; chunk <= 64; chunk *= 4) {
                memset(seen, 0, sizeof seen);
                ft_parallel_range(sizes[k], chunk, mark, seen);
                for (size_t i = 0; i < sizes[k]; i++)
                    ok &= seen[i] == 1;
                first_lo = 0;
                ft_parallel_range(sizes[k], chunk, lows, NULL);
                ok &= first_lo == 0;
            }
    }
    CHECK(ok);
    ft_set_threads(0);
    CHECK(ft_get_threads() == 1);
    ft_set_threads(1000);
    CHECK(ft_get_threads() == 64);
    ft_set_threads(1);
}

static void fill(float *v, size_t n, uint64_t seed)
{
    ft_rng r;
    ft_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * ft_rng_normal(&r);
}

static void test_same_numbers(void)
{
    const size_t n = 300001; /* several chunks of both loops, and a ragged end */
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    CHECK(x && dy && a && b);
    if (!x || !dy || !a || !b)
        return;
    fill(x, n, 1);
    fill(dy, n, 2);
    for (int approx = 0; approx <= 1; approx++) {
        ft_set_threads(1);
        ft_seq_gelu_fwd(n, approx, x, a);
        ft_set_threads(3);
        ft_seq_gelu_fwd(n, approx, x, b);
        CHECK(memcmp(a, b, n * sizeof *a) == 0);
        ft_set_threads(1);
        ft_seq_gelu_bwd(n, approx, x, dy, a);
        ft_set_threads(3);
        ft_seq_gelu_bwd(n, approx, x, dy, b);
        CHECK(memcmp(a, b, n * sizeof *a) == 0);
    }
    ft_set_threads(1);
    free(x);
    free(dy);
    free(a);
    free(b);
}

int main(void)
{
    test_cover();
    test_same_numbers();
    return tu_done("test_parallel");
}
