/* Per-layer timing of a config's model (forward of every layer, backward of
 * the trainable ones) for a batch of n rows: where a training step's time
 * goes. A development tool (bench/run.sh does not need it):
 *   layer_bench CONFIG N [SECONDS]
 * Build: see bench/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ftune/config.h"
#include "ftune/model.h"
#include "ftune/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: robust on a shared machine */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CONFIG N [SECONDS]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    double secs = argc > 3 ? atof(argv[3]) : 0.5;
    ft_config c;
    ft_err err = {0};
    if (ft_config_load(&c, argv[1], NULL, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    ft_model m;
    if (ft_model_build(&m, &c.input, c.layers, c.nlayers, &err) || ft_model_alloc(&m, n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    ft_model_init_params(&m, 1);
    size_t in = ft_shape_count(&m.input);
    float *x = ft_alloc_floats((size_t)n * in, &err);
    float *dl = ft_alloc_floats((size_t)n * (size_t)m.classes, &err);
    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    ft_rng r;
    ft_rng_seed(&r, 3);
    for (size_t i = 0; i < (size_t)n * in; i++)
        x[i] = ft_rng_uniform(&r);
    for (size_t i = 0; i < (size_t)n * (size_t)m.classes; i++)
        dl[i] = ft_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < n; i++)
        ids[i] = (uint64_t)i;
    ft_ctx ctx = {0};
    ctx.n = n;
    ctx.training = 1;
    ctx.sample_ids = ids;
    ctx.ws = m.ws;
    /* one full pass so every buffer holds real values */
    ft_model_forward(&m, &ctx, x);
    ft_model_backward(&m, &ctx, dl);

    double total = 0;
    printf("%-10s %-10s %12s %12s\n", "layer", "kind", "fwd us/row", "bwd us/row");
    for (int i = 0; i < m.nlayers; i++) {
        ft_layer *l = &m.layers[i];
        const float *xi = i > 0 ? (m.act[i - 1] ? m.act[i - 1] : m.prefix_buf[(i - 1) & 1]) : x;
        float *y = m.act[i] ? m.act[i] : m.prefix_buf[i & 1];
        float *saved = i >= m.first_trainable ? m.saved[i] : NULL;
        if (i < m.first_trainable && xi == y) /* prefix ping-pong: never in place */
            continue;
        int reps = 0;
        double t0 = now(), t;
        do {
            l->ops->forward(l, &ctx, xi, y, saved);
            reps++;
        } while ((t = now() - t0) < secs);
        double f = 1e6 * t / reps / n, b = 0;
        if (i >= m.first_trainable) {
            const float *dy = m.dbuf[0];
            float *dx = l->need_dx ? m.dbuf[1] : NULL;
            reps = 0;
            t0 = now();
            do {
                l->ops->backward(l, &ctx, xi, y, dy, dx, saved);
                reps++;
            } while ((t = now() - t0) < secs);
            b = 1e6 * t / reps / n;
        }
        total += f + b;
        printf("%-10s %-10s %12.2f %12.2f\n", l->name, l->ops->kind, f, b);
    }
    printf("total %.2f us/row = %.0f rows/s (layers only)\n", total, 1e6 / total);
    /* whole steps as the trainer runs them (chunked frozen prefix) */
    int reps = 0;
    double t0 = now(), t;
    do {
        ft_model_forward_range(&m, &ctx, 0, m.nlayers, x);
        ft_model_backward(&m, &ctx, dl);
        reps++;
    } while ((t = now() - t0) < 2 * secs);
    printf("step (forward_range + backward): %.2f us/row = %.0f rows/s\n", 1e6 * t / reps / n,
           reps * n / t);
    reps = 0;
    t0 = now();
    do {
        ft_model_forward(&m, &ctx, x);
        ft_model_backward(&m, &ctx, dl);
        reps++;
    } while ((t = now() - t0) < 2 * secs);
    printf("step (ft_model_forward + backward): %.2f us/row = %.0f rows/s\n", 1e6 * t / reps / n,
           reps * n / t);
    ft_free_floats(x);
    ft_free_floats(dl);
    free(ids);
    ft_model_free(&m);
    ft_config_free(&c);
    return 0;
}
