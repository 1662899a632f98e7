/* The table of layer kinds, looked up by the name used in configs. */
#include <string.h>

#include "ftune/layer.h"

#include "layers.h"

static const ft_layer_ops *const kinds[] = {
    &ft_dense_ops,
    &ft_conv2d_ops,
    &ft_maxpool2d_ops,
    &ft_avgpool2d_ops,
    &ft_globalavgpool_ops,
    &ft_flatten_ops,
    &ft_relu_ops,
    &ft_leaky_relu_ops,
    &ft_gelu_ops,
    &ft_tanh_ops,
    &ft_sigmoid_ops,
    &ft_dropout_ops,
    &ft_batchnorm_ops,
    &ft_embedding_ops,
    &ft_layernorm_ops,
    &ft_transformer_block_ops,
    &ft_seq_pool_ops,
    &ft_lm_head_ops,
    NULL,
};

const ft_layer_ops *const *ft_layer_kinds(void)
{
    return kinds;
}

const ft_layer_ops *ft_layer_kind(const char *kind)
{
    for (int i = 0; kinds[i]; i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}
