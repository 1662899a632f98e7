/* ft_hf_import (src/hf_import.c) on tiny checkpoints written with ft_st_write: every value
 * lands where the name tables say (GPT-2's Conv1D transposes, BERT's q/k/v concatenation),
 * unused tensors are summarised, a fresh head is initialised, and bad input is FT_EINPUT naming
 * the tensor or key. The numerics against PyTorch are in tests/parity/test_hf_import.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ftune/hf.h"
#include "ftune/safetensors.h"

#include "testutil.h"

#define V 5
#define D 4
#define P 6
#define C 2
#define MAXT 64

typedef struct ckpt {
    ft_st_entry e[MAXT];
    char names[MAXT][96];
    float *data[MAXT];
    int n;
} ckpt;

/* Tensor k holds 1000 (k + 1) + i at element i: every value says where it came from. */
static void add(ckpt *c, const char *name, int rank, long d0, long d1)
{
    ft_st_entry *e = &c->e[c->n];
    snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
    e->name = c->names[c->n];
    e->dtype = FT_ST_F32;
    e->rank = rank;
    e->shape[0] = d0;
    e->shape[1] = d1;
    size_t cnt = (size_t)d0 * (size_t)(rank == 2 ? d1 : 1);
    c->data[c->n] = malloc(cnt * sizeof(float));
    for (size_t i = 0; i < cnt; i++)
        c->data[c->n][i] = (float)(1000 * (c->n + 1)) + (float)i;
    e->data = c->data[c->n];
    c->n++;
}

static const float *tensor(const ckpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name))
            return c->data[i];
    return NULL;
}

static void drop(ckpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name))
            c->e[i].name = "unused.dropped"; /* renamed: the import must not find it */
}

static void save(const ckpt *c, const char *dir, const char *config)
{
    char path[512];
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ft_err err = {0};
    CHECK(ft_st_write(path, c->e, (size_t)c->n, NULL, 0, &err) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(config, f);
        fclose(f);
    }
}

static void free_ckpt(ckpt *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->data[i]);
}

static int import_opts(const char *dir, int classes, int lm, ft_hf_result *r, ft_err *err)
{
    char cfg[FT_PATH_MAX], st[FT_PATH_MAX];
    int rc = ft_hf_locate(dir, NULL, cfg, st, err);
    if (rc) {
        memset(r, 0, sizeof *r);
        return rc;
    }
    ft_hf_opts o;
    ft_hf_opts_default(&o);
    o.config_path = cfg;
    o.weights_path = st;
    o.classes = classes;
    o.lm = lm;
    o.seq_len = 3;
    return ft_hf_import(&o, r, err);
}

static int import(const char *dir, int classes, ft_hf_result *r, ft_err *err)
{
    return import_opts(dir, classes, 0, r, err);
}

static const float *param(const ft_hf_result *r, const char *layer, const char *name)
{
    ft_layer *l = ft_model_find(&r->model, layer);
    for (int j = 0; l && j < l->nparams; j++)
        if (!strcmp(l->params[j].name, name))
            return l->params[j].data;
    return NULL;
}

static const char *GPT2_CONFIG =
    "{\"model_type\": \"gpt2\", \"vocab_size\": 5, \"n_positions\": 6, \"n_embd\": 4,\n"
    " \"n_layer\": 1, \"n_head\": 2, \"n_inner\": null, \"activation_function\": \"gelu_new\",\n"
    " \"layer_norm_epsilon\": 1e-05, \"resid_pdrop\": 0.1, \"attn_pdrop\": 0.2}\n";

static void test_gpt2(const char *tmp)
{
    ckpt c = {0};
    add(&c, "transformer.wte.weight", 2, V, D);
    add(&c, "transformer.wpe.weight", 2, P, D);
    const char *vec[] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"};
    char n[96];
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "transformer.h.0.%s", vec[i]);
        add(&c, n, 1, D, 0);
    }
    add(&c, "transformer.h.0.attn.c_attn.weight", 2, D, 3 * D);
    add(&c, "transformer.h.0.attn.c_attn.bias", 1, 3 * D, 0);
    add(&c, "transformer.h.0.attn.c_proj.weight", 2, D, D);
    add(&c, "transformer.h.0.attn.c_proj.bias", 1, D, 0);
    add(&c, "transformer.h.0.mlp.c_fc.weight", 2, D, 4 * D);
    add(&c, "transformer.h.0.mlp.c_fc.bias", 1, 4 * D, 0);
    add(&c, "transformer.h.0.mlp.c_proj.weight", 2, 4 * D, D);
    add(&c, "transformer.h.0.mlp.c_proj.bias", 1, D, 0);
    add(&c, "transformer.h.0.attn.bias", 2, P, P);
    add(&c, "transformer.ln_f.weight", 1, D, 0);
    add(&c, "transformer.ln_f.bias", 1, D, 0);
    add(&c, "lm_head.weight", 2, V, D);
    add(&c, "score.weight", 2, C, D);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/gpt2", tmp);
    save(&c, dir, GPT2_CONFIG);

    ft_hf_result r;
    ft_err err = {0};
    int rc = import(dir, 0, &r, &err);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        free_ckpt(&c);
        return;
    }
    CHECK(!strcmp(r.model_type, "gpt2") && !strcmp(r.prefix, "transformer."));
    CHECK(r.fresh_head == 0 && r.model.classes == C && r.model.input.d[0] == 3);
    /* Conv1D (in, out) -> [out, in] */
    const float *w = param(&r, "h.0", "attn_qkv_weight");
    const float *src = tensor(&c, "transformer.h.0.attn.c_attn.weight");
    int ok = w && src;
    for (int o = 0; ok && o < 3 * D; o++)
        for (int i = 0; i < D; i++)
            ok &= w[o * D + i] == src[i * 3 * D + o];
    CHECK(ok);
    w = param(&r, "h.0", "mlp_proj_weight");
    src = tensor(&c, "transformer.h.0.mlp.c_proj.weight");
    ok = w && src;
    for (int o = 0; ok && o < D; o++)
        for (int i = 0; i < 4 * D; i++)
            ok &= w[o * 4 * D + i] == src[i * D + o];
    CHECK(ok);
    w = param(&r, "wte", "position");
    CHECK(w && !memcmp(w, tensor(&c, "transformer.wpe.weight"), sizeof(float) * P * D));
    w = param(&r, "score", "weight");
    CHECK(w && !memcmp(w, tensor(&c, "score.weight"), sizeof(float) * C * D));
    CHECK(r.nskipped == 2);
    CHECK_STR_CONTAINS(r.skipped, "transformer.h.*.attn.bias");
    CHECK_STR_CONTAINS(r.skipped, "lm_head.weight");
    CHECK_STR_CONTAINS(r.notes, "attn_pdrop 0.2 differs from resid_pdrop 0.1");
    CHECK_STR_CONTAINS(r.config_text, "style = \"pre_ln\"; causal = true; activation = "
                                      "\"gelu_tanh\"; eps = 1e-05; dropout = 0.1;");
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"score\"; type = \"dense\"; units = 2; bias = "
                                      "false; }");
    ft_hf_result_free(&r);

    /* --lm: lm_head tied to wte; lm_head.weight (a copy of wte.weight) is checked, not skipped */
    float *lmw = (float *)tensor(&c, "lm_head.weight");
    memcpy(lmw, tensor(&c, "transformer.wte.weight"), sizeof(float) * V * D);
    snprintf(dir, sizeof dir, "%s/gpt2-lm", tmp);
    save(&c, dir, GPT2_CONFIG);
    rc = import_opts(dir, 0, 1, &r, &err);
    CHECK(rc == 0);
    if (!rc) {
        CHECK(r.lm == 1 && r.lm_head_checked == 1 && r.fresh_head == 0);
        const ft_layer *head = &r.model.layers[r.model.nlayers - 1];
        const ft_layer *wte = ft_model_find(&r.model, "wte");
        CHECK(!strcmp(head->name, "lm_head") && !strcmp(head->ops->kind, "lm_head"));
        CHECK(head->nparams == 0 && head->nties == 1 && wte &&
              head->ties[0].data == wte->params[0].data);
        CHECK(head->out.rank == 2 && head->out.d[0] == 3 && head->out.d[1] == V);
        CHECK(!memcmp(param(&r, "wte", "weight"), tensor(&c, "transformer.wte.weight"),
                      sizeof(float) * V * D));
        CHECK(ft_model_find(&r.model, "pool") == NULL && ft_model_find(&r.model, "score") == NULL);
        CHECK(r.nskipped == 2 && strstr(r.skipped, "lm_head") == NULL);
        CHECK_STR_CONTAINS(r.skipped, "score.weight");
        CHECK_STR_CONTAINS(r.config_text, "{ name = \"lm_head\"; type = \"lm_head\"; tie = "
                                          "\"wte\"; }");
        CHECK_STR_CONTAINS(r.config_text, "task = \"lm\";");
        CHECK(strstr(r.config_text, "seq_pool") == NULL);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    ft_hf_result_free(&r);
    /* an untied head: one value differs */
    lmw[7] += 0.5f;
    snprintf(dir, sizeof dir, "%s/gpt2-untied", tmp);
    save(&c, dir, GPT2_CONFIG);
    CHECK(import_opts(dir, 0, 1, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "gpt2-untied/model.safetensors: tensor 'lm_head.weight' differs "
                                "from 'transformer.wte.weight' (element 7");
    ft_hf_result_free(&r);
    CHECK(import_opts(dir, 2, 1, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "--lm imports the language model");
    ft_hf_result_free(&r);

    /* a missing tensor and a wrong shape name the tensor */
    drop(&c, "transformer.h.0.mlp.c_fc.bias");
    snprintf(dir, sizeof dir, "%s/gpt2-missing", tmp);
    save(&c, dir, GPT2_CONFIG);
    CHECK(import(dir, 0, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor 'transformer.h.0.mlp.c_fc.bias' is missing");
    ft_hf_result_free(&r);
    free_ckpt(&c);
}

static const char *BERT_CONFIG =
    "{\"model_type\": \"bert\", \"vocab_size\": 5, \"hidden_size\": 4, \"num_hidden_layers\": 1,\n"
    " \"num_attention_heads\": 2, \"intermediate_size\": 8, \"max_position_embeddings\": 6,\n"
    " \"type_vocab_size\": 2, \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-12}\n";

static void test_bert(const char *tmp)
{
    ckpt c = {0};
    add(&c, "embeddings.word_embeddings.weight", 2, V, D);
    add(&c, "embeddings.position_embeddings.weight", 2, P, D);
    add(&c, "embeddings.token_type_embeddings.weight", 2, 2, D);
    add(&c, "embeddings.LayerNorm.weight", 1, D, 0);
    add(&c, "embeddings.LayerNorm.bias", 1, D, 0);
    const char *qkv[] = {"query", "key", "value"};
    char n[128];
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "encoder.layer.0.attention.self.%s.weight", qkv[i]);
        add(&c, n, 2, D, D);
        snprintf(n, sizeof n, "encoder.layer.0.attention.self.%s.bias", qkv[i]);
        add(&c, n, 1, D, 0);
    }
    add(&c, "encoder.layer.0.attention.output.dense.weight", 2, D, D);
    add(&c, "encoder.layer.0.attention.output.dense.bias", 1, D, 0);
    add(&c, "encoder.layer.0.attention.output.LayerNorm.weight", 1, D, 0);
    add(&c, "encoder.layer.0.attention.output.LayerNorm.bias", 1, D, 0);
    add(&c, "encoder.layer.0.intermediate.dense.weight", 2, 2 * D, D);
    add(&c, "encoder.layer.0.intermediate.dense.bias", 1, 2 * D, 0);
    add(&c, "encoder.layer.0.output.dense.weight", 2, D, 2 * D);
    add(&c, "encoder.layer.0.output.dense.bias", 1, D, 0);
    add(&c, "encoder.layer.0.output.LayerNorm.weight", 1, D, 0);
    add(&c, "encoder.layer.0.output.LayerNorm.bias", 1, D, 0);
    add(&c, "pooler.dense.weight", 2, D, D);
    add(&c, "pooler.dense.bias", 1, D, 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bert", tmp);
    save(&c, dir, BERT_CONFIG);

    ft_hf_result r;
    ft_err err = {0};
    /* no head in the file and no --classes */
    CHECK(import(dir, 0, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "no classification head (tensor 'classifier.weight')");
    ft_hf_result_free(&r);

    int rc = import(dir, 3, &r, &err);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        free_ckpt(&c);
        return;
    }
    CHECK(r.fresh_head == 1 && r.model.classes == 3 && r.nskipped == 0);
    CHECK(!strcmp(r.prefix, ""));
    /* q, k, v stacked along dim 0 */
    const float *w = param(&r, "encoder.layer.0", "attn_qkv_weight");
    const float *b = param(&r, "encoder.layer.0", "attn_qkv_bias");
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "encoder.layer.0.attention.self.%s.weight", qkv[i]);
        CHECK(w && !memcmp(w + i * D * D, tensor(&c, n), sizeof(float) * D * D));
        snprintf(n, sizeof n, "encoder.layer.0.attention.self.%s.bias", qkv[i]);
        CHECK(b && !memcmp(b + i * D, tensor(&c, n), sizeof(float) * D));
    }
    w = param(&r, "embeddings", "segment");
    CHECK(w &&
          !memcmp(w, tensor(&c, "embeddings.token_type_embeddings.weight"), sizeof(float) * 2 * D));
    /* the fresh head: ftune's dense initialisation, U(+-1/sqrt(D)), not zero */
    w = param(&r, "classifier", "weight");
    float amax = 0;
    for (int i = 0; w && i < 3 * D; i++)
        amax = w[i] > amax ? w[i] : -w[i] > amax ? -w[i] : amax;
    CHECK(amax > 0 && amax <= 0.5f);
    CHECK_STR_CONTAINS(r.notes, "layer 'classifier': a fresh head of 3 classes");
    CHECK_STR_CONTAINS(r.config_text, "{ name = \"embeddings\"; type = \"embedding\"; vocab = 5; "
                                      "dim = 4; max_len = 6; segments = 2; }");
    CHECK_STR_CONTAINS(r.config_text, "style = \"post_ln\"; causal = false; activation = "
                                      "\"gelu\"; eps = 1e-12;");
    ft_hf_result_free(&r);
    free_ckpt(&c);
}

static void test_bad_config(const char *tmp)
{
    ckpt c = {0};
    add(&c, "wte.weight", 2, V, D);
    char dir[512];
    ft_hf_result r;
    ft_err err = {0};
    snprintf(dir, sizeof dir, "%s/llama", tmp);
    save(&c, dir, "{\"model_type\": \"llama\"}");
    CHECK(import(dir, 2, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "key 'model_type' is \"llama\"");
    ft_hf_result_free(&r);

    snprintf(dir, sizeof dir, "%s/badjson", tmp);
    save(&c, dir, "{\"model_type\": \"gpt2\",");
    CHECK(import(dir, 2, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "badjson/config.json: JSON");
    ft_hf_result_free(&r);

    snprintf(dir, sizeof dir, "%s/nocfg", tmp);
    mkdir(dir, 0700);
    CHECK(import(dir, 2, &r, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "nocfg: no model.safetensors");
    free_ckpt(&c);
}

int main(void)
{
    const char *tmp = tu_tmpdir();
    test_gpt2(tmp);
    test_bert(tmp);
    test_bad_config(tmp);
    return tu_done("test_hf_import");
}
