/* Hugging Face GPT-2 and BERT checkpoints -> ftune (include/ftune/hf.h). The
 * layer chain is generated from config.json as libconfig text and goes through
 * the ordinary config loader and model builder, so the imported model is
 * exactly what `ftune train` builds from the generated config. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ftune/hf.h"
#include "ftune/json.h"
#include "ftune/safetensors.h"

#include "sbuf.h"

#define HF_CONFIG_MAX ((long)16 << 20) /* config.json is a few kB; refuse anything huge */
#define HF_DIM_MAX (1L << 20)
#define HF_LAYERS_MAX 200  /* ftune's FT_MAX_LAYERS minus the layers around the blocks */
#define HF_SEQ_DEFAULT 128 /* `ftune data import-text`'s default --max-len */

void ft_hf_opts_default(ft_hf_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 42;
}

/* The shortest text that reads back as v, always a libconfig float literal. */
static const char *fmt_num(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".en")) {
        size_t n = strlen(buf);
        if (n + 2 < len)
            memcpy(buf + n, ".0", 3);
    }
    return buf;
}

/* ---- locating the files ------------------------------------------------------ */

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0;
}

int ft_hf_locate(const char *path, const char *config, char *cfg_out, char *st_out, ft_err *err)
{
    if (strlen(path) + 32 >= FT_PATH_MAX || (config && strlen(config) >= FT_PATH_MAX))
        return ft_fail(err, FT_EINPUT, "path too long: %s", path);
    char dir[FT_PATH_MAX];
    if (is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(st_out, FT_PATH_MAX, "%s/model.safetensors", path);
        if (!exists(st_out)) {
            char alt[FT_PATH_MAX + 32];
            snprintf(alt, sizeof alt, "%s/model.safetensors.index.json", path);
            if (exists(alt))
                return ft_fail(err, FT_EINPUT,
                               "%s: a sharded checkpoint (model.safetensors.index.json); ftune "
                               "reads one model.safetensors file",
                               path);
            snprintf(alt, sizeof alt, "%s/pytorch_model.bin", path);
            return ft_fail(err, FT_EINPUT, "%s: no model.safetensors in the directory%s", path,
                           exists(alt) ? " (it has pytorch_model.bin: ftune reads safetensors "
                                         "only; save the model with safe_serialization=True)"
                                       : "");
        }
    } else {
        if (!exists(path))
            return ft_fail(err, FT_EINPUT, "%s: no such file or directory", path);
        snprintf(st_out, FT_PATH_MAX, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    if (config) {
        snprintf(cfg_out, FT_PATH_MAX, "%s", config);
        if (!exists(cfg_out))
            return ft_fail(err, FT_EINPUT, "%s: no such file (--config names config.json)",
                           cfg_out);
    } else {
        snprintf(cfg_out, FT_PATH_MAX, "%s/config.json", dir);
        if (!exists(cfg_out))
            return ft_fail(err, FT_EINPUT,
                           "%s: no such file (a Hugging Face checkpoint directory holds "
                           "config.json; name it with --config FILE)",
                           cfg_out);
    }
    return FT_OK;
}

/* ---- config.json ---------------------------------------------------------------- */

typedef struct hctx {
    const char *cfg_path;
    ft_json *cfg;
    ft_st_file st;
    unsigned char *used; /* per tensor of st */
    ft_sbuf notes;
    int lm_checked; /* an LM import found lm_head.weight equal to wte.weight */
} hctx;

static int read_json(const char *path, ft_json **out, ft_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || n > HF_CONFIG_MAX || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ft_fail(err, FT_EINPUT, "%s: not a readable config.json (%s)", path,
                       n > HF_CONFIG_MAX ? "larger than 16 MB" : "cannot seek");
    }
    char *text = malloc((size_t)n + 1);
    if (!text) {
        fclose(f);
        return ft_fail(err, FT_ERUNTIME, "out of memory reading %s", path);
    }
    size_t got = fread(text, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(text);
        return ft_fail(err, FT_EINPUT, "%s: cannot read", path);
    }
    int rc = ft_json_parse(text, (size_t)n, out, err);
    free(text);
    if (rc)
        return ft_err_prefix(err, "%s", path);
    if (!ft_json_is(*out, FT_JSON_OBJECT))
        return ft_fail(err, FT_EINPUT, "%s: expected a JSON object, found %s", path,
                       ft_json_type_name((*out)->type));
    return FT_OK;
}

static const char *describe(const ft_json *v, char *buf, size_t len)
{
    if (v->type == FT_JSON_NUMBER)
        snprintf(buf, len, "%.17g", v->d);
    else if (v->type == FT_JSON_STRING)
        snprintf(buf, len, "\"%.60s\"", v->s);
    else
        snprintf(buf, len, "%s", ft_json_type_name(v->type));
    return buf;
}

/* Integer key in [lo, hi]; absent or null takes dflt, or is an error when required. */
static int cfg_int(hctx *h, const char *key, int required, long dflt, long lo, long hi, long *out,
                   ft_err *err)
{
    const ft_json *v = ft_json_get(h->cfg, key);
    char buf[96];
    if (!v || v->type == FT_JSON_NULL) {
        if (required)
            return ft_fail(err, FT_EINPUT, "%s: key '%s' is missing (an integer is required)",
                           h->cfg_path, key);
        *out = dflt;
        return FT_OK;
    }
    int64_t i;
    if (!ft_json_int64(v, &i) || i < lo || i > hi)
        return ft_fail(err, FT_EINPUT, "%s: key '%s' must be an integer in [%ld, %ld], not %s",
                       h->cfg_path, key, lo, hi, describe(v, buf, sizeof buf));
    *out = (long)i;
    return FT_OK;
}

/* Number in [lo, hi) (a probability) or (0, hi) for lo == 0 && !zero_ok. */
static int cfg_num(hctx *h, const char *key, double dflt, double lo, double hi, int zero_ok,
                   double *out, ft_err *err)
{
    const ft_json *v = ft_json_get(h->cfg, key);
    char buf[96];
    if (!v || v->type == FT_JSON_NULL) {
        *out = dflt;
        return FT_OK;
    }
    double d;
    if (!ft_json_double(v, &d) || !(d >= lo && d < hi) || (!zero_ok && d == 0.0))
        return ft_fail(err, FT_EINPUT, "%s: key '%s' must be a number in %s%g, %g), not %s",
                       h->cfg_path, key, zero_ok ? "[" : "(", lo, hi, describe(v, buf, sizeof buf));
    *out = d;
    return FT_OK;
}

static int cfg_bool(hctx *h, const char *key, int dflt, int *out, ft_err *err)
{
    const ft_json *v = ft_json_get(h->cfg, key);
    char buf[96];
    if (!v || v->type == FT_JSON_NULL) {
        *out = dflt;
        return FT_OK;
    }
    if (!ft_json_bool(v, out))
        return ft_fail(err, FT_EINPUT, "%s: key '%s' must be true or false, not %s", h->cfg_path,
                       key, describe(v, buf, sizeof buf));
    return FT_OK;
}

static int cfg_str(hctx *h, const char *key, const char *dflt, const char **out, ft_err *err)
{
    const ft_json *v = ft_json_get(h->cfg, key);
    char buf[96];
    if (!v || v->type == FT_JSON_NULL) {
        *out = dflt;
        return FT_OK;
    }
    if (!(*out = ft_json_string(v)))
        return ft_fail(err, FT_EINPUT, "%s: key '%s' must be a string, not %s", h->cfg_path, key,
                       describe(v, buf, sizeof buf));
    return FT_OK;
}

/* A key whose non-default value ftune cannot honour is refused, not ignored: the
 * imported model would compute something else. */
static int cfg_refuse_true(hctx *h, const char *key, const char *why, ft_err *err)
{
    int b;
    int rc = cfg_bool(h, key, 0, &b, err);
    if (!rc && b)
        return ft_fail(err, FT_EINPUT, "%s: key '%s' is true, which ftune does not support (%s)",
                       h->cfg_path, key, why);
    return rc;
}

/* ---- the architecture ------------------------------------------------------------ */

typedef struct arch {
    int bert;
    int lm; /* GPT-2 language model: lm_head tied to wte instead of pool + a classifier */
    long vocab, dim, layers, heads, ratio, positions, segments, classes, seq_len;
    double eps, block_drop, emb_drop, head_drop;
    const char *act; /* ftune activation */
    char head[FT_NAME_MAX];
    int head_in_file; /* the head is read from the checkpoint */
} arch;

static int gelu_kind(hctx *h, const char *key, const char *v, const char **out, ft_err *err)
{
    if (!strcmp(v, "gelu_new") || !strcmp(v, "gelu_pytorch_tanh") || !strcmp(v, "gelu_fast"))
        *out = "gelu_tanh";
    else if (!strcmp(v, "gelu"))
        *out = "gelu";
    else
        return ft_fail(err, FT_EINPUT,
                       "%s: key '%s' is \"%s\"; ftune supports \"gelu\" (exact) and \"gelu_new\" "
                       "/ \"gelu_pytorch_tanh\" (tanh approximation)",
                       h->cfg_path, key, v);
    if (!strcmp(v, "gelu_fast"))
        ft_sb_printf(&h->notes,
                     "%s \"gelu_fast\" is computed as the tanh GELU (gelu_new), which it "
                     "approximates\n",
                     key);
    return FT_OK;
}

static int read_gpt2(hctx *h, arch *a, ft_err *err)
{
    long inner;
    const char *act;
    double attn_drop;
    int rc;
    if ((rc = cfg_int(h, "vocab_size", 1, 0, 1, 1L << 24, &a->vocab, err)) ||
        (rc = cfg_int(h, "n_embd", 1, 0, 1, HF_DIM_MAX, &a->dim, err)) ||
        (rc = cfg_int(h, "n_layer", 1, 0, 1, HF_LAYERS_MAX, &a->layers, err)) ||
        (rc = cfg_int(h, "n_head", 1, 0, 1, HF_DIM_MAX, &a->heads, err)) ||
        (rc = cfg_int(h, "n_positions", 1, 0, 1, 1L << 20, &a->positions, err)) ||
        (rc = cfg_int(h, "n_inner", 0, 4 * a->dim, 1, 1L << 24, &inner, err)) ||
        (rc = cfg_str(h, "activation_function", "gelu_new", &act, err)) ||
        (rc = gelu_kind(h, "activation_function", act, &a->act, err)) ||
        (rc = cfg_num(h, "layer_norm_epsilon", 1e-5, 0, 1, 0, &a->eps, err)) ||
        (rc = cfg_num(h, "resid_pdrop", 0.1, 0, 1, 1, &a->block_drop, err)) ||
        (rc = cfg_num(h, "attn_pdrop", 0.1, 0, 1, 1, &attn_drop, err)) ||
        (rc = cfg_num(h, "embd_pdrop", 0.1, 0, 1, 1, &a->emb_drop, err)) ||
        (rc = cfg_refuse_true(h, "scale_attn_by_inverse_layer_idx",
                              "attention scores are scaled by 1/sqrt(head size) only", err)) ||
        (rc = cfg_refuse_true(h, "add_cross_attention", "the blocks have no cross-attention", err)))
        return rc;
    int scale;
    if ((rc = cfg_bool(h, "scale_attn_weights", 1, &scale, err)))
        return rc;
    if (!scale)
        return ft_fail(err, FT_EINPUT,
                       "%s: key 'scale_attn_weights' is false; ftune always scales attention "
                       "scores by 1/sqrt(head size)",
                       h->cfg_path);
    if (a->dim % a->heads)
        return ft_fail(err, FT_EINPUT, "%s: key 'n_head' = %ld does not divide n_embd = %ld",
                       h->cfg_path, a->heads, a->dim);
    if (inner % a->dim)
        return ft_fail(err, FT_EINPUT,
                       "%s: key 'n_inner' = %ld is not a multiple of n_embd = %ld (ftune's MLP "
                       "width is mlp_ratio x D)",
                       h->cfg_path, inner, a->dim);
    a->ratio = inner / a->dim;
    if (attn_drop != a->block_drop)
        ft_sb_printf(&h->notes,
                     "attn_pdrop %g differs from resid_pdrop %g: ftune's blocks have one dropout "
                     "rate; resid_pdrop is used for all three sites\n",
                     attn_drop, a->block_drop);
    a->head_drop = 0; /* GPT2ForSequenceClassification has no dropout before score */
    return FT_OK;
}

static int read_bert(hctx *h, arch *a, ft_err *err)
{
    long inner;
    const char *act, *pos;
    double attn_drop, cls_drop;
    int rc;
    if ((rc = cfg_int(h, "vocab_size", 1, 0, 1, 1L << 24, &a->vocab, err)) ||
        (rc = cfg_int(h, "hidden_size", 1, 0, 1, HF_DIM_MAX, &a->dim, err)) ||
        (rc = cfg_int(h, "num_hidden_layers", 1, 0, 1, HF_LAYERS_MAX, &a->layers, err)) ||
        (rc = cfg_int(h, "num_attention_heads", 1, 0, 1, HF_DIM_MAX, &a->heads, err)) ||
        (rc = cfg_int(h, "intermediate_size", 1, 0, 1, 1L << 24, &inner, err)) ||
        (rc = cfg_int(h, "max_position_embeddings", 0, 512, 1, 1L << 20, &a->positions, err)) ||
        (rc = cfg_int(h, "type_vocab_size", 0, 2, 1, 1024, &a->segments, err)) ||
        (rc = cfg_str(h, "hidden_act", "gelu", &act, err)) ||
        (rc = gelu_kind(h, "hidden_act", act, &a->act, err)) ||
        (rc = cfg_num(h, "layer_norm_eps", 1e-12, 0, 1, 0, &a->eps, err)) ||
        (rc = cfg_num(h, "hidden_dropout_prob", 0.1, 0, 1, 1, &a->block_drop, err)) ||
        (rc = cfg_num(h, "attention_probs_dropout_prob", 0.1, 0, 1, 1, &attn_drop, err)) ||
        (rc = cfg_num(h, "classifier_dropout", a->block_drop, 0, 1, 1, &cls_drop, err)) ||
        (rc = cfg_str(h, "position_embedding_type", "absolute", &pos, err)) ||
        (rc = cfg_refuse_true(h, "is_decoder", "BERT is imported as an encoder", err)) ||
        (rc = cfg_refuse_true(h, "add_cross_attention", "the blocks have no cross-attention", err)))
        return rc;
    if (strcmp(pos, "absolute"))
        return ft_fail(err, FT_EINPUT,
                       "%s: key 'position_embedding_type' is \"%s\"; ftune has absolute position "
                       "embeddings only",
                       h->cfg_path, pos);
    if (a->dim % a->heads)
        return ft_fail(err, FT_EINPUT,
                       "%s: key 'num_attention_heads' = %ld does not divide hidden_size = %ld",
                       h->cfg_path, a->heads, a->dim);
    if (inner % a->dim)
        return ft_fail(err, FT_EINPUT,
                       "%s: key 'intermediate_size' = %ld is not a multiple of hidden_size = %ld "
                       "(ftune's MLP width is mlp_ratio x D)",
                       h->cfg_path, inner, a->dim);
    a->ratio = inner / a->dim;
    a->emb_drop = a->block_drop;
    a->head_drop = cls_drop;
    if (attn_drop != a->block_drop)
        ft_sb_printf(&h->notes,
                     "attention_probs_dropout_prob %g differs from hidden_dropout_prob %g: ftune's "
                     "blocks have one dropout rate; hidden_dropout_prob is used for all three "
                     "sites\n",
                     attn_drop, a->block_drop);
    return FT_OK;
}

/* ---- the generated config ----------------------------------------------------------- */

static void gen_layers(ft_sbuf *b, const arch *a, const char *pre_comment)
{
    char e[40], d1[40], d2[40], d3[40];
    fmt_num(a->eps, e, sizeof e);
    fmt_num(a->block_drop, d1, sizeof d1);
    fmt_num(a->emb_drop, d2, sizeof d2);
    fmt_num(a->head_drop, d3, sizeof d3);
    if (pre_comment)
        ft_sb_printf(b, "%s", pre_comment);
    ft_sb_printf(b, "  layers = (\n");
    if (!a->bert) {
        ft_sb_printf(
            b,
            "    { name = \"wte\"; type = \"embedding\"; vocab = %ld; dim = %ld; max_len = "
            "%ld; },\n"
            "    { name = \"drop\"; type = \"dropout\"; rate = %s; },\n",
            a->vocab, a->dim, a->positions, d2);
        for (long i = 0; i < a->layers; i++)
            ft_sb_printf(b,
                         "    { name = \"h.%ld\"; type = \"transformer_block\"; heads = %ld; "
                         "mlp_ratio = %ld; style = \"pre_ln\"; causal = true; activation = \"%s\"; "
                         "eps = %s; dropout = %s; },\n",
                         i, a->heads, a->ratio, a->act, e, d1);
        if (a->lm)
            ft_sb_printf(b,
                         "    { name = \"ln_f\"; type = \"layernorm\"; eps = %s; },\n"
                         "    { name = \"lm_head\"; type = \"lm_head\"; tie = \"wte\"; }\n",
                         e);
        else
            ft_sb_printf(b,
                         "    { name = \"ln_f\"; type = \"layernorm\"; eps = %s; },\n"
                         "    { name = \"pool\"; type = \"seq_pool\"; mode = \"last\"; },\n"
                         "    { name = \"%s\"; type = \"dense\"; units = %ld; bias = false; }\n",
                         e, a->head, a->classes);
    } else {
        ft_sb_printf(b,
                     "    { name = \"embeddings\"; type = \"embedding\"; vocab = %ld; dim = %ld; "
                     "max_len = %ld; segments = %ld; },\n"
                     "    { name = \"embeddings.LayerNorm\"; type = \"layernorm\"; eps = %s; },\n"
                     "    { name = \"embeddings.dropout\"; type = \"dropout\"; rate = %s; },\n",
                     a->vocab, a->dim, a->positions, a->segments, e, d2);
        for (long i = 0; i < a->layers; i++)
            ft_sb_printf(
                b,
                "    { name = \"encoder.layer.%ld\"; type = \"transformer_block\"; heads = "
                "%ld; mlp_ratio = %ld; style = \"post_ln\"; causal = false; activation = "
                "\"%s\"; eps = %s; dropout = %s; },\n",
                i, a->heads, a->ratio, a->act, e, d1);
        ft_sb_printf(b,
                     "    { name = \"pool\"; type = \"seq_pool\"; mode = \"first\"; },\n"
                     "    { name = \"pooler.dense\"; type = \"dense\"; units = %ld; },\n"
                     "    { name = \"pooler.activation\"; type = \"tanh\"; },\n"
                     "    { name = \"dropout\"; type = \"dropout\"; rate = %s; },\n"
                     "    { name = \"%s\"; type = \"dense\"; units = %ld; }\n",
                     a->dim, d3, a->head, a->classes);
    }
    ft_sb_printf(b, "  );\n");
}

static char *gen_config(const hctx *h, const arch *a, const ft_hf_opts *o, const char *notes,
                        int with_extras)
{
    ft_sbuf b = {0};
    const char *model = a->bert ? "BERT" : "GPT-2";
    if (with_extras) {
        ft_sb_printf(
            &b,
            "# ftune config generated by `ftune import hf` from\n#   %s\n#   %s\n"
            "# (%s: %ld blocks, width %ld, %ld heads, vocabulary %ld).\n"
            "# Layers are named after the Hugging Face modules (docs/text.md, \"Hugging "
            "Face\n# checkpoints\"). Fill in the data paths, then: mpirun -np 2 ftune train "
            "THIS.cfg\n",
            h->cfg_path, h->st.path, model, a->layers, a->dim, a->heads, a->vocab);
        if (notes && notes[0]) {
            ft_sb_printf(&b, "#\n# Notes from the import:\n");
            for (const char *s = notes; *s;) {
                const char *e = strchr(s, '\n');
                int len = e ? (int)(e - s) : (int)strlen(s);
                ft_sb_printf(&b, "#   - %.*s\n", len, s);
                s += len + (e ? 1 : 0);
            }
        }
        ft_sb_printf(&b, "\n");
    }
    ft_sb_printf(&b, "run = {\n  dir = \"runs/hf-%s-%s\";\n  seed = %llu;\n};\n\n",
                 a->bert ? "bert" : "gpt2", a->lm ? "lm" : "finetune", (unsigned long long)o->seed);
    ft_sb_printf(&b, "data = {\n");
    if (with_extras)
        ft_sb_printf(&b,
                     "  # token id datasets from `ftune data import-text` with this model's "
                     "tokenizer\n  # and --max-len equal to model.input%s\n"
                     "  train = \"data/train.h5\";  # set: your training set\n"
                     "  eval = \"\";                # set: your evaluation set (\"\" = none)\n",
                     a->lm ? "; their labels are not used (task = \"lm\")" : "");
    else
        ft_sb_printf(&b, "  train = \"data/train.h5\";\n  eval = \"\";\n");
    ft_sb_printf(&b, "};\n\nmodel = {\n");
    if (with_extras)
        ft_sb_printf(&b,
                     "  # tokens per row: the dataset's max_len (at most %ld, the position "
                     "table)\n",
                     a->positions);
    ft_sb_printf(&b, "  input = [%ld];\n", a->seq_len);
    gen_layers(&b, a, NULL);
    ft_sb_printf(&b, "};\n");
    if (with_extras) {
        ft_sb_printf(&b, "\n# Start from the imported weights (a relative path is resolved against "
                         "the\n# directory ftune runs in).\npretrained = {\n  file = ");
        ft_sb_printf(&b, "\"%s\";\n", o->model_path ? o->model_path : "MODEL.h5");
        if (a->lm)
            ft_sb_printf(&b,
                         "  # lm_head has no tensor of its own: it is tied to wte's weight\n};\n");
        else
            ft_sb_printf(&b,
                         "  # %s\n  # reinit = [\"%s\"];  # a fresh head (change its units for "
                         "another class count)\n};\n",
                         a->head_in_file ? "the head came from the checkpoint"
                                         : "the head was initialised fresh by the import",
                         a->head);
        if (a->lm && a->layers > 1)
            ft_sb_printf(&b,
                         "\n# Train only the last block and ln_f (wte, and with it the tied head, "
                         "frozen):\n# freeze = { upto = \"h.%ld\"; };\n",
                         a->layers - 2);
        else if (!a->lm)
            ft_sb_printf(&b,
                         "\n# Train only %s and the head on frozen features:\n"
                         "# freeze = { upto = \"%s%ld\"; };\n",
                         a->bert ? "the pooler" : "ln_f", a->bert ? "encoder.layer." : "h.",
                         a->layers - 1);
        ft_sb_printf(&b, "\n# Fine-tuning defaults for a pre-trained transformer: a small learning "
                         "rate\n# with warm-up and cosine decay.\n");
        if (a->lm)
            ft_sb_printf(&b,
                         "# A causal LM (docs/text.md, \"Training a language model\"): the "
                         "logits are\n# [batch_size, T, vocab] floats, so the batch is small.\n");
    }
    ft_sb_printf(&b, "train = {\n%s  epochs = 3;\n  batch_size = %d;\n",
                 a->lm ? "  task = \"lm\";\n" : "", a->lm ? 8 : 32);
    ft_sb_printf(&b, "  optimizer = { type = \"adamw\"; lr = 0.00005; weight_decay = 0.01; };\n"
                     "  schedule = { type = \"cosine\"; warmup_steps = 100; };\n};\n");
    ft_sb_printf(&b, "checkpoint = { every = 500; keep_last = 2; };\n");
    ft_sb_printf(&b, "log = { every = 50; };\n");
    return ft_sb_take(&b);
}

/* ---- tensors ------------------------------------------------------------------------ */

enum { CV_AS_IS, CV_TRANSPOSE, CV_CONCAT3 };

static const char *shape_str(const int64_t *d, int rank, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %lld" : "%lld", (long long)d[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

static int want_tensor(hctx *h, const char *name, const char *layer, const char *param,
                       const ft_st_tensor **out, ft_err *err)
{
    const ft_st_tensor *t = ft_st_find(&h->st, name);
    if (!t)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s' is missing (ftune layer '%s' parameter '%s' is read from "
                       "it)",
                       h->st.path, name, layer, param);
    if (t->dtype != FT_ST_F32 && t->dtype != FT_ST_F16 && t->dtype != FT_ST_BF16 &&
        t->dtype != FT_ST_F64)
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s' has dtype %s; parameters must be F32, F16, BF16 or F64",
                       h->st.path, name, ft_st_dtype_name(t->dtype));
    *out = t;
    return FT_OK;
}

static int read_checked(hctx *h, const ft_st_tensor *t, float *dst, ft_err *err)
{
    int rc = ft_st_read_f32(&h->st, t, dst, t->count, err);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < t->count; i++)
        if (!isfinite(dst[i]))
            return ft_fail(err, FT_EINPUT,
                           "%s: tensor '%s' holds a NaN or infinite value (element %llu)",
                           h->st.path, t->name, (unsigned long long)i);
    h->used[t - h->st.tensors] = 1;
    return FT_OK;
}

/* Fills parameter `param` of ftune layer `layer` from tensors pre+n[0..k). */
static int bind(hctx *h, ft_model *m, const char *layer, const char *param, int cv, const char *pre,
                const char *n0, const char *n1, const char *n2, ft_err *err)
{
    ft_layer *l = ft_model_find(m, layer);
    ft_param *p = NULL;
    for (int j = 0; l && j < l->nparams; j++)
        if (!strcmp(l->params[j].name, param))
            p = &l->params[j];
    if (!p)
        return ft_fail(err, FT_ERUNTIME, "internal: the model has no parameter %s.%s", layer,
                       param);
    const char *suffix[3] = {n0, n1, n2};
    const int k = cv == CV_CONCAT3 ? 3 : 1;
    /* the file's shape: ftune's, reversed for Conv1D, a third of the rows per q/k/v */
    int64_t want[FT_ST_MAX_DIMS];
    int rank = p->shape.rank;
    for (int d = 0; d < rank; d++)
        want[d] = p->shape.d[d];
    if (cv == CV_TRANSPOSE) {
        want[0] = p->shape.d[1];
        want[1] = p->shape.d[0];
    } else if (cv == CV_CONCAT3) {
        want[0] = p->shape.d[0] / 3;
    }
    const ft_st_tensor *t[3];
    char name[3][FT_PREFIX_MAX + 96];
    for (int i = 0; i < k; i++) {
        snprintf(name[i], sizeof name[i], "%s%s", pre, suffix[i]);
        int rc = want_tensor(h, name[i], layer, param, &t[i], err);
        if (rc)
            return rc;
        int same = t[i]->rank == rank;
        for (int d = 0; same && d < rank; d++)
            same = t[i]->shape[d] == want[d];
        if (!same) {
            char a[96], b[96];
            return ft_fail(err, FT_EINPUT,
                           "%s: tensor '%s' has shape %s, expected %s (from %s; ftune layer '%s' "
                           "parameter '%s')",
                           h->st.path, name[i], shape_str(t[i]->shape, t[i]->rank, a, sizeof a),
                           shape_str(want, rank, b, sizeof b), h->cfg_path, layer, param);
        }
    }
    if (cv == CV_AS_IS)
        return read_checked(h, t[0], p->data, err);
    if (cv == CV_CONCAT3) {
        for (int i = 0; i < 3; i++) {
            int rc = read_checked(h, t[i], p->data + (size_t)i * (p->count / 3), err);
            if (rc)
                return rc;
        }
        return FT_OK;
    }
    /* Conv1D (in, out) -> [out, in] */
    const size_t in = (size_t)want[0], out = (size_t)want[1];
    float *tmp = ft_alloc_floats(p->count, err);
    if (!tmp)
        return err->code;
    int rc = read_checked(h, t[0], tmp, err);
    if (!rc)
        for (size_t i = 0; i < in; i++)
            for (size_t j = 0; j < out; j++)
                p->data[j * in + i] = tmp[i * out + j];
    ft_free_floats(tmp);
    return rc;
}

/* GPT2LMHeadModel's lm_head.weight, when the file has it, is the tied copy of wte.weight:
 * ftune's lm_head aliases wte's weight, so any other value (an untied head) is refused.
 * Sets *checked when the tensor was there and equal. */
static int check_tied_lm_head(hctx *h, const ft_model *m, const char *pre, int *checked,
                              ft_err *err)
{
    static const char name[] = "lm_head.weight";
    *checked = 0;
    if (!ft_st_find(&h->st, name))
        return FT_OK;
    const ft_layer *l = ft_model_find(m, "wte");
    const ft_param *w = l && l->nparams > 0 ? &l->params[0] : NULL;
    if (!w || strcmp(w->name, "weight"))
        return ft_fail(err, FT_ERUNTIME, "internal: the model has no parameter wte.weight");
    const ft_st_tensor *t;
    int rc = want_tensor(h, name, "lm_head", "weight (tied to wte)", &t, err);
    if (rc)
        return rc;
    if (t->rank != 2 || t->shape[0] != w->shape.d[0] || t->shape[1] != w->shape.d[1]) {
        char sa[96];
        return ft_fail(err, FT_EINPUT,
                       "%s: tensor '%s' has shape %s, expected [%d, %d] (the tied copy of "
                       "'%swte.weight')",
                       h->st.path, name, shape_str(t->shape, t->rank, sa, sizeof sa), w->shape.d[0],
                       w->shape.d[1], pre);
    }
    float *tmp = ft_alloc_floats(w->count, err);
    if (!tmp)
        return err->code;
    rc = read_checked(h, t, tmp, err);
    for (size_t i = 0; !rc && i < w->count; i++)
        if (tmp[i] != w->data[i])
            rc = ft_fail(err, FT_EINPUT,
                         "%s: tensor '%s' differs from '%swte.weight' (element %zu: %g, not %g): "
                         "an untied LM head, which ftune does not support (its lm_head is tied to "
                         "wte, as GPT-2's)",
                         h->st.path, name, pre, i, (double)tmp[i], (double)w->data[i]);
    ft_free_floats(tmp);
    *checked = !rc;
    return rc;
}

static int bind_gpt2(hctx *h, ft_model *m, const arch *a, const char *pre, ft_err *err)
{
    int rc;
    if ((rc = bind(h, m, "wte", "weight", CV_AS_IS, pre, "wte.weight", NULL, NULL, err)) ||
        (rc = bind(h, m, "wte", "position", CV_AS_IS, pre, "wpe.weight", NULL, NULL, err)))
        return rc;
    static const struct {
        const char *param, *name;
        int cv;
    } blk[] = {
        {"ln1_weight", "ln_1.weight", CV_AS_IS},
        {"ln1_bias", "ln_1.bias", CV_AS_IS},
        {"attn_qkv_weight", "attn.c_attn.weight", CV_TRANSPOSE},
        {"attn_qkv_bias", "attn.c_attn.bias", CV_AS_IS},
        {"attn_out_weight", "attn.c_proj.weight", CV_TRANSPOSE},
        {"attn_out_bias", "attn.c_proj.bias", CV_AS_IS},
        {"ln2_weight", "ln_2.weight", CV_AS_IS},
        {"ln2_bias", "ln_2.bias", CV_AS_IS},
        {"mlp_fc_weight", "mlp.c_fc.weight", CV_TRANSPOSE},
        {"mlp_fc_bias", "mlp.c_fc.bias", CV_AS_IS},
        {"mlp_proj_weight", "mlp.c_proj.weight", CV_TRANSPOSE},
        {"mlp_proj_bias", "mlp.c_proj.bias", CV_AS_IS},
    };
    for (long i = 0; i < a->layers; i++) {
        char layer[32], bpre[FT_PREFIX_MAX];
        snprintf(layer, sizeof layer, "h.%ld", i);
        snprintf(bpre, sizeof bpre, "%sh.%ld.", pre, i);
        for (size_t j = 0; j < sizeof blk / sizeof blk[0]; j++)
            if ((rc = bind(h, m, layer, blk[j].param, blk[j].cv, bpre, blk[j].name, NULL, NULL,
                           err)))
                return rc;
    }
    if ((rc = bind(h, m, "ln_f", "weight", CV_AS_IS, pre, "ln_f.weight", NULL, NULL, err)) ||
        (rc = bind(h, m, "ln_f", "bias", CV_AS_IS, pre, "ln_f.bias", NULL, NULL, err)))
        return rc;
    if (a->lm)
        return check_tied_lm_head(h, m, pre, &h->lm_checked, err);
    if (a->head_in_file) {
        char hpre[FT_NAME_MAX + 2];
        snprintf(hpre, sizeof hpre, "%s.", a->head);
        if ((rc = bind(h, m, a->head, "weight", CV_AS_IS, hpre, "weight", NULL, NULL, err)))
            return rc;
    }
    return FT_OK;
}

static int bind_bert(hctx *h, ft_model *m, const arch *a, const char *pre, ft_err *err)
{
    int rc;
    char epre[FT_PREFIX_MAX];
    snprintf(epre, sizeof epre, "%sembeddings.", pre);
    if ((rc = bind(h, m, "embeddings", "weight", CV_AS_IS, epre, "word_embeddings.weight", NULL,
                   NULL, err)) ||
        (rc = bind(h, m, "embeddings", "position", CV_AS_IS, epre, "position_embeddings.weight",
                   NULL, NULL, err)) ||
        (rc = bind(h, m, "embeddings", "segment", CV_AS_IS, epre, "token_type_embeddings.weight",
                   NULL, NULL, err)) ||
        (rc = bind(h, m, "embeddings.LayerNorm", "weight", CV_AS_IS, epre, "LayerNorm.weight", NULL,
                   NULL, err)) ||
        (rc = bind(h, m, "embeddings.LayerNorm", "bias", CV_AS_IS, epre, "LayerNorm.bias", NULL,
                   NULL, err)))
        return rc;
    static const struct {
        const char *param, *name;
    } blk[] = {
        {"ln1_weight", "attention.output.LayerNorm.weight"},
        {"ln1_bias", "attention.output.LayerNorm.bias"},
        {"attn_out_weight", "attention.output.dense.weight"},
        {"attn_out_bias", "attention.output.dense.bias"},
        {"ln2_weight", "output.LayerNorm.weight"},
        {"ln2_bias", "output.LayerNorm.bias"},
        {"mlp_fc_weight", "intermediate.dense.weight"},
        {"mlp_fc_bias", "intermediate.dense.bias"},
        {"mlp_proj_weight", "output.dense.weight"},
        {"mlp_proj_bias", "output.dense.bias"},
    };
    for (long i = 0; i < a->layers; i++) {
        char layer[48], bpre[FT_PREFIX_MAX];
        snprintf(layer, sizeof layer, "encoder.layer.%ld", i);
        snprintf(bpre, sizeof bpre, "%sencoder.layer.%ld.", pre, i);
        if ((rc = bind(h, m, layer, "attn_qkv_weight", CV_CONCAT3, bpre,
                       "attention.self.query.weight", "attention.self.key.weight",
                       "attention.self.value.weight", err)) ||
            (rc = bind(h, m, layer, "attn_qkv_bias", CV_CONCAT3, bpre, "attention.self.query.bias",
                       "attention.self.key.bias", "attention.self.value.bias", err)))
            return rc;
        for (size_t j = 0; j < sizeof blk / sizeof blk[0]; j++)
            if ((rc =
                     bind(h, m, layer, blk[j].param, CV_AS_IS, bpre, blk[j].name, NULL, NULL, err)))
                return rc;
    }
    char ppre[FT_PREFIX_MAX];
    snprintf(ppre, sizeof ppre, "%spooler.dense.", pre);
    if ((rc = bind(h, m, "pooler.dense", "weight", CV_AS_IS, ppre, "weight", NULL, NULL, err)) ||
        (rc = bind(h, m, "pooler.dense", "bias", CV_AS_IS, ppre, "bias", NULL, NULL, err)))
        return rc;
    if (a->head_in_file) {
        char hpre[FT_NAME_MAX + 2];
        snprintf(hpre, sizeof hpre, "%s.", a->head);
        if ((rc = bind(h, m, a->head, "weight", CV_AS_IS, hpre, "weight", NULL, NULL, err)) ||
            (rc = bind(h, m, a->head, "bias", CV_AS_IS, hpre, "bias", NULL, NULL, err)))
            return rc;
    }
    return FT_OK;
}

/* A tensor of a block the config does not have (h.12.* with n_layer = 12) means config.json
 * and the weights disagree: refused rather than dropped. */
static int check_extra_blocks(hctx *h, const char *bpre, long nblocks, const char *key, ft_err *err)
{
    size_t n = strlen(bpre);
    for (size_t i = 0; i < h->st.ntensors; i++) {
        const char *s = h->st.tensors[i].name;
        if (strncmp(s, bpre, n) != 0 || s[n] < '0' || s[n] > '9')
            continue;
        char *end;
        long b = strtol(s + n, &end, 10);
        if (*end == '.' && b >= nblocks)
            return ft_fail(err, FT_EINPUT,
                           "%s: tensor '%s' belongs to block %ld, but %s says %s = %ld (the "
                           "config and the weights disagree)",
                           h->st.path, s, b, h->cfg_path, key, nblocks);
    }
    return FT_OK;
}

/* "a.3.b" -> "a.*.b": block tensors listed once with a count. */
static void name_pattern(const char *s, char *out, size_t len)
{
    size_t o = 0;
    while (*s && o + 2 < len) {
        if (*s == '.' && s[1] >= '0' && s[1] <= '9') {
            const char *e = s + 1;
            while (*e >= '0' && *e <= '9')
                e++;
            if (*e == '.' || !*e) {
                out[o++] = '.';
                out[o++] = '*';
                s = e;
                continue;
            }
        }
        out[o++] = *s++;
    }
    out[o] = '\0';
}

static char *skipped_summary(const hctx *h, int *count)
{
    size_t n = h->st.ntensors;
    char(*pat)[FT_PREFIX_MAX] = calloc(n ? n : 1, sizeof *pat);
    int *cnt = calloc(n ? n : 1, sizeof *cnt);
    ft_sbuf b = {0};
    size_t np = 0;
    *count = 0;
    if (!pat || !cnt) {
        free(pat);
        free(cnt);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (h->used[i])
            continue;
        (*count)++;
        char p[FT_PREFIX_MAX];
        name_pattern(h->st.tensors[i].name, p, sizeof p);
        size_t j = 0;
        while (j < np && strcmp(pat[j], p))
            j++;
        if (j == np)
            snprintf(pat[np++], sizeof pat[0], "%s", p);
        cnt[j]++;
    }
    for (size_t j = 0; j < np; j++) {
        if (j == 24) {
            ft_sb_printf(&b, ", ... (%zu more names)", np - j);
            break;
        }
        ft_sb_printf(&b, "%s%s", j ? ", " : "", pat[j]);
        if (cnt[j] > 1)
            ft_sb_printf(&b, " (%d)", cnt[j]);
    }
    free(pat);
    free(cnt);
    return ft_sb_take(&b);
}

/* ---- the import ------------------------------------------------------------------------ */

static int valid_head_name(const char *s)
{
    if (!s[0] || strlen(s) >= FT_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static int decide_head(hctx *h, const ft_hf_opts *o, arch *a, ft_err *err)
{
    if (a->lm) {
        if (a->bert)
            return ft_fail(err, FT_EINPUT,
                           "--lm: %s is a BERT checkpoint; ftune imports GPT-2 language models "
                           "only (model_type \"gpt2\")",
                           h->cfg_path);
        if (o->classes > 0 || o->new_head || o->head_name)
            return ft_fail(err, FT_EINPUT,
                           "--lm imports the language model (lm_head tied to wte); --classes, "
                           "--new-head and --head-name are for a classification head");
        snprintf(a->head, sizeof a->head, "lm_head");
        a->classes = 0;
        a->head_in_file = 0;
        return FT_OK;
    }
    const char *head = o->head_name ? o->head_name : a->bert ? "classifier" : "score";
    if (!valid_head_name(head))
        return ft_fail(err, FT_EINPUT,
                       "--head-name '%s': a layer name of letters, digits, '_', '-' and '.' "
                       "(at most %d characters)",
                       head, FT_NAME_MAX - 1);
    snprintf(a->head, sizeof a->head, "%s", head);
    char wname[FT_NAME_MAX + 16], bname[FT_NAME_MAX + 16];
    snprintf(wname, sizeof wname, "%s.weight", head);
    snprintf(bname, sizeof bname, "%s.bias", head);
    const ft_st_tensor *w = ft_st_find(&h->st, wname);
    if (w && !o->new_head) {
        if (w->rank != 2 || w->shape[0] < 1 || w->shape[0] > FT_MAX_CLASSES) {
            char s[96];
            return ft_fail(err, FT_EINPUT,
                           "%s: tensor '%s' (the classification head) has shape %s, expected "
                           "[classes, %ld] with 1 to %d classes",
                           h->st.path, wname, shape_str(w->shape, w->rank, s, sizeof s), a->dim,
                           FT_MAX_CLASSES);
        }
        if (o->classes > 0 && o->classes != w->shape[0])
            return ft_fail(err, FT_EINPUT,
                           "%s: the checkpoint's head '%s' has %lld classes, not --classes %d "
                           "(--new-head replaces it with a fresh one)",
                           h->st.path, wname, (long long)w->shape[0], o->classes);
        if (!a->bert && ft_st_find(&h->st, bname))
            return ft_fail(err, FT_EINPUT,
                           "%s: tensor '%s' is in the file, but GPT-2's head has no bias "
                           "(GPT2ForSequenceClassification's score is Linear(bias=False))",
                           h->st.path, bname);
        a->classes = (long)w->shape[0];
        a->head_in_file = 1;
        return FT_OK;
    }
    if (o->classes < 1 && o->new_head)
        return ft_fail(err, FT_EINPUT,
                       "--new-head needs --classes K (the classes of the new head)");
    if (o->classes < 1)
        return ft_fail(err, FT_EINPUT,
                       "%s: the checkpoint has no classification head (tensor '%s'); give "
                       "--classes K for a fresh head of K classes%s",
                       h->st.path, wname,
                       !a->bert && ft_st_find(&h->st, "lm_head.weight")
                           ? ", or --lm to import the language model (lm_head tied to wte)"
                           : "");
    if (o->classes > FT_MAX_CLASSES)
        return ft_fail(err, FT_EINPUT, "--classes %d: at most %d", o->classes, FT_MAX_CLASSES);
    a->classes = o->classes;
    a->head_in_file = 0;
    ft_sb_printf(&h->notes,
                 "layer '%s': a fresh head of %d classes (initialised with seed %llu)%s\n", head,
                 o->classes, (unsigned long long)o->seed,
                 w ? "; the checkpoint's head is not used (--new-head)" : "");
    return FT_OK;
}

int ft_hf_import(const ft_hf_opts *o, ft_hf_result *out, ft_err *err)
{
    memset(out, 0, sizeof *out);
    hctx h;
    memset(&h, 0, sizeof h);
    h.st.fd = -1;
    h.cfg_path = o->config_path;
    arch a;
    memset(&a, 0, sizeof a);
    a.lm = o->lm != 0;
    char *stored = NULL;
    int rc = read_json(o->config_path, &h.cfg, err);
    const char *mt = NULL;
    if (!rc)
        rc = cfg_str(&h, "model_type", NULL, &mt, err);
    if (!rc && !mt)
        rc = ft_fail(err, FT_EINPUT,
                     "%s: key 'model_type' is missing (\"gpt2\" or \"bert\" is expected)",
                     o->config_path);
    if (!rc && strcmp(mt, "gpt2") && strcmp(mt, "bert"))
        rc = ft_fail(err, FT_EINPUT,
                     "%s: key 'model_type' is \"%.64s\"; ftune imports \"gpt2\" and \"bert\"",
                     o->config_path, mt);
    if (!rc) {
        a.bert = !strcmp(mt, "bert");
        snprintf(out->model_type, sizeof out->model_type, "%s", mt);
        rc = a.bert ? read_bert(&h, &a, err) : read_gpt2(&h, &a, err);
    }
    if (!rc) {
        a.seq_len = o->seq_len > 0 ? o->seq_len
                                   : (a.positions < HF_SEQ_DEFAULT ? a.positions : HF_SEQ_DEFAULT);
        if (a.seq_len > a.positions)
            rc = ft_fail(err, FT_EINPUT,
                         "--seq-len %ld is longer than the model's position table (%s = %ld in "
                         "%s)",
                         a.seq_len, a.bert ? "max_position_embeddings" : "n_positions", a.positions,
                         o->config_path);
    }
    if (!rc)
        rc = ft_st_open(&h.st, o->weights_path, err);
    if (!rc && !(h.used = calloc(h.st.ntensors ? h.st.ntensors : 1, 1)))
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    /* GPT2Model / BertModel names, or those of a wrapper (GPT2LMHeadModel,
     * *ForSequenceClassification, BertForPreTraining) with its prefix */
    const char *pre = "";
    if (!rc) {
        const char *probe = a.bert ? "embeddings.word_embeddings.weight" : "wte.weight";
        const char *wrap = a.bert ? "bert." : "transformer.";
        char name[96];
        snprintf(name, sizeof name, "%s%s", wrap, probe);
        if (ft_st_find(&h.st, name))
            pre = wrap;
        else if (!ft_st_find(&h.st, probe))
            rc = ft_fail(err, FT_EINPUT,
                         "%s: tensor '%s' (or '%s') is missing: not a %s checkpoint with Hugging "
                         "Face names",
                         h.st.path, probe, name, a.bert ? "BERT" : "GPT-2");
        snprintf(out->prefix, sizeof out->prefix, "%s", pre);
    }
    if (!rc) {
        char bpre[64];
        snprintf(bpre, sizeof bpre, "%s%s", pre, a.bert ? "encoder.layer." : "h.");
        rc = check_extra_blocks(&h, bpre, a.layers, a.bert ? "num_hidden_layers" : "n_layer", err);
    }
    if (!rc)
        rc = decide_head(&h, o, &a, err);
    if (!rc) {
        const char *notes = h.notes.s ? h.notes.s : "";
        stored = gen_config(&h, &a, o, NULL, 0);
        out->config_text = gen_config(&h, &a, o, notes, 1);
        if (!stored || !out->config_text)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    if (!rc && (rc = ft_config_load_string(&out->cfg, stored, "the generated config", err)))
        ft_err_prefix(err, "internal: the generated config does not load");
    if (!rc)
        rc = ft_model_build(&out->model, &out->cfg.input, out->cfg.layers, out->cfg.nlayers, err);
    if (!rc) {
        /* every layer starts fresh; all but a new head are then overwritten */
        ft_model_init_params(&out->model, o->seed);
        rc = a.bert ? bind_bert(&h, &out->model, &a, pre, err)
                    : bind_gpt2(&h, &out->model, &a, pre, err);
    }
    if (!rc && !(out->skipped = skipped_summary(&h, &out->nskipped)))
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    if (!rc) {
        out->notes = ft_sb_take(&h.notes);
        if (!out->notes)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        out->fresh_head = !a.lm && !a.head_in_file;
        out->lm = a.lm;
        out->lm_head_checked = h.lm_checked;
    }
    free(h.notes.s);
    free(stored);
    free(h.used);
    ft_st_close(&h.st);
    ft_json_free(h.cfg);
    return rc;
}

void ft_hf_result_free(ft_hf_result *r)
{
    ft_model_free(&r->model);
    ft_config_free(&r->cfg);
    free(r->config_text);
    free(r->notes);
    free(r->skipped);
    memset(r, 0, sizeof *r);
}
