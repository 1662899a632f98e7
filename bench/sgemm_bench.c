/* SGEMM microbenchmark on W2's shapes: the exact cblas_sgemm calls of one W2
 * training step (src/layers/dense.c) for a per-rank batch of M rows:
 *   forward  fc1 M x 2048 x 784, fc2 and fc3 M x 2048 x 2048, fc4 M x 10 x 2048
 *   backward fc4 dW 10 x 2048 x M and dx M x 2048 x 10, fc3 dW 2048 x 2048 x M
 * (fc3 is the first trainable layer: no input gradient). 28.46 MFLOP per row.
 * The "SGEMM rate on the same shapes" that ftune's W2 step is measured against.
 *
 *   sgemm_bench M SECONDS [square N]
 * prints one JSON line: {"m":..,"threads":..,"gflops":..,"step_ms":..}. The
 * threads are OpenBLAS's (OPENBLAS_NUM_THREADS). Two copies started at once
 * (one per core) give the 2-rank figure. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *buf(size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        perror("aligned_alloc");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* y[M, out] = x[M, in] W[out, in]^T, as dense_forward (beta 1 after the bias) */
static void fwd(int M, int in, int out, const float *x, const float *w, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, out, in, 1.0f, x, in, w, in, 1.0f, y,
                out);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s M SECONDS [square N]\n", argv[0]);
        return 2;
    }
    int M = atoi(argv[1]);
    double secs = atof(argv[2]);
    int threads = openblas_get_num_threads();
    if (argc >= 5 && strcmp(argv[3], "square") == 0) {
        int n = atoi(argv[4]);
        float *a = buf((size_t)n * n), *b = buf((size_t)n * n), *c = buf((size_t)n * n);
        int reps = 0;
        double t0 = now(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                        c, n);
            reps++;
        } while ((t = now() - t0) < secs);
        printf("{\"square\":%d,\"threads\":%d,\"gflops\":%.2f,\"core\":\"%s\"}\n", n, threads,
               2.0 * n * n * (double)n * reps / t / 1e9, openblas_get_corename());
        return 0;
    }
    const int NH = 2048, NI = 784, NC = 10;
    float *x = buf((size_t)M * NI), *h1 = buf((size_t)M * NH), *h2 = buf((size_t)M * NH),
          *h3 = buf((size_t)M * NH), *lo = buf((size_t)M * NC), *dlo = buf((size_t)M * NC),
          *dh3 = buf((size_t)M * NH);
    float *w1 = buf((size_t)NH * NI), *w2 = buf((size_t)NH * NH), *w3 = buf((size_t)NH * NH),
          *w4 = buf((size_t)NC * NH), *g3 = buf((size_t)NH * NH), *g4 = buf((size_t)NC * NH);
    double flop = 2.0 * M * ((double)NI * NH + 2.0 * NH * NH + (double)NH * NC) /* forward */
                  + 2.0 * M * ((double)NC * NH * 2 + (double)NH * NH);          /* backward */
    int reps = 0;
    double t0 = 0, t = 0;
    for (int warm = 1; warm >= 0; warm--) {
        reps = 0;
        t0 = now();
        do {
            fwd(M, NI, NH, x, w1, h1);
            fwd(M, NH, NH, h1, w2, h2);
            fwd(M, NH, NH, h2, w3, h3);
            fwd(M, NH, NC, h3, w4, lo);
            /* dense_backward of fc4: dW += dy^T x, dx = dy W */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NC, NH, M, 1.0f, dlo, NC, h3, NH,
                        1.0f, g4, NH);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, NH, NC, 1.0f, dlo, NC, w4, NH,
                        0.0f, dh3, NH);
            /* fc3: dW only */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NH, NH, M, 1.0f, dh3, NH, h2, NH,
                        1.0f, g3, NH);
            reps++;
        } while ((t = now() - t0) < (warm ? 0.3 : secs));
    }
    printf("{\"m\":%d,\"threads\":%d,\"gflops\":%.2f,\"step_ms\":%.3f,\"mflop_per_row\":%.3f,"
           "\"core\":\"%s\"}\n",
           M, threads, flop * reps / t / 1e9, 1e3 * t / reps, flop / M / 1e6,
           openblas_get_corename());
    return 0;
}
