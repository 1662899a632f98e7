/* Text generation metrics (docs/text.md, "Metrics"): corpus BLEU-4 as NLTK's
 * corpus_bleu computes it, ROUGE-1/2/L F1 as the npm package js-rouge
 * computes it per pair, exact match and perplexity.
 *
 * Metrics work on token id sequences: ids from a tokenizer, or words
 * interned by ft_words_split (so BLEU and ROUGE can be computed on text with
 * a documented word tokenization). */
#ifndef FTUNE_TEXTMETRICS_H
#define FTUNE_TEXTMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"
#include "ftune/tokenizer.h"

typedef struct ft_seq {
    const int32_t *ids;
    size_t n;
} ft_seq;

/* ---- words ------------------------------------------------------------------------------ */

/* Interning table: equal words get equal ids. */
typedef struct ft_words ft_words;
ft_words *ft_words_new(void);
void ft_words_free(ft_words *w);

enum ft_words_mode {
    /* split on ASCII whitespace, words kept as they are (NLTK tests: str.split()) */
    FT_WORDS_SPACE = 0,
    /* Google rouge-score's default: lower-case, every run of characters other
     * than [a-z0-9] separates words (so non-ASCII letters separate too) */
    FT_WORDS_ROUGE = 1
};
/* Appends the ids of text's words to out. */
int ft_words_split(ft_words *w, const char *text, size_t len, int mode, ft_ids *out, ft_err *err);

/* ---- BLEU ------------------------------------------------------------------------------- */

/* Corpus statistics; add sentences, then score. Zero-initialise. */
typedef struct ft_bleu_acc {
    uint64_t matches[4];       /* clipped n-gram matches, n = 1..4 */
    uint64_t totals[4];        /* sum over sentences of max(1, hypothesis n-grams) (NLTK) */
    uint64_t hyp_len, ref_len; /* ref_len: closest reference length, ties to the shorter */
    uint64_t sentences;
} ft_bleu_acc;

typedef struct ft_bleu {
    double bleu;         /* BLEU-4, uniform weights, brevity penalty, no smoothing */
    double precision[4]; /* matches / totals */
    double bp;           /* brevity penalty */
    /* n (1..4) of the first order with no match, else 0. NLTK warns then and
     * uses sys.float_info.min for that precision, so BLEU is ~1e-77 (not
     * exactly 0); with no unigram match it returns exactly 0. */
    int zero_order;
} ft_bleu;

/* One hypothesis and its nrefs >= 1 references. */
int ft_bleu_add(ft_bleu_acc *acc, const ft_seq *hyp, const ft_seq *refs, size_t nrefs, ft_err *err);
void ft_bleu_score(const ft_bleu_acc *acc, ft_bleu *out);
/* ft_bleu_add over n hypotheses; refs holds nrefs[i] references for
 * hypothesis i, one after another (nrefs NULL: one each). */
int ft_bleu_corpus(const ft_seq *hyps, size_t n, const ft_seq *refs, const size_t *nrefs,
                   ft_bleu *out, ft_err *err);

/* ---- ROUGE ------------------------------------------------------------------------------ */

typedef struct ft_prf {
    double p, r, f; /* precision, recall, F1 */
} ft_prf;

/* ROUGE-N of one candidate against one reference: clipped n-gram matches m,
 * P = m / candidate n-grams, R = m / reference n-grams, F1 = 2PR / (P + R);
 * all 0 when either side has fewer than n tokens or m = 0 (as js-rouge). */
int ft_rouge_n(const ft_seq *cand, const ft_seq *ref, int n, ft_prf *out, ft_err *err);
/* ROUGE-L: the same with m = the longest common subsequence. */
int ft_rouge_l(const ft_seq *cand, const ft_seq *ref, ft_prf *out, ft_err *err);

/* Corpus ROUGE: the mean over pairs of each pair's P, R and F1. */
typedef struct ft_rouge_acc {
    ft_prf r1, r2, rl; /* sums */
    uint64_t pairs;
} ft_rouge_acc;
int ft_rouge_add(ft_rouge_acc *acc, const ft_seq *cand, const ft_seq *ref, ft_err *err);
/* Means (zeros when no pair was added). */
void ft_rouge_score(const ft_rouge_acc *acc, ft_prf *r1, ft_prf *r2, ft_prf *rl);

/* ---- exact match, perplexity -------------------------------------------------------------- */

enum ft_em_mode {
    FT_EM_TRIM = 0, /* equal after removing leading/trailing whitespace */
    FT_EM_SQUAD = 1 /* SQuAD normalisation: ASCII lower-case, punctuation removed, the
                       articles a/an/the removed, whitespace runs collapsed */
};
int ft_exact_match(const char *a, const char *b, int mode);

/* Negative log-likelihood of target under a row of logits (log-sum-exp minus
 * the target's logit), in double precision. */
double ft_token_nll(const float *logits, int vocab, int target);
/* exp(sum_nll / tokens); NAN when tokens == 0. */
double ft_perplexity(double sum_nll, uint64_t tokens);

#endif
