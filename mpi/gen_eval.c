/* ftune generate MODEL --data DATA.h5: generation scored against references (docs/text.md,
 * "Scoring generated text"). DATA is an `import-text --task generate --layout lm` file: each
 * row's prompt (its first prompt_lengths tokens: source and separator) is continued by the
 * model and the continuation, cut at the end-of-text id, is compared with the row's target
 * (BLEU-4, ROUGE-1/2/L, exact match). Single process: rank 0's evaluation. */
#include "gen_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"
#include "ftune/genscore.h"
#include "ftune/h5util.h"
#include "ftune/json.h"

#include "commands.h"

/* Reads float [N, T2] "targets" and int32 [N] "target_lengths" of path (N rows). */
static int read_targets(const char *path, uint64_t n, float **tgt, int *T2, int **tlen, ft_err *err)
{
    hid_t f = -1;
    if (ft_h5_open_read(path, &f, err))
        return err->code;
    int rc = FT_OK;
    hid_t ds = -1, dl = -1, sp = -1;
    hsize_t dims[2] = {0, 0};
    if (H5Lexists(f, "targets", H5P_DEFAULT) <= 0 ||
        H5Lexists(f, "target_lengths", H5P_DEFAULT) <= 0) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: no \"targets\" / \"target_lengths\": expected a file made by 'ftune "
                     "data import-text --task generate --layout lm'",
                     path);
        goto out;
    }
    ds = H5Dopen2(f, "targets", H5P_DEFAULT);
    dl = H5Dopen2(f, "target_lengths", H5P_DEFAULT);
    sp = ds >= 0 ? H5Dget_space(ds) : -1;
    if (ds < 0 || dl < 0 || sp < 0 || H5Sget_simple_extent_ndims(sp) != 2 ||
        H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] != n || dims[1] < 1 ||
        dims[1] > (1u << 20)) {
        rc = ft_h5_fail(err, FT_EINPUT, "%s: \"targets\" must be float32 [%llu, T]", path,
                        (unsigned long long)n);
        goto out;
    }
    *T2 = (int)dims[1];
    *tgt = malloc((size_t)n * dims[1] * sizeof **tgt);
    *tlen = malloc((size_t)n * sizeof **tlen);
    if (!*tgt || !*tlen) {
        rc = ft_fail(err, FT_ERUNTIME, "out of memory reading %s", path);
        goto out;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *tgt) < 0 ||
        H5Dread(dl, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *tlen) < 0) {
        rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot read \"targets\" / \"target_lengths\"", path);
        goto out;
    }
    for (uint64_t i = 0; i < n; i++)
        if ((*tlen)[i] < 0 || (*tlen)[i] > *T2) {
            rc = ft_fail(err, FT_EINPUT, "%s: \"target_lengths\" row %llu is %d, expected 0 to %d",
                         path, (unsigned long long)i, (*tlen)[i], *T2);
            goto out;
        }
out:
    if (sp >= 0)
        H5Sclose(sp);
    if (ds >= 0)
        H5Dclose(ds);
    if (dl >= 0)
        H5Dclose(dl);
    H5Fclose(f);
    return rc;
}

/* Text of ids (compact with map) for the examples shown; "?" when they do not decode. */
static char *show_text(const ft_tokenizer *tok, const ft_vocab_map *map, const int32_t *ids, int n)
{
    char *s = NULL;
    ft_err e = {0};
    int rc = map ? ft_vocab_map_decode(tok, map, ids, (size_t)n, &s, NULL, &e)
                 : ft_tokenizer_decode(tok, ids, (size_t)n, &s, NULL, &e);
    return rc == FT_OK ? s : NULL;
}

int ft_gen_eval(ft_model *m, const ft_gen_eval_args *a, const ft_tokenizer *tok,
                const ft_vocab_map *map, ft_err *err)
{
    ft_dataset d;
    memset(&d, 0, sizeof d);
    float *x = NULL, *tgt = NULL;
    int *y = NULL, *plen = NULL, *tlen = NULL, *n_out = NULL, *ends = NULL;
    int32_t *prompts = NULL, *refs = NULL, *out = NULL;
    uint64_t *idx = NULL;
    ft_gen_score sc;
    memset(&sc, 0, sizeof sc);
    int T2 = 0, rc = ft_dataset_open(&d, a->data, NULL, err);
    if (rc)
        return rc;
    const int T = (int)d.sample_floats;
    if (!d.prompt_lengths) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: no \"prompt_lengths\": expected a file made by 'ftune data import-text "
                     "--task generate --layout lm'",
                     a->data);
        goto out;
    }
    if (read_targets(a->data, d.n, &tgt, &T2, &tlen, err))
        goto out;
    uint64_t n = a->limit > 0 && (uint64_t)a->limit < d.n ? (uint64_t)a->limit : d.n;
    x = malloc((size_t)n * (size_t)T * sizeof *x);
    y = malloc((size_t)n * sizeof *y);
    plen = malloc((size_t)n * sizeof *plen);
    idx = malloc((size_t)n * sizeof *idx);
    prompts = malloc((size_t)n * (size_t)T * sizeof *prompts);
    refs = malloc((size_t)T2 * sizeof *refs);
    out = malloc((size_t)n * (size_t)(a->o.max_new > 0 ? a->o.max_new : 1) * sizeof *out);
    n_out = calloc((size_t)n, sizeof *n_out);
    ends = calloc((size_t)n, sizeof *ends);
    if (!x || !y || !plen || !idx || !prompts || !refs || !out || !n_out || !ends) {
        rc = ft_fail(err, FT_ERUNTIME, "out of memory for %llu rows of %s", (unsigned long long)n,
                     a->data);
        goto out;
    }
    for (uint64_t i = 0; i < n; i++)
        idx[i] = i;
    /* rows in chunks: ft_dataset_read takes an int count */
    for (uint64_t s = 0; s < n && !rc; s += 4096) {
        int cnt = (int)(n - s < 4096 ? n - s : 4096);
        rc = ft_dataset_read(&d, idx + s, cnt, x + s * (uint64_t)T, y + s, err);
    }
    if (rc)
        goto out;
    ft_dataset_prompts(&d, idx, (int)n, plen);
    for (size_t i = 0; i < (size_t)n * (size_t)T; i++)
        prompts[i] = (int32_t)x[i];
    fprintf(stderr, "ftune generate: %llu prompts of %s, batches of %d ...\n",
            (unsigned long long)n, a->data, a->batch);
    if (ft_generate_batch(m, prompts, plen, (int)n, T, a->batch, &a->o, out, n_out, ends, err)) {
        rc = ft_err_prefix(err, "%s", a->model);
        goto out;
    }

    ft_gen_score_opts so;
    ft_gen_score_opts_init(&so);
    so.tok = tok;
    so.map = map;
    so.stop_id = a->o.stop_id;
    if ((rc = ft_gen_score_init(&sc, &so, err)))
        goto out;
    int M = a->o.max_new > 0 ? a->o.max_new : 1;
    for (uint64_t i = 0; i < n && !rc; i++) {
        for (int k = 0; k < tlen[i]; k++)
            refs[k] = (int32_t)tgt[i * (uint64_t)T2 + (uint64_t)k];
        rc = ft_gen_score_add(&sc, out + i * (uint64_t)M, (size_t)n_out[i], refs, (size_t)tlen[i],
                              err);
        if (rc)
            ft_err_prefix(err, "%s row %llu", a->data, (unsigned long long)i);
        if (!rc && (int)i < a->show) {
            int tl = tlen[i];
            while (tl > 0 && refs[tl - 1] == a->o.stop_id)
                tl--;
            char *g = show_text(tok, map, out + i * (uint64_t)M, n_out[i]);
            char *r = show_text(tok, map, refs, tl);
            printf("[%llu] generated: %s\n     reference: %s\n", (unsigned long long)i, g ? g : "?",
                   r ? r : "?");
            free(g);
            free(r);
        }
    }
    if (rc)
        goto out;
    ft_gen_scores res;
    ft_gen_score_finish(&sc, &res);
    /* the n-gram precisions too: short texts often have no 4-gram match, and then BLEU-4 is
     * (about) 0 however good the unigrams are */
    printf("generation on %s: %llu rows, BLEU-4 %.4f (n-gram precisions %.4f %.4f %.4f %.4f, "
           "brevity penalty %.4f), ROUGE-1 %.4f, ROUGE-2 %.4f, ROUGE-L %.4f (F1), exact match "
           "%.4f\n",
           a->data, (unsigned long long)res.rows, res.bleu.bleu, res.bleu.precision[0],
           res.bleu.precision[1], res.bleu.precision[2], res.bleu.precision[3], res.bleu.bp,
           res.rouge1.f, res.rouge2.f, res.rougel.f, res.exact_match);
    fflush(stdout);
    if (a->json) {
        char js[512];
        snprintf(js, sizeof js,
                 "{\"rows\":%llu,\"bleu\":%.17g,\"precisions\":[%.17g,%.17g,%.17g,%.17g],"
                 "\"brevity_penalty\":%.17g,\"rouge1\":%.17g,\"rouge2\":%.17g,\"rougeL\":%.17g,"
                 "\"exact_match\":%.17g}\n",
                 (unsigned long long)res.rows, res.bleu.bleu, res.bleu.precision[0],
                 res.bleu.precision[1], res.bleu.precision[2], res.bleu.precision[3], res.bleu.bp,
                 res.rouge1.f, res.rouge2.f, res.rougel.f, res.exact_match);
        if (ft_write_text_file(a->json, js, err))
            rc = ft_err_prefix(err, "--json");
    }
out:
    ft_gen_score_free(&sc);
    ft_dataset_close(&d);
    free(x);
    free(y);
    free(plen);
    free(idx);
    free(prompts);
    free(refs);
    free(out);
    free(n_out);
    free(ends);
    free(tgt);
    free(tlen);
    return rc;
}
