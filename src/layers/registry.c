/* The table of layer kinds, looked up by the name used in configs. */
#include <string.h>

#include "ftune/layer.h"
#include "layers.h"

static const ft_layer_ops *const all_kinds[] = {
    &ft_dense_ops,     &ft_conv2d_ops,     &ft_maxpool2d_ops,   &ft_avgpool2d_ops,
    &ft_globalavgpool_ops, &ft_flatten_ops, &ft_relu_ops,       &ft_leaky_relu_ops,
    &ft_gelu_ops,      &ft_tanh_ops,       &ft_sigmoid_ops,     &ft_dropout_ops,
    &ft_batchnorm_ops, NULL,
};

/* The list without holes (kinds not linked in are skipped). */
static const ft_layer_ops *kinds[sizeof all_kinds / sizeof all_kinds[0]];

const ft_layer_ops *const *ft_layer_kinds(void)
{
    if (!kinds[0]) {
        int n = 0;
        for (size_t i = 0; all_kinds[i] || i + 1 < sizeof all_kinds / sizeof all_kinds[0]; i++)
            if (all_kinds[i])
                kinds[n++] = all_kinds[i];
    }
    return kinds;
}

const ft_layer_ops *ft_layer_kind(const char *kind)
{
    const ft_layer_ops *const *k = ft_layer_kinds();
    for (int i = 0; k[i]; i++)
        if (strcmp(k[i]->kind, kind) == 0)
            return k[i];
    return NULL;
}
