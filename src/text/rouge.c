/* ROUGE-N / ROUGE-L per pair (js-rouge semantics), corpus means, exact
 * match and perplexity. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/textmetrics.h"

#include "strmap.h"

static void prf(uint64_t m, uint64_t nc, uint64_t nr, ft_prf *out)
{
    out->p = out->r = out->f = 0.0;
    if (!m || !nc || !nr)
        return;
    out->p = (double)m / (double)nc;
    out->r = (double)m / (double)nr;
    out->f = 2.0 * (double)m / (double)(nc + nr); /* = 2PR / (P + R) */
}

int ft_rouge_n(const ft_seq *cand, const ft_seq *ref, int n, ft_prf *out, ft_err *err)
{
    if (n < 1)
        return ft_fail(err, FT_EINPUT, "ROUGE-N: n must be >= 1, got %d", n);
    out->p = out->r = out->f = 0.0;
    if (cand->n < (size_t)n || ref->n < (size_t)n)
        return FT_OK;
    size_t nc = cand->n - (size_t)n + 1, nr = ref->n - (size_t)n + 1;
    size_t kb = (size_t)n * sizeof(int32_t);
    ft_strmap m = {0};
    uint32_t *left = calloc(nr, sizeof *left);
    if (!left)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    int rc = FT_OK;
    for (size_t i = 0; i < nr && rc == FT_OK; i++) {
        int32_t k;
        const char *key = (const char *)(ref->ids + i);
        if (!ft_strmap_get(&m, key, kb, &k)) {
            k = (int32_t)m.n;
            if (ft_strmap_put(&m, key, kb, k))
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        }
        if (rc == FT_OK)
            left[k]++;
    }
    uint64_t match = 0;
    for (size_t i = 0; i < nc && rc == FT_OK; i++) {
        int32_t k;
        if (ft_strmap_get(&m, (const char *)(cand->ids + i), kb, &k) && left[k]) {
            left[k]--;
            match++;
        }
    }
    ft_strmap_free(&m);
    free(left);
    if (rc == FT_OK)
        prf(match, nc, nr, out);
    return rc;
}

int ft_rouge_l(const ft_seq *cand, const ft_seq *ref, ft_prf *out, ft_err *err)
{
    out->p = out->r = out->f = 0.0;
    if (!cand->n || !ref->n)
        return FT_OK;
    uint32_t *row = calloc(ref->n + 1, sizeof *row);
    if (!row)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; i < cand->n; i++) {
        uint32_t diag = 0; /* row[j-1] of the previous line */
        for (size_t j = 1; j <= ref->n; j++) {
            uint32_t up = row[j];
            if (cand->ids[i] == ref->ids[j - 1])
                row[j] = diag + 1;
            else if (row[j - 1] > row[j])
                row[j] = row[j - 1];
            diag = up;
        }
    }
    prf(row[ref->n], cand->n, ref->n, out);
    free(row);
    return FT_OK;
}

static void add_prf(ft_prf *sum, const ft_prf *x)
{
    sum->p += x->p;
    sum->r += x->r;
    sum->f += x->f;
}

int ft_rouge_add(ft_rouge_acc *acc, const ft_seq *cand, const ft_seq *ref, ft_err *err)
{
    ft_prf a, b, c;
    int rc = ft_rouge_n(cand, ref, 1, &a, err);
    if (rc == FT_OK)
        rc = ft_rouge_n(cand, ref, 2, &b, err);
    if (rc == FT_OK)
        rc = ft_rouge_l(cand, ref, &c, err);
    if (rc)
        return rc;
    add_prf(&acc->r1, &a);
    add_prf(&acc->r2, &b);
    add_prf(&acc->rl, &c);
    acc->pairs++;
    return FT_OK;
}

static void mean_prf(const ft_prf *sum, uint64_t n, ft_prf *out)
{
    if (!out)
        return;
    double d = n ? (double)n : 1.0;
    out->p = sum->p / d;
    out->r = sum->r / d;
    out->f = sum->f / d;
}

void ft_rouge_score(const ft_rouge_acc *acc, ft_prf *r1, ft_prf *r2, ft_prf *rl)
{
    mean_prf(&acc->r1, acc->pairs, r1);
    mean_prf(&acc->r2, acc->pairs, r2);
    mean_prf(&acc->rl, acc->pairs, rl);
}

/* SQuAD's normalize_answer on ASCII: lower, drop punctuation, drop the
 * articles a/an/the as words, collapse whitespace. Writes into out (size of
 * s + 1 suffices). */
static void squad_norm(const char *s, char *out)
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x80 && ispunct(c))
            continue;
        out[n++] = c < 0x80 ? (char)tolower(c) : (char)c;
    }
    out[n] = '\0';
    /* words, without articles, joined by single spaces */
    size_t w = 0, i = 0;
    while (i < n) {
        while (i < n && isspace((unsigned char)out[i]))
            i++;
        size_t j = i;
        while (j < n && !isspace((unsigned char)out[j]))
            j++;
        size_t len = j - i;
        int article = (len == 1 && out[i] == 'a') || (len == 2 && !memcmp(out + i, "an", 2)) ||
                      (len == 3 && !memcmp(out + i, "the", 3));
        if (len && !article) {
            if (w)
                out[w++] = ' ';
            memmove(out + w, out + i, len);
            w += len;
        }
        i = j;
    }
    out[w] = '\0';
}

int ft_exact_match(const char *a, const char *b, int mode)
{
    if (mode == FT_EM_SQUAD) {
        size_t la = strlen(a), lb = strlen(b);
        char *na = malloc(la + 1), *nb = malloc(lb + 1);
        int eq = 0;
        if (na && nb) {
            squad_norm(a, na);
            squad_norm(b, nb);
            eq = !strcmp(na, nb);
        }
        free(na);
        free(nb);
        return eq;
    }
    while (isspace((unsigned char)*a))
        a++;
    while (isspace((unsigned char)*b))
        b++;
    size_t la = strlen(a), lb = strlen(b);
    while (la && isspace((unsigned char)a[la - 1]))
        la--;
    while (lb && isspace((unsigned char)b[lb - 1]))
        lb--;
    return la == lb && !memcmp(a, b, la);
}

double ft_token_nll(const float *logits, int vocab, int target)
{
    if (vocab <= 0 || target < 0 || target >= vocab)
        return NAN;
    double mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double s = 0.0;
    for (int i = 0; i < vocab; i++)
        s += exp((double)logits[i] - mx);
    if (!(s > 0.0))
        return NAN;
    return mx + log(s) - (double)logits[target];
}

double ft_perplexity(double sum_nll, uint64_t tokens)
{
    if (!tokens)
        return NAN;
    return exp(sum_nll / (double)tokens);
}
