/* Scores of generated text (include/ftune/genscore.h). */
#include "ftune/genscore.h"

#include <stdlib.h>
#include <string.h>

void ft_gen_score_opts_init(ft_gen_score_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stop_id = -1;
    o->em_mode = FT_EM_TRIM;
}

int ft_gen_score_init(ft_gen_score *s, const ft_gen_score_opts *o, ft_err *err)
{
    memset(s, 0, sizeof *s);
    if (o)
        s->o = *o;
    else
        ft_gen_score_opts_init(&s->o);
    s->words = ft_words_new();
    if (!s->words)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    return FT_OK;
}

/* Length up to the first stop id. */
static size_t until_stop(const int32_t *ids, size_t n, int32_t stop)
{
    if (stop < 0)
        return n;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == stop)
            return i;
    return n;
}

/* hyp: a generated UNK (the map's last id) is dropped before decoding. Its text ("<unk>", or
 * the tokenizer's [UNK]) would otherwise match the reference's UNKs word for word, crediting
 * a model for predicting "some rare word". The reference keeps its UNKs: words the compact
 * vocabulary lost stay in the denominators and can never be matched. */
static int decode(const ft_gen_score *s, const int32_t *ids, size_t n, int hyp, char **out,
                  ft_err *err)
{
    if (!s->o.tok)
        return ft_fail(err, FT_EINPUT, "scoring ids needs a tokenizer to decode them");
    n = until_stop(ids, n, s->o.stop_id);
    if (!s->o.map)
        return ft_tokenizer_decode(s->o.tok, ids, n, out, NULL, err);
    if (!hyp)
        return ft_vocab_map_decode(s->o.tok, s->o.map, ids, n, out, NULL, err);
    int32_t *kept = malloc((n ? n : 1) * sizeof *kept);
    if (!kept)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != s->o.map->n - 1)
            kept[k++] = ids[i];
    int rc = ft_vocab_map_decode(s->o.tok, s->o.map, kept, k, out, NULL, err);
    free(kept);
    return rc;
}

int ft_gen_score_add(ft_gen_score *s, const int32_t *gen, size_t ngen, const int32_t *ref,
                     size_t nref, ft_err *err)
{
    char *g = NULL, *r = NULL;
    int rc = decode(s, gen, ngen, 1, &g, err);
    if (rc == FT_OK)
        rc = decode(s, ref, nref, 0, &r, err);
    if (rc == FT_OK)
        rc = ft_gen_score_add_text(s, g, r, err);
    free(g);
    free(r);
    return rc;
}

int ft_gen_score_add_text(ft_gen_score *s, const char *gen, const char *ref, ft_err *err)
{
    size_t gl = strlen(gen), rl = strlen(ref);
    s->hyp.n = s->ref.n = 0;
    int rc = ft_words_split(s->words, gen, gl, FT_WORDS_SPACE, &s->hyp, err);
    if (rc == FT_OK)
        rc = ft_words_split(s->words, ref, rl, FT_WORDS_SPACE, &s->ref, err);
    ft_seq h = {s->hyp.v, s->hyp.n}, r = {s->ref.v, s->ref.n};
    /* BLEU first into a copy: a failure must not leave the row half counted */
    ft_bleu_acc b = s->bleu;
    if (rc == FT_OK)
        rc = ft_bleu_add(&b, &h, &r, 1, err);
    if (rc == FT_OK) {
        s->hyp.n = s->ref.n = 0;
        rc = ft_words_split(s->words, gen, gl, FT_WORDS_ROUGE, &s->hyp, err);
    }
    if (rc == FT_OK)
        rc = ft_words_split(s->words, ref, rl, FT_WORDS_ROUGE, &s->ref, err);
    ft_seq hr = {s->hyp.v, s->hyp.n}, rr = {s->ref.v, s->ref.n};
    ft_rouge_acc ro = s->rouge;
    if (rc == FT_OK)
        rc = ft_rouge_add(&ro, &hr, &rr, err);
    if (rc)
        return rc;
    s->bleu = b;
    s->rouge = ro;
    s->rows++;
    s->exact += ft_exact_match(gen, ref, s->o.em_mode) != 0;
    return FT_OK;
}

static void pack_prf(const ft_prf *p, double *out)
{
    out[0] = p->p;
    out[1] = p->r;
    out[2] = p->f;
}

static void unpack_prf(ft_prf *p, const double *in)
{
    p->p = in[0];
    p->r = in[1];
    p->f = in[2];
}

void ft_gen_score_pack(const ft_gen_score *s, double *out)
{
    for (int k = 0; k < 4; k++) {
        out[k] = (double)s->bleu.matches[k];
        out[4 + k] = (double)s->bleu.totals[k];
    }
    out[8] = (double)s->bleu.hyp_len;
    out[9] = (double)s->bleu.ref_len;
    out[10] = (double)s->bleu.sentences;
    pack_prf(&s->rouge.r1, out + 11);
    pack_prf(&s->rouge.r2, out + 14);
    pack_prf(&s->rouge.rl, out + 17);
    out[20] = (double)s->rouge.pairs;
    out[21] = (double)s->rows;
    out[22] = (double)s->exact;
}

void ft_gen_score_unpack(ft_gen_score *s, const double *in)
{
    for (int k = 0; k < 4; k++) {
        s->bleu.matches[k] = (uint64_t)in[k];
        s->bleu.totals[k] = (uint64_t)in[4 + k];
    }
    s->bleu.hyp_len = (uint64_t)in[8];
    s->bleu.ref_len = (uint64_t)in[9];
    s->bleu.sentences = (uint64_t)in[10];
    unpack_prf(&s->rouge.r1, in + 11);
    unpack_prf(&s->rouge.r2, in + 14);
    unpack_prf(&s->rouge.rl, in + 17);
    s->rouge.pairs = (uint64_t)in[20];
    s->rows = (uint64_t)in[21];
    s->exact = (uint64_t)in[22];
}

void ft_gen_score_finish(const ft_gen_score *s, ft_gen_scores *out)
{
    memset(out, 0, sizeof *out);
    ft_bleu_score(&s->bleu, &out->bleu);
    ft_rouge_score(&s->rouge, &out->rouge1, &out->rouge2, &out->rougel);
    out->rows = s->rows;
    out->exact = s->exact;
    out->exact_match = s->rows ? (double)s->exact / (double)s->rows : 0.0;
}

void ft_gen_score_free(ft_gen_score *s)
{
    ft_words_free(s->words);
    ft_ids_free(&s->hyp);
    ft_ids_free(&s->ref);
    memset(s, 0, sizeof *s);
}
