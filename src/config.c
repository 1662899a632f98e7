/* Config loading: libconfig tree -> --set overrides -> schema check (unknown
 * keys, types, required keys) -> values -> layers -> canonical text.
 * Every key lives in one schema table per group below; docs/config.md
 * documents the same tables. */
#include "ftune/config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ftune/kv.h"

/* Value types a schema entry accepts. */
enum {
    K_INT = 1, /* int range */
    K_INT64,   /* 64-bit (libconfig needs an L suffix beyond 2^31-1) */
    K_FLOAT,   /* an integer is accepted too */
    K_BOOL,
    K_STRING,
    K_GROUP,
    K_INT_LIST, /* [1, 28, 28] */
    K_NUM_LIST, /* [0.9, 0.999] */
    K_STR_LIST, /* ["fc2"]; a single string is accepted */
    K_LAYERS,   /* ( { name = ...; type = ...; }, ... ) */
    K_STR_MAP   /* { conv1 = "features.0"; ... }: a group of strings, any keys */
};

typedef struct keyspec {
    const char *key;
    int type;
    int required;
    const char *dflt; /* default as text, parsed by the getters; NULL = none */
    const char *help;
    const struct keyspec *sub; /* K_GROUP */
} keyspec;

static const keyspec run_keys[] = {
    {"dir", K_STRING, 0, NULL,
     "output directory; default runs/<config file name without extension>", NULL},
    {"seed", K_INT64, 0, "42", "seed of every random choice (init, shuffle, dropout), >= 0", NULL},
    {"threads", K_INT, 0, "0", "BLAS threads per rank; 0 = automatic", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec data_keys[] = {
    {"train", K_STRING, 1, NULL, "training set (HDF5 file)", NULL},
    {"eval", K_STRING, 0, "", "evaluation set (HDF5 file); empty = no evaluation", NULL},
    {"shuffle", K_BOOL, 0, "true", "reshuffle the training set every epoch", NULL},
    {"k_shot", K_INT, 0, "0",
     "few-shot: train on this many rows per class, drawn from run.seed; 0 = every row", NULL},
    {"prefetch", K_BOOL, 0, "true",
     "read the next batch on a background thread while the current one computes", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec preprocess_keys[] = {
    {"scale", K_FLOAT, 0, "1.0", "multiply every input value by this first", NULL},
    {"mean", K_NUM_LIST, 0, NULL, "subtracted per channel after scaling (1 value or 1 per channel)",
     NULL},
    {"std", K_NUM_LIST, 0, NULL,
     "divides per channel after the mean, > 0 (1 value or 1 per channel)", NULL},
    {"layout", K_STRING, 0, "nchw",
     "nchw | nhwc: layout of the stored samples (nhwc is transposed to [C, H, W])", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec model_keys[] = {
    {"input", K_INT_LIST, 1, NULL,
     "per-sample input shape: [features] or [channels, height, width]", NULL},
    {"layers", K_LAYERS, 1, NULL, "the layers in order", NULL},
    {"preprocess", K_GROUP, 0, NULL, "input scaling, per-channel normalisation, data layout",
     preprocess_keys},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec pretrained_keys[] = {
    {"file", K_STRING, 1, NULL, "model or checkpoint file whose weights are loaded (by layer name)",
     NULL},
    {"reinit", K_STR_LIST, 0, "[]", "layers initialised fresh instead of loaded (a new head)",
     NULL},
    {"map", K_STR_MAP, 0, NULL,
     "ftune layer -> tensor name prefix in a safetensors file, e.g. { conv1 = \"features.0\"; }",
     NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec freeze_keys[] = {
    {"upto", K_STRING, 0, "", "freeze every layer up to and including this one", NULL},
    {"layers", K_STR_LIST, 0, "[]", "further layers to freeze", NULL},
    {"params", K_STR_LIST, 0, "[]",
     "parameters to freeze inside trainable layers: globs over \"layer.param\", e.g. "
     "\"h.*.attn_*\"",
     NULL},
    {"train_params", K_STR_LIST, 0, "[]",
     "train only the parameters matching these globs (over \"layer.param\"); the rest is frozen",
     NULL},
    {"bitfit", K_BOOL, 0, "false",
     "BitFit: train only biases, layernorm/batchnorm parameters and the last layer with weights",
     NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec lora_keys[] = {
    {"rank", K_INT, 0, "8", "adapter rank r, >= 1", NULL},
    {"alpha", K_FLOAT, 0, "8.0", "scale: the adapter output is multiplied by alpha / rank, > 0",
     NULL},
    {"dropout", K_FLOAT, 0, "0.0", "dropout on the adapter's input, in [0, 1)", NULL},
    {"targets", K_STR_LIST, 0, "[]",
     "weights that get adapters: attn_qkv, attn_out, mlp_fc, mlp_proj (transformer_block), "
     "weight (dense); [] = all of them",
     NULL},
    {"layers", K_STR_LIST, 0, "[]",
     "globs over layer names; [] = every dense and transformer_block layer", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec optimizer_keys[] = {
    {"type", K_STRING, 0, "sgd", "sgd | adamw", NULL},
    {"lr", K_FLOAT, 0, "0.01", "base learning rate, > 0 (default 0.01 for sgd, 0.001 for adamw)",
     NULL},
    {"momentum", K_FLOAT, 0, "0.9", "SGD momentum, in [0, 1)", NULL},
    {"nesterov", K_BOOL, 0, "false", "SGD Nesterov momentum (needs momentum > 0)", NULL},
    {"weight_decay", K_FLOAT, 0, "0.0", "L2 (sgd) or decoupled (adamw) weight decay, >= 0", NULL},
    {"betas", K_NUM_LIST, 0, "[0.9, 0.999]", "AdamW moment decay rates, each in [0, 1)", NULL},
    {"eps", K_FLOAT, 0, "1e-8", "AdamW denominator epsilon, > 0", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec schedule_keys[] = {
    {"type", K_STRING, 0, "constant", "constant | step | cosine", NULL},
    {"warmup_steps", K_INT64, 0, "0", "linear warm-up steps, >= 0", NULL},
    {"step_size", K_INT64, 0, "1000", "step: multiply the rate by gamma every step_size steps",
     NULL},
    {"gamma", K_FLOAT, 0, "0.1", "step: decay factor, > 0", NULL},
    {"total_steps", K_INT64, 0, "0", "cosine: steps to reach min_lr; 0 = the whole run", NULL},
    {"min_lr", K_FLOAT, 0, "0.0", "cosine: final learning rate, >= 0", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec loss_keys[] = {
    {"label_smoothing", K_FLOAT, 0, "0.0", "cross-entropy label smoothing, in [0, 1)", NULL},
    {"class_weights", K_NUM_LIST, 0, NULL, "per-class loss weights (one per class), >= 0", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec train_keys[] = {
    {"epochs", K_INT, 0, "1", "passes over the training set, >= 1", NULL},
    {"max_steps", K_INT64, 0, "0", "stop after this many optimizer steps; 0 = no limit", NULL},
    {"batch_size", K_INT, 0, "64", "global batch size (all ranks together), >= 1", NULL},
    {"accum_steps", K_INT, 0, "1", "batches accumulated per optimizer step, >= 1", NULL},
    {"clip_grad_norm", K_FLOAT, 0, "0.0", "clip the global gradient L2 norm; 0 = off", NULL},
    {"max_bad_steps", K_INT, 0, "5",
     "stop after this many consecutive steps with a non-finite loss or gradient; 0 = never", NULL},
    {"optimizer", K_GROUP, 0, NULL, "optimizer settings", optimizer_keys},
    {"schedule", K_GROUP, 0, NULL, "learning-rate schedule", schedule_keys},
    {"loss", K_GROUP, 0, NULL, "loss settings", loss_keys},
    {"task", K_STRING, 0, "classify",
     "classify (one label per sample) | lm (causal language model: each position predicts the "
     "next token)",
     NULL},
    {"feature_cache", K_STRING, 0, "off",
     "off | auto | memory | disk: compute the frozen prefix once per sample and reuse it", NULL},
    {"feature_cache_mb", K_INT, 0, "4096",
     "feature_cache = auto: the largest cache kept in memory per rank (MiB), else disk", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec eval_keys[] = {
    {"every", K_INT64, 0, "0",
     "evaluate every N optimizer steps; 0 = before training and at the end", NULL},
    {"batch_size", K_INT, 0, "256", "evaluation batch size, >= 1", NULL},
    {"best_metric", K_STRING, 0, "accuracy", "accuracy | macro_f1 | loss: picks best.h5", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec checkpoint_keys[] = {
    {"every", K_INT64, 0, "0", "write a checkpoint every N optimizer steps; 0 = only at the end",
     NULL},
    {"keep_last", K_INT, 0, "2", "newest step checkpoints kept on disk, >= 1", NULL},
    {"on_error", K_STRING, 0, "stop",
     "stop | continue: what a failed checkpoint write (disk full) does to the run", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec log_keys[] = {
    {"every", K_INT64, 0, "50", "print a training line every N optimizer steps, >= 1", NULL},
    {"progress", K_STRING, 0, "auto", "auto | bar | plain (auto = bar on a terminal)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const keyspec root_keys[] = {
    {"run", K_GROUP, 0, NULL, "output directory, seed, threads", run_keys},
    {"data", K_GROUP, 1, NULL, "datasets", data_keys},
    {"model", K_GROUP, 1, NULL, "input shape and layers", model_keys},
    {"pretrained", K_GROUP, 0, NULL, "start from saved weights", pretrained_keys},
    {"freeze", K_GROUP, 0, NULL, "layers without gradients", freeze_keys},
    {"lora", K_GROUP, 0, NULL, "low-rank adapters (LoRA); the base weights are frozen", lora_keys},
    {"train", K_GROUP, 0, NULL, "training loop", train_keys},
    {"eval", K_GROUP, 0, NULL, "evaluation", eval_keys},
    {"checkpoint", K_GROUP, 0, NULL, "checkpoints", checkpoint_keys},
    {"log", K_GROUP, 0, NULL, "console output", log_keys},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct loader {
    config_t cfg;
    const char *origin;
    ft_err *err;
    int rc; /* first error wins; later checks are skipped */
} loader;

/* A group of the tree with its schema; s is NULL when the group is absent
 * (then every key takes its default). */
typedef struct group {
    const config_setting_t *s;
    const keyspec *spec;
    const char *path;
} group;

/* ------------------------------------------------------------------ */
/* messages */

static const char *file_of(const loader *L, const config_setting_t *s)
{
    /* libconfig records the file for @include'd settings */
    return s && s->file ? s->file : L->origin;
}

/* "file.cfg:12", or "--set a.b=1" for a setting an override made. */
static void loc(const loader *L, const config_setting_t *s, char *buf, size_t len)
{
    const void *hook = s ? config_setting_get_hook(s) : NULL;
    if (hook)
        snprintf(buf, len, "--set %s", (const char *)hook);
    else if (s && config_setting_source_line(s) > 0)
        snprintf(buf, len, "%s:%u", file_of(L, s), config_setting_source_line(s));
    else
        snprintf(buf, len, "%s", L->origin);
}

static int fail_at(loader *L, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(loader *L, const config_setting_t *s, const char *fmt, ...)
{
    if (L->rc)
        return L->rc;
    char where[FT_PATH_MAX + 80], msg[900];
    loc(L, s, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    L->rc = ft_fail(L->err, FT_EINPUT, "%s: %s", where, msg);
    return L->rc;
}

static const char *type_want(int t)
{
    switch (t) {
    case K_INT:
    case K_INT64: return "an integer";
    case K_FLOAT: return "a number";
    case K_BOOL: return "a boolean (true or false)";
    case K_STRING: return "a string";
    case K_GROUP: return "a group { ... }";
    case K_INT_LIST: return "a list of integers, e.g. [1, 28, 28]";
    case K_NUM_LIST: return "a list of numbers, e.g. [0.9, 0.999]";
    case K_STR_LIST: return "a list of strings, e.g. [\"fc2\"]";
    case K_LAYERS: return "a list of layers ( { name = ...; type = ...; }, ... )";
    case K_STR_MAP: return "a group of strings, e.g. { conv1 = \"features.0\"; }";
    default: return "a value";
    }
}

static const char *type_got(int t)
{
    switch (t) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a float";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST: return "a list";
    default: return "nothing";
    }
}

static void join_path(char *buf, size_t len, const char *path, const char *key)
{
    if (path && path[0])
        snprintf(buf, len, "%s.%s", path, key);
    else
        snprintf(buf, len, "%s", key);
}

/* ------------------------------------------------------------------ */
/* schema check: unknown keys, types, required keys */

static int is_int(const config_setting_t *s)
{
    return s->type == CONFIG_TYPE_INT || s->type == CONFIG_TYPE_INT64;
}

static int is_num(const config_setting_t *s)
{
    return is_int(s) || s->type == CONFIG_TYPE_FLOAT;
}

static int is_seq(const config_setting_t *s)
{
    return s->type == CONFIG_TYPE_ARRAY || s->type == CONFIG_TYPE_LIST;
}

/* First element of a list that fails pred, or NULL. */
static const config_setting_t *bad_elem(const config_setting_t *s,
                                        int (*pred)(const config_setting_t *))
{
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!pred(e))
            return e;
    }
    return NULL;
}

static int is_str(const config_setting_t *s)
{
    return s->type == CONFIG_TYPE_STRING;
}

/* NULL if s fits t; otherwise what was found, for the message. */
static const char *type_mismatch(int t, const config_setting_t *s)
{
    const config_setting_t *e = NULL;
    int ok = 0;
    switch (t) {
    case K_INT:
    case K_INT64: ok = is_int(s); break;
    case K_FLOAT: ok = is_num(s); break;
    case K_BOOL: ok = s->type == CONFIG_TYPE_BOOL; break;
    case K_STRING: ok = is_str(s); break;
    case K_GROUP: ok = s->type == CONFIG_TYPE_GROUP; break;
    case K_INT_LIST:
    case K_NUM_LIST:
    case K_STR_LIST:
        if (t == K_STR_LIST && is_str(s))
            return NULL;
        if (!is_seq(s))
            break;
        e = bad_elem(s, t == K_INT_LIST ? is_int : t == K_NUM_LIST ? is_num : is_str);
        if (!e)
            return NULL;
        switch (e->type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64: return "a list containing an integer";
        case CONFIG_TYPE_FLOAT: return "a list containing a float";
        case CONFIG_TYPE_STRING: return "a list containing a string";
        case CONFIG_TYPE_BOOL: return "a list containing a boolean";
        default: return "a list containing a list or group";
        }
    case K_STR_MAP:
        if (s->type != CONFIG_TYPE_GROUP)
            break;
        if (bad_elem(s, is_str))
            return "a group with a value that is not a string";
        return NULL;
    case K_LAYERS:
        /* `layers = [];` parses as an (empty) array; reported as empty later */
        ok = s->type == CONFIG_TYPE_LIST ||
             (s->type == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0);
        break;
    }
    return ok ? NULL : type_got(s->type);
}

static const keyspec *spec_find(const keyspec *spec, const char *key)
{
    for (const keyspec *k = spec; k->key; k++)
        if (strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

/* "(did you mean 'x'?)" or "(valid keys: a, b, c)" */
static void suggest(char *buf, size_t len, const char *word, const char *const *names, int n,
                    const char *what)
{
    const char *near = ft_closest(word, names, n);
    if (near) {
        snprintf(buf, len, " (did you mean '%s'?)", near);
        return;
    }
    size_t used = (size_t)snprintf(buf, len, " (%s: ", what);
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %s" : "%s", names[i]);
    if (used < len)
        snprintf(buf + used, len - used, ")");
}

static void check_group(loader *L, const config_setting_t *g, const keyspec *spec, const char *path)
{
    const char *names[32];
    int nnames = 0;
    for (const keyspec *k = spec; k->key && nnames < 32; k++)
        names[nnames++] = k->key;

    char sub[128], hint[300];
    for (int i = 0; g && !L->rc && i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const keyspec *k = spec_find(spec, m->name);
        if (!k) {
            suggest(hint, sizeof hint, m->name, names, nnames, "valid keys");
            if (path[0])
                fail_at(L, m, "unknown key '%s' in %s%s", m->name, path, hint);
            else
                fail_at(L, m, "unknown key '%s' at the top level%s", m->name, hint);
            return;
        }
        join_path(sub, sizeof sub, path, k->key);
        const char *got = type_mismatch(k->type, m);
        if (got) {
            fail_at(L, m, "%s must be %s, got %s", sub, type_want(k->type), got);
            return;
        }
        if (k->type == K_GROUP)
            check_group(L, m, k->sub, sub);
    }
    for (const keyspec *k = spec; k->key && !L->rc; k++) {
        if (g && config_setting_get_member(g, k->key))
            continue;
        join_path(sub, sizeof sub, path, k->key);
        if (k->required && k->type == K_GROUP)
            check_group(L, NULL, k->sub, sub); /* names the first required key inside */
        else if (k->required)
            fail_at(L, g, "missing required key '%s' (%s: %s)", sub, type_want(k->type), k->help);
    }
}

/* ------------------------------------------------------------------ */
/* getters: the value or the schema default, range-checked */

static const config_setting_t *get(const group *g, const char *key)
{
    return g->s ? config_setting_get_member(g->s, key) : NULL;
}

static const char *dflt(const group *g, const char *key)
{
    const keyspec *k = spec_find(g->spec, key);
    return k && k->dflt ? k->dflt : "";
}

static group subgroup(const group *g, const char *key, const char *path)
{
    group s = {get(g, key), spec_find(g->spec, key)->sub, path};
    return s;
}

static long long get_int(loader *L, const group *g, const char *key, long long lo, long long hi)
{
    const config_setting_t *s = get(g, key);
    if (!s)
        return strtoll(dflt(g, key), NULL, 10);
    long long v = config_setting_get_int64(s);
    if (v >= lo && v <= hi)
        return v;
    /* libconfig 1.5 silently wraps integer literals beyond 2^31-1 in a file */
    const char *wrap = s->type == CONFIG_TYPE_INT && v < 0 && lo >= 0 && !config_setting_get_hook(s)
                           ? " (a number above 2147483647 needs an L suffix, e.g. 3000000000L: "
                             "libconfig wraps it otherwise)"
                           : "";
    if (hi == LLONG_MAX || hi == INT_MAX)
        fail_at(L, s, "%s.%s must be >= %lld, got %lld%s", g->path, key, lo, v, wrap);
    else
        fail_at(L, s, "%s.%s must be between %lld and %lld, got %lld", g->path, key, lo, hi, v);
    return lo;
}

/* Range [lo, hi] with open ends where lo_open / hi_open; hi = INFINITY for none. */
static double get_float(loader *L, const group *g, const char *key, double lo, int lo_open,
                        double hi, int hi_open)
{
    const config_setting_t *s = get(g, key);
    double v = s ? config_setting_get_float(s) : strtod(dflt(g, key), NULL);
    if (s && is_int(s))
        v = (double)config_setting_get_int64(s);
    if (!s)
        return v;
    int ok = isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        if (isinf(hi))
            fail_at(L, s, "%s.%s must be %s %g, got %g", g->path, key, lo_open ? ">" : ">=", lo, v);
        else
            fail_at(L, s, "%s.%s must be in %c%g, %g%c, got %g", g->path, key, lo_open ? '(' : '[',
                    lo, hi, hi_open ? ')' : ']', v);
    }
    return v;
}

static int get_bool(const group *g, const char *key)
{
    const config_setting_t *s = get(g, key);
    return s ? config_setting_get_bool(s) : strcmp(dflt(g, key), "true") == 0;
}

static const char *get_str(const group *g, const char *key)
{
    const config_setting_t *s = get(g, key);
    return s ? config_setting_get_string(s) : dflt(g, key);
}

/* Copies a string into a fixed buffer; too long is an input error. */
static void get_path(loader *L, const group *g, const char *key, char *dst, size_t len)
{
    const char *v = get_str(g, key);
    if (strlen(v) >= len) {
        fail_at(L, get(g, key), "%s.%s is too long (at most %zu characters)", g->path, key,
                len - 1);
        return;
    }
    memcpy(dst, v, strlen(v) + 1);
}

/* One of names[]; returns its index. */
static int get_choice(loader *L, const group *g, const char *key, const char *what,
                      const char *const *names, int n)
{
    const char *v = get_str(g, key);
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    char hint[300];
    suggest(hint, sizeof hint, v, names, n, "choose one of");
    fail_at(L, get(g, key), "unknown %s '%s' in %s.%s%s", what, v, g->path, key, hint);
    return 0;
}

/* ------------------------------------------------------------------ */
/* layers */

static int name_char_ok(int ch)
{
    return isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

static int find_layer(const ft_config *c, const char *name)
{
    for (int i = 0; i < c->nlayers; i++)
        if (strcmp(c->layers[i].name, name) == 0)
            return i;
    return -1;
}

/* Error for a name that is not a layer, with the closest layer name. */
static void no_such_layer(loader *L, const ft_config *c, const config_setting_t *s,
                          const char *what, const char *name)
{
    const char *names[FT_MAX_LAYERS];
    for (int i = 0; i < c->nlayers; i++)
        names[i] = c->layers[i].name;
    const char *near = ft_closest(name, names, c->nlayers);
    if (near)
        fail_at(L, s, "%s names layer '%s', which is not in model.layers (did you mean '%s'?)",
                what, name, near);
    else
        fail_at(L, s, "%s names layer '%s', which is not in model.layers", what, name);
}

static const char *kv_type_name(int t)
{
    switch (t) {
    case FT_KV_INT: return "an integer";
    case FT_KV_FLOAT: return "a number";
    case FT_KV_BOOL: return "a boolean (true/false)";
    case FT_KV_STRING: return "a string";
    case FT_KV_INT_LIST: return "a list of integers";
    default: return "a value";
    }
}

/* Converts one member of a layer group into a kv entry (libconfig -> ft_kv). */
static void layer_kv(loader *L, const config_setting_t *m, const ft_keydef *defs,
                     const char *context, ft_kvlist *kv)
{
    const ft_keydef *def = NULL;
    const char *names[64];
    int nnames = 0;
    for (const ft_keydef *d = defs; d->key; d++) {
        if (strcmp(d->key, m->name) == 0)
            def = d;
        if (nnames < 64)
            names[nnames++] = d->key;
    }
    /* unknown keys are reported here (same wording as ft_kv_validate) so an
     * override gets its --set location */
    if (!def) {
        char hint[300];
        suggest(hint, sizeof hint, m->name, names, nnames, "valid keys");
        fail_at(L, m, "unknown key '%s' in %s%s", m->name, context, hint);
        return;
    }
    if (kv->n >= FT_KV_MAX) {
        fail_at(L, m, "%s has too many keys (at most %d)", context, FT_KV_MAX);
        return;
    }
    ft_kv *e = &kv->items[kv->n];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", m->name);
    e->line = (int)config_setting_source_line(m);
    switch (m->type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        e->type = FT_KV_INT;
        e->i = (long)config_setting_get_int64(m);
        e->d = (double)e->i;
        break;
    case CONFIG_TYPE_FLOAT:
        e->type = FT_KV_FLOAT;
        e->d = config_setting_get_float(m);
        break;
    case CONFIG_TYPE_BOOL:
        e->type = FT_KV_BOOL;
        e->i = config_setting_get_bool(m);
        break;
    case CONFIG_TYPE_STRING: {
        const char *v = config_setting_get_string(m);
        if (strlen(v) >= sizeof e->s) {
            fail_at(L, m, "key '%s' in %s is too long (at most %zu characters)", m->name, context,
                    sizeof e->s - 1);
            return;
        }
        e->type = FT_KV_STRING;
        memcpy(e->s, v, strlen(v) + 1);
        break;
    }
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST:
        if (!bad_elem(m, is_int) && config_setting_length(m) > FT_KV_LIST_MAX) {
            fail_at(L, m, "key '%s' in %s has more than %d values", m->name, context,
                    FT_KV_LIST_MAX);
            return;
        }
        if (!bad_elem(m, is_int)) {
            e->type = FT_KV_INT_LIST;
            e->list_len = config_setting_length(m);
            for (int i = 0; i < e->list_len; i++) {
                long long v = config_setting_get_int64(config_setting_get_elem(m, (unsigned)i));
                if (v < INT_MIN || v > INT_MAX) {
                    fail_at(L, m, "key '%s' in %s: %lld is out of range", m->name, context, v);
                    return;
                }
                e->list[i] = (int)v;
            }
            break;
        }
        /* fall through */
    default:
        fail_at(L, m, "key '%s' in %s must be %s, not %s", m->name, context,
                kv_type_name(def->type), type_got(m->type));
        return;
    }
    /* types too (same wording as ft_kv_validate), for the same reason */
    if (e->type != def->type && !(def->type == FT_KV_FLOAT && e->type == FT_KV_INT)) {
        fail_at(L, m, "key '%s' in %s must be %s, not %s", m->name, context,
                kv_type_name(def->type), kv_type_name(e->type));
        return;
    }
    kv->n++;
}

static int is_common_key(const char *key)
{
    for (const ft_keydef *d = ft_common_layer_keys; d->key; d++)
        if (strcmp(d->key, key) == 0)
            return 1;
    return 0;
}

static void load_layer(loader *L, ft_config *c, const config_setting_t *el, int idx)
{
    if (el->type != CONFIG_TYPE_GROUP) {
        fail_at(L, el, "model.layers[%d] must be a group { name = ...; type = ...; }, got %s", idx,
                type_got(el->type));
        return;
    }
    const config_setting_t *ns = config_setting_get_member(el, "name");
    const config_setting_t *ts = config_setting_get_member(el, "type");
    if (!ns || !is_str(ns)) {
        fail_at(L, ns ? ns : el, "model.layers[%d] needs name = \"...\"; (a unique string)%s%s",
                idx, ns ? ", got " : "", ns ? type_got(ns->type) : "");
        return;
    }
    const char *name = config_setting_get_string(ns);
    size_t nlen = strlen(name);
    int bad = nlen == 0 || nlen >= FT_NAME_MAX;
    for (size_t i = 0; i < nlen; i++)
        bad |= !name_char_ok((unsigned char)name[i]);
    if (bad) {
        fail_at(L, ns, "layer name '%s' is not valid: use 1 to %d letters, digits, '_', '-' or '.'",
                name, FT_NAME_MAX - 1);
        return;
    }
    int dup = find_layer(c, name);
    if (dup >= 0) {
        fail_at(L, ns, "duplicate layer name '%s' (model.layers[%d] and model.layers[%d])", name,
                dup, idx);
        return;
    }
    if (!ts || !is_str(ts)) {
        fail_at(L, ts ? ts : el, "layer '%s' needs a type = \"...\"; (e.g. \"dense\")%s%s", name,
                ts ? ", got " : "", ts ? type_got(ts->type) : "");
        return;
    }
    const char *type = config_setting_get_string(ts);
    const ft_layer_ops *ops = ft_layer_kind(type);
    if (!ops) {
        const ft_layer_ops *const *all = ft_layer_kinds();
        const char *kinds[64];
        int nk = 0;
        for (int i = 0; all[i] && nk < 64; i++)
            kinds[nk++] = all[i]->kind;
        char hint[600];
        suggest(hint, sizeof hint, type, kinds, nk, "known types");
        fail_at(L, ts, "unknown layer type '%s' for layer '%s'%s", type, name, hint);
        return;
    }

    /* common keys + the kind's keys */
    ft_keydef defs[64];
    int nd = 0;
    for (const ft_keydef *d = ft_common_layer_keys; d->key && nd < 63; d++)
        defs[nd++] = *d;
    for (const ft_keydef *d = ops->keys; d && d->key && nd < 63; d++)
        defs[nd++] = *d;
    defs[nd] = (ft_keydef){NULL, 0, 0, NULL};

    char context[FT_NAME_MAX + 64];
    snprintf(context, sizeof context, "layer '%s' (%s)", name, ops->kind);
    ft_kvlist kv;
    memset(&kv, 0, sizeof kv);
    snprintf(kv.where, sizeof kv.where, "%.*s", (int)sizeof kv.where - 1, file_of(L, el));
    for (int i = 0; i < config_setting_length(el) && !L->rc; i++)
        layer_kv(L, config_setting_get_elem(el, (unsigned)i), defs, context, &kv);
    for (int i = 0; i < nd && !L->rc; i++)
        if (defs[i].required && !ft_kv_find(&kv, defs[i].key))
            fail_at(L, el, "%s is missing required key '%s' (%s: %s)", context, defs[i].key,
                    kv_type_name(defs[i].type), defs[i].help ? defs[i].help : "");
    if (L->rc)
        return;
    if (ft_kv_validate(&kv, defs, context, L->err) != FT_OK) {
        L->rc = L->err->code;
        return;
    }
    double lr_mult = ft_kv_float(&kv, "lr_mult", 1.0);
    if (!(lr_mult >= 0) || !isfinite(lr_mult)) {
        fail_at(L, config_setting_get_member(el, "lr_mult"),
                "lr_mult of layer '%s' must be >= 0, got %g", name, lr_mult);
        return;
    }

    ft_layer_spec *sp = &c->layers[c->nlayers++];
    memcpy(sp->name, name, nlen + 1);
    snprintf(sp->kind, sizeof sp->kind, "%s", ops->kind);
    sp->frozen = !ft_kv_bool(&kv, "trainable", 1);
    sp->lr_mult = (float)lr_mult;
    /* the spec keeps the kind's own keys only */
    memcpy(sp->kv.where, kv.where, sizeof kv.where);
    for (int i = 0; i < kv.n; i++)
        if (!is_common_key(kv.items[i].key))
            sp->kv.items[sp->kv.n++] = kv.items[i];
}

/* Names from a K_STR_LIST setting (a single string counts as one). */
static int str_list_len(const config_setting_t *s)
{
    return !s ? 0 : is_str(s) ? 1 : config_setting_length(s);
}

static const char *str_list_at(const config_setting_t *s, int i)
{
    return is_str(s) ? config_setting_get_string(s)
                     : config_setting_get_string(config_setting_get_elem(s, (unsigned)i));
}

static void load_model(loader *L, ft_config *c, const group *model)
{
    const config_setting_t *in = get(model, "input");
    int rank = config_setting_length(in);
    if (rank < 1 || rank > 3) {
        fail_at(L, in,
                "model.input must have 1 to 3 dimensions ([features] or [channels, height, "
                "width]), got %d",
                rank);
        return;
    }
    c->input.rank = rank;
    for (int i = 0; i < rank; i++) {
        long long d = config_setting_get_int64(config_setting_get_elem(in, (unsigned)i));
        if (d < 1 || d > INT_MAX) {
            fail_at(L, in, "model.input dimensions must be >= 1, got %lld", d);
            return;
        }
        c->input.d[i] = (int)d;
    }
    /* one sample's size must be representable (a config stored in a file may be hostile) */
    size_t values = 1;
    for (int i = 0; i < rank; i++)
        if (!ft_mul_size(values, (size_t)c->input.d[i], &values) || values > INT_MAX) {
            fail_at(L, in, "model.input has more than %d values per sample", INT_MAX);
            return;
        }

    const config_setting_t *ls = get(model, "layers");
    int n = config_setting_length(ls);
    if (n == 0) {
        fail_at(L, ls, "model.layers is empty: add at least one layer");
        return;
    }
    if (n > FT_MAX_LAYERS) {
        fail_at(L, ls, "model.layers has %d layers; at most %d are supported", n, FT_MAX_LAYERS);
        return;
    }
    c->layers = ft_calloc((size_t)n, sizeof *c->layers, L->err);
    if (!c->layers) {
        L->rc = L->err->code;
        return;
    }
    for (int i = 0; i < n && !L->rc; i++)
        load_layer(L, c, config_setting_get_elem(ls, (unsigned)i), i);
}

/* A K_NUM_LIST as floats (malloc'd; *n = 0 and NULL when absent). */
static float *get_floats(loader *L, const config_setting_t *s, int *n)
{
    *n = 0;
    if (!s || L->rc)
        return NULL;
    int len = config_setting_length(s);
    float *v = ft_calloc(len > 0 ? (size_t)len : 1, sizeof *v, L->err);
    if (!v) {
        L->rc = L->err->code;
        return NULL;
    }
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        v[i] =
            (float)(is_int(e) ? (double)config_setting_get_int64(e) : config_setting_get_float(e));
    }
    *n = len;
    return v;
}

/* model.preprocess (src/preprocess.c documents and checks it). */
static void load_preprocess(loader *L, ft_config *c, const group *model)
{
    char path[] = "model.preprocess";
    group g = subgroup(model, "preprocess", path);
    ft_preprocess *p = &c->preprocess;
    ft_preprocess_init(p);
    if (!g.s || L->rc)
        return;
    p->scale = (float)get_float(L, &g, "scale", -INFINITY, 0, INFINITY, 0);
    p->mean = get_floats(L, get(&g, "mean"), &p->nmean);
    p->std = get_floats(L, get(&g, "std"), &p->nstd);
    static const char *const layouts[] = {"nchw", "nhwc"};
    static const int layout_val[] = {FT_LAYOUT_NCHW, FT_LAYOUT_NHWC};
    p->layout = layout_val[get_choice(L, &g, "layout", "layout", layouts, 2)];
    if (L->rc)
        return;
    ft_err e = {0};
    if (ft_preprocess_check(p, &c->input, &e) != FT_OK) {
        /* point at the offending key */
        const char *key = strstr(e.msg, "preprocess.mean")     ? "mean"
                          : strstr(e.msg, "preprocess.std")    ? "std"
                          : strstr(e.msg, "preprocess.layout") ? "layout"
                                                               : "scale";
        fail_at(L, get(&g, key) ? get(&g, key) : g.s, "%s", e.msg);
    }
}

/* pretrained.map: ftune layer -> tensor name prefix (safetensors). */
static void load_map(loader *L, ft_config *c, const group *pre)
{
    const config_setting_t *m = get(pre, "map");
    int n = m ? config_setting_length(m) : 0;
    if (L->rc || n == 0)
        return;
    c->pretrained_map.v = ft_calloc((size_t)n, sizeof *c->pretrained_map.v, L->err);
    if (!c->pretrained_map.v) {
        L->rc = L->err->code;
        return;
    }
    for (int i = 0; i < n && !L->rc; i++) {
        const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
        const char *v = config_setting_get_string(e);
        if (find_layer(c, e->name) < 0) {
            no_such_layer(L, c, e, "pretrained.map", e->name);
            return;
        }
        if (strlen(v) >= FT_PREFIX_MAX) {
            fail_at(L, e, "pretrained.map.%s is too long (at most %d characters)", e->name,
                    FT_PREFIX_MAX - 1);
            return;
        }
        for (int k = 0; k < c->pretrained_map.n; k++)
            if (strcmp(c->pretrained_map.v[k].prefix, v) == 0) {
                fail_at(L, e, "pretrained.map maps both '%s' and '%s' to \"%s\"",
                        c->pretrained_map.v[k].layer, e->name, v);
                return;
            }
        ft_name_map_entry *d = &c->pretrained_map.v[c->pretrained_map.n++];
        snprintf(d->layer, sizeof d->layer, "%s", e->name);
        snprintf(d->prefix, sizeof d->prefix, "%s", v);
    }
}

/* freeze.upto, freeze.layers, pretrained.reinit: all name layers. */
static void load_freeze(loader *L, ft_config *c, const group *freeze, const group *pre)
{
    const config_setting_t *upto = get(freeze, "upto");
    if (upto && config_setting_get_string(upto)[0]) {
        int k = find_layer(c, config_setting_get_string(upto));
        if (k < 0) {
            no_such_layer(L, c, upto, "freeze.upto", config_setting_get_string(upto));
            return;
        }
        for (int i = 0; i <= k; i++)
            c->layers[i].frozen = 1;
    }
    const config_setting_t *fl = get(freeze, "layers");
    for (int i = 0; i < str_list_len(fl); i++) {
        int k = find_layer(c, str_list_at(fl, i));
        if (k < 0) {
            no_such_layer(L, c, fl, "freeze.layers", str_list_at(fl, i));
            return;
        }
        c->layers[k].frozen = 1;
    }

    if (!pre->s)
        return;
    get_path(L, pre, "file", c->pretrained, sizeof c->pretrained);
    if (!L->rc && !c->pretrained[0])
        fail_at(L, get(pre, "file"), "pretrained.file is empty");
    const config_setting_t *ri = get(pre, "reinit");
    int n = str_list_len(ri);
    if (L->rc || n == 0)
        return;
    c->reinit = ft_calloc((size_t)n, sizeof *c->reinit, L->err);
    if (!c->reinit) {
        L->rc = L->err->code;
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name = str_list_at(ri, i);
        int k = find_layer(c, name);
        if (k < 0) {
            no_such_layer(L, c, ri, "pretrained.reinit", name);
            return;
        }
        /* a fresh layer that never trains stays random */
        if (c->layers[k].frozen) {
            fail_at(L, ri,
                    "pretrained.reinit names layer '%s', which is frozen: it would stay "
                    "random (unfreeze it or drop it from reinit)",
                    name);
            return;
        }
        snprintf(c->reinit[c->nreinit++], FT_NAME_MAX, "%s", name);
    }
}

/* A K_STR_LIST of patterns into a fresh array of FT_PATTERN_MAX strings. */
static void get_patterns(loader *L, const group *g, const char *key, char (**out)[FT_PATTERN_MAX],
                         int *n)
{
    const config_setting_t *s = get(g, key);
    int len = str_list_len(s);
    if (L->rc || len == 0)
        return;
    *out = ft_calloc((size_t)len, sizeof **out, L->err);
    if (!*out) {
        L->rc = L->err->code;
        return;
    }
    for (int i = 0; i < len; i++) {
        const char *v = str_list_at(s, i);
        if (!v[0] || strlen(v) >= FT_PATTERN_MAX) {
            fail_at(L, s, "%s.%s[%d] must be 1 to %d characters, got \"%s\"", g->path, key, i,
                    FT_PATTERN_MAX - 1, v);
            return;
        }
        snprintf((*out)[(*n)++], FT_PATTERN_MAX, "%s", v);
    }
}

/* freeze.params / train_params / bitfit are resolved against parameter names
 * after the model is built (src/freeze.c); here they are only read. */
static void load_param_freeze(loader *L, ft_config *c, const group *freeze)
{
    get_patterns(L, freeze, "params", &c->freeze_params, &c->nfreeze_params);
    get_patterns(L, freeze, "train_params", &c->train_params, &c->ntrain_params);
    c->bitfit = get_bool(freeze, "bitfit");
}

static int layer_has_key(const ft_layer_spec *sp, const char *key)
{
    const ft_layer_ops *ops = ft_layer_kind(sp->kind);
    for (const ft_keydef *d = ops ? ops->keys : NULL; d && d->key; d++)
        if (strcmp(d->key, key) == 0)
            return 1;
    return 0;
}

/* The lora group becomes lora_* keys of every matched layer whose kind has
 * adapters (dense, transformer_block); the layers declare the adapters. */
static void load_lora(loader *L, ft_config *c, const group *lora)
{
    if (!lora->s || L->rc)
        return;
    c->lora = 1;
    c->lora_rank = (int)get_int(L, lora, "rank", 1, 65536);
    double alpha = get_float(L, lora, "alpha", 0.0, 1, INFINITY, 0);
    double drop = get_float(L, lora, "dropout", 0.0, 0, 1.0, 1);
    const config_setting_t *tg = get(lora, "targets"), *ly = get(lora, "layers");
    char targets[256] = "";
    size_t used = 0;
    int nt = str_list_len(tg);
    if (nt > 0) {
        c->lora_targets = ft_calloc((size_t)nt, sizeof *c->lora_targets, L->err);
        if (!c->lora_targets) {
            L->rc = L->err->code;
            return;
        }
    }
    for (int i = 0; i < nt && !L->rc; i++) {
        const char *t = str_list_at(tg, i);
        size_t len = strlen(t);
        if (len == 0 || len >= FT_NAME_MAX || strchr(t, ',') || used + len + 2 > sizeof targets) {
            fail_at(L, tg, "lora.targets[%d] \"%s\" is not a weight name (e.g. \"attn_qkv\")", i,
                    t);
            return;
        }
        snprintf(c->lora_targets[c->nlora_targets++], FT_NAME_MAX, "%s", t);
        used += (size_t)snprintf(targets + used, sizeof targets - used, "%s%s", i ? "," : "", t);
    }
    int np = str_list_len(ly);
    int *hits = np ? ft_calloc((size_t)np, sizeof *hits, L->err) : NULL;
    if (np && !hits) {
        L->rc = L->err->code;
        return;
    }
    int line = config_setting_source_line(lora->s);
    for (int k = 0; k < c->nlayers && !L->rc; k++) {
        ft_layer_spec *sp = &c->layers[k];
        if (!layer_has_key(sp, "lora_rank"))
            continue;
        int match = np == 0;
        for (int i = 0; i < np; i++)
            if (fnmatch(str_list_at(ly, i), sp->name, 0) == 0) {
                hits[i] = 1;
                match = 1;
            }
        if (!match)
            continue;
        if (ft_kv_find(&sp->kv, "lora_rank")) {
            fail_at(L, lora->s, "layer '%s' sets lora_rank itself and is matched by lora.layers",
                    sp->name);
            break;
        }
        if (sp->kv.n + 4 > FT_KV_MAX) {
            fail_at(L, lora->s, "layer '%s' has too many keys to add the lora settings", sp->name);
            break;
        }
        int first = sp->kv.n;
        ft_kv_set_int(&sp->kv, "lora_rank", c->lora_rank);
        ft_kv_set_float(&sp->kv, "lora_alpha", alpha);
        ft_kv_set_float(&sp->kv, "lora_dropout", drop);
        if (targets[0])
            ft_kv_set_string(&sp->kv, "lora_targets", targets);
        for (int i = first; i < sp->kv.n; i++)
            sp->kv.items[i].line = line;
    }
    for (int i = 0; i < np && !L->rc; i++)
        if (!hits[i])
            fail_at(L, ly, "lora.layers pattern \"%s\" matches no dense or transformer_block layer",
                    str_list_at(ly, i));
    free(hits);
}

static void load_train(loader *L, ft_config *c, const group *train)
{
    char p1[] = "train.optimizer", p2[] = "train.schedule", p3[] = "train.loss";
    group opt = subgroup(train, "optimizer", p1);
    group sch = subgroup(train, "schedule", p2);
    group loss = subgroup(train, "loss", p3);

    c->epochs = (int)get_int(L, train, "epochs", 1, INT_MAX);
    c->max_steps = (long)get_int(L, train, "max_steps", 0, LLONG_MAX);
    c->batch_size = (int)get_int(L, train, "batch_size", 1, INT_MAX);
    c->accum_steps = (int)get_int(L, train, "accum_steps", 1, INT_MAX);
    c->clip_grad_norm = (float)get_float(L, train, "clip_grad_norm", 0, 0, INFINITY, 0);
    c->max_bad_steps = (int)get_int(L, train, "max_bad_steps", 0, INT_MAX);
    static const char *const cache_names[] = {"off", "auto", "memory", "disk"};
    c->feature_cache = get_choice(L, train, "feature_cache", "feature cache", cache_names, 4);
    c->feature_cache_mb = get_int(L, train, "feature_cache_mb", 0, INT_MAX);
    static const char *const task_names[] = {"classify", "lm"};
    c->task = get_choice(L, train, "task", "task", task_names, 2);

    static const char *const opt_names[] = {"sgd", "adamw"};
    static const int opt_types[] = {FT_OPT_SGD, FT_OPT_ADAMW};
    ft_optim_cfg *o = &c->optim;
    o->type = opt_types[get_choice(L, &opt, "type", "optimizer", opt_names, 2)];
    o->lr = (float)get_float(L, &opt, "lr", 0, 1, INFINITY, 0);
    if (!get(&opt, "lr") && o->type == FT_OPT_ADAMW)
        o->lr = 1e-3f;
    o->momentum = (float)get_float(L, &opt, "momentum", 0, 0, 1, 1);
    o->nesterov = get_bool(&opt, "nesterov");
    if (!L->rc && o->nesterov && o->momentum == 0.0f)
        fail_at(L, get(&opt, "nesterov"), "train.optimizer.nesterov needs momentum > 0");
    o->weight_decay = (float)get_float(L, &opt, "weight_decay", 0, 0, INFINITY, 0);
    o->eps = (float)get_float(L, &opt, "eps", 0, 1, INFINITY, 0);
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    const config_setting_t *betas = get(&opt, "betas");
    if (betas && !L->rc) {
        if (config_setting_length(betas) != 2) {
            fail_at(L, betas, "train.optimizer.betas must have 2 values [beta1, beta2], got %d",
                    config_setting_length(betas));
            return;
        }
        double b[2];
        for (int i = 0; i < 2; i++) {
            b[i] = config_setting_get_float_elem(betas, i);
            if (is_int(config_setting_get_elem(betas, (unsigned)i)))
                b[i] = (double)config_setting_get_int64_elem(betas, i);
            if (!(b[i] >= 0 && b[i] < 1)) {
                fail_at(L, betas, "train.optimizer.betas must be in [0, 1), got %g", b[i]);
                return;
            }
        }
        o->beta1 = (float)b[0];
        o->beta2 = (float)b[1];
    }

    static const char *const sch_names[] = {"constant", "step", "cosine"};
    static const int sch_types[] = {FT_SCHED_CONSTANT, FT_SCHED_STEP, FT_SCHED_COSINE};
    ft_schedule_cfg *s = &c->schedule;
    s->type = sch_types[get_choice(L, &sch, "type", "schedule", sch_names, 3)];
    s->warmup_steps = (long)get_int(L, &sch, "warmup_steps", 0, LLONG_MAX);
    s->step_size = (long)get_int(L, &sch, "step_size", 1, LLONG_MAX);
    s->gamma = (float)get_float(L, &sch, "gamma", 0, 1, INFINITY, 0);
    s->total_steps = (long)get_int(L, &sch, "total_steps", 0, LLONG_MAX);
    s->min_lr = (float)get_float(L, &sch, "min_lr", 0, 0, INFINITY, 0);
    if (!L->rc && s->min_lr > o->lr)
        fail_at(L, get(&sch, "min_lr"), "train.schedule.min_lr (%g) is above the lr (%g)",
                (double)s->min_lr, (double)o->lr);

    c->label_smoothing = (float)get_float(L, &loss, "label_smoothing", 0, 0, 1, 1);
    const config_setting_t *cw = get(&loss, "class_weights");
    if (cw && !L->rc) {
        int n = config_setting_length(cw);
        if (n < 1 || n > FT_MAX_CLASSES) {
            fail_at(L, cw, "train.loss.class_weights must have 1 to %d entries, got %d",
                    FT_MAX_CLASSES, n);
            return;
        }
        c->class_weights = ft_calloc((size_t)n, sizeof(float), L->err);
        if (!c->class_weights) {
            L->rc = L->err->code;
            return;
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(cw, (unsigned)i);
            double w =
                is_int(e) ? (double)config_setting_get_int64(e) : config_setting_get_float(e);
            if (!(w >= 0) || !isfinite(w)) {
                fail_at(L, cw, "train.loss.class_weights[%d] must be >= 0, got %g", i, w);
                return;
            }
            c->class_weights[i] = (float)w;
            sum += w;
        }
        c->nclass_weights = n;
        if (sum <= 0)
            fail_at(L, cw, "train.loss.class_weights are all zero");
    }
}

/* ------------------------------------------------------------------ */
/* --set overrides */

static config_setting_t *copy_setting(config_setting_t *parent, const char *name,
                                      const config_setting_t *src)
{
    config_setting_t *d = config_setting_add(parent, name, src->type);
    if (!d)
        return NULL;
    switch (src->type) {
    case CONFIG_TYPE_INT: config_setting_set_int(d, config_setting_get_int(src)); break;
    case CONFIG_TYPE_INT64: config_setting_set_int64(d, config_setting_get_int64(src)); break;
    case CONFIG_TYPE_FLOAT: config_setting_set_float(d, config_setting_get_float(src)); break;
    case CONFIG_TYPE_BOOL: config_setting_set_bool(d, config_setting_get_bool(src)); break;
    case CONFIG_TYPE_STRING: config_setting_set_string(d, config_setting_get_string(src)); break;
    default:
        for (int i = 0; i < config_setting_length(src); i++) {
            const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
            if (!copy_setting(d, e->name, e))
                return NULL;
        }
    }
    config_setting_set_format(d, config_setting_get_format(src));
    return d;
}

/* Marks a copied value and everything in it as made by an override. */
static void hook_all(config_setting_t *s, const char *set)
{
    config_setting_set_hook(s, (void *)set);
    if (config_setting_is_aggregate(s))
        for (int i = 0; i < config_setting_length(s); i++)
            hook_all(config_setting_get_elem(s, (unsigned)i), set);
}

/* true/false, integers (int64 beyond int range) and floats; 0 if none. */
static int parse_scalar(const char *v, long long *iv, double *dv)
{
    if (strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0) {
        *iv = strcasecmp(v, "true") == 0;
        return CONFIG_TYPE_BOOL;
    }
    const char *p = v + (*v == '-' || *v == '+');
    if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
        return 0;
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 0);
    if (*end == '\0' && errno == 0) {
        *iv = i;
        return i < INT_MIN || i > INT_MAX ? CONFIG_TYPE_INT64 : CONFIG_TYPE_INT;
    }
    double d = strtod(v, &end);
    if (*end == '\0' && isfinite(d)) {
        *dv = d;
        return CONFIG_TYPE_FLOAT;
    }
    return 0;
}

/* [fc1, fc2] -> ["fc1", "fc2"] and [1, 0.5] -> [1.0, 0.5], so that an array
 * typed on a shell line reads as libconfig needs it (quoted strings, one
 * element type). Arrays with quotes or nesting are left to libconfig. */
static void normalize_array(const char *v, char *out, size_t len)
{
    size_t n = strlen(v);
    snprintf(out, len, "%s", v);
    if (n < 2 || v[0] != '[' || v[n - 1] != ']' || strpbrk(v + 1, "[](){}\"\\") != v + n - 1)
        return;
    char body[1024], *save = NULL;
    snprintf(body, sizeof body, "%.*s", (int)(n - 2), v + 1);
    int any_float = 0, any_int64 = 0;
    for (char *e = strtok_r(body, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        long long iv;
        double dv;
        while (isspace((unsigned char)*e))
            e++;
        for (size_t k = strlen(e); k && isspace((unsigned char)e[k - 1]); k--)
            e[k - 1] = '\0';
        int t = parse_scalar(e, &iv, &dv);
        any_float |= t == CONFIG_TYPE_FLOAT;
        any_int64 |= t == CONFIG_TYPE_INT64;
    }
    snprintf(body, sizeof body, "%.*s", (int)(n - 2), v + 1);
    size_t used = (size_t)snprintf(out, len, "[");
    int first = 1;
    for (char *e = strtok_r(body, ",", &save); e && used < len; e = strtok_r(NULL, ",", &save)) {
        long long iv = 0;
        double dv = 0;
        while (isspace((unsigned char)*e))
            e++;
        for (size_t k = strlen(e); k && isspace((unsigned char)e[k - 1]); k--)
            e[k - 1] = '\0';
        const char *sep = first ? "" : ", ";
        first = 0;
        int t = parse_scalar(e, &iv, &dv);
        if (t == CONFIG_TYPE_BOOL)
            used += (size_t)snprintf(out + used, len - used, "%s%s", sep, iv ? "true" : "false");
        else if (t && any_float)
            used += (size_t)snprintf(out + used, len - used, "%s%.17e", sep,
                                     t == CONFIG_TYPE_FLOAT ? dv : (double)iv);
        else if (t)
            used +=
                (size_t)snprintf(out + used, len - used, "%s%lld%s", sep, iv, any_int64 ? "L" : "");
        else if (*e)
            used += (size_t)snprintf(out + used, len - used, "%s\"%s\"", sep, e);
    }
    if (used < len)
        snprintf(out + used, len - used, "]");
}

/* Sets parent.name to an override's value, typed the way libconfig would
 * read it; a bare word is a string. */
static int set_value(loader *L, config_setting_t *parent, const char *name, const char *value,
                     const char *set)
{
    long long iv = 0;
    double dv = 0;
    int type = parse_scalar(value, &iv, &dv);
    config_setting_t *old = config_setting_get_member(parent, name);
    config_setting_t *s = NULL;

    if (type || !strchr("\"[({", value[0]) || !value[0]) {
        if (!type)
            type = CONFIG_TYPE_STRING; /* a bare word: sgd, runs/x, ... */
        /* same scalar type: change in place (keeps its position in the text) */
        if (old && old->type == type)
            s = old;
        else {
            if (old)
                config_setting_remove(parent, name);
            s = config_setting_add(parent, name, type);
        }
        if (s) {
            if (type == CONFIG_TYPE_BOOL)
                config_setting_set_bool(s, (int)iv);
            else if (type == CONFIG_TYPE_INT)
                config_setting_set_int(s, (int)iv);
            else if (type == CONFIG_TYPE_INT64)
                config_setting_set_int64(s, iv);
            else if (type == CONFIG_TYPE_FLOAT)
                config_setting_set_float(s, dv);
            else
                config_setting_set_string(s, value);
        }
    } else {
        /* quoted string, [array], (list) or {group}: let libconfig read it */
        char norm[2048];
        normalize_array(value, norm, sizeof norm);
        size_t len = strlen(norm) + 16;
        char *text = malloc(len);
        if (!text)
            return L->rc = ft_fail(L->err, FT_ERUNTIME, "out of memory");
        snprintf(text, len, "v = %s;", norm);
        config_t tmp;
        config_init(&tmp);
        int ok = config_read_string(&tmp, text);
        free(text);
        const config_setting_t *root = config_root_setting(&tmp);
        if (!ok || config_setting_length(root) != 1) {
            L->rc = ft_fail(L->err, FT_EINPUT, "--set %s: cannot read the value %s (%s)", set,
                            value, ok ? "more than one value" : config_error_text(&tmp));
            config_destroy(&tmp);
            return L->rc;
        }
        if (old)
            config_setting_remove(parent, name);
        s = copy_setting(parent, name, config_setting_get_elem(root, 0));
        config_destroy(&tmp);
    }
    if (!s)
        return L->rc =
                   ft_fail(L->err, FT_EINPUT, "--set %s: '%s' is not a valid key name", set, name);
    hook_all(s, set);
    return FT_OK;
}

/* Element of a list by index ("0") or, for a list of groups, by the
 * group's name (model.layers.fc2.units=10). */
static config_setting_t *list_elem(config_setting_t *list, const char *seg)
{
    char *end;
    long i = strtol(seg, &end, 10);
    if (*seg && *end == '\0')
        return i >= 0 && i < config_setting_length(list)
                   ? config_setting_get_elem(list, (unsigned)i)
                   : NULL;
    for (int k = 0; k < config_setting_length(list); k++) {
        config_setting_t *e = config_setting_get_elem(list, (unsigned)k);
        const char *n = NULL;
        if (e->type == CONFIG_TYPE_GROUP && config_setting_lookup_string(e, "name", &n) &&
            strcmp(n, seg) == 0)
            return e;
    }
    return NULL;
}

static int apply_set(loader *L, const char *set)
{
    const char *eq = strchr(set, '=');
    char path[256];
    size_t plen = eq ? (size_t)(eq - set) : 0;
    while (plen && isspace((unsigned char)set[plen - 1]))
        plen--;
    if (!eq || plen == 0 || plen >= sizeof path)
        return L->rc = ft_fail(L->err, FT_EINPUT,
                               "--set %s: expected KEY=VALUE, e.g. train.optimizer.lr=0.05", set);
    memcpy(path, set, plen);
    path[plen] = '\0';
    const char *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    char vbuf[1024];
    if (strlen(value) >= sizeof vbuf)
        return L->rc = ft_fail(L->err, FT_EINPUT, "--set %.*s...: the value is too long", (int)plen,
                               set);
    snprintf(vbuf, sizeof vbuf, "%s", value);
    for (size_t n = strlen(vbuf); n && isspace((unsigned char)vbuf[n - 1]); n--)
        vbuf[n - 1] = '\0';

    /* a[2].b is a.2.b */
    char *w = path;
    for (const char *p = path; *p; p++) {
        if (*p != ']')
            *w++ = *p == '[' ? '.' : *p;
    }
    *w = '\0';

    config_setting_t *cur = config_root_setting(&L->cfg);
    char *save = NULL, *seg = strtok_r(path, ".", &save);
    char prefix[256] = "";
    while (seg) {
        char *next = strtok_r(NULL, ".", &save);
        for (char *p = seg; *p; p++)
            if (isspace((unsigned char)*p))
                return L->rc = ft_fail(L->err, FT_EINPUT, "--set %s: '%s' is not a valid key name",
                                       set, seg);
        if (!next) {
            if (cur->type != CONFIG_TYPE_GROUP)
                return L->rc = ft_fail(L->err, FT_EINPUT,
                                       "--set %s: cannot set one element of the list %s; set the "
                                       "whole list",
                                       set, prefix);
            return set_value(L, cur, seg, vbuf, set);
        }
        config_setting_t *child = NULL;
        if (cur->type == CONFIG_TYPE_GROUP) {
            child = config_setting_get_member(cur, seg);
            if (!child) {
                /* a missing group is created; validation catches typos */
                child = config_setting_add(cur, seg, CONFIG_TYPE_GROUP);
                if (!child)
                    return L->rc = ft_fail(L->err, FT_EINPUT,
                                           "--set %s: '%s' is not a valid key name", set, seg);
                config_setting_set_hook(child, (void *)set);
            }
        } else if (cur->type == CONFIG_TYPE_LIST) {
            child = list_elem(cur, seg);
            if (!child)
                return L->rc = ft_fail(L->err, FT_EINPUT,
                                       "--set %s: %s has no element '%s' (use an index from 0 or a "
                                       "layer name)",
                                       set, prefix, seg);
        }
        size_t pl = strlen(prefix);
        snprintf(prefix + pl, sizeof prefix - pl, pl ? ".%s" : "%s", seg);
        if (child && child->type == CONFIG_TYPE_ARRAY)
            return L->rc = ft_fail(L->err, FT_EINPUT,
                                   "--set %s: cannot set one element of the list %s; set the "
                                   "whole list",
                                   set, prefix);
        if (!child || (child->type != CONFIG_TYPE_GROUP && child->type != CONFIG_TYPE_LIST))
            return L->rc = ft_fail(L->err, FT_EINPUT, "--set %s: %s is %s, not a group", set,
                                   prefix, type_got(child ? child->type : cur->type));
        cur = child;
        seg = next;
    }
    return L->rc = ft_fail(L->err, FT_EINPUT,
                           "--set %s: expected KEY=VALUE, e.g. train.optimizer.lr=0.05", set);
}

/* ------------------------------------------------------------------ */

/* runs/<file name without directory and extension> */
static void default_run_dir(const char *origin, char *dst, size_t len)
{
    const char *base = strrchr(origin, '/');
    base = base ? base + 1 : origin;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    if (n == 0)
        snprintf(dst, len, "runs/run");
    else
        snprintf(dst, len, "runs/%.*s", (int)n, base);
}

static int write_text(loader *L, ft_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return L->rc = ft_fail(L->err, FT_ERUNTIME, "open_memstream: %s", strerror(errno));
    config_write(&L->cfg, f);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return L->rc = ft_fail(L->err, FT_ERUNTIME, "cannot write the config text");
    }
    /* the text goes into checkpoints: it must read back */
    config_t chk;
    config_init(&chk);
    int ok = config_read_string(&chk, buf);
    if (!ok)
        L->rc = ft_fail(L->err, FT_ERUNTIME,
                        "%s: the canonical config text does not read back "
                        "(line %d: %s)",
                        L->origin, config_error_line(&chk), config_error_text(&chk));
    config_destroy(&chk);
    if (!ok) {
        free(buf);
        return L->rc;
    }
    c->text = buf;
    return FT_OK;
}

/* From a parsed tree to a checked ft_config. */
static int finish(loader *L, ft_config *c, const char *const *sets, int nsets)
{
    for (int i = 0; i < nsets && !L->rc; i++)
        apply_set(L, sets[i]);
    if (L->rc)
        return L->rc;

    config_setting_t *root = config_root_setting(&L->cfg);
    check_group(L, root, root_keys, "");
    if (L->rc)
        return L->rc;

    group top = {root, root_keys, ""};
    group run = subgroup(&top, "run", "run");
    group data = subgroup(&top, "data", "data");
    group model = subgroup(&top, "model", "model");
    group pre = subgroup(&top, "pretrained", "pretrained");
    group freeze = subgroup(&top, "freeze", "freeze");
    group lora = subgroup(&top, "lora", "lora");
    group train = subgroup(&top, "train", "train");
    group eval = subgroup(&top, "eval", "eval");
    group ckpt = subgroup(&top, "checkpoint", "checkpoint");
    group log = subgroup(&top, "log", "log");

    snprintf(c->origin, sizeof c->origin, "%.*s", FT_PATH_MAX - 1, L->origin);

    if (get(&run, "dir"))
        get_path(L, &run, "dir", c->run_dir, sizeof c->run_dir);
    else
        default_run_dir(L->origin, c->run_dir, sizeof c->run_dir);
    if (!L->rc && !c->run_dir[0])
        fail_at(L, get(&run, "dir"), "run.dir is empty");
    c->seed = (uint64_t)get_int(L, &run, "seed", 0, LLONG_MAX);
    c->threads = (int)get_int(L, &run, "threads", 0, 4096);

    get_path(L, &data, "train", c->train_path, sizeof c->train_path);
    if (!L->rc && !c->train_path[0])
        fail_at(L, get(&data, "train"), "data.train is empty");
    get_path(L, &data, "eval", c->eval_path, sizeof c->eval_path);
    c->shuffle = get_bool(&data, "shuffle");
    c->k_shot = (int)get_int(L, &data, "k_shot", 0, INT_MAX);
    c->prefetch = get_bool(&data, "prefetch");

    load_model(L, c, &model);
    load_preprocess(L, c, &model);
    load_freeze(L, c, &freeze, &pre);
    load_param_freeze(L, c, &freeze);
    load_lora(L, c, &lora);
    load_map(L, c, &pre);
    load_train(L, c, &train);

    c->eval_every = (long)get_int(L, &eval, "every", 0, LLONG_MAX);
    c->eval_batch_size = (int)get_int(L, &eval, "batch_size", 1, INT_MAX);
    static const char *const metrics[] = {"accuracy", "macro_f1", "loss"};
    snprintf(c->best_metric, sizeof c->best_metric, "%s",
             metrics[get_choice(L, &eval, "best_metric", "metric", metrics, 3)]);
    /* a language model has no classes: it is judged by its token loss */
    if (!L->rc && c->task == FT_TASK_LM) {
        if (get(&eval, "best_metric") && strcmp(c->best_metric, "loss") != 0)
            fail_at(L, get(&eval, "best_metric"),
                    "eval.best_metric = \"%s\" needs classes; with train.task = \"lm\" use "
                    "\"loss\" (the default then)",
                    c->best_metric);
        snprintf(c->best_metric, sizeof c->best_metric, "loss");
        if (c->label_smoothing != 0.0f || c->nclass_weights)
            fail_at(L, get(&train, "task"),
                    "train.loss.label_smoothing and class_weights apply to classification, not "
                    "to train.task = \"lm\"");
        if (!L->rc && c->k_shot > 0) /* "K rows per class" of unlabelled text means nothing */
            fail_at(L, get(&data, "k_shot"),
                    "data.k_shot draws rows per class; train.task = \"lm\" has no classes");
    }
    if (!L->rc && c->eval_every > 0 && !c->eval_path[0])
        fail_at(L, get(&eval, "every"), "eval.every is set but data.eval is not");

    c->checkpoint_every = (long)get_int(L, &ckpt, "every", 0, LLONG_MAX);
    c->keep_last = (int)get_int(L, &ckpt, "keep_last", 1, INT_MAX);
    static const char *const on_error[] = {"stop", "continue"};
    c->checkpoint_continue = get_choice(L, &ckpt, "on_error", "value", on_error, 2);

    c->log_every = (long)get_int(L, &log, "every", 1, LLONG_MAX);
    static const char *const progress[] = {"auto", "plain", "bar"};
    static const int progress_val[] = {-1, 0, 1};
    c->progress = progress_val[get_choice(L, &log, "progress", "progress style", progress, 3)];
    if (L->rc)
        return L->rc;

    /* the default run dir goes into the text, so a stored copy names it */
    if (!run.s)
        run.s = config_setting_add(root, "run", CONFIG_TYPE_GROUP);
    if (run.s && !get(&run, "dir")) {
        config_setting_t *d =
            config_setting_add((config_setting_t *)run.s, "dir", CONFIG_TYPE_STRING);
        if (d)
            config_setting_set_string(d, c->run_dir);
    }
    return write_text(L, c);
}

static int parse_error(loader *L)
{
    const char *file = config_error_file(&L->cfg) ? config_error_file(&L->cfg) : L->origin;
    const char *text = config_error_text(&L->cfg) ? config_error_text(&L->cfg) : "?";
    if (strcmp(text, "syntax error") == 0 || strncmp(text, "cannot", 6) == 0)
        return ft_fail(L->err, FT_EINPUT, "%s:%d: %s", file, config_error_line(&L->cfg), text);
    return ft_fail(L->err, FT_EINPUT, "%s:%d: syntax error: %s", file, config_error_line(&L->cfg),
                   text);
}

static int done(loader *L, ft_config *c, int rc)
{
    config_destroy(&L->cfg);
    if (rc != FT_OK)
        ft_config_free(c);
    return rc;
}

int ft_config_load(ft_config *c, const char *path, const char *const *sets, int nsets, ft_err *err)
{
    memset(c, 0, sizeof *c);
    loader L = {.origin = path, .err = err};
    /* libconfig only says "file I/O error"; strerror says why */
    struct stat st;
    FILE *f = fopen(path, "r");
    int e = !f ? errno : fstat(fileno(f), &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (f)
        fclose(f);
    if (e)
        return ft_fail(err, FT_EINPUT, "cannot open config %s: %s", path, strerror(e));
    config_init(&L.cfg);
    /* @include is relative to the config file's directory */
    char dir[FT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        config_set_include_dir(&L.cfg, dir);
    }
    if (!config_read_file(&L.cfg, path)) {
        if (config_error_type(&L.cfg) == CONFIG_ERR_FILE_IO)
            return done(&L, c,
                        ft_fail(err, FT_EINPUT, "cannot read config %s: %s", path,
                                config_error_text(&L.cfg)));
        return done(&L, c, parse_error(&L));
    }
    return done(&L, c, finish(&L, c, sets, nsets));
}

int ft_config_load_string(ft_config *c, const char *text, const char *origin, ft_err *err)
{
    memset(c, 0, sizeof *c);
    loader L = {.origin = origin && origin[0] ? origin : "<config text>", .err = err};
    config_init(&L.cfg);
    /* A config stored in a file never has @include (config_write expands them): one there
     * would make a model file read other local files, or block on a FIFO. */
    for (const char *p = text; p && (p = strstr(p, "@include")) != NULL; p++) {
        const char *q = p;
        while (q > text && (q[-1] == ' ' || q[-1] == '\t'))
            q--;
        if (q == text || q[-1] == '\n' || q[-1] == '\r')
            return done(&L, c,
                        ft_fail(err, FT_EINPUT,
                                "%s: the stored configuration has an @include directive, which "
                                "ftune never writes (damaged or forged file?)",
                                L.origin));
    }
    if (!config_read_string(&L.cfg, text ? text : ""))
        return done(&L, c, parse_error(&L));
    return done(&L, c, finish(&L, c, NULL, 0));
}

void ft_config_free(ft_config *c)
{
    if (!c)
        return;
    free(c->text);
    free(c->layers);
    free(c->reinit);
    free(c->freeze_params);
    free(c->train_params);
    free(c->lora_targets);
    free(c->class_weights);
    ft_preprocess_free(&c->preprocess);
    ft_name_map_free(&c->pretrained_map);
    memset(c, 0, sizeof *c);
}

int ft_config_text_without_lora(const char *text, char **out, ft_err *err)
{
    *out = NULL;
    config_t cfg;
    config_init(&cfg);
    if (!config_read_string(&cfg, text ? text : "")) {
        int rc = ft_fail(err, FT_EINPUT, "the stored configuration does not read (line %d: %s)",
                         config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return rc;
    }
    config_setting_t *root = config_root_setting(&cfg);
    if (config_setting_get_member(root, "lora"))
        config_setting_remove(root, "lora");
    config_setting_t *layers = config_lookup(&cfg, "model.layers");
    for (int i = 0; layers && i < config_setting_length(layers); i++) {
        config_setting_t *l = config_setting_get_elem(layers, (unsigned)i);
        if (!config_setting_is_group(l))
            continue;
        for (int k = config_setting_length(l) - 1; k >= 0; k--) {
            const config_setting_t *s = config_setting_get_elem(l, (unsigned)k);
            const char *name = s ? config_setting_name(s) : NULL;
            if (name && strncmp(name, "lora_", 5) == 0)
                config_setting_remove_elem(l, (unsigned)k);
        }
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        config_destroy(&cfg);
        return ft_fail(err, FT_ERUNTIME, "open_memstream: %s", strerror(errno));
    }
    config_write(&cfg, f);
    config_destroy(&cfg);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return ft_fail(err, FT_ERUNTIME, "cannot write the config text");
    }
    *out = buf;
    return FT_OK;
}
