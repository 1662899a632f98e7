/* LoRA adapters (Hu et al. 2021) shared by the layers with linear weights
 * (dense, transformer_block). For a weight W [out, in] the adapter is
 * A [r, in] (PEFT's init: kaiming-uniform with a = sqrt(5), i.e.
 * U(+-1/sqrt(in))) and B [out, r] (zeros), named "<weight>_lora_A" and
 * "<weight>_lora_B", and the layer computes
 *     y = x W^T + b + (alpha / r) * (drop(x) A^T) B^T.
 * drop is inverted dropout on the adapter's input, its mask a pure function
 * of (seed, epoch, global sample id, layer name, site), as every dropout.
 * Internal to src/layers/. */
#ifndef FTUNE_LAYERS_LORA_H
#define FTUNE_LAYERS_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "ftune/layer.h"

/* The layer keys the config's lora group sets (or a layer sets itself). */
#define FT_LORA_KEYDEFS                                                                            \
    {"lora_rank", FT_KV_INT, 0, "LoRA adapter rank r (set by the lora group); 0 = no adapters"},   \
        {"lora_alpha", FT_KV_FLOAT, 0, "LoRA scale numerator: adapters add alpha / r times"},      \
        {"lora_dropout", FT_KV_FLOAT, 0, "dropout on the LoRA adapters' input, in [0, 1)"},        \
    {                                                                                              \
        "lora_targets", FT_KV_STRING, 0, "comma-separated weights with adapters; all if absent"    \
    }

typedef struct ft_lora {
    int rank; /* 0: off */
    float alpha, dropout, scale;
    char targets[256]; /* "" = every weight */
} ft_lora;

/* Reads the lora_* keys (rank 0 when absent). Errors name the layer. */
int ft_lora_create(const ft_layer *l, const ft_kvlist *kv, ft_lora *lo, ft_err *err);
/* 1 when adapters are on and `weight` (e.g. "attn_qkv") is a target. */
int ft_lora_targets(const ft_lora *lo, const char *weight);
/* Declares <weight>_lora_A [r, in] and <weight>_lora_B [out, r]; returns
 * the index of A in l->params (B follows it). */
int ft_lora_add_params(ft_layer *l, const ft_lora *lo, const char *weight, int in, int out);
/* Scratch floats of one forward or backward over `rows` rows. */
size_t ft_lora_ws_floats(const ft_lora *lo, size_t rows, int in);

/* y [rows, out] += scale * (drop(x) A^T) B^T for samples [i0, i0 + rows/T)
 * of the batch (T rows per sample); site tells the dropout masks apart. */
void ft_lora_fwd(const ft_layer *l, const ft_ctx *c, const ft_lora *lo, uint64_t site, int i0,
                 int T, size_t rows, int in, int out, const float *x, const ft_param *A,
                 const ft_param *B, float *y, float *ws);
/* Backward over the whole batch (rows = c->n * T): A->grad, B->grad +=
 * where non-NULL; dx += the adapter's input gradient when dx != NULL. */
void ft_lora_bwd(const ft_layer *l, const ft_ctx *c, const ft_lora *lo, uint64_t site, int T,
                 size_t rows, int in, int out, const float *x, const float *dy, const ft_param *A,
                 const ft_param *B, float *dx, float *ws);

#endif
