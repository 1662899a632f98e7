/* Every layer kind's table (one per file in this directory). */
#ifndef FTUNE_LAYERS_H
#define FTUNE_LAYERS_H

#include "ftune/layer.h"

/* TODO(bootstrap): weak until every kind is linked; then drop FT_WEAK. */
#define FT_WEAK __attribute__((weak))

extern const ft_layer_ops ft_dense_ops FT_WEAK;
extern const ft_layer_ops ft_conv2d_ops FT_WEAK;
extern const ft_layer_ops ft_maxpool2d_ops FT_WEAK;
extern const ft_layer_ops ft_avgpool2d_ops FT_WEAK;
extern const ft_layer_ops ft_globalavgpool_ops FT_WEAK; /* kind "global_avgpool" */
extern const ft_layer_ops ft_flatten_ops FT_WEAK;
extern const ft_layer_ops ft_relu_ops FT_WEAK;
extern const ft_layer_ops ft_leaky_relu_ops FT_WEAK;
extern const ft_layer_ops ft_gelu_ops FT_WEAK;
extern const ft_layer_ops ft_tanh_ops FT_WEAK;
extern const ft_layer_ops ft_sigmoid_ops FT_WEAK;
extern const ft_layer_ops ft_dropout_ops FT_WEAK;
extern const ft_layer_ops ft_batchnorm_ops FT_WEAK; /* 1d on [F], 2d on [C, H, W] */

#endif
