/* Scoring generated text against references (docs/text.md, "Scoring generated text"): corpus
 * BLEU-4, ROUGE-1/2/L F1 and exact match over rows of (generated, reference), from token ids
 * (decoded through the tokenizer, and a vocab map for compact ids) or from text. Words are
 * split as textmetrics.h documents: FT_WORDS_SPACE for BLEU (NLTK with str.split()),
 * FT_WORDS_ROUGE for ROUGE. The sums are plain counts, so ranks can add them up
 * (ft_gen_score_pack / ft_gen_score_unpack) before ft_gen_score_finish. */
#ifndef FTUNE_GENSCORE_H
#define FTUNE_GENSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"
#include "ftune/textmetrics.h"
#include "ftune/tokenizer.h"

typedef struct ft_gen_score_opts {
    const ft_tokenizer *tok; /* decodes ids (needed by ft_gen_score_add only) */
    const ft_vocab_map *map; /* ids are this map's compact ids; NULL: tokenizer ids */
    int32_t stop_id;         /* a sequence ends before its first stop_id (end-of-text, in
                                the ids' own space); -1: none */
    int em_mode;             /* FT_EM_TRIM or FT_EM_SQUAD */
} ft_gen_score_opts;

typedef struct ft_gen_score {
    ft_gen_score_opts o;
    ft_words *words;
    ft_bleu_acc bleu;
    ft_rouge_acc rouge;
    uint64_t rows, exact;
    ft_ids hyp, ref; /* scratch: word ids */
} ft_gen_score;

typedef struct ft_gen_scores {
    ft_bleu bleu;                  /* corpus BLEU-4 and its parts */
    ft_prf rouge1, rouge2, rougel; /* means over rows */
    double exact_match;            /* fraction of rows; 0 without rows */
    uint64_t rows, exact;
} ft_gen_scores;

void ft_gen_score_opts_init(ft_gen_score_opts *o); /* no tokenizer, stop -1, FT_EM_TRIM */
int ft_gen_score_init(ft_gen_score *s, const ft_gen_score_opts *o, ft_err *err);
/* One row from ids: both cut at their first stop_id, decoded, then as ft_gen_score_add_text.
 * An id the tokenizer / map does not have is FT_EINPUT. */
int ft_gen_score_add(ft_gen_score *s, const int32_t *gen, size_t ngen, const int32_t *ref,
                     size_t nref, ft_err *err);
/* One row from text (NUL-terminated). */
int ft_gen_score_add_text(ft_gen_score *s, const char *gen, const char *ref, ft_err *err);
/* The sums as FT_GEN_SCORE_NSUMS doubles (exact: counts stay far below 2^53), and back
 * (replacing them), so an MPI caller can all-reduce them. */
#define FT_GEN_SCORE_NSUMS 23
void ft_gen_score_pack(const ft_gen_score *s, double *out);
void ft_gen_score_unpack(ft_gen_score *s, const double *in);
void ft_gen_score_finish(const ft_gen_score *s, ft_gen_scores *out);
void ft_gen_score_free(ft_gen_score *s);

#endif
