/* LoRA adapter math shared by dense and transformer_block (lora.h). */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "seqcommon.h"

int ft_lora_create(const ft_layer *l, const ft_kvlist *kv, ft_lora *lo, ft_err *err)
{
    memset(lo, 0, sizeof *lo);
    long rank = ft_kv_int(kv, "lora_rank", 0);
    double alpha = ft_kv_float(kv, "lora_alpha", (double)rank);
    double drop = ft_kv_float(kv, "lora_dropout", 0.0);
    if (rank < 0 || rank > 65536)
        return ft_fail(err, FT_EINPUT, "layer '%s': lora_rank must be in [0, 65536], got %ld",
                       l->name, rank);
    if (rank == 0)
        return FT_OK;
    if (!(alpha > 0.0) || !isfinite(alpha))
        return ft_fail(err, FT_EINPUT, "layer '%s': lora_alpha must be > 0, got %g", l->name,
                       alpha);
    if (!(drop >= 0.0 && drop < 1.0))
        return ft_fail(err, FT_EINPUT, "layer '%s': lora_dropout must be in [0, 1), got %g",
                       l->name, drop);
    lo->rank = (int)rank;
    lo->alpha = (float)alpha;
    lo->dropout = (float)drop;
    lo->scale = (float)(alpha / (double)rank);
    snprintf(lo->targets, sizeof lo->targets, "%s", ft_kv_string(kv, "lora_targets", ""));
    return FT_OK;
}

int ft_lora_targets(const ft_lora *lo, const char *weight)
{
    if (lo->rank <= 0)
        return 0;
    if (!lo->targets[0])
        return 1;
    size_t n = strlen(weight);
    for (const char *s = lo->targets; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, weight, n) == 0)
            return 1;
        s += len + (e != NULL);
    }
    return 0;
}

int ft_lora_add_params(ft_layer *l, const ft_lora *lo, const char *weight, int in, int out)
{
    char name[32];
    int idx = l->nparams;
    const ft_shape sa = {2, {lo->rank, in, 0, 0}}, sb = {2, {out, lo->rank, 0, 0}};
    snprintf(name, sizeof name, "%s_lora_A", weight);
    ft_layer_add_param(l, name, &sa, 1, FT_INIT_UNIFORM, (float)(1.0 / sqrt((double)in)));
    snprintf(name, sizeof name, "%s_lora_B", weight);
    ft_layer_add_param(l, name, &sb, 1, FT_INIT_ZERO, 0.0f);
    return idx;
}

static int lora_drop(const ft_ctx *c, const ft_lora *lo)
{
    return c->training && lo->dropout > 0.0f;
}

size_t ft_lora_ws_floats(const ft_lora *lo, size_t rows, int in)
{
    return lo->rank > 0 ? rows * ((size_t)in + 2 * (size_t)lo->rank) : 0;
}

/* out = drop(in) for samples [i0, i0 + rows/T), or the mask applied to in. */
static void drop_rows(const ft_layer *l, const ft_ctx *c, const ft_lora *lo, uint64_t site, int i0,
                      int T, size_t rows, int in, const float *src, float *out)
{
    const size_t per = (size_t)T * (size_t)in;
    for (size_t k = 0; k < rows / (size_t)T; k++) {
        ft_rng r;
        ft_seq_drop_rng(l, c, i0 + (int)k, site, &r);
        ft_seq_drop_apply(&r, lo->dropout, src + k * per, out + k * per, per);
    }
}

void ft_lora_fwd(const ft_layer *l, const ft_ctx *c, const ft_lora *lo, uint64_t site, int i0,
                 int T, size_t rows, int in, int out, const float *x, const ft_param *A,
                 const ft_param *B, float *y, float *ws)
{
    const int r = lo->rank;
    if (rows == 0 || r <= 0)
        return;
    const float *xd = x;
    float *u = ws + rows * (size_t)in;
    if (lora_drop(c, lo)) {
        drop_rows(l, c, lo, site, i0, T, rows, in, x, ws);
        xd = ws;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, r, in, 1.0f, xd, in, A->data,
                in, 0.0f, u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, r, lo->scale, u, r,
                B->data, r, 1.0f, y, out);
}

void ft_lora_bwd(const ft_layer *l, const ft_ctx *c, const ft_lora *lo, uint64_t site, int T,
                 size_t rows, int in, int out, const float *x, const float *dy, const ft_param *A,
                 const ft_param *B, float *dx, float *ws)
{
    const int r = lo->rank, drop = lora_drop(c, lo);
    if (rows == 0 || r <= 0 || (!A->grad && !B->grad && !dx))
        return;
    float *xd = ws, *u = ws + rows * (size_t)in, *du = u + rows * (size_t)r;
    const float *xin = x;
    if (drop) {
        drop_rows(l, c, lo, site, 0, T, rows, in, x, xd);
        xin = xd;
    }
    if (B->grad) { /* dB += scale dy^T u, u = drop(x) A^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, r, in, 1.0f, xin, in,
                    A->data, in, 0.0f, u, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, (int)rows, lo->scale, dy, out,
                    u, r, 1.0f, B->grad, r);
    }
    /* du = scale dy B */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, r, out, lo->scale, dy, out,
                B->data, r, 0.0f, du, r);
    if (A->grad) /* dA += du^T drop(x) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, (int)rows, 1.0f, du, r, xin, in,
                    1.0f, A->grad, in);
    if (!dx)
        return;
    if (!drop) { /* dx += du A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, in, r, 1.0f, du, r,
                    A->data, in, 1.0f, dx, in);
        return;
    }
    /* through the same mask: dx += drop(du A) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, in, r, 1.0f, du, r, A->data,
                in, 0.0f, xd, in);
    drop_rows(l, c, lo, site, 0, T, rows, in, xd, xd);
    for (size_t k = 0; k < rows * (size_t)in; k++)
        dx[k] += xd[k];
}
