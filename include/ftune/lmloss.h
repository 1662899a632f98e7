/* Causal language-model loss over per-position logits [n, T, V]: position t predicts the
 * token at t + 1, for the real tokens only (t + 1 < length), as Hugging Face's
 * GPT2LMHeadModel with labels = input_ids and padding labelled -100:
 *   loss = sum over targets of -log softmax(logits[i, t])[ids[i, t + 1]] / (target count)
 * The denominator is global (all ranks, all micro-batches): the caller passes 1/count as
 * `scale`. */
#ifndef FTUNE_LMLOSS_H
#define FTUNE_LMLOSS_H

typedef struct ft_lm_stats {
    double nll;     /* summed negative log-likelihood of the targets */
    double tokens;  /* targets counted */
    double correct; /* targets that are the argmax of their logits */
} ft_lm_stats;

/* Targets in n rows of T positions (len NULL: every position real): sum of max(len - 1, 0). */
double ft_lm_targets(const int *len, int n, int T);

/* Source -> target rows (docs/text.md, "Source -> target training"): with prompt != NULL
 * only the target part of row i counts, positions prompt[i] - 1 <= t < len[i] - 1 (the last
 * prompt token predicts the first target token, the last target token the end-of-text).
 * prompt NULL: as ft_lm_targets / ft_lm_loss. Prompt lengths below 1 count as 1. */
double ft_lm_targets_prompt(const int *len, const int *prompt, int n, int T);

/* The first row with a target id outside [0, V) (not an integer in range), or -1. */
long ft_lm_bad_row(const float *ids, const int *len, int n, int T, int V);

/* Adds the rows' targets to *st. With dlogits != NULL, writes scale * d(sum nll)/dlogits
 * ([n, T, V]; zero at positions without a target). ids: [n, T] token ids as floats.
 * Returns -1, or the first row whose target id is outside [0, V) (nothing is added then). */
long ft_lm_loss(const float *logits, const float *ids, const int *len, int n, int T, int V,
                float scale, float *dlogits, ft_lm_stats *st);
/* ft_lm_loss counting only the target part of each row (prompt as above). Every real id of a
 * row is still checked against V, prompt or not. */
long ft_lm_loss_prompt(const float *logits, const float *ids, const int *len, const int *prompt,
                       int n, int T, int V, float scale, float *dlogits, ft_lm_stats *st);

#endif
