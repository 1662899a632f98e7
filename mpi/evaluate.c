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

/* Reads rows first..first+n-1 of d and runs the model over them without keeping anything for
 * backward; returns the logits, or NULL when the read failed (err set). *has_len: whether the
 * dataset gave the rows' lengths (in lens). */
static const float *forward_rows(ft_model *m, ft_dataset *d, uint64_t first, int n, uint64_t *idx,
                                 float *x, int *y, int *lens, int *has_len, ft_err *err)
{
    for (int i = 0; i < n; i++)
        idx[i] = first + (uint64_t)i;
    if (ft_dataset_read_len(d, idx, n, x, y, lens, has_len, err))
        return NULL;
    ft_ctx c = {0};
    c.n = n;
    c.sample_ids = idx;
    c.lengths = *has_len ? lens : NULL;
    return ft_model_forward(m, &c, x);
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
        int has_len;
        const float *logits = forward_rows(m, d, begin + pos, n, idx, x, y, lens, &has_len, err);
        if (!logits)
            break;
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

int ft_check_lm_model(const ft_model *m, const char *origin, int *T, int *V, ft_err *err)
{
    const ft_layer *last = &m->layers[m->nlayers - 1];
    char a[64], b[64];
    if (m->input.rank != 1 || last->out.rank != 2 || last->out.d[0] != m->input.d[0])
        return ft_fail(err, FT_EINPUT,
                       "%s: train.task = \"lm\" needs token ids in (model.input = [T]) and "
                       "per-position logits out ([T, vocab], e.g. an lm_head last), but the input "
                       "is %s and the last layer '%s' gives %s",
                       origin, ft_shape_str(&m->input, a, sizeof a), last->name,
                       ft_shape_str(&last->out, b, sizeof b));
    *T = last->out.d[0];
    *V = last->out.d[1];
    return FT_OK;
}

int ft_evaluate_lm(const ft_mpi *w, ft_model *m, ft_dataset *d, ft_lm_stats *out, ft_err *err)
{
    uint64_t begin, len;
    ft_split(d->n, w->size, w->rank, &begin, &len);
    int rows = m->max_batch, T = 0, V = 0;
    ft_err_clear(err);
    memset(out, 0, sizeof *out);
    ft_check_lm_model(m, d->path, &T, &V, err);
    float *x = ft_alloc_floats((size_t)rows * d->sample_floats, err);
    int *y = ft_calloc((size_t)rows, sizeof *y, err);
    int *lens = ft_calloc((size_t)rows, sizeof *lens, err);
    int *plens = ft_calloc((size_t)rows, sizeof *plens, err);
    uint64_t *idx = ft_calloc((size_t)rows, sizeof *idx, err);
    for (uint64_t pos = 0; !err->code && x && y && lens && plens && idx && pos < len;) {
        int n = (int)(len - pos < (uint64_t)rows ? len - pos : (uint64_t)rows);
        int has_len;
        const float *logits = forward_rows(m, d, begin + pos, n, idx, x, y, lens, &has_len, err);
        if (!logits)
            break;
        /* source -> target rows: the same target positions as training */
        int has_prompt = ft_dataset_prompts(d, idx, n, plens);
        long bad = ft_lm_loss_prompt(logits, x, has_len ? lens : NULL, has_prompt ? plens : NULL, n,
                                     T, V, 0.0f, NULL, out);
        if (bad >= 0)
            ft_fail(err, FT_EINPUT,
                    "%s: sample %llu has a token id outside [0, %d), the vocabulary of the LM "
                    "head '%s'",
                    d->path, (unsigned long long)idx[bad], V, m->layers[m->nlayers - 1].name);
        pos += (uint64_t)n;
    }
    ft_free_floats(x);
    free(y);
    free(lens);
    free(plens);
    free(idx);
    if (ft_mpi_agree(w, err))
        return err->code;
    double v[3] = {out->nll, out->tokens, out->correct};
    ft_mpi_sum_doubles(w, v, 3);
    out->nll = v[0];
    out->tokens = v[1];
    out->correct = v[2];
    return FT_OK;
}
