/* Input preprocessing (see include/ftune/preprocess.h). */
#include "ftune/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ft_preprocess_init(ft_preprocess *p)
{
    memset(p, 0, sizeof *p);
    p->scale = 1.0f;
    p->layout = FT_LAYOUT_NCHW;
}

void ft_preprocess_free(ft_preprocess *p)
{
    if (!p)
        return;
    free(p->mean);
    free(p->std);
    ft_preprocess_init(p);
}

const char *ft_layout_name(int layout)
{
    return layout == FT_LAYOUT_NHWC ? "nhwc" : "nchw";
}

int ft_preprocess_is_identity(const ft_preprocess *p)
{
    if (!p)
        return 1;
    if ((p->scale != 1.0f && p->scale != 0.0f) || p->layout != FT_LAYOUT_NCHW)
        return 0;
    for (int i = 0; i < p->nmean; i++)
        if (p->mean[i] != 0.0f)
            return 0;
    for (int i = 0; i < p->nstd; i++)
        if (p->std[i] != 1.0f)
            return 0;
    return 1;
}

int ft_preprocess_check(const ft_preprocess *p, const ft_shape *input, ft_err *err)
{
    int channels = input->rank > 0 ? input->d[0] : 1;
    if (!isfinite(p->scale) || p->scale == 0.0f)
        return ft_fail(err, FT_EINPUT,
                       "model.preprocess.scale must be a finite non-zero number, got %g",
                       (double)p->scale);
    if (p->nmean != 0 && p->nmean != 1 && p->nmean != channels)
        return ft_fail(err, FT_EINPUT,
                       "model.preprocess.mean has %d values; give 1 or one per channel (%d)",
                       p->nmean, channels);
    if (p->nstd != 0 && p->nstd != 1 && p->nstd != channels)
        return ft_fail(err, FT_EINPUT,
                       "model.preprocess.std has %d values; give 1 or one per channel (%d)",
                       p->nstd, channels);
    for (int i = 0; i < p->nmean; i++)
        if (!isfinite(p->mean[i]))
            return ft_fail(err, FT_EINPUT, "model.preprocess.mean[%d] must be finite, got %g", i,
                           (double)p->mean[i]);
    for (int i = 0; i < p->nstd; i++)
        if (!(p->std[i] > 0.0f) || !isfinite(p->std[i]))
            return ft_fail(err, FT_EINPUT, "model.preprocess.std[%d] must be > 0, got %g", i,
                           (double)p->std[i]);
    if (p->layout == FT_LAYOUT_NHWC && input->rank != 3)
        return ft_fail(err, FT_EINPUT,
                       "model.preprocess.layout \"nhwc\" needs a [channels, height, width] "
                       "model.input, got %d dimension%s",
                       input->rank, input->rank == 1 ? "" : "s");
    return FT_OK;
}

int ft_preprocess_apply(const ft_preprocess *p, const ft_shape *input, float *x, int n, ft_err *err)
{
    if (!p || n <= 0 || ft_preprocess_is_identity(p))
        return FT_OK;
    size_t per = ft_shape_count(input);
    float scale = p->scale != 0.0f ? p->scale : 1.0f;
    int channels = input->rank > 0 ? input->d[0] : 1;
    size_t plane = channels > 0 ? per / (size_t)channels : per;
    float *tmp = NULL;
    if (p->layout == FT_LAYOUT_NHWC) {
        tmp = malloc(per * sizeof *tmp);
        if (!tmp)
            return ft_fail(err, FT_ERUNTIME, "out of memory (preprocessing)");
    }
    for (int s = 0; s < n; s++) {
        float *v = x + (size_t)s * per;
        if (tmp) {
            /* [H, W, C] -> [C, H, W]: element (hw, c) moves to c * HW + hw */
            for (size_t hw = 0; hw < plane; hw++)
                for (int c = 0; c < channels; c++)
                    tmp[(size_t)c * plane + hw] = v[hw * (size_t)channels + (size_t)c];
            memcpy(v, tmp, per * sizeof *v);
        }
        for (int c = 0; c < channels; c++) {
            float m = p->nmean ? p->mean[p->nmean == 1 ? 0 : c] : 0.0f;
            float sd = p->nstd ? p->std[p->nstd == 1 ? 0 : c] : 1.0f;
            float *q = v + (size_t)c * plane;
            /* the same operations, in the same order, as PyTorch's
             * ToTensor-style scaling followed by Normalize */
            for (size_t k = 0; k < plane; k++)
                q[k] = (q[k] * scale - m) / sd;
        }
    }
    free(tmp);
    return FT_OK;
}

int ft_dataset_set_preprocess(ft_dataset *d, const ft_preprocess *p, const ft_shape *input,
                              ft_err *err)
{
    d->preprocess = NULL;
    if (!p || ft_shape_count(&d->sample) != ft_shape_count(input))
        return FT_OK; /* ft_check_data_fits reports it */
    const ft_shape *s = &d->sample;
    if (input->rank == 3 && s->rank == 3 && input->d[0] > 1) {
        int C = input->d[0], H = input->d[1], W = input->d[2];
        int chw = s->d[0] == C && s->d[1] == H && s->d[2] == W;
        int hwc = s->d[0] == H && s->d[1] == W && s->d[2] == C;
        char a[64], b[64];
        if (p->layout == FT_LAYOUT_NHWC && !hwc)
            return ft_fail(err, FT_EINPUT,
                           "%s: samples have shape %s, but model.preprocess.layout = \"nhwc\" "
                           "expects [%d, %d, %d] ([height, width, channels] for model.input %s)",
                           d->path, ft_shape_str(s, a, sizeof a), H, W, C,
                           ft_shape_str(input, b, sizeof b));
        if (p->layout == FT_LAYOUT_NCHW && !chw && hwc)
            return ft_fail(err, FT_EINPUT,
                           "%s: samples have shape %s ([height, width, channels]) but model.input "
                           "is %s: set model.preprocess.layout = \"nhwc\"",
                           d->path, ft_shape_str(s, a, sizeof a), ft_shape_str(input, b, sizeof b));
    }
    if (ft_preprocess_is_identity(p))
        return FT_OK;
    d->preprocess = p;
    d->preprocess_input = *input;
    return FT_OK;
}
