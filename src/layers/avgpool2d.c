/* 2-D average pooling on NCHW samples with PyTorch's defaults: floor output
 * size, count_include_pad = true. With floor sizing every window lies inside
 * the padded input, so the divisor is always size*size. */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

typedef struct avgpool_cfg {
    int kh, kw, sh, sw, ph, pw;
    int c, h, w, oh, ow; /* setup */
} avgpool_cfg;

static const ft_keydef avgpool_keys[] = {
    {"size", FT_KV_INT, 1, "window size (square)"},
    {"stride", FT_KV_INT, 0, "stride (default: the window size)"},
    {"padding", FT_KV_INT, 0, "zero padding on each side, at most size/2 (default 0)"},
    {NULL, 0, 0, NULL},
};

static int avgpool_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long size = ft_kv_int(kv, "size", 0);
    long stride = ft_kv_int(kv, "stride", size);
    long padding = ft_kv_int(kv, "padding", 0);
    const long big = 1L << 20;
    if (size < 1 || size > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (avgpool2d): size must be >= 1, got %ld",
                       l->name, size);
    if (stride < 1 || stride > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (avgpool2d): stride must be >= 1, got %ld",
                       l->name, stride);
    if (padding < 0 || padding > size / 2) /* PyTorch's limit */
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (avgpool2d): padding must be between 0 and size/2 = %ld, "
                       "got %ld",
                       l->name, size / 2, padding);
    avgpool_cfg *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err ? err->code : FT_ERUNTIME;
    p->kh = p->kw = (int)size;
    p->sh = p->sw = (int)stride;
    p->ph = p->pw = (int)padding;
    l->priv = p;
    return FT_OK;
}

static int avgpool_setup(ft_layer *l, ft_err *err)
{
    avgpool_cfg *p = l->priv;
    char buf[64];
    if (l->in.rank != 3 || l->in.d[0] < 1 || l->in.d[1] < 1 || l->in.d[2] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (avgpool2d): input shape %s must be [channels, height, width]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    p->c = l->in.d[0];
    p->h = l->in.d[1];
    p->w = l->in.d[2];
    long eh = (long)p->h + 2L * p->ph - p->kh, ew = (long)p->w + 2L * p->pw - p->kw;
    if (eh < 0 || ew < 0)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (avgpool2d): input %s with size %d, stride %d, padding %d "
                       "gives an empty output (the padded input must be at least the window size)",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf), p->kh, p->sh, p->ph);
    p->oh = (int)(eh / p->sh + 1);
    p->ow = (int)(ew / p->sw + 1);
    l->out = ft_shape3(p->c, p->oh, p->ow);
    l->nparams = 0;
    return FT_OK;
}

/* Window of output (oy, ox) clipped to the real pixels: [y0, y1) x [x0, x1). */
static inline void window(const avgpool_cfg *p, int oy, int ox, int *y0, int *y1, int *x0, int *x1)
{
    int a = oy * p->sh - p->ph, b = ox * p->sw - p->pw;
    *y1 = a + p->kh < p->h ? a + p->kh : p->h;
    *x1 = b + p->kw < p->w ? b + p->kw : p->w;
    *y0 = a < 0 ? 0 : a;
    *x0 = b < 0 ? 0 : b;
}

static void avgpool_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const avgpool_cfg *p = l->priv;
    const size_t hw = (size_t)p->h * p->w, ohw = (size_t)p->oh * p->ow;
    const size_t planes = (size_t)(c->n > 0 ? c->n : 0) * p->c;
    const float inv = 1.0f / (float)(p->kh * p->kw);
    for (size_t i = 0; i < planes; i++) {
        const float *plane = x + i * hw;
        float *yo = y + i * ohw;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                int y0, y1, x0, x1;
                window(p, oy, ox, &y0, &y1, &x0, &x1);
                float s = 0.0f;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        s += plane[(size_t)yy * p->w + xx];
                yo[oy * p->ow + ox] = s * inv;
            }
    }
}

static void avgpool_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                             const float *dy, float *dx, const float *saved)
{
    const avgpool_cfg *p = l->priv;
    if (!dx || c->n <= 0)
        return;
    const size_t hw = (size_t)p->h * p->w, ohw = (size_t)p->oh * p->ow;
    const size_t planes = (size_t)c->n * p->c;
    const float inv = 1.0f / (float)(p->kh * p->kw);
    memset(dx, 0, sizeof(float) * planes * hw);
    for (size_t i = 0; i < planes; i++) {
        float *dp = dx + i * hw;
        const float *dyo = dy + i * ohw;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                int y0, y1, x0, x1;
                window(p, oy, ox, &y0, &y1, &x0, &x1);
                float g = dyo[oy * p->ow + ox] * inv;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        dp[(size_t)yy * p->w + xx] += g;
            }
    }
}

const ft_layer_ops ft_avgpool2d_ops = {
    .kind = "avgpool2d",
    .keys = avgpool_keys,
    .create = avgpool_create,
    .setup = avgpool_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};
