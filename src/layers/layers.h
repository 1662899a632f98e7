/* Every layer kind's table (one per file in this directory). */
#ifndef FTUNE_LAYERS_H
#define FTUNE_LAYERS_H

#include "ftune/layer.h"

extern const ft_layer_ops ft_dense_ops;
extern const ft_layer_ops ft_conv2d_ops;
extern const ft_layer_ops ft_maxpool2d_ops;
extern const ft_layer_ops ft_avgpool2d_ops;
extern const ft_layer_ops ft_globalavgpool_ops; /* kind "global_avgpool" */
extern const ft_layer_ops ft_flatten_ops;
extern const ft_layer_ops ft_relu_ops;
extern const ft_layer_ops ft_leaky_relu_ops;
extern const ft_layer_ops ft_gelu_ops;
extern const ft_layer_ops ft_tanh_ops;
extern const ft_layer_ops ft_sigmoid_ops;
extern const ft_layer_ops ft_dropout_ops;
extern const ft_layer_ops ft_batchnorm_ops; /* 1d on [F], 2d on [C, H, W] */
/* sequence layers (per-sample [T, D]; token ids [T] into embedding) */
extern const ft_layer_ops ft_embedding_ops;
extern const ft_layer_ops ft_layernorm_ops;
extern const ft_layer_ops ft_transformer_block_ops;
extern const ft_layer_ops ft_seq_pool_ops; /* kind "seq_pool" */
extern const ft_layer_ops ft_lm_head_ops;  /* [T, D] -> [T, V], optionally tied */

#endif
