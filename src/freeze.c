/* Freezing by parameter name: see include/ftune/freeze.h. */
#include "ftune/freeze.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ft_param_is_adapter(const ft_param *p)
{
    size_t n = strlen(p->name);
    return n > 7 &&
           (strcmp(p->name + n - 7, "_lora_A") == 0 || strcmp(p->name + n - 7, "_lora_B") == 0);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* BitFit (Ben Zaken et al.) trains the bias terms; the normalisation
 * parameters and the task head train as well, as in its experiments. */
static int bitfit_keeps(const ft_layer *l, const ft_param *p, int is_head)
{
    if (is_head || strcmp(p->name, "bias") == 0 || ends_with(p->name, "_bias"))
        return 1;
    if (strcmp(l->ops->kind, "layernorm") == 0 || strcmp(l->ops->kind, "batchnorm") == 0)
        return 1;
    return fnmatch("ln*_weight", p->name, 0) == 0; /* transformer_block's layernorms */
}

/* Index of the first pattern in v matching name, or -1. */
static int match_any(char (*v)[FT_PATTERN_MAX], int n, const char *name, char *hit)
{
    int found = -1;
    for (int i = 0; i < n; i++)
        if (fnmatch(v[i], name, 0) == 0) {
            hit[i] = 1;
            found = i;
        }
    return found;
}

static int check_hits(const ft_config *c, const char *key, char (*v)[FT_PATTERN_MAX], int n,
                      const char *hit, const char *example, ft_err *err)
{
    for (int i = 0; i < n; i++)
        if (!hit[i])
            return ft_fail(err, FT_EINPUT,
                           "%s: freeze.%s pattern \"%s\" matches no parameter (names are "
                           "\"<layer>.<param>\", e.g. \"%s\"; `ftune inspect` lists them)",
                           c->origin, key, v[i], example);
    return FT_OK;
}

static int layer_trains(const ft_layer *l)
{
    for (int j = 0; j < l->nparams; j++)
        if (!l->frozen && l->params[j].learnable && !l->params[j].frozen)
            return 1;
    return 0;
}

/* Every lora target must name a weight of some matched layer. */
static int check_targets(const ft_model *m, const ft_config *c, ft_err *err)
{
    for (int t = 0; t < c->nlora_targets; t++) {
        char want[FT_NAME_MAX + 8];
        snprintf(want, sizeof want, "%s_lora_A", c->lora_targets[t]);
        int found = 0;
        for (int i = 0; i < m->nlayers && !found; i++)
            for (int j = 0; j < m->layers[i].nparams; j++)
                found |= strcmp(m->layers[i].params[j].name, want) == 0;
        if (!found)
            return ft_fail(err, FT_EINPUT,
                           "%s: lora.targets names \"%s\", which no layer matched by lora.layers "
                           "has (transformer_block: attn_qkv, attn_out, mlp_fc, mlp_proj; dense: "
                           "weight)",
                           c->origin, c->lora_targets[t]);
    }
    return FT_OK;
}

int ft_model_freeze_params(ft_model *m, const ft_config *c, ft_err *err)
{
    int adapters = 0, head = -1;
    char example[FT_NAME_MAX + 32] = "";
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++) {
            const ft_param *p = &m->layers[i].params[j];
            adapters |= ft_param_is_adapter(p);
            if (p->learnable) {
                head = i;
                if (!example[0])
                    snprintf(example, sizeof example, "%s.%s", m->layers[i].name, p->name);
            }
        }
    const int whitelist = c->ntrain_params > 0 || c->bitfit || adapters;
    char *hit_f = calloc((size_t)c->nfreeze_params + 1, 1);
    char *hit_t = calloc((size_t)c->ntrain_params + 1, 1);
    if (!hit_f || !hit_t) {
        free(hit_f);
        free(hit_t);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    for (int i = 0; i < m->nlayers; i++) {
        ft_layer *l = &m->layers[i];
        int learnable = 0, frozen = 0;
        for (int j = 0; j < l->nparams; j++) {
            ft_param *p = &l->params[j];
            if (!p->learnable)
                continue;
            char name[FT_NAME_MAX + 32];
            snprintf(name, sizeof name, "%s.%s", l->name, p->name);
            int trains = 1;
            if (whitelist) {
                int t = match_any(c->train_params, c->ntrain_params, name, hit_t) >= 0;
                trains =
                    t || ft_param_is_adapter(p) || (c->bitfit && bitfit_keeps(l, p, i == head));
            }
            if (match_any(c->freeze_params, c->nfreeze_params, name, hit_f) >= 0)
                trains = 0;
            p->frozen = !trains;
            learnable++;
            frozen += p->frozen;
        }
        /* no parameter trains: a frozen layer (batchnorm then uses running statistics) */
        if (learnable && frozen == learnable)
            l->frozen = 1;
    }
    int rc = check_hits(c, "params", c->freeze_params, c->nfreeze_params, hit_f, example, err);
    if (!rc)
        rc = check_hits(c, "train_params", c->train_params, c->ntrain_params, hit_t, example, err);
    free(hit_f);
    free(hit_t);
    if (!rc)
        rc = check_targets(m, c, err);
    for (int k = 0; k < c->nreinit && !rc; k++) {
        const ft_layer *l = ft_model_find(m, c->reinit[k]);
        if (l && l->nparams && !layer_trains(l))
            rc = ft_fail(err, FT_EINPUT,
                         "%s: pretrained.reinit names layer '%s', whose parameters are all frozen "
                         "(freeze.params, freeze.train_params, bitfit or lora): it would stay "
                         "random (add \"%s.*\" to freeze.train_params)",
                         c->origin, l->name, l->name);
    }
    return rc ? rc : ft_model_layout_grads(m, err);
}

int ft_config_build_model(const ft_config *c, ft_model *m, ft_err *err)
{
    /* the gradient arena is laid out once, after the per-parameter freezing */
    int rc = ft_model_build_nograds(m, &c->input, c->layers, c->nlayers, err);
    return rc ? rc : ft_model_freeze_params(m, c, err);
}
