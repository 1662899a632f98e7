/* Scores of generated text (ft_gen_score_*): corpus BLEU-4, ROUGE-1/2/L and exact match on
 * hand-made pairs worked out below; the ids path (vocab map, stop id, WordPiece decoding)
 * must give the same scores as the text; packed sums add up across "ranks". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/genscore.h"

#include "testutil.h"

static const char *g1 = "the cat sat on the mat", *r1 = "the cat sat on the mat";
static const char *g2 = "a dog", *r2 = "the dog barked";

/* Row 1 is exact. Row 2: unigrams a, dog against the dog barked: 1 match of 2; its bigram
 * "a dog" matches nothing (0 of 1); no trigram or 4-gram, so NLTK's denominators are
 * max(1, 0) = 1 each. Corpus precisions: p1 = (6 + 1) / (6 + 2) = 7/8, p2 = (5 + 0) / (5 + 1)
 * = 5/6, p3 = 4/5, p4 = 3/4; hypothesis length c = 8, reference length r = 6 + 3 = 9, so
 * BP = exp(1 - 9/8). ROUGE of row 2: P1 = 1/2, R1 = 1/3, F1 = 2 (1/6) / (5/6) = 0.4; no
 * bigram match (F = 0); LCS "dog" = 1 gives ROUGE-L as ROUGE-1. Means with row 1's 1s. */
static void check_hand(const ft_gen_scores *s)
{
    double bp = exp(1.0 - 9.0 / 8.0);
    CHECK_NEAR(s->bleu.precision[0], 7.0 / 8, 1e-12);
    CHECK_NEAR(s->bleu.precision[1], 5.0 / 6, 1e-12);
    CHECK_NEAR(s->bleu.precision[2], 4.0 / 5, 1e-12);
    CHECK_NEAR(s->bleu.precision[3], 3.0 / 4, 1e-12);
    CHECK_NEAR(s->bleu.bp, bp, 1e-12);
    CHECK_NEAR(s->bleu.bleu, bp * pow(7.0 / 8 * 5.0 / 6 * 4.0 / 5 * 3.0 / 4, 0.25), 1e-12);
    CHECK_NEAR(s->rouge1.p, (1 + 0.5) / 2, 1e-12);
    CHECK_NEAR(s->rouge1.r, (1 + 1.0 / 3) / 2, 1e-12);
    CHECK_NEAR(s->rouge1.f, (1 + 0.4) / 2, 1e-12);
    CHECK_NEAR(s->rouge2.f, (1 + 0.0) / 2, 1e-12);
    CHECK_NEAR(s->rougel.f, (1 + 0.4) / 2, 1e-12);
    CHECK(s->rows == 2 && s->exact == 1);
    CHECK_NEAR(s->exact_match, 0.5, 1e-12);
}

static void same(const ft_gen_scores *a, const ft_gen_scores *b)
{
    CHECK(a->bleu.bleu == b->bleu.bleu && a->bleu.bp == b->bleu.bp);
    CHECK(a->rouge1.f == b->rouge1.f && a->rouge2.f == b->rouge2.f && a->rougel.f == b->rougel.f);
    CHECK(a->rows == b->rows && a->exact == b->exact);
}

int main(void)
{
    ft_err err = {0};
    ft_gen_score s;
    ft_gen_scores text, ids, summed;

    /* text */
    CHECK(ft_gen_score_init(&s, NULL, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&s, g1, r1, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&s, g2, r2, &err) == FT_OK);
    ft_gen_score_finish(&s, &text);
    check_hand(&text);
    ft_gen_score_free(&s);

    /* ids: compact ids of a hand-made map over a WordPiece vocabulary, cut at [SEP] */
    char vpath[512];
    snprintf(vpath, sizeof vpath, "%s/gs_vocab.txt", tu_tmpdir());
    FILE *f = fopen(vpath, "w");
    CHECK(f != NULL);
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\na\ndog\nbarked\n", f);
    fclose(f);
    ft_tokenizer *tok = NULL;
    ft_tokenizer_opts to;
    ft_tokenizer_opts_init(&to);
    CHECK(ft_tokenizer_load(&tok, vpath, NULL, &to, &err) == FT_OK);
    /* compact 0 = [SEP], 1..8 = the cat sat on mat a dog barked, 9 = UNK ([UNK] = 1) */
    int32_t mids[10] = {3, 5, 6, 7, 8, 9, 10, 11, 12, 1}, compact[13];
    for (int i = 0; i < 13; i++)
        compact[i] = 9;
    for (int c = 0; c < 9; c++)
        compact[mids[c]] = c;
    ft_vocab_map map = {mids, 10, compact, 13};
    ft_gen_score_opts o;
    ft_gen_score_opts_init(&o);
    o.tok = tok;
    o.map = &map;
    o.stop_id = 0;
    const int32_t gen1[] = {1, 2, 3, 4, 1, 5, 0, 8, 8}; /* ids after the stop are ignored */
    const int32_t ref1[] = {1, 2, 3, 4, 1, 5, 0};
    const int32_t gen2[] = {6, 7}; /* no stop: the whole sequence */
    const int32_t ref2[] = {1, 7, 8, 0, 0, 0};
    CHECK(ft_gen_score_init(&s, &o, &err) == FT_OK);
    CHECK(ft_gen_score_add(&s, gen1, 9, ref1, 7, &err) == FT_OK);
    CHECK(ft_gen_score_add(&s, gen2, 2, ref2, 6, &err) == FT_OK);
    /* an id outside the map: FT_EINPUT, and nothing counted */
    const int32_t bad[] = {12};
    CHECK(ft_gen_score_add(&s, bad, 1, ref1, 7, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "id 12 is not in the vocab map");
    ft_gen_score_finish(&s, &ids);
    same(&ids, &text);
    check_hand(&ids);
    ft_gen_score_free(&s);

    /* a generated UNK (compact 9) earns nothing against the reference's UNK: "the [UNK]"
     * vs "the [UNK]" scores as "the" vs "the [UNK]" (unigram precision 1, recall 1/2) */
    const int32_t gu[] = {1, 9, 0}, ru[] = {1, 9, 0};
    CHECK(ft_gen_score_init(&s, &o, &err) == FT_OK);
    CHECK(ft_gen_score_add(&s, gu, 3, ru, 3, &err) == FT_OK);
    ft_gen_scores u;
    ft_gen_score_finish(&s, &u);
    CHECK_NEAR(u.rouge1.p, 1.0, 1e-12);
    CHECK_NEAR(u.rouge1.r, 0.5, 1e-12);
    CHECK(u.exact == 0);
    ft_gen_score_free(&s);

    /* two "ranks", one row each: packed sums added up give the corpus scores */
    ft_gen_score a, b;
    double pa[FT_GEN_SCORE_NSUMS], pb[FT_GEN_SCORE_NSUMS];
    CHECK(ft_gen_score_init(&a, NULL, &err) == FT_OK && ft_gen_score_init(&b, NULL, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&a, g1, r1, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&b, g2, r2, &err) == FT_OK);
    ft_gen_score_pack(&a, pa);
    ft_gen_score_pack(&b, pb);
    for (int k = 0; k < FT_GEN_SCORE_NSUMS; k++)
        pa[k] += pb[k];
    ft_gen_score_unpack(&a, pa);
    ft_gen_score_finish(&a, &summed);
    same(&summed, &text);
    ft_gen_score_free(&a);
    ft_gen_score_free(&b);

    /* exact match modes; without a tokenizer, ids cannot be scored */
    ft_gen_score_opts_init(&o);
    o.em_mode = FT_EM_SQUAD;
    CHECK(ft_gen_score_init(&s, &o, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&s, "The dog.", "the dog", &err) == FT_OK);
    ft_gen_score_finish(&s, &summed);
    CHECK(summed.exact == 1);
    CHECK(ft_gen_score_add(&s, gen2, 2, ref2, 6, &err) == FT_EINPUT);
    ft_gen_score_free(&s);
    CHECK(ft_gen_score_init(&s, NULL, &err) == FT_OK);
    CHECK(ft_gen_score_add_text(&s, "The dog.", "the dog", &err) == FT_OK);
    ft_gen_score_finish(&s, &summed);
    CHECK(summed.exact == 0 && summed.rows == 1);
    ft_gen_score_free(&s);

    ft_tokenizer_free(tok);
    return tu_done("test_genscore");
}
