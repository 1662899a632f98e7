/* Generation with the KV cache (src/generate.c and the layers' step ops) on a random tiny
 * causal LM (embedding, a pre-LN and a post-LN causal block, dropout, ln_f, tied lm_head):
 * cached logits equal a full forward over the growing sequence and greedy picks its argmax;
 * top-k and top-p never pick outside their sets (and reach every member); seeds reproduce;
 * the stop id, max_new and the position table end a sequence; the batch helper equals one
 * prompt at a time; models that cannot step and bad prompts are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/generate.h"
#include "ftune/model.h"
#include "ftune/rng.h"

#include "testutil.h"

enum { V = 13, D = 16, TMAX = 12 };

static void spec(ft_layer_spec *s, const char *name, const char *kind)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->lr_mult = 1.0f;
}

/* Input [T], position table of max_len rows; causal unless bidi; with a seq_pool + dense
 * classifier head instead of lm_head when cls. */
static int build(ft_model *m, int T, int max_len, int bidi, int cls, ft_err *err)
{
    ft_layer_spec sp[7];
    int n = 0;
    spec(&sp[n], "wte", "embedding");
    ft_kv_set_int(&sp[n].kv, "vocab", V);
    ft_kv_set_int(&sp[n].kv, "dim", D);
    ft_kv_set_int(&sp[n++].kv, "max_len", max_len);
    spec(&sp[n], "h0", "transformer_block");
    ft_kv_set_int(&sp[n].kv, "heads", 2);
    ft_kv_set_bool(&sp[n++].kv, "causal", 1);
    spec(&sp[n], "h1", "transformer_block");
    ft_kv_set_int(&sp[n].kv, "heads", 4);
    ft_kv_set_int(&sp[n].kv, "mlp_ratio", 2);
    ft_kv_set_string(&sp[n].kv, "style", "post_ln");
    ft_kv_set_float(&sp[n].kv, "dropout", 0.1);
    ft_kv_set_bool(&sp[n++].kv, "causal", !bidi);
    spec(&sp[n], "drop", "dropout");
    ft_kv_set_float(&sp[n++].kv, "rate", 0.2);
    spec(&sp[n++], "ln_f", "layernorm");
    if (cls) {
        spec(&sp[n], "pool", "seq_pool");
        ft_kv_set_string(&sp[n++].kv, "mode", "last");
        spec(&sp[n], "score", "dense");
        ft_kv_set_int(&sp[n++].kv, "units", 2);
    } else {
        spec(&sp[n], "lm_head", "lm_head");
        ft_kv_set_string(&sp[n++].kv, "tie", "wte");
    }
    ft_shape in = ft_shape1(T);
    int rc = ft_model_build(m, &in, sp, n, err);
    if (rc == FT_OK)
        rc = ft_model_alloc(m, 1, err);
    if (rc == FT_OK) {
        /* large random weights, so that logits are spread and argmax ties do not happen */
        ft_model_init_params(m, 5);
        ft_rng r;
        ft_rng_seed(&r, 99);
        for (size_t i = 0; i < m->nparams; i++)
            m->params[i] += 1.0f * (ft_rng_uniform(&r) - 0.5f);
    }
    return rc;
}

static int argmax(const float *z, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[b])
            b = i;
    return b;
}

/* Logits of a full forward over ids[0..len) (padded to T with junk ids the causal mask and
 * lengths must hide) at every position: out [T, V]. */
static void full_forward(ft_model *m, const int32_t *ids, int len, float *out)
{
    const int T = m->input.d[0];
    float x[64];
    for (int t = 0; t < T; t++)
        x[t] = t < len ? (float)ids[t] : (float)((t * 7) % V);
    ft_ctx c = {0};
    c.n = 1;
    c.lengths = &len;
    c.ws = m->ws;
    const float *z = ft_model_forward(m, &c, x);
    memcpy(out, z, sizeof(float) * (size_t)T * V);
}

static double max_diff(const float *a, const float *b, int n)
{
    double d = 0.0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static void test_cache_equals_full(void)
{
    ft_model m = {0};
    ft_err err = {0};
    if (!CHECK(build(&m, TMAX, TMAX, 0, 0, &err) == FT_OK)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    const int32_t prompt[3] = {4, 11, 2};
    ft_gen_opts o;
    ft_gen_opts_init(&o);
    o.max_new = 100;
    int32_t out[TMAX];
    int n = -1, end = -1;
    CHECK(ft_generate(&m, prompt, 3, &o, out, &n, &end, &err) == FT_OK);
    /* the position table holds TMAX positions: 3 prompt + 9 generated */
    CHECK(n == TMAX - 3 && end == FT_GEN_END_MAX_LEN);
    int32_t seq[TMAX];
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + 3, out, sizeof(int32_t) * (size_t)n);
    int distinct = 0;
    static float full[TMAX * V];
    for (int k = 0; k < n; k++) { /* token k is the argmax of a full forward over 3 + k ids */
        full_forward(&m, seq, 3 + k, full);
        CHECK(argmax(full + (size_t)(3 + k - 1) * V, V) == out[k]);
        distinct += k > 0 && out[k] != out[k - 1];
    }
    CHECK(distinct > 0); /* the check above is not comparing a constant */

    /* step by step: the cached logits at every position equal the full forward's */
    ft_gen_state s;
    CHECK(ft_gen_init(&s, &m, 1, &err) == FT_OK && s.max_pos == TMAX && s.vocab == V);
    full_forward(&m, seq, TMAX, full);
    double worst = 0.0;
    for (int t = 0; t < TMAX; t++) {
        const float *z = ft_gen_step(&s, seq[t]);
        if (!CHECK(z != NULL))
            break;
        worst = fmax(worst, max_diff(z, full + (size_t)t * V, V));
    }
    CHECK(ft_gen_step(&s, 1) == NULL); /* the context is full */
    CHECK_NEAR(worst, 0.0, 1e-5);
    printf("cached vs full logits: max |diff| %.3g\n", worst);
    /* a reused state gives the same after a reset (stale cache rows are never read) */
    ft_gen_reset(&s);
    const float *z = NULL;
    for (int t = 0; t < 5; t++)
        z = ft_gen_step(&s, seq[t]);
    CHECK(z && max_diff(z, full + 4 * V, V) <= 1e-5);
    ft_gen_free(&s);

    /* max_new ends first; max_new 0 gives nothing */
    o.max_new = 4;
    CHECK(ft_generate(&m, prompt, 3, &o, out, &n, &end, &err) == FT_OK);
    CHECK(n == 4 && end == FT_GEN_END_MAX_NEW && memcmp(out, seq + 3, 4 * sizeof *out) == 0);
    o.max_new = 0;
    CHECK(ft_generate(&m, prompt, 3, &o, out, &n, &end, &err) == FT_OK && n == 0);
    /* a prompt that fills the context generates nothing */
    o.max_new = 5;
    CHECK(ft_generate(&m, seq, TMAX, &o, out, &n, &end, &err) == FT_OK);
    CHECK(n == 0 && end == FT_GEN_END_MAX_LEN);

    /* the stop id: generation ends at its first occurrence, which is not output */
    o.max_new = 100;
    o.stop_id = seq[3 + 4];
    int first = 0;
    while (seq[3 + first] != o.stop_id)
        first++;
    CHECK(ft_generate(&m, prompt, 3, &o, out, &n, &end, &err) == FT_OK);
    CHECK(n == first && end == FT_GEN_END_STOP && memcmp(out, seq + 3, (size_t)n * 4) == 0);

    /* a damaged weight: an error, not tokens picked from NaN */
    m.layers[m.nlayers - 2].params[1].data[3] = NAN; /* ln_f bias */
    CHECK(ft_generate(&m, prompt, 3, &o, out, &n, &end, &err) == FT_ERUNTIME);
    CHECK_STR_CONTAINS(err.msg, "non-finite logit");
    ft_model_free(&m);
}

/* Input [6] but a position table of TMAX rows: generation runs past T up to the table, and
 * equals a full forward of the same weights with input [TMAX]. */
static void test_beyond_input(void)
{
    ft_model a = {0}, b = {0};
    ft_err err = {0};
    if (!CHECK(build(&a, 6, TMAX, 0, 0, &err) == FT_OK && build(&b, TMAX, TMAX, 0, 0, &err) == 0))
        return;
    CHECK(a.nparams == b.nparams);
    memcpy(a.params, b.params, sizeof(float) * a.nparams);
    const int32_t prompt[2] = {9, 1};
    ft_gen_opts o;
    ft_gen_opts_init(&o);
    o.max_new = 50;
    int32_t out[TMAX], seq[TMAX] = {9, 1};
    int n = 0, end = -1;
    CHECK(ft_generate(&a, prompt, 2, &o, out, &n, &end, &err) == FT_OK);
    CHECK(n == TMAX - 2 && end == FT_GEN_END_MAX_LEN);
    memcpy(seq + 2, out, sizeof(int32_t) * (size_t)n);
    static float full[TMAX * V];
    full_forward(&b, seq, TMAX, full);
    for (int k = 0; k < n; k++)
        CHECK(argmax(full + (size_t)(1 + k) * V, V) == out[k]);
    ft_model_free(&a);
    ft_model_free(&b);
}

static void test_sampling_sets(void)
{
    float z[V];
    ft_rng r;
    ft_rng_seed(&r, 3);
    for (int i = 0; i < V; i++)
        z[i] = 3.0f * ft_rng_normal(&r);
    ft_gen_cand cand[V];
    ft_gen_opts o;
    ft_gen_opts_init(&o);
    o.greedy = 0;
    o.temperature = 1.7f;
    /* the k best by logit (temperature does not change the order) */
    int rank[V];
    for (int i = 0; i < V; i++) {
        rank[i] = 0;
        for (int j = 0; j < V; j++)
            rank[i] += z[j] > z[i];
    }
    for (int k = 1; k <= 4; k++) {
        o.top_k = k;
        int seen[V] = {0}, outside = 0, members = 0;
        for (int d = 0; d < 3000; d++) {
            int id = ft_gen_pick(z, V, &o, &r, cand);
            outside += rank[id] >= k;
            seen[id] = 1;
        }
        for (int i = 0; i < V; i++)
            members += seen[i];
        CHECK(outside == 0 && members == k);
    }
    /* nucleus by hand: probabilities of z / temperature, most probable first, until >= p */
    o.top_k = 0;
    double p[V], sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += (p[i] = exp(z[i] / 1.7));
    for (float top_p = 0.3f; top_p <= 0.95f; top_p += 0.2f) {
        o.top_p = top_p;
        int in_nucleus[V] = {0}, size = 0;
        double cum = 0.0;
        while (cum < top_p) {
            int best = -1;
            for (int i = 0; i < V; i++)
                if (!in_nucleus[i] && (best < 0 || p[i] > p[best]))
                    best = i;
            in_nucleus[best] = 1;
            cum += p[best] / sum;
            size++;
        }
        int seen[V] = {0}, outside = 0, members = 0;
        for (int d = 0; d < 3000; d++) {
            int id = ft_gen_pick(z, V, &o, &r, cand);
            outside += !in_nucleus[id];
            seen[id] = 1;
        }
        for (int i = 0; i < V; i++)
            members += seen[i];
        CHECK(outside == 0 && members == size);
        CHECK(size < V); /* the filter removed something */
    }
    /* exact probabilities 0.5, 0.3, 0.2: p = 0.45 keeps one, 0.55 two, 0.85 all three */
    const float z3[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    o.temperature = 1.0f;
    const float ps[3] = {0.45f, 0.55f, 0.85f};
    for (int c = 0; c < 3; c++) {
        o.top_p = ps[c];
        int hi = 0, freq[3] = {0};
        for (int d = 0; d < 4000; d++) {
            int id = ft_gen_pick(z3, 3, &o, &r, cand);
            hi = id > hi ? id : hi;
            freq[id]++;
        }
        CHECK(hi == c);
        if (c == 2) /* unfiltered: the frequencies follow the probabilities */
            CHECK(fabs(freq[0] / 4000.0 - 0.5) < 0.05 && fabs(freq[2] / 4000.0 - 0.2) < 0.05);
    }
    /* top_k 1 is greedy whatever the temperature */
    o.top_p = 1.0f;
    o.top_k = 1;
    o.temperature = 50.0f;
    CHECK(ft_gen_pick(z, V, &o, &r, cand) == argmax(z, V));

    /* a banned id (a compact vocabulary's UNK) is never picked: greedy takes the runner-up,
     * sampling (even top-k 1, even at a high temperature) never draws it */
    int best = argmax(z, V), second = -1;
    for (int i = 0; i < V; i++)
        if (i != best && (second < 0 || z[i] > z[second]))
            second = i;
    o.ban_id = best;
    o.greedy = 1;
    CHECK(ft_gen_pick(z, V, &o, &r, cand) == second);
    o.greedy = 0;
    CHECK(ft_gen_pick(z, V, &o, &r, cand) == second); /* top_k 1 */
    o.top_k = 0;
    int drew_banned = 0;
    for (int t = 0; t < 2000; t++)
        drew_banned |= ft_gen_pick(z, V, &o, &r, cand) == best;
    CHECK(!drew_banned);
    o.ban_id = 0; /* the first id: greedy must not start from it */
    o.greedy = 1;
    CHECK(ft_gen_pick(z, V, &o, &r, cand) != 0);
    o.ban_id = -1;
}

static void test_seed_and_batch(void)
{
    ft_model m = {0};
    ft_err err = {0};
    if (!CHECK(build(&m, TMAX, TMAX, 0, 0, &err) == FT_OK))
        return;
    ft_gen_opts o;
    ft_gen_opts_init(&o);
    o.greedy = 0;
    o.temperature = 2.0f; /* flat enough that different streams disagree */
    o.max_new = 9;
    o.seed = 1;
    const int32_t prompt[3] = {4, 11, 2};
    int32_t a[9], b[9], c[9];
    int na, nb, nc;
    CHECK(ft_generate(&m, prompt, 3, &o, a, &na, NULL, &err) == FT_OK);
    CHECK(ft_generate(&m, prompt, 3, &o, b, &nb, NULL, &err) == FT_OK);
    CHECK(na == 9 && nb == 9 && memcmp(a, b, sizeof a) == 0);
    int differ = 0;
    for (uint64_t seed = 2; seed < 6; seed++) {
        o.seed = seed;
        CHECK(ft_generate(&m, prompt, 3, &o, c, &nc, NULL, &err) == FT_OK && nc == 9);
        differ += memcmp(a, c, sizeof a) != 0;
    }
    CHECK(differ >= 3);

    /* three prompts of different lengths as padded rows, decoded 1, 2 and 3 at a time: each
     * as ft_gen_run with seq i */
    const int32_t rows[3 * 5] = {4, 11, 2, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3, 5, 8};
    const int lens[3] = {3, 1, 5};
    int32_t outb[3 * 9], one[9];
    int nout[3], ends[3], n1, e1;
    o.seed = 4;
    ft_gen_state s;
    CHECK(ft_gen_init(&s, &m, 1, &err) == FT_OK);
    for (int batch = 1; batch <= 3; batch++) {
        CHECK(ft_generate_batch(&m, rows, lens, 3, 5, batch, &o, outb, nout, ends, &err) == 0);
        for (int i = 0; i < 3; i++) {
            CHECK(ft_gen_run(&s, rows + 5 * i, lens[i], &o, (uint64_t)i, one, &n1, &e1, &err) ==
                  FT_OK);
            CHECK(n1 == nout[i] && e1 == ends[i] && memcmp(one, outb + 9 * i, 4 * (size_t)n1) == 0);
        }
        CHECK(nout[2] == TMAX - 5 && ends[2] == FT_GEN_END_MAX_LEN);
    }
    /* greedy, stop id and max_new mixed in one batch: rows end at different steps */
    ft_gen_opts og = o;
    og.greedy = 1;
    og.max_new = 6;
    CHECK(ft_generate(&m, rows + 5, 1, &og, one, &n1, &e1, &err) == FT_OK && n1 == 6);
    og.stop_id = one[2];
    CHECK(ft_generate_batch(&m, rows, lens, 3, 5, 3, &og, outb, nout, ends, &err) == FT_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(ft_generate(&m, rows + 5 * i, lens[i], &og, one, &n1, &e1, &err) == FT_OK);
        CHECK(n1 == nout[i] && e1 == ends[i] && memcmp(one, outb + 6 * i, 4 * (size_t)n1) == 0);
    }
    CHECK(ends[1] == FT_GEN_END_STOP && nout[1] <= 2);
    /* a bad row is named */
    const int badlen[3] = {3, 0, 5};
    CHECK(ft_generate_batch(&m, rows, badlen, 3, 5, 2, &o, outb, nout, ends, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "prompt 1: the prompt is empty");

    /* bad prompts and options: FT_EINPUT with a message */
    CHECK(ft_gen_run(&s, rows, 0, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "the prompt is empty");
    int32_t longp[TMAX + 1] = {0};
    CHECK(ft_gen_run(&s, longp, TMAX + 1, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "more than the 12 positions");
    const int32_t badid[2] = {1, V};
    CHECK(ft_gen_run(&s, badid, 2, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "prompt token 13 (position 1) is outside");
    o.top_p = 0.0f;
    CHECK(ft_gen_run(&s, rows, 2, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "top_p must be in (0, 1]");
    o.top_p = 1.0f;
    o.temperature = 0.0f;
    CHECK(ft_gen_run(&s, rows, 2, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    o.temperature = 1.0f;
    o.stop_id = V;
    CHECK(ft_gen_run(&s, rows, 2, &o, 0, one, &n1, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "stop id 13");
    ft_gen_free(&s);
    ft_model_free(&m);
}

static void test_refused(void)
{
    ft_model m = {0};
    ft_err err = {0};
    int max_pos = 0;
    if (CHECK(build(&m, 6, 6, 1, 0, &err) == FT_OK)) {
        CHECK(ft_gen_check(&m, &max_pos, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "layer 'h1' (transformer_block) is not causal");
        ft_gen_state s;
        CHECK(ft_gen_init(&s, &m, 2, &err) == FT_EINPUT);
        ft_model_free(&m);
    }
    memset(&m, 0, sizeof m);
    if (CHECK(build(&m, 6, 6, 0, 1, &err) == FT_OK)) {
        CHECK(ft_gen_check(&m, &max_pos, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "layer 'pool' (seq_pool) cannot run position by position");
        ft_model_free(&m);
    }
}

int main(void)
{
    test_cache_equals_full();
    test_beyond_input();
    test_sampling_sets();
    test_seed_and_batch();
    test_refused();
    return tu_done("test_generate");
}
