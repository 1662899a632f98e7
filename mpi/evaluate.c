#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "ftune/loss.h"

int ft_check_data_fits(const ft_dataset *d, const ft_model *m, ft_err *err)
{
    char a[64], b[64];
    if (ft_shape_count(&d->sample) != ft_shape_count(&m->input))
        return ft_fail(err, FT_EINPUT, "%s: samples have shape %s but the model input is %s",
                       d->path, ft_shape_str(&d->sample, a, sizeof a),
                       ft_shape_str(&m->input, b, sizeof b));
    if (d->classes > m->classes)
        return ft_fail(err, FT_EINPUT,
                       "%s: labels span %d classes but the model's last layer '%s' has %d outputs",
                       d->path, d->classes, m->layers[m->nlayers - 1].name, m->classes);
    return FT_OK;
}

int ft_evaluate(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_metrics *out, ft_err *err)
{
    return ft_evaluate_logits(w, m, d, out, NULL, err);
}

int ft_evaluate_logits(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_metrics *out, float *all,
                       ft_err *err)
{
    uint64_t begin, len;
    ft_split(d->n, w->size, w->rank, &begin, &len);
    int rows = m->max_batch;
    ft_err_clear(err);
    ft_metrics_reset(out);

    float *x = ft_alloc_floats((size_t)rows * d->sample_floats, err);
    float *probs = ft_alloc_floats((size_t)rows * (size_t)m->classes, err);
    float *losses = ft_alloc_floats((size_t)rows, err);
    int *y = ft_calloc((size_t)rows, sizeof *y, err);
    int *lens = ft_calloc((size_t)rows, sizeof *lens, err);
    uint64_t *idx = ft_calloc((size_t)rows, sizeof *idx, err);
    ft_xent xent = {m->classes, 0.0f, NULL};

    for (uint64_t pos = 0; !err->code && x && probs && losses && y && lens && idx && pos < len;) {
        int n = (int)(len - pos < (uint64_t)rows ? len - pos : (uint64_t)rows);
        for (int i = 0; i < n; i++)
            idx[i] = begin + pos + (uint64_t)i;
        int has_len;
        if (ft_dataset_read_len(d, idx, n, x, y, lens, &has_len, err))
            break;
        ft_ctx c = {0};
        c.n = n;
        c.sample_ids = idx;
        c.lengths = has_len ? lens : NULL;
        const float *logits = ft_model_forward(m, &c, x);
        double wsum;
        ft_xent_forward(&xent, logits, y, n, probs, &wsum, losses);
        ft_metrics_add(out, logits, y, losses, n);
        if (all)
            memcpy(all + (begin + pos) * (size_t)m->classes, logits,
                   (size_t)n * (size_t)m->classes * sizeof *all);
        pos += (uint64_t)n;
    }
    ft_free_floats(x);
    ft_free_floats(probs);
    ft_free_floats(losses);
    free(y);
    free(lens);
    free(idx);
    if (ft_mpi_agree(w, err))
        return err->code;
    ft_mpi_sum_doubles(w, out->counts, out->ncounts);
    if (all) /* every other rank's slice is zero there */
        ft_mpi_sum_floats(w, all, d->n * (size_t)m->classes);
    return FT_OK;
}
