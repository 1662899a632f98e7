/* Corpus BLEU as NLTK 3.8's corpus_bleu computes it (no smoothing), and the
 * word interning used to score text. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/textmetrics.h"

#include "strmap.h"

struct ft_words {
    ft_strmap map;
};

ft_words *ft_words_new(void)
{
    return calloc(1, sizeof(ft_words));
}

void ft_words_free(ft_words *w)
{
    if (!w)
        return;
    ft_strmap_free(&w->map);
    free(w);
}

static int intern(ft_words *w, const char *s, size_t n, ft_ids *out, ft_err *err)
{
    int32_t id;
    if (!ft_strmap_get(&w->map, s, n, &id)) {
        id = (int32_t)w->map.n;
        if (ft_strmap_put(&w->map, s, n, id))
            return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        int32_t *v = realloc(out->v, cap * sizeof *v);
        if (!v)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = id;
    return FT_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ft_words_split(ft_words *w, const char *text, size_t len, int mode, ft_ids *out, ft_err *err)
{
    char buf[256];
    size_t i = 0;
    while (i < len) {
        if (mode == FT_WORDS_SPACE) {
            if (is_space(text[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < len && !is_space(text[j]))
                j++;
            int rc = intern(w, text + i, j - i, out, err);
            if (rc)
                return rc;
            i = j;
            continue;
        }
        /* FT_WORDS_ROUGE: [a-z0-9]+ after ASCII lower-casing. U+0130 and
         * U+212A lower-case to 'i' + a mark and to 'k' (Python's str.lower). */
        size_t n = 0;
        char *word = buf;
        size_t cap = sizeof buf;
        int rc = FT_OK;
        while (i < len) {
            unsigned char c = (unsigned char)text[i];
            char add = 0;
            size_t step = 1;
            if (c >= 'A' && c <= 'Z')
                add = (char)(c + 32);
            else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                add = (char)c;
            else if (c == 0xC4 && i + 1 < len && (unsigned char)text[i + 1] == 0xB0) {
                add = 'i', step = 2; /* U+0130 -> "i" + U+0307, which then separates */
            } else if (c == 0xE2 && i + 2 < len && (unsigned char)text[i + 1] == 0x84 &&
                       (unsigned char)text[i + 2] == 0xAA) {
                add = 'k', step = 3; /* U+212A KELVIN SIGN */
            }
            if (!add) {
                if (n)
                    break;
                i++;
                continue;
            }
            if (n + 1 > cap) {
                char *nw = malloc(cap * 2);
                if (!nw) {
                    rc = ft_fail(err, FT_ERUNTIME, "out of memory");
                    break;
                }
                memcpy(nw, word, n);
                if (word != buf)
                    free(word);
                word = nw;
                cap *= 2;
            }
            word[n++] = add;
            i += step;
            if (step == 2)
                break; /* the combining dot after U+0130 ends the word */
        }
        if (rc == FT_OK && n)
            rc = intern(w, word, n, out, err);
        if (word != buf)
            free(word);
        if (rc)
            return rc;
    }
    return FT_OK;
}

/* ---- BLEU ------------------------------------------------------------------------------- */

static const char *gram_key(const ft_seq *s, size_t i)
{
    return (const char *)(s->ids + i);
}

int ft_bleu_add(ft_bleu_acc *acc, const ft_seq *hyp, const ft_seq *refs, size_t nrefs, ft_err *err)
{
    if (nrefs == 0)
        return ft_fail(err, FT_EINPUT, "BLEU: a hypothesis needs at least one reference");
    int rc = FT_OK;
    for (int n = 1; n <= 4 && rc == FT_OK; n++) {
        size_t kb = (size_t)n * sizeof(int32_t);
        size_t ng = hyp->n >= (size_t)n ? hyp->n - (size_t)n + 1 : 0;
        ft_strmap hm = {0};
        uint32_t *hc = NULL, *mc = NULL;
        if (ng) {
            hc = calloc(ng, sizeof *hc);
            mc = calloc(ng, sizeof *mc);
            if (!hc || !mc)
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        }
        for (size_t i = 0; i < ng && rc == FT_OK; i++) {
            int32_t k;
            if (!ft_strmap_get(&hm, gram_key(hyp, i), kb, &k)) {
                k = (int32_t)hm.n;
                if (ft_strmap_put(&hm, gram_key(hyp, i), kb, k))
                    rc = ft_fail(err, FT_ERUNTIME, "out of memory");
            }
            if (rc == FT_OK)
                hc[k]++;
        }
        for (size_t r = 0; r < nrefs && rc == FT_OK && ng; r++) {
            size_t rg = refs[r].n >= (size_t)n ? refs[r].n - (size_t)n + 1 : 0;
            uint32_t *rcnt = calloc(hm.n ? hm.n : 1, sizeof *rcnt);
            if (!rcnt) {
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
                break;
            }
            for (size_t i = 0; i < rg; i++) {
                int32_t k;
                if (ft_strmap_get(&hm, gram_key(&refs[r], i), kb, &k))
                    rcnt[k]++;
            }
            for (size_t k = 0; k < hm.n; k++)
                if (rcnt[k] > mc[k])
                    mc[k] = rcnt[k];
            free(rcnt);
        }
        if (rc == FT_OK) {
            uint64_t clipped = 0;
            for (size_t k = 0; k < hm.n; k++)
                clipped += hc[k] < mc[k] ? hc[k] : mc[k];
            acc->matches[n - 1] += clipped;
            acc->totals[n - 1] += ng ? ng : 1;
        }
        ft_strmap_free(&hm);
        free(hc);
        free(mc);
    }
    if (rc != FT_OK)
        return rc;
    /* closest reference length, ties to the shorter one */
    size_t best = refs[0].n;
    for (size_t r = 1; r < nrefs; r++) {
        size_t l = refs[r].n;
        size_t d = l > hyp->n ? l - hyp->n : hyp->n - l;
        size_t bd = best > hyp->n ? best - hyp->n : hyp->n - best;
        if (d < bd || (d == bd && l < best))
            best = l;
    }
    acc->hyp_len += hyp->n;
    acc->ref_len += best;
    acc->sentences++;
    return FT_OK;
}

void ft_bleu_score(const ft_bleu_acc *acc, ft_bleu *out)
{
    memset(out, 0, sizeof *out);
    for (int n = 0; n < 4; n++) {
        out->precision[n] = acc->totals[n] ? (double)acc->matches[n] / (double)acc->totals[n] : 0;
        if (!acc->matches[n] && !out->zero_order)
            out->zero_order = n + 1;
    }
    if (acc->hyp_len > acc->ref_len)
        out->bp = 1.0;
    else if (acc->hyp_len == 0)
        out->bp = 0.0;
    else
        out->bp = exp(1.0 - (double)acc->ref_len / (double)acc->hyp_len);
    if (acc->matches[0] == 0) {
        out->bleu = 0.0;
        return;
    }
    /* sum of 0.25 * log(p_n), a zero p_n replaced by DBL_MIN (NLTK's method0),
     * summed with compensation like math.fsum */
    double s = 0.0, c = 0.0;
    for (int n = 0; n < 4; n++) {
        double p = acc->matches[n] ? (double)acc->matches[n] / (double)acc->totals[n] : DBL_MIN;
        double x = 0.25 * log(p);
        double t = s + x;
        c += fabs(s) >= fabs(x) ? (s - t) + x : (x - t) + s;
        s = t;
    }
    out->bleu = out->bp * exp(s + c);
}

int ft_bleu_corpus(const ft_seq *hyps, size_t n, const ft_seq *refs, const size_t *nrefs,
                   ft_bleu *out, ft_err *err)
{
    ft_bleu_acc acc = {0};
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = nrefs ? nrefs[i] : 1;
        int rc = ft_bleu_add(&acc, &hyps[i], refs + at, k, err);
        if (rc) {
            ft_err_prefix(err, "hypothesis %zu", i);
            return rc;
        }
        at += k;
    }
    ft_bleu_score(&acc, out);
    return FT_OK;
}
