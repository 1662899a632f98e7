/* A sequential model with llm.c-style arenas:
 *  - params: every parameter and buffer of every layer, one allocation;
 *  - grads:  only learnable parameters of trainable layers, one allocation,
 *            laid out last layer first so backward fills it front to back
 *            (buckets become ready in order for an overlapped all-reduce).
 * A frozen prefix (layers before the first trainable one) runs forward only
 * through two reusable buffers and keeps nothing for backward. */
#ifndef FTUNE_MODEL_H
#define FTUNE_MODEL_H

#include "ftune/layer.h"

typedef struct ft_layer_spec {
    char name[FT_NAME_MAX];
    char kind[32];
    ft_kvlist kv; /* kind-specific keys only */
    int frozen;
    float lr_mult;
} ft_layer_spec;

/* Called after each layer's backward, with the range of the grad arena that
 * is now final for this step (grad_lo..grad_hi floats). */
typedef void (*ft_grad_ready_fn)(const ft_layer *l, size_t grad_lo, size_t grad_hi, void *user);

typedef struct ft_model {
    ft_layer *layers;
    int nlayers;
    ft_shape input;
    int classes; /* output features of the last layer */

    float *params;
    size_t nparams; /* floats in the parameter arena */
    float *grads;
    size_t ngrads;       /* floats in the gradient arena (trainable only) */
    int first_trainable; /* index; == nlayers when everything is frozen */

    /* activation memory, sized for max_batch rows */
    int max_batch;
    float *prefix_buf[2]; /* frozen prefix ping-pong */
    float **act;          /* act[i] = output of layer i, kept for i >= first_trainable - 1 */
    float **saved;        /* saved[i] for trainable-path layers */
    float *dbuf[2];       /* backward ping-pong */
    float *ws;
    const float *input_x; /* input of the last forward (layer 0's x in backward) */
    size_t act_floats, prefix_floats, saved_floats, dbuf_floats, ws_floats;

    ft_grad_ready_fn grad_ready;
    void *grad_ready_user;
    /* Called between the row chunks of a cache-blocked frozen prefix, or after
     * each of its layers (ft_model_forward_range), e.g. to let in-flight MPI
     * requests progress. */
    void (*progress)(void *user);
    void *progress_user;
} ft_model;

/* Creates and sets up layers in order (shapes propagate from input).
 * Errors name the layer. Does not allocate activations. */
int ft_model_build(ft_model *m, const ft_shape *input, const ft_layer_spec *specs, int n,
                   ft_err *err);
/* ft_model_build without the gradient arena, for a caller that freezes parameters first and
 * then calls ft_model_layout_grads once (a 124M-parameter model fine-tuned with LoRA never
 * holds a gradient buffer for its frozen weights, not even for a moment). */
int ft_model_build_nograds(ft_model *m, const ft_shape *input, const ft_layer_spec *specs, int n,
                           ft_err *err);
/* (Re)builds the gradient arena from the layers' and parameters' frozen flags
 * (after changing them; ft_model_build calls it). Before ft_model_alloc. */
int ft_model_layout_grads(ft_model *m, ft_err *err);
/* Allocates activation memory for batches of up to max_batch rows. */
int ft_model_alloc(ft_model *m, int max_batch, ft_err *err);
/* Initialises every parameter from (seed, layer name): same on every rank. */
void ft_model_init_params(ft_model *m, uint64_t seed);
/* Re-initialises one layer (a new head). */
void ft_model_init_layer(ft_model *m, ft_layer *l, uint64_t seed);

/* Forward over c->n rows of x; returns the output (n x classes). With
 * c->training the trainable path keeps what backward needs. */
const float *ft_model_forward(ft_model *m, const ft_ctx *c, const float *x);
/* Forward over layers [first, end) only: x is the input of layer `first` (for
 * first > 0, the output that layer first - 1 would give; it is copied into
 * act[first - 1] where that is kept for backward). Returns the output of layer
 * end - 1. ft_model_forward_from(m, c, first_trainable, features) continues
 * from cached frozen-prefix features; range (0, first_trainable) computes
 * them. Same numbers as the matching part of ft_model_forward. */
const float *ft_model_forward_range(ft_model *m, const ft_ctx *c, int first, int end,
                                    const float *x);
const float *ft_model_forward_from(ft_model *m, const ft_ctx *c, int first_layer, const float *x);
/* Backward from dlogits (n x classes), accumulating into m->grads. Stops at
 * the first trainable layer, which gets no input gradient. */
void ft_model_backward(ft_model *m, const ft_ctx *c, const float *dlogits);
void ft_model_zero_grads(ft_model *m);

ft_layer *ft_model_find(const ft_model *m, const char *name);
size_t ft_model_trainable_count(const ft_model *m);
size_t ft_model_ws_floats(const ft_model *m);
void ft_model_free(ft_model *m);

/* Bytes held by each part, for the memory report. */
typedef struct ft_model_mem {
    size_t params, grads, activations, workspace;
} ft_model_mem;
ft_model_mem ft_model_memory(const ft_model *m);

#endif
