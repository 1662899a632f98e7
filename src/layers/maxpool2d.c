/* 2-D max pooling on NCHW samples with PyTorch semantics: floor output
 * size, padding acts as -inf, the first maximum in a window wins and NaN
 * propagates. Forward saves the argmax (an int32 index into the H*W plane,
 * stored in the float buffer) so backward is a scatter. */
#include <stdint.h>
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

_Static_assert(sizeof(int32_t) == sizeof(float), "argmax is stored in float slots");

typedef struct maxpool_cfg {
    int kh, kw, sh, sw, ph, pw;
    int c, h, w, oh, ow; /* setup */
} maxpool_cfg;

static const ft_keydef maxpool_keys[] = {
    {"size", FT_KV_INT, 1, "window size (square)"},
    {"stride", FT_KV_INT, 0, "stride (default: the window size)"},
    {"padding", FT_KV_INT, 0, "implicit -inf padding on each side, at most size/2 (default 0)"},
    {NULL, 0, 0, NULL},
};

static int maxpool_create(ft_layer *l, const ft_kvlist *kv, ft_err *err)
{
    long size = ft_kv_int(kv, "size", 0);
    long stride = ft_kv_int(kv, "stride", size);
    long padding = ft_kv_int(kv, "padding", 0);
    const long big = 1L << 20;
    if (size < 1 || size > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (maxpool2d): size must be >= 1, got %ld",
                       l->name, size);
    if (stride < 1 || stride > big)
        return ft_fail(err, FT_EINPUT, "layer '%s' (maxpool2d): stride must be >= 1, got %ld",
                       l->name, stride);
    /* PyTorch's limit; it also guarantees every window holds a real pixel */
    if (padding < 0 || padding > size / 2)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (maxpool2d): padding must be between 0 and size/2 = %ld, "
                       "got %ld",
                       l->name, size / 2, padding);
    maxpool_cfg *p = ft_calloc(1, sizeof *p, err);
    if (!p)
        return err ? err->code : FT_ERUNTIME;
    p->kh = p->kw = (int)size;
    p->sh = p->sw = (int)stride;
    p->ph = p->pw = (int)padding;
    l->priv = p;
    return FT_OK;
}

static int maxpool_setup(ft_layer *l, ft_err *err)
{
    maxpool_cfg *p = l->priv;
    char buf[64];
    if (l->in.rank != 3 || l->in.d[0] < 1 || l->in.d[1] < 1 || l->in.d[2] < 1)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (maxpool2d): input shape %s must be [channels, height, width]",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf));
    p->c = l->in.d[0];
    p->h = l->in.d[1];
    p->w = l->in.d[2];
    if ((size_t)p->h * (size_t)p->w > INT32_MAX)
        return ft_fail(err, FT_EINPUT, "layer '%s' (maxpool2d): input %s is too large", l->name,
                       ft_shape_str(&l->in, buf, sizeof buf));
    long eh = (long)p->h + 2L * p->ph - p->kh, ew = (long)p->w + 2L * p->pw - p->kw;
    if (eh < 0 || ew < 0)
        return ft_fail(err, FT_EINPUT,
                       "layer '%s' (maxpool2d): input %s with size %d, stride %d, padding %d "
                       "gives an empty output (the padded input must be at least the window size)",
                       l->name, ft_shape_str(&l->in, buf, sizeof buf), p->kh, p->sh, p->ph);
    p->oh = (int)(eh / p->sh + 1);
    p->ow = (int)(ew / p->sw + 1);
    l->out = ft_shape3(p->c, p->oh, p->ow);
    l->nparams = 0;
    return FT_OK;
}

static size_t maxpool_saved_floats(const ft_layer *l, int n)
{
    return n > 0 ? (size_t)n * ft_shape_count(&l->out) : 0;
}

/* Max over one window of one plane; returns the winning index (or -1 for a
 * window without pixels, which the padding limit rules out). */
static inline int32_t window_argmax(const maxpool_cfg *p, const float *plane, int oy, int ox,
                                    float *out)
{
    int y0 = oy * p->sh - p->ph, x0 = ox * p->sw - p->pw;
    int y1 = y0 + p->kh < p->h ? y0 + p->kh : p->h;
    int x1 = x0 + p->kw < p->w ? x0 + p->kw : p->w;
    if (y0 < 0)
        y0 = 0;
    if (x0 < 0)
        x0 = 0;
    int32_t best = -1;
    float m = 0.0f;
    for (int y = y0; y < y1; y++) {
        const float *row = plane + (size_t)y * p->w;
        for (int x = x0; x < x1; x++) {
            float v = row[x];
            /* v != v: NaN wins, like PyTorch */
            if (best < 0 || v > m || v != v) {
                m = v;
                best = (int32_t)(y * p->w + x);
                if (v != v)
                    goto done;
            }
        }
    }
done:
    *out = m;
    return best;
}

/* a replaces m (and idx its index) when it is larger, or NaN while m is not:
 * the first maximum in scan order wins and the first NaN sticks. */
#define MP_TAKE(m, mi, a, ai)                                                                      \
    do {                                                                                           \
        int take_ = (a) > (m) || ((a) != (a) && (m) == (m));                                       \
        (m) = take_ ? (a) : (m);                                                                   \
        (mi) = take_ ? (ai) : (mi);                                                                \
    } while (0)

#if defined(__SSE2__)
#include <emmintrin.h>

/* Four windows at once, with the scalar rule lane by lane. */
static inline __m128 mp_take_mask(__m128 m, __m128 a)
{
    __m128 nan_a = _mm_cmpunord_ps(a, a), num_m = _mm_cmpord_ps(m, m);
    return _mm_or_ps(_mm_cmpgt_ps(a, m), _mm_and_ps(nan_a, num_m));
}

static inline __m128 mp_sel(__m128 k, __m128 a, __m128 m)
{
    return _mm_or_ps(_mm_and_ps(k, a), _mm_andnot_ps(k, m));
}

static inline __m128i mp_seli(__m128 k, __m128i a, __m128i m)
{
    __m128i ki = _mm_castps_si128(k);
    return _mm_or_si128(_mm_and_si128(ki, a), _mm_andnot_si128(ki, m));
}

/* Output columns [0, ow4) of one output row (ow4 a multiple of 4); returns ow4. */
static int mp_row_sse(const float *r0, const float *r1, float *yr, int32_t *ar, int32_t base, int w,
                      int ow)
{
    int ox = 0;
    for (; ox + 4 <= ow; ox += 4) {
        __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
        __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
        __m128 e0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 o0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 e1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 o1 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 m = e0, k;
        if (!ar) {
            k = mp_take_mask(m, o0);
            m = mp_sel(k, o0, m);
            k = mp_take_mask(m, e1);
            m = mp_sel(k, e1, m);
            k = mp_take_mask(m, o1);
            m = mp_sel(k, o1, m);
            _mm_storeu_ps(yr + ox, m);
            continue;
        }
        __m128i i0 = _mm_add_epi32(_mm_set1_epi32(base + 2 * ox), _mm_set_epi32(6, 4, 2, 0));
        __m128i one = _mm_set1_epi32(1), wv = _mm_set1_epi32(w);
        __m128i mi = i0;
        k = mp_take_mask(m, o0);
        m = mp_sel(k, o0, m);
        mi = mp_seli(k, _mm_add_epi32(i0, one), mi);
        k = mp_take_mask(m, e1);
        m = mp_sel(k, e1, m);
        mi = mp_seli(k, _mm_add_epi32(i0, wv), mi);
        k = mp_take_mask(m, o1);
        m = mp_sel(k, o1, m);
        mi = mp_seli(k, _mm_add_epi32(_mm_add_epi32(i0, wv), one), mi);
        _mm_storeu_ps(yr + ox, m);
        _mm_storeu_si128((__m128i *)(void *)(ar + ox), mi);
    }
    return ox;
}
#endif

/* The common 2x2, stride 2, no padding case (floor size: an odd last row or
 * column is skipped, as in the general path). Same results, bit for bit. */
static void maxpool_forward_2x2(const maxpool_cfg *p, size_t planes, const float *x, float *y,
                                int32_t *arg)
{
    const int w = p->w, ow = p->ow, oh = p->oh;
    const size_t hw = (size_t)p->h * w, ohw = (size_t)oh * ow;
    for (size_t i = 0; i < planes; i++) {
        const float *plane = x + i * hw;
        float *yo = y + i * ohw;
        int32_t *ao = arg ? arg + i * ohw : NULL;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = plane + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *yr = yo + (size_t)oy * ow;
            int ox0 = 0;
#if defined(__SSE2__)
            ox0 = mp_row_sse(r0, r1, yr, ao ? ao + (size_t)oy * ow : NULL, 2 * oy * w, w, ow);
#endif
            if (!ao) {
                for (int ox = ox0; ox < ow; ox++) {
                    float m = r0[2 * ox], a = r0[2 * ox + 1], b = r1[2 * ox], d = r1[2 * ox + 1];
                    m = a > m || (a != a && m == m) ? a : m;
                    m = b > m || (b != b && m == m) ? b : m;
                    m = d > m || (d != d && m == m) ? d : m;
                    yr[ox] = m;
                }
                continue;
            }
            int32_t *ar = ao + (size_t)oy * ow;
            const int32_t base = 2 * oy * w;
            for (int ox = ox0; ox < ow; ox++) {
                int32_t i0 = base + 2 * ox;
                float m = r0[2 * ox];
                int32_t mi = i0;
                MP_TAKE(m, mi, r0[2 * ox + 1], i0 + 1);
                MP_TAKE(m, mi, r1[2 * ox], i0 + w);
                MP_TAKE(m, mi, r1[2 * ox + 1], i0 + w + 1);
                yr[ox] = m;
                ar[ox] = mi;
            }
        }
    }
}

static void maxpool_forward(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved)
{
    const maxpool_cfg *p = l->priv;
    const size_t hw = (size_t)p->h * p->w, ohw = (size_t)p->oh * p->ow;
    const size_t planes = (size_t)(c->n > 0 ? c->n : 0) * p->c;
    int32_t *arg = (int32_t *)(void *)saved; /* argmax in float slots */
    if (p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0) {
        maxpool_forward_2x2(p, planes, x, y, arg);
        return;
    }
    for (size_t i = 0; i < planes; i++) {
        const float *plane = x + i * hw;
        float *yo = y + i * ohw;
        int32_t *ao = arg ? arg + i * ohw : NULL;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                int32_t a = window_argmax(p, plane, oy, ox, &yo[oy * p->ow + ox]);
                if (ao)
                    ao[oy * p->ow + ox] = a;
            }
    }
}

static void maxpool_backward(ft_layer *l, const ft_ctx *c, const float *x, const float *y,
                             const float *dy, float *dx, const float *saved)
{
    const maxpool_cfg *p = l->priv;
    if (!dx || c->n <= 0)
        return;
    const size_t hw = (size_t)p->h * p->w, ohw = (size_t)p->oh * p->ow;
    const size_t planes = (size_t)c->n * p->c;
    const int32_t *arg = (const int32_t *)(const void *)saved;
    memset(dx, 0, sizeof(float) * planes * hw);
    for (size_t i = 0; i < planes; i++) {
        float *dp = dx + i * hw;
        const float *dyo = dy + i * ohw;
        if (arg) {
            const int32_t *ao = arg + i * ohw;
            for (size_t j = 0; j < ohw; j++)
                if (ao[j] >= 0)
                    dp[ao[j]] += dyo[j];
        } else { /* no saved argmax: find it again from x */
            float m;
            for (int oy = 0; oy < p->oh; oy++)
                for (int ox = 0; ox < p->ow; ox++) {
                    int32_t a = window_argmax(p, x + i * hw, oy, ox, &m);
                    if (a >= 0)
                        dp[a] += dyo[oy * p->ow + ox];
                }
        }
    }
}

const ft_layer_ops ft_maxpool2d_ops = {
    .kind = "maxpool2d",
    .keys = maxpool_keys,
    .create = maxpool_create,
    .setup = maxpool_setup,
    .saved_floats = maxpool_saved_floats,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
