/* Text generation from a causal language model (docs/text.md "Generation"): the layer chain
 * embedding -> causal transformer_block ... -> layernorm -> lm_head runs one position at a
 * time through each layer's step op (include/ftune/layer.h), which keeps the attention keys
 * and values of past positions, so a new token costs O(pos D) attention per block instead of
 * a full forward over the sequence. The logits equal those of ft_model_forward over the same
 * prefix (up to float rounding). */
#ifndef FTUNE_GENERATE_H
#define FTUNE_GENERATE_H

#include <stdint.h>

#include "ftune/model.h"
#include "ftune/rng.h"

typedef struct ft_gen_opts {
    int max_new;       /* tokens to generate at most, >= 0 */
    int greedy;        /* 1: argmax (first maximum on ties); temperature, top_k, top_p unused */
    int top_k;         /* sampling: only the k most probable tokens; 0 = all */
    float top_p;       /* sampling: the nucleus, the smallest set of most probable tokens whose
                          mass is >= top_p (after temperature and top_k); 1 = all */
    float temperature; /* sampling: logits are divided by it, > 0 */
    uint64_t seed;     /* sequence i of a call samples from the stream (seed, i) */
    int32_t stop_id;   /* generation ends when this id is drawn (it is not output); -1: none */
    int32_t ban_id;    /* never generated (a compact vocabulary's UNK, which stands for every
                          rare token at once); -1: none */
} ft_gen_opts;

/* greedy, max_new 32, top_k 0, top_p 1, temperature 1, seed 0, stop_id -1, ban_id -1 */
void ft_gen_opts_init(ft_gen_opts *o);
/* FT_EINPUT naming the option when out of range for a vocabulary of V ids. */
int ft_gen_opts_check(const ft_gen_opts *o, int V, ft_err *err);

/* Why a sequence ended. */
enum ft_gen_end { FT_GEN_END_MAX_NEW = 0, FT_GEN_END_STOP = 1, FT_GEN_END_MAX_LEN = 2 };

/* Decoding state: caches for up to `batch` sequences decoded together (reused across
 * sequences). */
typedef struct ft_gen_state {
    ft_model *m;
    int max_pos; /* positions the model can hold (its position table, else its input T) */
    int vocab;   /* logits per position */
    int in_vocab;
    int batch;
    int pos;          /* ft_gen_step: positions fed to sequence 0 */
    size_t seq_cache; /* floats of one sequence's cache over all layers */
    size_t *cache_off;
    float *cache_mem, *ws, *row[2];
    ft_step_row *rows;
    int *slot; /* [3 batch]: slots, positions and sequences of a step's rows */
    int32_t *ids;
    struct ft_gen_cand *cand; /* sampling scratch [vocab] */
} ft_gen_state;

/* Whether m can generate: an embedding first, every layer with a step op and a per-position
 * shape [T, W], causal attention. FT_EINPUT naming the first layer that cannot. *max_pos gets
 * the context length. */
int ft_gen_check(const ft_model *m, int *max_pos, ft_err *err);
/* A state for batch >= 1 sequences at a time: batch * (2 max_pos D per block) cache floats. */
int ft_gen_init(ft_gen_state *s, ft_model *m, int batch, ft_err *err);
void ft_gen_free(ft_gen_state *s);
/* Starts a new sequence 0 for ft_gen_step (pos = 0). */
void ft_gen_reset(ft_gen_state *s);
/* Feeds token id to sequence 0 at position s->pos and advances; returns the logits [vocab]
 * predicting the next token (valid until the next call), or NULL when the context is full. */
const float *ft_gen_step(ft_gen_state *s, int32_t id);

/* A candidate token while sampling. */
typedef struct ft_gen_cand {
    float p;
    int32_t id;
} ft_gen_cand;

/* Picks the next token from logits [V] as o says, drawing one uniform from r when sampling.
 * cand is scratch of V entries. */
int32_t ft_gen_pick(const float *logits, int V, const ft_gen_opts *o, ft_rng *r, ft_gen_cand *cand);

/* Generates after prompt[0..n_prompt) (n_prompt >= 1, ids in the embedding's vocabulary):
 * writes up to o->max_new ids to out, their count to *n_out and the reason it ended to *end
 * (may be NULL). Ends at o->stop_id, at max_new, or when the next token would not fit in the
 * context. seq is the sequence's index for its random stream. */
int ft_gen_run(ft_gen_state *s, const int32_t *prompt, int n_prompt, const ft_gen_opts *o,
               uint64_t seq, int32_t *out, int *n_out, int *end, ft_err *err);
/* One prompt, with a state of its own (sequence index 0). */
int ft_generate(ft_model *m, const int32_t *prompt, int n_prompt, const ft_gen_opts *o,
                int32_t *out, int *n_out, int *end, ft_err *err);
/* n prompts of different lengths: prompt i is prompts[i * stride .. + lengths[i]) (as the rows
 * of a padded dataset); its output is out[i * max_new ..], n_out[i] ids, ends[i] (may be NULL).
 * Up to `batch` prompts are decoded together, each at its own position (one sgemm per layer
 * for all of them); prompt i samples from stream (seed, i), so it gets what ft_gen_run with
 * seq i gets (up to the rounding of a wider sgemm). */
int ft_generate_batch(ft_model *m, const int32_t *prompts, const int *lengths, int n, int stride,
                      int batch, const ft_gen_opts *o, int32_t *out, int *n_out, int *ends,
                      ft_err *err);

#endif
