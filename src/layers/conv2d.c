/* 2-D convolution on NCHW samples, weight [out, in, kh, kw] as in PyTorch
 * nn.Conv2d. im2col + sgemm: samples are processed in groups whose columns
 * sit side by side in one im2col matrix, so layers with small feature maps
 * still get one large sgemm instead of many tiny ones. Forward keeps
 * nothing; backward rebuilds the im2col matrix from x. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

/* Columns (group samples x output pixels) one sgemm aims for. Measured on
 * one core: grouping up to 256 columns makes 7x7 and 8x8 maps about 10-40%
 * faster than one sample per sgemm; larger targets add workspace, not speed. */
#define CONV_TARGET_COLS 256

typedef struct conv_cfg {
    int filters, kh, kw, sh, sw, ph, pw, bias;
    /* setup: */
    int c, h, w, oh, ow;
    int group;  /* samples per sgemm */
    int direct; /* 1x1, stride 1, no padding: im2col of a sample is the sample */
} conv_cfg;

static const ft_keydef conv_keys[] = {
    {"filters", FT_KV_INT, 1, "number of output channels"},
    {"kernel", FT_KV_INT, 1, "kernel size (square)"},
    {"stride", FT_KV_INT, 0, "stride (default 1)"},
    {"padding", FT_KV_INT, 0, "zero padding on each side (default 0)"},
    {"bias", FT_KV_BOOL, 0, "add a learnable bias (default true)"},
    {NULL, 0, 0, NULL},
};

static int conv_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long filters = ft_kv_int(kv, "filters", 0);
    long kernel = ft_kv_int(kv, "kernel", 0);
    long stride = ft_kv_int(kv, "stride", 1);
    long padding = ft_kv_int(kv, "padding", 0);
    const long big = 1L << 20;
    if (filters < 1 || filters > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (conv2d): filters must be >= 1, got %ld",
                       l->name, filters);
    if (kernel < 1 || kernel > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (conv2d): kernel must be >= 1, got %ld", l->name,
                       kernel);
    if (stride < 1 || stride > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (conv2d): stride must be >= 1, got %ld", l->name,
                       stride);
    if (padding < 0 || padding > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (conv2d): padding must be >= 0, got %ld",
                       l->name, padding);
    conv_cfg *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err ? err->code : FT_ERUNTIME;
    p->filters = (int)filters;
    p->kh = p->kw = (int)kernel;
    p->sh = p->sw = (int)stride;
    p->ph = p->pw = (int)padding;
    p->bias = ft_kv_bool(kv, "bias", 1);
    l->priv = p;
    return FT_OK;
}

static int conv_setup(ft_layer *l, ft_err *err)
{
    conv_cfg *p = l->priv;
    char buf[64];
    if (l->in.rank != 3 || l->in.d[0] < 1 || l->in.d[1] < 1 || l->in.d[2] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (conv2d): input shape %s must be [channels, height, width]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    p->c = l->in.d[0];
    p->h = l->in.d[1];
    p->w = l->in.d[2];
    /* long: padding up to 2^20 must not overflow int */
    long oh = ((long)p->h + 2L * p->ph - p->kh) / p->sh + 1;
    long ow = ((long)p->w + 2L * p->pw - p->kw) / p->sw + 1;
    if ((long)p->h + 2L * p->ph < p->kh || (long)p->w + 2L * p->pw < p->kw || oh < 1 || ow < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (conv2d): input %s with kernel %d, stride %d, padding %d "
                       "gives an empty output (the padded input must be at least the kernel size)",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf), p->kh, p->sh, p->ph);
    p->oh = (int)oh;
    p->ow = (int)ow;
    size_t ohw = (size_t)p->oh * (size_t)p->ow;
    size_t fan_in = (size_t)p->c * (size_t)p->kh * (size_t)p->kw;
    /* sgemm dimensions are int */
    if (fan_in > INT_MAX || ohw > INT_MAX / 2 || (size_t)p->filters * ohw > INT_MAX)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (conv2d): input %s with kernel %d and %d filters is too large",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf), p->kh, p->filters);
    p->group = ohw >= CONV_TARGET_COLS ? 1 : (int)((CONV_TARGET_COLS + ohw - 1) / ohw);
    p->direct = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 && p->pw == 0;

    l->out = ft_shape3(p->filters, p->oh, p->ow);
    l->nparams = 0; /* setup may run again on the same layer */
    /* PyTorch's default: kaiming_uniform(a=sqrt(5)) gives U(+-1/sqrt(fan_in)) */
    float bound = (float)(1.0 / sqrt((double)fan_in));
    ft_shape ws = {4, {p->filters, p->c, p->kh, p->kw}};
    ft_layer_add_param(l, "weight", &ws, 1, FT_INIT_UNIFORM, bound);
    if (p->bias) {
        ft_shape bs = ft_shape1(p->filters);
        ft_layer_add_param(l, "bias", &bs, 1, FT_INIT_UNIFORM, bound);
    }
    return FT_OK;
}

static int conv_group(const conv_cfg *p, int n)
{
    return n < p->group ? n : p->group;
}

/* ws layout: im2col matrix [K, g*ohw], then (g > 1) an [filters, g*ohw] block
 * for the group's outputs (forward) or gathered dy (backward). */
static size_t conv_ws_floats(const ft_layer *l, int n)
{
    const conv_cfg *p = l->priv;
    if (n <= 0)
        return 0;
    size_t g = (size_t)conv_group(p, n);
    size_t cols = g * (size_t)p->oh * (size_t)p->ow;
    size_t k = (size_t)p->c * (size_t)p->kh * (size_t)p->kw;
    if (g == 1)
        return p->direct ? 0 : k * cols;
    return (k + (size_t)p->filters) * cols;
}

/* Range [lo, hi) of output positions o where o*s - pad + kk lies in [0, len). */
static void valid_range(int len, int out, int s, int pad, int kk, int *lo, int *hi)
{
    int a = pad - kk; /* need o*s >= a */
    int l0 = a <= 0 ? 0 : (a + s - 1) / s;
    int b = len + pad - kk; /* need o*s < b */
    int h0 = b <= 0 ? 0 : (b + s - 1) / s;
    if (h0 > out)
        h0 = out;
    if (l0 > h0)
        l0 = h0;
    *lo = l0;
    *hi = h0;
}

/* One sample [C, H, W] -> columns of col (row stride ld): row (c, ki, kj),
 * column oh*OW + ow. */
static void im2col(const conv_cfg *p, const float *x, float *col, size_t ld)
{
    const int oh = p->oh, ow = p->ow;
    for (int c = 0; c < p->c; c++) {
        const float *xc = x + (size_t)c * p->h * p->w;
        for (int ki = 0; ki < p->kh; ki++) {
            int ylo, yhi;
            valid_range(p->h, oh, p->sh, p->ph, ki, &ylo, &yhi);
            for (int kj = 0; kj < p->kw; kj++) {
                int xlo, xhi;
                valid_range(p->w, ow, p->sw, p->pw, kj, &xlo, &xhi);
                float *row = col + ((size_t)(c * p->kh + ki) * p->kw + kj) * ld;
                if (ylo > 0)
                    memset(row, 0, sizeof(float) * (size_t)ylo * ow);
                for (int y = ylo; y < yhi; y++) {
                    float *dst = row + (size_t)y * ow;
                    const float *src = xc + (size_t)(y * p->sh - p->ph + ki) * p->w;
                    int ix0 = xlo * p->sw - p->pw + kj;
                    for (int x0 = 0; x0 < xlo; x0++)
                        dst[x0] = 0.0f;
                    if (p->sw == 1)
                        memcpy(dst + xlo, src + ix0, sizeof(float) * (size_t)(xhi - xlo));
                    else
                        for (int xo = xlo, ix = ix0; xo < xhi; xo++, ix += p->sw)
                            dst[xo] = src[ix];
                    for (int x0 = xhi; x0 < ow; x0++)
                        dst[x0] = 0.0f;
                }
                if (yhi < oh)
                    memset(row + (size_t)yhi * ow, 0, sizeof(float) * (size_t)(oh - yhi) * ow);
            }
        }
    }
}

static void add_row(float *restrict dst, const float *restrict src, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] += src[i];
}

/* Sum of n floats with eight running sums (vectorisable; a single running
 * sum is bound by the latency of one add per element). */
static float sum_floats(const float *r, size_t n)
{
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] += r[i + (size_t)k];
    float t = 0.0f;
    for (; i < n; i++)
        t += r[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

/* Adjoint of im2col: adds columns back into one sample dx [C, H, W]. */
static void col2im(const conv_cfg *p, const float *col, size_t ld, float *dx)
{
    const int ow = p->ow;
    for (int c = 0; c < p->c; c++) {
        float *dc = dx + (size_t)c * p->h * p->w;
        for (int ki = 0; ki < p->kh; ki++) {
            int ylo, yhi;
            valid_range(p->h, p->oh, p->sh, p->ph, ki, &ylo, &yhi);
            for (int kj = 0; kj < p->kw; kj++) {
                int xlo, xhi;
                valid_range(p->w, ow, p->sw, p->pw, kj, &xlo, &xhi);
                const float *row = col + ((size_t)(c * p->kh + ki) * p->kw + kj) * ld;
                int ix0 = xlo * p->sw - p->pw + kj;
                for (int y = ylo; y < yhi; y++) {
                    const float *src = row + (size_t)y * ow;
                    float *dst = dc + (size_t)(y * p->sh - p->ph + ki) * p->w;
                    if (p->sw == 1) { /* contiguous: a vectorised add */
                        add_row(dst + ix0, src + xlo, xhi - xlo);
                        continue;
                    }
                    for (int xo = xlo, ix = ix0; xo < xhi; xo++, ix += p->sw)
                        dst[ix] += src[xo];
                }
            }
        }
    }
}

static void conv_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const conv_cfg *p = l->priv;
    const int n = c->n;
    if (n <= 0)
        return;
    const int oc = p->filters;
    const int k = p->c * p->kh * p->kw;
    const size_t ohw = (size_t)p->oh * p->ow;
    const size_t in_sz = (size_t)p->c * p->h * p->w, out_sz = (size_t)oc * ohw;
    const int gmax = conv_group(p, n);
    float *colbuf = c->ws;
    /* ws may be NULL when workspace_floats was 0 (1x1, one sample per sgemm) */
    float *tmp = gmax > 1 ? c->ws + (size_t)k * gmax * ohw : NULL;
    const float *wt = l->params[0].data;
    const float *b = p->bias ? l->params[1].data : NULL;

    for (int s0 = 0; s0 < n; s0 += gmax) {
        const int g = n - s0 < gmax ? n - s0 : gmax;
        const size_t cols = (size_t)g * ohw;
        const float *col = colbuf;
        if (g == 1 && p->direct)
            col = x + (size_t)s0 * in_sz;
        else
            for (int j = 0; j < g; j++)
                im2col(p, x + (size_t)(s0 + j) * in_sz, colbuf + (size_t)j * ohw, cols);
        /* one sample writes straight into y; a group goes through tmp */
        float *out = g == 1 ? y + (size_t)s0 * out_sz : tmp;
        float beta = 0.0f;
        if (b) {
            for (int o = 0; o < oc; o++) {
                float *r = out + (size_t)o * cols;
                for (size_t i = 0; i < cols; i++)
                    r[i] = b[o];
            }
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, (int)cols, k, 1.0f, wt, k, col,
                    (int)cols, beta, out, (int)cols);
        if (g > 1)
            for (int j = 0; j < g; j++)
                for (int o = 0; o < oc; o++)
                    memcpy(y + (size_t)(s0 + j) * out_sz + (size_t)o * ohw,
                           tmp + (size_t)o * cols + (size_t)j * ohw, sizeof(float) * ohw);
    }
}

static void conv_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                          const float *dy, float *dx, const float *saved)
{
    const conv_cfg *p = l->priv;
    const int n = c->n;
    if (n <= 0)
        return;
    const int oc = p->filters;
    const int k = p->c * p->kh * p->kw;
    const size_t ohw = (size_t)p->oh * p->ow;
    const size_t in_sz = (size_t)p->c * p->h * p->w, out_sz = (size_t)oc * ohw;
    const ft_param *w = &l->params[0];
    float *db = p->bias ? l->params[1].grad : NULL;

    if (db) {
        for (int s = 0; s < n; s++)
            for (int o = 0; o < oc; o++) {
                db[o] += sum_floats(dy + (size_t)s * out_sz + (size_t)o * ohw, ohw);
            }
    }
    if (!w->grad && !dx)
        return;

    const int gmax = conv_group(p, n);
    float *colbuf = c->ws;
    /* ws may be NULL when workspace_floats was 0 (1x1, one sample per sgemm) */
    float *tmp = gmax > 1 ? c->ws + (size_t)k * gmax * ohw : NULL;
    for (int s0 = 0; s0 < n; s0 += gmax) {
        const int g = n - s0 < gmax ? n - s0 : gmax;
        const size_t cols = (size_t)g * ohw;
        const float *dyg = dy + (size_t)s0 * out_sz;
        if (g > 1) { /* gather the group's dy as [oc, g*ohw] */
            for (int j = 0; j < g; j++)
                for (int o = 0; o < oc; o++)
                    memcpy(tmp + (size_t)o * cols + (size_t)j * ohw,
                           dy + (size_t)(s0 + j) * out_sz + (size_t)o * ohw, sizeof(float) * ohw);
            dyg = tmp;
        }
        if (w->grad) { /* dW += dy col^T */
            const float *col = colbuf;
            if (g == 1 && p->direct)
                col = x + (size_t)s0 * in_sz;
            else
                for (int j = 0; j < g; j++)
                    im2col(p, x + (size_t)(s0 + j) * in_sz, colbuf + (size_t)j * ohw, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, k, (int)cols, 1.0f, dyg,
                        (int)cols, col, (int)cols, 1.0f, w->grad, k);
        }
        if (dx) { /* dcol = W^T dy, then col2im */
            float *dxs = dx + (size_t)s0 * in_sz;
            if (g == 1 && p->direct) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, (int)cols, oc, 1.0f,
                            w->data, k, dyg, (int)cols, 0.0f, dxs, (int)cols);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, (int)cols, oc, 1.0f, w->data, k,
                        dyg, (int)cols, 0.0f, colbuf, (int)cols);
            memset(dxs, 0, sizeof(float) * in_sz * (size_t)g);
            for (int j = 0; j < g; j++)
                col2im(p, colbuf + (size_t)j * ohw, cols, dxs + (size_t)j * in_sz);
        }
    }
}

const ft_layer_ops ft_conv2d_ops = {
    .kind = "conv2d",
    .keys = conv_keys,
    .create = conv_create,
    .setup = conv_setup,
    .workspace_floats = conv_ws_floats,
    .forward = conv_forward,
    .backward = conv_backward,
};
