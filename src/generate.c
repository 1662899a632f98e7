/* Incremental decoding and sampling (include/ftune/generate.h, docs/text.md "Generation"). */
#include "ftune/generate.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ft_gen_opts_init(ft_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_new = 32;
    o->greedy = 1;
    o->top_p = 1.0f;
    o->temperature = 1.0f;
    o->stop_id = -1;
    o->ban_id = -1;
}

int ft_gen_opts_check(const ft_gen_opts *o, int V, ft_err *err)
{
    if (o->max_new < 0)
        return ft_fail(err, FT_EINPUT, "max_new must be >= 0, not %d", o->max_new);
    if (o->top_k < 0)
        return ft_fail(err, FT_EINPUT, "top_k must be >= 0 (0: all tokens), not %d", o->top_k);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return ft_fail(err, FT_EINPUT, "top_p must be in (0, 1], not %g", (double)o->top_p);
    if (!(o->temperature > 0.0f && isfinite(o->temperature)))
        return ft_fail(err, FT_EINPUT, "temperature must be a finite number > 0, not %g",
                       (double)o->temperature);
    if (o->stop_id < -1 || o->stop_id >= V)
        return ft_fail(err, FT_EINPUT,
                       "stop id %d is outside the model's vocabulary [0, %d) (-1: none)",
                       (int)o->stop_id, V);
    return FT_OK;
}

/* Per-position width of a layer's input or output shape: [T] -> 1, [T, W] -> W. */
static int row_width(const ft_shape *s)
{
    return s->rank == 1 ? 1 : s->d[1];
}

int ft_gen_check(const ft_model *m, int *max_pos, ft_err *err)
{
    char b1[64], b2[64];
    if (m->nlayers < 1 || m->input.rank != 1)
        return ft_fail(err, FT_EINPUT,
                       "generation needs a model taking token ids [T], not input %s",
                       ft_shape_str(&m->input, b1, sizeof b1));
    const int T = m->input.d[0];
    if (strcmp(m->layers[0].ops->kind, "embedding") != 0)
        return ft_fail(err, FT_EINPUT,
                       "generation needs an embedding as the first layer, not layer '%s' (%s)",
                       m->layers[0].name, m->layers[0].ops->kind);
    int lim = INT_MAX;
    for (int i = 0; i < m->nlayers; i++) {
        const ft_layer *l = &m->layers[i];
        if (!l->ops->step)
            return ft_fail(err, FT_EINPUT,
                           "layer '%s' (%s) cannot run position by position, so the model cannot "
                           "generate (generation supports embedding, causal transformer_block, "
                           "layernorm, dropout, gelu and lm_head)",
                           l->name, l->ops->kind);
        if ((i > 0 && (l->in.rank != 2 || l->in.d[0] != T)) || l->out.rank != 2 || l->out.d[0] != T)
            return ft_fail(err, FT_EINPUT,
                           "layer '%s' (%s): shapes %s -> %s are not per position [%d, W], so "
                           "the model cannot generate",
                           l->name, l->ops->kind, ft_shape_str(&l->in, b1, sizeof b1),
                           ft_shape_str(&l->out, b2, sizeof b2), T);
        if (l->ops->step_limit && l->ops->step_limit(l, &lim, err) != FT_OK)
            return err->code;
    }
    *max_pos = lim == INT_MAX ? T : lim;
    return FT_OK;
}

void ft_gen_free(ft_gen_state *s)
{
    free(s->cache_off);
    ft_free_floats(s->cache_mem);
    ft_free_floats(s->ws);
    ft_free_floats(s->row[0]);
    ft_free_floats(s->row[1]);
    free(s->rows);
    free(s->slot);
    free(s->ids);
    free(s->cand);
    memset(s, 0, sizeof *s);
}

int ft_gen_init(ft_gen_state *s, ft_model *m, int batch, ft_err *err)
{
    memset(s, 0, sizeof *s);
    int max_pos;
    if (batch < 1)
        return ft_fail(err, FT_EINPUT, "generation batch must be >= 1, not %d", batch);
    if (ft_gen_check(m, &max_pos, err) != FT_OK)
        return err->code;
    s->m = m;
    s->max_pos = max_pos;
    s->batch = batch;
    s->vocab = row_width(&m->layers[m->nlayers - 1].out);
    s->in_vocab = m->layers[0].params[0].shape.d[0];
    s->cache_off = ft_calloc((size_t)m->nlayers, sizeof *s->cache_off, err);
    if (!s->cache_off)
        return err->code;
    size_t ws = 1, width = 1;
    for (int i = 0; i < m->nlayers; i++) {
        const ft_layer *l = &m->layers[i];
        s->cache_off[i] = s->seq_cache;
        s->seq_cache += l->ops->step_cache_floats ? l->ops->step_cache_floats(l, max_pos) : 0;
        size_t w = l->ops->step_ws_floats ? l->ops->step_ws_floats(l, batch, max_pos) : 0;
        ws = w > ws ? w : ws;
        size_t rw = (size_t)row_width(&l->out);
        width = rw > width ? rw : width;
    }
    size_t cache;
    if (!ft_mul_size(s->seq_cache, (size_t)batch, &cache))
        cache = SIZE_MAX;
    width *= (size_t)batch;
    if (ft_check_alloc(cache, sizeof(float), "the generation cache", err) == FT_OK &&
        (s->cache_mem = ft_alloc_floats(cache ? cache : 1, err)) &&
        (s->ws = ft_alloc_floats(ws, err)) && (s->row[0] = ft_alloc_floats(width, err)) &&
        (s->row[1] = ft_alloc_floats(width, err)) &&
        (s->rows = ft_calloc((size_t)batch, sizeof *s->rows, err)) &&
        (s->slot = ft_calloc(3 * (size_t)batch, sizeof *s->slot, err)) &&
        (s->ids = ft_calloc((size_t)batch, sizeof *s->ids, err)) &&
        (s->cand = ft_calloc((size_t)s->vocab, sizeof *s->cand, err)))
        return FT_OK;
    int rc = err->code ? err->code : FT_ERUNTIME;
    ft_gen_free(s);
    return rc;
}

void ft_gen_reset(ft_gen_state *s)
{
    s->pos = 0;
}

/* Feeds ids[k] to the sequence in cache slot slot[k] at position pos[k], k < n <= batch;
 * returns the logits [n, vocab]. */
static const float *gen_step_n(ft_gen_state *s, int n, const int *slot, const int *pos,
                               const int32_t *ids)
{
    for (int k = 0; k < n; k++) /* layer 0 writes row[0], layer 1 row[1], ... */
        s->row[1][k] = (float)ids[k];
    const float *in = s->row[1];
    for (int i = 0; i < s->m->nlayers; i++) {
        ft_layer *l = &s->m->layers[i];
        const int cached = i + 1 < s->m->nlayers ? s->cache_off[i + 1] > s->cache_off[i]
                                                 : s->seq_cache > s->cache_off[i];
        for (int k = 0; k < n; k++) {
            s->rows[k].cache =
                cached ? s->cache_mem + (size_t)slot[k] * s->seq_cache + s->cache_off[i] : NULL;
            s->rows[k].pos = pos[k];
        }
        float *out = s->row[i & 1];
        l->ops->step(l, n, s->rows, s->max_pos, in, out, s->ws);
        in = out;
    }
    return in;
}

const float *ft_gen_step(ft_gen_state *s, int32_t id)
{
    if (s->pos >= s->max_pos)
        return NULL;
    const int slot = 0, pos = s->pos;
    const float *z = gen_step_n(s, 1, &slot, &pos, &id);
    s->pos++;
    return z;
}

/* Most probable first; equal probabilities by id, so the order is deterministic. */
static int by_prob_desc(const void *a, const void *b)
{
    const ft_gen_cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t ft_gen_pick(const float *logits, int V, const ft_gen_opts *o, ft_rng *r, ft_gen_cand *cand)
{
    const int32_t ban = o->ban_id >= 0 && o->ban_id < V && V > 1 ? o->ban_id : -1;
    if (o->greedy) {
        int32_t best = ban == 0 ? 1 : 0;
        for (int i = best + 1; i < V; i++)
            if (i != ban && logits[i] > logits[best])
                best = i;
        return best;
    }
    /* softmax(logits / temperature), the sums in double */
    float mx = logits[0];
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    const double invt = 1.0 / (double)o->temperature;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        cand[i].p = i == ban ? 0.0f : (float)exp(((double)logits[i] - (double)mx) * invt);
        cand[i].id = i;
        sum += cand[i].p;
    }
    for (int i = 0; i < V; i++)
        cand[i].p = (float)(cand[i].p / sum);
    int keep = V;
    const int topk = o->top_k > 0 && o->top_k < V;
    if (topk || o->top_p < 1.0f) {
        qsort(cand, (size_t)V, sizeof *cand, by_prob_desc);
        if (topk)
            keep = o->top_k;
        if (o->top_p < 1.0f) { /* nucleus of the renormalised top-k distribution */
            double mass = 0.0, cum = 0.0;
            for (int j = 0; j < keep; j++)
                mass += cand[j].p;
            for (int j = 0; j < keep; j++) {
                cum += cand[j].p / mass;
                if (cum >= (double)o->top_p) {
                    keep = j + 1;
                    break;
                }
            }
        }
    }
    double total = 0.0;
    for (int j = 0; j < keep; j++)
        total += cand[j].p;
    const double u = (double)ft_rng_uniform(r) * total;
    double acc = 0.0;
    for (int j = 0; j < keep; j++) {
        acc += cand[j].p;
        if (u < acc)
            return cand[j].id;
    }
    return cand[keep - 1].id; /* u rounded up to the total */
}

static int check_prompt(const ft_gen_state *s, const int32_t *prompt, int n_prompt, ft_err *err)
{
    if (n_prompt < 1)
        return ft_fail(err, FT_EINPUT, "the prompt is empty: generation needs at least one token");
    if (n_prompt > s->max_pos)
        return ft_fail(err, FT_EINPUT,
                       "the prompt has %d tokens, more than the %d positions the model holds",
                       n_prompt, s->max_pos);
    for (int t = 0; t < n_prompt; t++)
        if (prompt[t] < 0 || prompt[t] >= s->in_vocab)
            return ft_fail(err, FT_EINPUT,
                           "prompt token %d (position %d) is outside the model's vocabulary "
                           "[0, %d)",
                           (int)prompt[t], t, s->in_vocab);
    return FT_OK;
}

/* One sequence of a group decoded together. */
typedef struct gen_seq {
    const int32_t *prompt;
    int len, pos; /* prompt tokens; positions fed so far */
    int32_t next; /* the token to feed at pos */
    int32_t *out;
    int n, end, done;
    ft_rng r;
} gen_seq;

/* Decodes q[0..n) (n <= s->batch) in lockstep: each step feeds every unfinished sequence its
 * next token (a prompt token, then its last pick) at its own position. Once a sequence's
 * prompt is in, each step's logits choose its next token. */
static int gen_group(ft_gen_state *s, gen_seq *q, int n, const ft_gen_opts *o, ft_err *err)
{
    int *slot = s->slot, *pos = s->slot + s->batch, *who = pos + s->batch;
    int32_t *ids = s->ids;
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (q[i].done)
                continue;
            slot[k] = i;
            pos[k] = q[i].pos;
            ids[k] = q[i].next;
            who[k++] = i;
        }
        if (k == 0)
            return FT_OK;
        const float *z = gen_step_n(s, k, slot, pos, ids);
        for (int j = 0; j < k; j++) {
            gen_seq *g = &q[who[j]];
            const float *logits = z + (size_t)j * (size_t)s->vocab;
            if (++g->pos < g->len) {
                g->next = g->prompt[g->pos];
                continue;
            }
            g->done = 1;
            if (g->pos >= s->max_pos) { /* the prompt filled the context */
                g->end = FT_GEN_END_MAX_LEN;
                continue;
            }
            for (int v = 0; v < s->vocab; v++)
                if (!isfinite(logits[v]))
                    return ft_fail(err, FT_ERUNTIME,
                                   "the model gives a non-finite logit (id %d) at position %d", v,
                                   g->pos - 1);
            int32_t id = ft_gen_pick(logits, s->vocab, o, &g->r, s->cand);
            if (id == o->stop_id) {
                g->end = FT_GEN_END_STOP;
                continue;
            }
            g->out[g->n++] = id; /* it sits at position g->pos */
            if (g->n == o->max_new) {
                g->end = FT_GEN_END_MAX_NEW;
                continue;
            }
            if (g->pos + 1 >= s->max_pos) { /* no position for a token after it */
                g->end = FT_GEN_END_MAX_LEN;
                continue;
            }
            if (id >= s->in_vocab) /* an untied head wider than the embedding */
                return ft_fail(err, FT_EINPUT,
                               "generated id %d is outside the embedding's vocabulary [0, %d)",
                               (int)id, s->in_vocab);
            g->next = id;
            g->done = 0;
        }
    }
}

static void seq_start(gen_seq *g, const int32_t *prompt, int len, const ft_gen_opts *o,
                      uint64_t seq, int32_t *out)
{
    memset(g, 0, sizeof *g);
    g->prompt = prompt;
    g->len = len;
    g->next = prompt[0];
    g->out = out;
    g->end = FT_GEN_END_MAX_NEW;
    g->done = o->max_new == 0;
    ft_rng_seed(&g->r, ft_key3(o->seed, FT_STREAM_GENERATE, seq));
}

int ft_gen_run(ft_gen_state *s, const int32_t *prompt, int n_prompt, const ft_gen_opts *o,
               uint64_t seq, int32_t *out, int *n_out, int *end, ft_err *err)
{
    *n_out = 0;
    if (ft_gen_opts_check(o, s->vocab, err) != FT_OK ||
        check_prompt(s, prompt, n_prompt, err) != FT_OK)
        return err->code;
    gen_seq g;
    seq_start(&g, prompt, n_prompt, o, seq, out);
    int rc = gen_group(s, &g, 1, o, err);
    *n_out = g.n;
    if (end)
        *end = g.end;
    return rc;
}

int ft_generate(ft_model *m, const int32_t *prompt, int n_prompt, const ft_gen_opts *o,
                int32_t *out, int *n_out, int *end, ft_err *err)
{
    ft_gen_state s;
    *n_out = 0;
    if (ft_gen_init(&s, m, 1, err) != FT_OK)
        return err->code;
    int rc = ft_gen_run(&s, prompt, n_prompt, o, 0, out, n_out, end, err);
    ft_gen_free(&s);
    return rc;
}

int ft_generate_batch(ft_model *m, const int32_t *prompts, const int *lengths, int n, int stride,
                      int batch, const ft_gen_opts *o, int32_t *out, int *n_out, int *ends,
                      ft_err *err)
{
    for (int i = 0; i < n; i++)
        n_out[i] = 0;
    if (n <= 0)
        return FT_OK;
    ft_gen_state s;
    if (ft_gen_init(&s, m, batch < n ? batch : n, err) != FT_OK)
        return err->code;
    gen_seq *q = ft_calloc((size_t)s.batch, sizeof *q, err);
    int rc = q ? ft_gen_opts_check(o, s.vocab, err) : err->code;
    for (int i0 = 0; i0 < n && rc == FT_OK; i0 += s.batch) {
        const int k = n - i0 < s.batch ? n - i0 : s.batch;
        for (int j = 0; j < k && rc == FT_OK; j++) {
            const int i = i0 + j;
            const int32_t *p = prompts + (size_t)i * (size_t)stride;
            if (lengths[i] > stride)
                rc = ft_fail(err, FT_EINPUT, "prompt %d: length %d exceeds the row width %d", i,
                             lengths[i], stride);
            else if (check_prompt(&s, p, lengths[i], err) != FT_OK)
                rc = ft_err_prefix(err, "prompt %d", i);
            else
                seq_start(&q[j], p, lengths[i], o, (uint64_t)i,
                          out + (size_t)i * (size_t)o->max_new);
        }
        if (rc == FT_OK)
            rc = gen_group(&s, q, k, o, err);
        for (int j = 0; j < k && rc == FT_OK; j++) {
            n_out[i0 + j] = q[j].n;
            if (ends)
                ends[i0 + j] = q[j].end;
        }
    }
    free(q);
    ft_gen_free(&s);
    return rc;
}
