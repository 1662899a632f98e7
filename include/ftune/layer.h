/* One layer kind = one file in src/layers/ exporting one ft_layer_ops table
 * (Caffe/Darknet style). The model owns memory; a layer only describes its
 * parameters and computes. */
#ifndef FTUNE_LAYER_H
#define FTUNE_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/err.h"
#include "ftune/kv.h"

#define FT_MAX_DIMS 4
#define FT_MAX_PARAMS 24 /* transformer_block: 12, plus 8 with LoRA on its 4 weights */
#define FT_NAME_MAX 64
#define FT_MAX_TIES 2

/* Per-sample shape (batch dimension excluded), e.g. [C, H, W] or [F]. */
typedef struct ft_shape {
    int rank;
    int d[FT_MAX_DIMS];
} ft_shape;

size_t ft_shape_count(const ft_shape *s);
/* Writes "[32, 1, 3, 3]" into buf. */
const char *ft_shape_str(const ft_shape *s, char *buf, size_t len);
int ft_shape_equal(const ft_shape *a, const ft_shape *b);
ft_shape ft_shape1(int a);
ft_shape ft_shape3(int c, int h, int w);

enum ft_init_kind {
    FT_INIT_ZERO = 0,
    FT_INIT_ONE,
    FT_INIT_UNIFORM, /* U(-init_bound, init_bound), PyTorch's default for dense/conv */
    FT_INIT_NORMAL   /* N(0, init_bound^2): init_bound is the standard deviation (GPT-2: 0.02) */
};

/* A parameter or buffer of a layer. `data` points into the model's single
 * parameter arena; `grad` into the single gradient arena, and only when the
 * parameter is learnable and its layer is trainable (NULL otherwise). */
typedef struct ft_param {
    char name[24]; /* "weight", "bias", "running_mean", ... */
    ft_shape shape;
    size_t count;
    int learnable; /* 0 for buffers such as batchnorm running statistics */
    int init;      /* enum ft_init_kind */
    float init_bound;
    float *data;
    float *grad;
    int frozen; /* frozen by name (freeze.params, bitfit, LoRA) although its layer trains */
} ft_param;

/* Sums a float array across all ranks in place (SyncBatchNorm). NULL in a
 * single process. Must be called by every rank in the same order. */
typedef int (*ft_reduce_fn)(float *buf, size_t n, void *user);

/* Per-call context shared by all layers of one forward/backward pass. */
typedef struct ft_ctx {
    int n;        /* rows in this (local) batch; may be 0 on a rank with no samples */
    int training; /* 1: dropout active; trainable batchnorm uses batch statistics */
    uint64_t seed;
    uint64_t epoch;
    const uint64_t *sample_ids; /* global index of each row (dropout masks) */
    /* Real tokens per row for sequence layers ([T, D] samples: attention's padding mask,
     * seq_pool); positions t >= lengths[i] are padding. NULL: all T positions are real. */
    const int *lengths;
    float *ws; /* scratch, >= workspace_floats(l, n) floats */
    ft_reduce_fn reduce;
    void *reduce_user;
} ft_ctx;

typedef struct ft_layer ft_layer;

/* One sequence in a step (ft_layer_ops.step): this layer's cache of it, and the position of
 * the token being fed. */
typedef struct ft_step_row {
    float *cache;
    int pos;
} ft_step_row;

typedef struct ft_layer_ops {
    const char *kind;      /* name used in configs and model files */
    const ft_keydef *keys; /* kind-specific settings, NULL-key terminated */
    /* Reads settings into l->priv. kv has been validated against keys. */
    int (*create)(ft_layer *l, const ft_kvlist *kv, ft_err *err);
    /* With l->in set: sets l->out and declares l->params (name, shape, count,
     * learnable, init). Errors name the layer and the offending shape. */
    int (*setup)(ft_layer *l, ft_err *err);
    /* Floats kept from forward for backward (masks, argmax, normalised x); NULL = 0. */
    size_t (*saved_floats)(const ft_layer *l, int n);
    /* Temporary floats for one call (im2col); NULL = 0. */
    size_t (*workspace_floats)(const ft_layer *l, int n);
    /* y = f(x). `saved` is NULL when no backward will follow (frozen prefix,
     * evaluation); the layer then keeps nothing. */
    void (*forward)(ft_layer *l, const ft_ctx *c, const float *x, float *y, float *saved);
    /* Accumulates (+=) parameter gradients into p->grad where non-NULL, and
     * writes dx when dx != NULL (dx is NULL for the first trainable layer). */
    void (*backward)(ft_layer *l, const ft_ctx *c, const float *x, const float *y, const float *dy,
                     float *dx, const float *saved);
    /* Frees priv contents; NULL means free(priv) is enough. */
    void (*destroy)(ft_layer *l);

    /* Incremental decoding (src/generate.c, include/ftune/generate.h): one position of each
     * of n sequences per call, evaluation mode, for layers whose per-sample shapes are [T] or
     * [T, W] (a "row" is one position: 1 token id, or W floats). step == NULL: the kind
     * cannot run position by position and a model holding it is refused for generation. */
    /* Lowers *max_pos to the positions the layer can step through (embedding: its position
     * table); FT_EINPUT naming the layer when its settings rule stepping out (a bidirectional
     * attention block). NULL: any number. */
    int (*step_limit)(const ft_layer *l, int *max_pos, ft_err *err);
    /* Floats of one sequence's cache for positions 0..max_pos-1 (attention keys and
     * values); NULL = 0. A step reads only the rows of positions <= pos, so a cache reused
     * for the next sequence needs no clearing. */
    size_t (*step_cache_floats)(const ft_layer *l, int max_pos);
    /* Scratch floats for a step of n rows; NULL = 0. */
    size_t (*step_ws_floats)(const ft_layer *l, int n, int max_pos);
    /* Row i of y = the layer's output at position rows[i].pos of sequence i, given its input
     * (row i of x) and that sequence's cache of the positions before (which the step extends
     * with rows[i].pos). Same numbers as forward over a sequence with that prefix. */
    void (*step)(ft_layer *l, int n, const ft_step_row *rows, int max_pos, const float *x, float *y,
                 float *ws);
} ft_layer_ops;

struct ft_layer {
    char name[FT_NAME_MAX];
    const ft_layer_ops *ops;
    void *priv;
    int index;
    ft_shape in, out;
    ft_param params[FT_MAX_PARAMS];
    int nparams;
    /* Tied parameters (GPT-2's LM head reuses wte.weight): another, earlier layer's
     * parameter, declared by setup with ft_layer_tie. Not in params[], so saving, loading,
     * init and the optimizer see the tensor once, under its owner. ft_model points data at
     * the owner's storage and grad at the owner's gradient range (NULL when either layer is
     * frozen): backward ADDS into it, and the owner's range is reported ready only after the
     * owner's own (later) backward. tie_owner[k] is the owner's index in the layer array. */
    ft_param ties[FT_MAX_TIES];
    const ft_param *tie_src[FT_MAX_TIES];
    int tie_owner[FT_MAX_TIES];
    int nties;
    int frozen;  /* no parameter gradients; batchnorm uses running statistics */
    int need_dx; /* backward must produce dx (set by the model) */
    float lr_mult;
    uint64_t name_hash;
};

/* Registry of layer kinds (src/layers/registry.c). */
const ft_layer_ops *ft_layer_kind(const char *kind);
/* All kinds, NULL-terminated, for help text and "did you mean". */
const ft_layer_ops *const *ft_layer_kinds(void);

/* Convenience for layer files: declare parameter i. */
ft_param *ft_layer_add_param(ft_layer *l, const char *name, const ft_shape *shape, int learnable,
                             int init, float init_bound);

/* For setup: the layer named `name` before l in its model (layers are one array, in order),
 * or NULL. */
const ft_layer *ft_layer_earlier(const ft_layer *l, const char *name);
/* For setup: declares tie k = the owner's parameter src (shape and count copied). */
ft_param *ft_layer_tie(ft_layer *l, const ft_layer *owner, const ft_param *src);

/* Keys every layer accepts (handled by the model, not by the kind). */
extern const ft_keydef ft_common_layer_keys[];

#endif
