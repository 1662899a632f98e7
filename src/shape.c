#include <stdio.h>
#include <string.h>

#include "ftune/layer.h"

size_t ft_shape_count(const ft_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= (size_t)(s->d[i] > 0 ? s->d[i] : 0);
    return n;
}

const char *ft_shape_str(const ft_shape *s, char *buf, size_t len)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < s->rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %d" : "%d", s->d[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

int ft_shape_equal(const ft_shape *a, const ft_shape *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i])
            return 0;
    return 1;
}

ft_shape ft_shape1(int a)
{
    ft_shape s = {1, {a, 0, 0, 0}};
    return s;
}

ft_shape ft_shape3(int c, int h, int w)
{
    ft_shape s = {3, {c, h, w, 0}};
    return s;
}

ft_param *ft_layer_add_param(ft_layer *l, const char *name, const ft_shape *shape, int learnable,
                             int init, float init_bound)
{
    if (l->nparams >= FT_MAX_PARAMS)
        return NULL;
    ft_param *p = &l->params[l->nparams++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->shape = *shape;
    p->count = ft_shape_count(shape);
    p->learnable = learnable;
    p->init = init;
    p->init_bound = init_bound;
    return p;
}

const ft_layer *ft_layer_earlier(const ft_layer *l, const char *name)
{
    const ft_layer *first = l - l->index; /* a model's layers are one array */
    for (int i = 0; i < l->index; i++)
        if (strcmp(first[i].name, name) == 0)
            return &first[i];
    return NULL;
}

ft_param *ft_layer_tie(ft_layer *l, const ft_layer *owner, const ft_param *src)
{
    if (l->nties >= FT_MAX_TIES)
        return NULL;
    int k = l->nties++;
    ft_param *p = &l->ties[k];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", src->name);
    p->shape = src->shape;
    p->count = src->count;
    p->learnable = src->learnable;
    l->tie_src[k] = src;
    l->tie_owner[k] = owner->index;
    return p;
}

/* Keys the model handles for every layer, whatever its kind. */
const ft_keydef ft_common_layer_keys[] = {
    {"name", FT_KV_STRING, 1, "unique layer name (weights are matched by it)"},
    {"type", FT_KV_STRING, 1, "layer kind, e.g. dense, conv2d, relu"},
    {"trainable", FT_KV_BOOL, 0, "false freezes this layer (default true)"},
    {"lr_mult", FT_KV_FLOAT, 0, "learning-rate multiplier for this layer (default 1.0)"},
    {NULL, 0, 0, NULL},
};
