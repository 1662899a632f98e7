/* Shared numerics of the sequence layers (see seqcommon.h). */
#include "seqcommon.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ftune/parallel.h"

int ft_seq_length(const ft_ctx *c, int i, int T)
{
    if (!c->lengths)
        return T;
    int len = c->lengths[i];
    return len < 0 ? 0 : len > T ? T : len;
}

void ft_seq_linear_fwd(size_t rows, int in, int out, const float *x, const float *w, const float *b,
                       float *y)
{
    if (rows == 0)
        return;
    float beta = 0.0f;
    if (b) {
        /* start from the bias rows so sgemm adds into them */
        for (size_t i = 0; i < rows; i++)
            memcpy(y + i * (size_t)out, b, sizeof(float) * (size_t)out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.0f, x, in, w, in,
                beta, y, out);
}

void ft_seq_linear_bwd(size_t rows, int in, int out, const float *x, const float *w,
                       const float *dy, float *dw, float *db, float *dx, int accumulate)
{
    if (rows == 0)
        return;
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)rows, 1.0f, dy, out, x,
                    in, 1.0f, dw, in);
    if (db) {
        for (size_t i = 0; i < rows; i++) {
            const float *row = dy + i * (size_t)out;
            for (int o = 0; o < out; o++)
                db[o] += row[o];
        }
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, in, out, 1.0f, dy, out, w,
                    in, accumulate ? 1.0f : 0.0f, dx, in);
}

void ft_seq_ln_fwd(size_t rows, int D, float eps, const float *x, const float *g, const float *b,
                   float *y, float *mean, float *rstd)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)D;
        float *yr = y ? y + r * (size_t)D : NULL;
        float s = 0.0f;
        for (int j = 0; j < D; j++)
            s += xr[j];
        const float mu = s / (float)D;
        float v = 0.0f;
        for (int j = 0; j < D; j++) {
            float d = xr[j] - mu;
            v += d * d;
        }
        const float rs = 1.0f / sqrtf(v / (float)D + eps);
        if (y)
            for (int j = 0; j < D; j++)
                yr[j] = (xr[j] - mu) * rs * g[j] + b[j];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

void ft_seq_ln_bwd(size_t rows, int D, const float *x, const float *mean, const float *rstd,
                   const float *g, const float *dy, float *dg, float *db, float *dx, int accumulate)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)D;
        const float *dyr = dy + r * (size_t)D;
        const float mu = mean[r], rs = rstd[r];
        if (dg || db) {
            for (int j = 0; j < D; j++) {
                if (dg)
                    dg[j] += dyr[j] * (xr[j] - mu) * rs;
                if (db)
                    db[j] += dyr[j];
            }
        }
        if (!dx)
            continue;
        /* dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
        float s1 = 0.0f, s2 = 0.0f;
        for (int j = 0; j < D; j++) {
            float dxh = dyr[j] * g[j];
            s1 += dxh;
            s2 += dxh * (xr[j] - mu) * rs;
        }
        s1 /= (float)D;
        s2 /= (float)D;
        float *dxr = dx + r * (size_t)D;
        for (int j = 0; j < D; j++) {
            float v = rs * (dyr[j] * g[j] - s1 - (xr[j] - mu) * rs * s2);
            dxr[j] = accumulate ? dxr[j] + v : v;
        }
    }
}

#define SEQ_RSQRT2 0.70710678118654752f   /* 1/sqrt(2) */
#define SEQ_RSQRT2PI 0.39894228040143268f /* 1/sqrt(2*pi) */
#define SEQ_SQRT2OPI 0.79788456080286536f /* sqrt(2/pi) */
#define SEQ_GELU_COEF 0.044715f

/* e^x for x <= 0 (x below -87 gives e^-87; NaN gives e^-87 too), within 2
 * ulp of expf: Cephes' expf polynomial after the reduction x = n ln2 + r,
 * |r| <= ln2 / 2. Plain arithmetic and a single select, so that the GELU
 * loops below vectorise (libm's tanhf is a call per element: it took a fifth
 * of a GPT-2 training step). */
static inline float seq_exp_neg(float x)
{
    const float rnd = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x > -87.0f ? x : -87.0f;   /* keeps n a small integer */
    const float n = (x * 1.44269504f + rnd) - rnd;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23); /* 2^n, n in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The tanh GELU's pieces at v: t = tanh(y), y = sqrt(2/pi) (v + 0.044715 v^3),
 * as 1 + t and 1 - t^2, from e = e^(-2|y|) and 1 - |t| = 2e / (1 + e): 1 - t^2
 * loses no digits to cancellation, 1 + t is as exact as 1 + tanhf(y)
 * (absolute error below 1e-7). */
static inline void seq_gelu_tanh_parts(float v, float *one_plus_t, float *one_minus_t2)
{
    const float y = SEQ_SQRT2OPI * (v + SEQ_GELU_COEF * v * v * v);
    const float e = seq_exp_neg(-2.0f * fabsf(y));
    const float q = 2.0f * e / (1.0f + e);       /* 1 - |t| */
    *one_plus_t = 1.0f + copysignf(1.0f - q, y); /* no select: gcc vectorises this */
    *one_minus_t2 = q * (2.0f - q);
}

static void gelu_fwd_serial(size_t n, int tanh_approx, const float *x, float *y)
{
    if (tanh_approx) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i], opt, omt2;
            seq_gelu_tanh_parts(v, &opt, &omt2);
            y[i] = 0.5f * v * opt;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * SEQ_RSQRT2));
    }
}

static void gelu_bwd_serial(size_t n, int tanh_approx, const float *x, const float *dy, float *dx)
{
    if (tanh_approx) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i], opt, omt2;
            seq_gelu_tanh_parts(v, &opt, &omt2);
            float du = SEQ_SQRT2OPI * (1.0f + 3.0f * SEQ_GELU_COEF * v * v);
            dx[i] = dy[i] * (0.5f * opt + 0.5f * v * omt2 * du);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float cdf = 0.5f * (1.0f + erff(v * SEQ_RSQRT2));
            float pdf = SEQ_RSQRT2PI * expf(-0.5f * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
    }
}

typedef struct gelu_job {
    int tanh_approx;
    const float *x, *dy;
    float *out;
} gelu_job;

static void gelu_fwd_range(size_t lo, size_t hi, void *ctx)
{
    const gelu_job *j = ctx;
    gelu_fwd_serial(hi - lo, j->tanh_approx, j->x + lo, j->out + lo);
}

static void gelu_bwd_range(size_t lo, size_t hi, void *ctx)
{
    const gelu_job *j = ctx;
    gelu_bwd_serial(hi - lo, j->tanh_approx, j->x + lo, j->dy + lo, j->out + lo);
}

/* Elementwise, so split over the compute threads with the same numbers (parallel.h). */
void ft_seq_gelu_fwd(size_t n, int tanh_approx, const float *x, float *y)
{
    gelu_job j = {tanh_approx, x, NULL, y};
    ft_parallel_range(n, 1 << 15, gelu_fwd_range, &j);
}

void ft_seq_gelu_bwd(size_t n, int tanh_approx, const float *x, const float *dy, float *dx)
{
    gelu_job j = {tanh_approx, x, dy, dx};
    ft_parallel_range(n, 1 << 15, gelu_bwd_range, &j);
}

void ft_seq_drop_rng(const ft_layer *l, const ft_ctx *c, int i, uint64_t site, ft_rng *r)
{
    uint64_t sid = c->sample_ids ? c->sample_ids[i] : (uint64_t)i;
    uint64_t key = ft_key4(c->seed, FT_STREAM_DROPOUT, c->epoch, sid);
    ft_rng_seed(r, ft_hash64(key ^ l->name_hash ^ ft_hash64(site)));
}

void ft_seq_drop_apply(ft_rng *r, float rate, const float *in, float *out, size_t n)
{
    const float scale = 1.0f / (1.0f - rate);
    for (size_t j = 0; j < n; j++)
        out[j] = ft_rng_uniform(r) >= rate ? in[j] * scale : 0.0f;
}
