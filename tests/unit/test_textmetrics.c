/* BLEU, ROUGE, exact match and perplexity on hand-worked cases (expected
 * values written out; the BLEU ones agree with NLTK 3.8's corpus_bleu).
 *
 * Also the driver of tests/integration/t_textmetrics_parity.sh:
 *   test_textmetrics bleu CORPUS.jsonl...  -> "NAME bleu B bp BP" per file
 *   test_textmetrics rouge CORPUS.jsonl    -> "R1 R2 RL" (F1) per pair
 * with lines {"hyp": str, "refs": [str, ...]}; BLEU words are split on
 * whitespace (as str.split()), ROUGE words as FT_WORDS_ROUGE. */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/json.h"
#include "ftune/textmetrics.h"

#include "testutil.h"

/* ---- driver ------------------------------------------------------------------------------ */

typedef struct {
    ft_ids *hyp;  /* per pair */
    ft_ids *refs; /* all references */
    size_t *nrefs;
    size_t n, nref_total;
} corpus;

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        ft_ids_free(&c->hyp[i]);
    for (size_t i = 0; i < c->nref_total; i++)
        ft_ids_free(&c->refs[i]);
    free(c->hyp);
    free(c->refs);
    free(c->nrefs);
}

static int read_corpus(const char *path, ft_words *w, int mode, corpus *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0, ncap = 0, rcap = 0;
    ssize_t len;
    ft_err err = {0};
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        ft_json *j;
        if (ft_json_parse(line, (size_t)len, &j, &err)) {
            fprintf(stderr, "%s:%zu: %s\n", path, c->n + 1, err.msg);
            rc = 2;
            break;
        }
        const ft_json *h = ft_json_get(j, "hyp"), *r = ft_json_get(j, "refs");
        if (!ft_json_string(h) || !ft_json_len(r)) {
            fprintf(stderr, "%s:%zu: expected {\"hyp\": str, \"refs\": [str, ...]}\n", path,
                    c->n + 1);
            ft_json_free(j);
            rc = 2;
            break;
        }
        if (c->n == ncap) {
            ncap = ncap ? 2 * ncap : 256;
            c->hyp = realloc(c->hyp, ncap * sizeof *c->hyp);
            c->nrefs = realloc(c->nrefs, ncap * sizeof *c->nrefs);
        }
        memset(&c->hyp[c->n], 0, sizeof c->hyp[0]);
        ft_words_split(w, h->s, h->len, mode, &c->hyp[c->n], &err);
        c->nrefs[c->n] = ft_json_len(r);
        for (size_t k = 0; k < ft_json_len(r); k++) {
            const ft_json *s = ft_json_at(r, k);
            if (c->nref_total == rcap) {
                rcap = rcap ? 2 * rcap : 256;
                c->refs = realloc(c->refs, rcap * sizeof *c->refs);
            }
            memset(&c->refs[c->nref_total], 0, sizeof c->refs[0]);
            if (ft_json_string(s))
                ft_words_split(w, s->s, s->len, mode, &c->refs[c->nref_total], &err);
            c->nref_total++;
        }
        c->n++;
        ft_json_free(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static int driver(int argc, char **argv)
{
    int bleu = !strcmp(argv[1], "bleu");
    if ((!bleu && strcmp(argv[1], "rouge")) || argc < 3) {
        fprintf(stderr, "usage: test_textmetrics bleu|rouge CORPUS.jsonl...\n");
        return 2;
    }
    for (int a = 2; a < argc; a++) {
        ft_words *w = ft_words_new();
        corpus c;
        int rc = read_corpus(argv[a], w, bleu ? FT_WORDS_SPACE : FT_WORDS_ROUGE, &c);
        ft_err err = {0};
        if (rc == 0 && bleu) {
            ft_seq *hs = calloc(c.n + 1, sizeof *hs), *rs = calloc(c.nref_total + 1, sizeof *rs);
            for (size_t i = 0; i < c.n; i++)
                hs[i] = (ft_seq){c.hyp[i].v, c.hyp[i].n};
            for (size_t i = 0; i < c.nref_total; i++)
                rs[i] = (ft_seq){c.refs[i].v, c.refs[i].n};
            ft_bleu b;
            if (ft_bleu_corpus(hs, c.n, rs, c.nrefs, &b, &err)) {
                fprintf(stderr, "%s: %s\n", argv[a], err.msg);
                rc = 1;
            } else {
                const char *base = strrchr(argv[a], '/');
                base = base ? base + 1 : argv[a];
                int nl =
                    (int)(strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base));
                printf("%.*s bleu %.17g bp %.17g\n", nl, base, b.bleu, b.bp);
            }
            free(hs);
            free(rs);
        } else if (rc == 0) {
            size_t at = 0;
            for (size_t i = 0; i < c.n && rc == 0; i++) {
                ft_seq h = {c.hyp[i].v, c.hyp[i].n}, r = {c.refs[at].v, c.refs[at].n};
                ft_prf r1, r2, rl;
                if (ft_rouge_n(&h, &r, 1, &r1, &err) || ft_rouge_n(&h, &r, 2, &r2, &err) ||
                    ft_rouge_l(&h, &r, &rl, &err)) {
                    fprintf(stderr, "%s: %s\n", argv[a], err.msg);
                    rc = 1;
                }
                printf("%.17g %.17g %.17g\n", r1.f, r2.f, rl.f);
                at += c.nrefs[i];
            }
        }
        corpus_free(&c);
        ft_words_free(w);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- hand-worked cases -------------------------------------------------------------------- */

/* Words of a space-separated string as ids in a shared table. */
static ft_words *W;
static ft_seq words(const char *s)
{
    static ft_ids pool[64];
    static int next;
    ft_ids *ids = &pool[next++ % 64];
    ids->n = 0;
    ft_err err = {0};
    ft_words_split(W, s, strlen(s), FT_WORDS_SPACE, ids, &err);
    return (ft_seq){ids->v, ids->n};
}

static double bleu1(const char *hyp, const char *ref)
{
    ft_seq h = words(hyp), r = words(ref);
    ft_bleu b;
    ft_err err = {0};
    if (ft_bleu_corpus(&h, 1, &r, NULL, &b, &err))
        return -1;
    return b.bleu;
}

static void test_bleu(void)
{
    /* identical: 1; one substitution at the end of 5 words: p = 4/5, 3/4, 2/3, 1/2,
     * BP = 1 (equal lengths), BLEU = (1/5)^(1/4) */
    CHECK_NEAR(bleu1("a b c d", "a b c d"), 1.0, 1e-15);
    CHECK_NEAR(bleu1("a b c d e", "a b c d f"), pow(0.2, 0.25), 1e-15);
    CHECK_NEAR(bleu1("a b c d e", "a b c d f"), 0.668740304976422, 1e-15); /* NLTK */
    /* short hypothesis: precisions 1, BP = exp(1 - 6/4) */
    CHECK_NEAR(bleu1("a b c d", "a b c d e f"), exp(-0.5), 1e-15);
    /* no unigram match: exactly 0 */
    CHECK(bleu1("x y z w", "a b c d") == 0.0);
    /* 3 words: no 4-gram (denominator max(1, 0) = 1, numerator 0): NLTK uses
     * sys.float_info.min, BLEU = DBL_MIN^(1/4) = 1.2213386697554703e-77 */
    ft_seq h = words("a b c"), r = words("a b c");
    ft_bleu b;
    ft_err err = {0};
    CHECK(ft_bleu_corpus(&h, 1, &r, NULL, &b, &err) == FT_OK);
    CHECK(b.zero_order == 4);
    CHECK_NEAR(b.bleu / 1.2213386697554703e-77, 1.0, 1e-14);
    CHECK_NEAR(b.bleu, pow(DBL_MIN, 0.25), 1e-90);

    /* modified precision: "the" x7 against two references, clipped at 2 -> 2/7 */
    ft_seq h7 = words("the the the the the the the");
    ft_seq r7[2] = {words("the cat is on the mat"), words("there is a cat on the mat")};
    ft_bleu_acc acc = {0};
    CHECK(ft_bleu_add(&acc, &h7, r7, 2, &err) == FT_OK);
    CHECK(acc.matches[0] == 2 && acc.totals[0] == 7);
    /* closest reference length: 6 and 7 for a 7-word hypothesis -> 7; ties -> shorter */
    CHECK(acc.ref_len == 7);
    ft_bleu_acc acc2 = {0};
    ft_seq h5 = words("a b c d e");
    ft_seq r46[2] = {words("a b c d e f"), words("a b c d")};
    CHECK(ft_bleu_add(&acc2, &h5, r46, 2, &err) == FT_OK && acc2.ref_len == 4);

    /* NLTK's corpus_bleu docstring example: 0.5920778868801042 */
    ft_seq hyps[2] = {
        words("It is a guide to action which ensures that the military always obeys the "
              "commands of the party"),
        words("he read the book because he was interested in world history")};
    ft_seq refs[4] = {
        words("It is a guide to action that ensures that the military will forever heed "
              "Party commands"),
        words("It is the guiding principle which guarantees the military forces always being "
              "under the command of the Party"),
        words("It is the practical guide for the army always to heed the directions of the "
              "party"),
        words("he was interested in world history because he read the book")};
    size_t nrefs[2] = {3, 1};
    CHECK(ft_bleu_corpus(hyps, 2, refs, nrefs, &b, &err) == FT_OK);
    CHECK_NEAR(b.bleu, 0.5920778868801042, 1e-15);
    CHECK(ft_bleu_corpus(hyps, 1, refs, (size_t[]){0}, &b, &err) == FT_EINPUT);
}

static void test_rouge(void)
{
    ft_err err = {0};
    ft_prf p;
    ft_seq c = words("the cat sat"), r = words("the cat sat on the mat");
    /* ROUGE-1: m = 3, P = 1, R = 1/2, F = 2/3 */
    CHECK(ft_rouge_n(&c, &r, 1, &p, &err) == FT_OK);
    CHECK_NEAR(p.p, 1.0, 1e-15);
    CHECK_NEAR(p.r, 0.5, 1e-15);
    CHECK_NEAR(p.f, 2.0 / 3.0, 1e-15);
    /* ROUGE-2: 2 of 2 candidate bigrams, 5 reference bigrams: F = 4/7 */
    CHECK(ft_rouge_n(&c, &r, 2, &p, &err) == FT_OK);
    CHECK_NEAR(p.r, 0.4, 1e-15);
    CHECK_NEAR(p.f, 4.0 / 7.0, 1e-15);
    /* ROUGE-L: LCS 3 */
    CHECK(ft_rouge_l(&c, &r, &p, &err) == FT_OK);
    CHECK_NEAR(p.f, 2.0 / 3.0, 1e-15);
    /* js-rouge's README: "police kill the gunman" vs "police killed the gunman" -> 0.75 */
    ft_seq c2 = words("police kill the gunman"), r2 = words("police killed the gunman");
    CHECK(ft_rouge_l(&c2, &r2, &p, &err) == FT_OK);
    CHECK_NEAR(p.f, 0.75, 1e-15);
    /* clipping: "the the the" vs "the cat": m = 1, P = 1/3, R = 1/2, F = 2/5 */
    ft_seq c3 = words("the the the"), r3 = words("the cat");
    CHECK(ft_rouge_n(&c3, &r3, 1, &p, &err) == FT_OK);
    CHECK_NEAR(p.f, 0.4, 1e-15);
    /* LCS is not greedy: "a b c d" vs "b c d a" -> 3 */
    ft_seq c4 = words("a b c d"), r4 = words("b c d a");
    CHECK(ft_rouge_l(&c4, &r4, &p, &err) == FT_OK);
    CHECK_NEAR(p.f, 0.75, 1e-15);
    /* shorter than n, or empty: 0 */
    ft_seq c5 = words("a"), e = words("");
    CHECK(ft_rouge_n(&c5, &r4, 2, &p, &err) == FT_OK && p.f == 0.0);
    CHECK(ft_rouge_l(&e, &r4, &p, &err) == FT_OK && p.f == 0.0);
    CHECK(ft_rouge_n(&c5, &r4, 0, &p, &err) == FT_EINPUT);
    /* corpus: means over pairs */
    ft_rouge_acc acc = {0};
    CHECK(ft_rouge_add(&acc, &c, &r, &err) == FT_OK && ft_rouge_add(&acc, &c4, &r4, &err) == 0);
    ft_prf m1, m2, ml;
    ft_rouge_score(&acc, &m1, &m2, &ml);
    CHECK_NEAR(m1.f, (2.0 / 3.0 + 1.0) / 2, 1e-15);
    CHECK_NEAR(m2.f, (4.0 / 7.0 + 2.0 / 3.0) / 2, 1e-15);
    CHECK_NEAR(ml.f, (2.0 / 3.0 + 0.75) / 2, 1e-15);

    /* rouge-score tokenization */
    ft_ids ids = {0};
    const char *t = "Hello, WORLD! it's 2x\xE2\x80\x94ok caf\xC3\xA9 \xC4\xB0stanbul";
    ft_words_split(W, t, strlen(t), FT_WORDS_ROUGE, &ids, &err);
    ft_ids ex = {0};
    const char *expect = "hello world it s 2x ok caf i stanbul";
    ft_words_split(W, expect, strlen(expect), FT_WORDS_SPACE, &ex, &err);
    CHECK(ids.n == ex.n && !memcmp(ids.v, ex.v, ids.n * sizeof *ids.v));
    ft_ids_free(&ids);
    ft_ids_free(&ex);
}

static void test_misc(void)
{
    CHECK(ft_exact_match("  Paris \n", "Paris", FT_EM_TRIM));
    CHECK(!ft_exact_match("paris", "Paris", FT_EM_TRIM));
    CHECK(ft_exact_match("The Eiffel  Tower!", "eiffel tower", FT_EM_SQUAD));
    CHECK(!ft_exact_match("Eiffel Towers", "eiffel tower", FT_EM_SQUAD));
    CHECK(ft_exact_match("", "  ", FT_EM_TRIM));
    float logits[4] = {0, 0, 0, 0};
    CHECK_NEAR(ft_token_nll(logits, 4, 2), log(4.0), 1e-15);
    float big[3] = {1000.0f, 0.0f, -1000.0f}; /* no overflow */
    CHECK_NEAR(ft_token_nll(big, 3, 0), 0.0, 1e-12);
    CHECK_NEAR(ft_token_nll(big, 3, 1), 1000.0, 1e-9);
    CHECK_NEAR(ft_perplexity(4 * log(4.0), 4), 4.0, 1e-12);
    CHECK(isnan(ft_perplexity(1.0, 0)));
    CHECK(isnan(ft_token_nll(logits, 4, 4)));
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return driver(argc, argv);
    W = ft_words_new();
    test_bleu();
    test_rouge();
    test_misc();
    ft_words_free(W);
    return tu_done("test_textmetrics");
}
