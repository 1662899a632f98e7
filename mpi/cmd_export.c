/* ftune export MODEL.h5 [--format safetensors] -o OUT.safetensors [--names original|ftune]
 * ftune export ADAPTER.h5 --merge-lora -o MERGED.h5 [--format ftune|safetensors]
 * (single process).
 *
 * Writes the model's parameters with PyTorch layouts (ftune's own) under
 * PyTorch state_dict names, so model.load_state_dict(safetensors.torch.
 * load_file(OUT)) takes them back. Names are "<layer>.<param>", or the
 * original module names where the model's config has a pretrained.map (an
 * import with a map, or training from a mapped safetensors file); when the
 * model was trained from another ftune model (pretrained.file), that file's
 * map is used too. __metadata__: format = pt, ftune_version, ftune_config
 * (the model's config, so `ftune import safetensors OUT` needs no --config).
 *
 * --merge-lora folds every LoRA adapter into its weight (W += (alpha/r) B A,
 * with the base model an adapter file references loaded first) and writes a
 * model without adapters whose config has no lora settings: an ftune model
 * file (the default) or safetensors. A model with adapters is only exported
 * merged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/adapter.h"
#include "ftune/config.h"
#include "ftune/freeze.h"
#include "ftune/h5io.h"
#include "ftune/pretrained.h"
#include "ftune/version.h"

#include "commands.h"

#define MAP_DEPTH 8 /* pretrained.file links followed looking for a map */

static void export_usage(FILE *f)
{
    fputs("usage: ftune export MODEL.h5 [--format safetensors] -o OUT.safetensors\n"
          "                    [--names original|ftune]\n"
          "       ftune export LORA.h5 --merge-lora -o MERGED.h5 [--format ftune|safetensors]\n"
          "\n"
          "Writes an ftune model or checkpoint as a PyTorch state_dict in safetensors format\n"
          "(float32; batchnorm layers also get num_batches_tracked = 0).\n"
          "\n"
          "  --format F       safetensors (the default) or ftune (an ftune model file)\n"
          "  --merge-lora     fold the LoRA adapters into their weights, W += (alpha/r) B A,\n"
          "                   loading the base model of an adapter file first; writes a\n"
          "                   model without adapters or lora settings, by default an ftune\n"
          "                   model file that needs no base model. A model with adapters\n"
          "                   is only exported this way\n"
          "  -o OUT           the file to write\n"
          "  --names original tensor names from pretrained.map where the model has one (in\n"
          "                   its config, or in the config of the ftune model it was\n"
          "                   fine-tuned from): features.0.weight (default)\n"
          "  --names ftune    <layer>.<param> for every layer: conv1.weight\n"
          "\n"
          "Load it in PyTorch with\n"
          "  from safetensors.torch import load_file; model.load_state_dict(load_file(OUT))\n"
          "or without the safetensors package with tools/torch_export.py's reader.\n",
          f);
}

/* The map to name tensors with: the model's own, else the one of the ftune
 * model it was fine-tuned from (pretrained.file), followed a few levels.
 * Copies it into *out (owned by the caller); *from names its source. */
static int find_map(const ft_config *cfg, const char *model_path, ft_name_map *out, char *from,
                    size_t fromlen, ft_err *err)
{
    memset(out, 0, sizeof *out);
    from[0] = '\0';
    ft_config cur;
    memset(&cur, 0, sizeof cur);
    const ft_config *c = cfg;
    char path[FT_PATH_MAX];
    snprintf(path, sizeof path, "%s", model_path);
    for (int depth = 0; depth < MAP_DEPTH; depth++) {
        if (c->pretrained_map.n > 0) {
            out->v = calloc((size_t)c->pretrained_map.n, sizeof *out->v);
            if (!out->v) {
                ft_config_free(&cur);
                return ft_fail(err, FT_ERUNTIME, "out of memory");
            }
            memcpy(out->v, c->pretrained_map.v, (size_t)c->pretrained_map.n * sizeof *out->v);
            out->n = c->pretrained_map.n;
            snprintf(from, fromlen, "%s", path);
            break;
        }
        /* the pretrained file, if it is an ftune model with a stored config */
        int format;
        ft_err e2 = {0};
        char *text = NULL;
        char next[FT_PATH_MAX];
        snprintf(next, sizeof next, "%s", c->pretrained);
        if (!next[0] || ft_weights_format(next, &format, &e2) || format != FT_FMT_HDF5 ||
            ft_load_config_text(next, &text, &e2))
            break;
        ft_config_free(&cur);
        int rc = ft_config_load_string(&cur, text, next, &e2);
        free(text);
        if (rc)
            break;
        c = &cur;
        snprintf(path, sizeof path, "%s", next);
    }
    ft_config_free(&cur);
    return FT_OK;
}

/* 1 when m has LoRA adapter parameters. */
static int has_adapters(const ft_model *m)
{
    for (int i = 0; i < m->nlayers; i++)
        for (int j = 0; j < m->layers[i].nparams; j++)
            if (ft_param_is_adapter(&m->layers[i].params[j]))
                return 1;
    return 0;
}

/* m with its adapters folded in, as a model without them: *out built from
 * the config text without lora (*text2), every parameter copied by name. */
static int merge_lora(const char *model_path, const ft_config *cfg, ft_model *m, ft_config *cfg2,
                      char **text2, ft_model *out, int *merged, ft_err *err)
{
    *merged = ft_lora_merge(m, cfg);
    int rc = ft_config_text_without_lora(cfg->text, text2, err);
    if (!rc)
        rc = ft_config_load_string(cfg2, *text2, model_path, err);
    if (!rc)
        rc = ft_config_build_model(cfg2, out, err);
    if (rc)
        return ft_err_prefix(err, "%s: the model without adapters", model_path);
    for (int i = 0; i < out->nlayers && !rc; i++) {
        ft_layer *l = &out->layers[i];
        const ft_layer *src = ft_model_find(m, l->name);
        for (int j = 0; j < l->nparams && !rc; j++) {
            ft_param *p = &l->params[j];
            const ft_param *q = NULL;
            for (int k = 0; src && k < src->nparams && !q; k++)
                if (strcmp(src->params[k].name, p->name) == 0)
                    q = &src->params[k];
            if (!q || q->count != p->count)
                rc = ft_fail(err, FT_ERUNTIME,
                             "%s: layer '%s' parameter '%s' does not match "
                             "the model without adapters",
                             model_path, l->name, p->name);
            else
                memcpy(p->data, q->data, p->count * sizeof *p->data);
        }
    }
    return rc;
}

int cmd_export(int argc, char **argv)
{
    const char *model_path = NULL, *out = NULL, *format = NULL, *names = "original";
    int merge = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            export_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            format = argv[++i];
        } else if (!strcmp(a, "--merge-lora")) {
            merge = 1;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--names") && i + 1 < argc) {
            names = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ftune export: unknown or incomplete option '%s'\n", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "ftune export: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model_path || !out) {
        fprintf(stderr, "ftune export: %s\n",
                !model_path ? "MODEL is missing" : "-o OUT is missing");
        export_usage(stderr);
        return 2;
    }
    if (!format)
        format = merge ? "ftune" : "safetensors";
    const int to_ftune = strcmp(format, "ftune") == 0;
    if (!to_ftune && strcmp(format, "safetensors") != 0) {
        fprintf(stderr, "ftune export: unknown --format '%s' (safetensors or ftune)\n", format);
        return 2;
    }
    if (strcmp(names, "original") != 0 && strcmp(names, "ftune") != 0) {
        fprintf(stderr, "ftune export: --names must be 'original' or 'ftune', got '%s'\n", names);
        return 2;
    }

    ft_err err = {0};
    char *text = NULL, *text2 = NULL;
    ft_config cfg, cfg2;
    ft_model m, m2;
    ft_name_map map = {0};
    char from[FT_PATH_MAX] = "";
    memset(&cfg, 0, sizeof cfg);
    memset(&cfg2, 0, sizeof cfg2);
    memset(&m, 0, sizeof m);
    memset(&m2, 0, sizeof m2);
    int adapter_file = 0, merged = 0;
    int rc = ft_load_config_text(model_path, &text, &err);
    if (!rc)
        rc = ft_config_load_string(&cfg, text, model_path, &err);
    if (!rc)
        rc = ft_config_build_model(&cfg, &m, &err);
    if (!rc)
        rc = ft_load_model_file(&cfg, model_path, &m, NULL, &adapter_file, &err);
    if (!rc && merge && !has_adapters(&m))
        rc = ft_fail(&err, FT_EINPUT,
                     "%s has no LoRA adapters: --merge-lora needs a model trained with a lora "
                     "group (leave it out to export this model)",
                     model_path);
    if (!rc && !merge && has_adapters(&m))
        rc = ft_fail(&err, FT_EINPUT,
                     "%s has LoRA adapters%s: export it with --merge-lora, which folds them "
                     "into the weights (-o MERGED.h5 for an ftune model, --format safetensors "
                     "for PyTorch)",
                     model_path, adapter_file ? " and only references its base model" : "");
    const ft_model *em = &m;
    const ft_config *ec = &cfg;
    if (!rc && merge) {
        rc = merge_lora(model_path, &cfg, &m, &cfg2, &text2, &m2, &merged, &err);
        em = &m2;
        ec = &cfg2;
    }
    if (!rc && to_ftune) {
        rc = ft_save_ex(out, em, ec->text, NULL, NULL, NULL, &err);
    } else if (!rc) {
        if (strcmp(names, "original") == 0)
            rc = find_map(ec, model_path, &map, from, sizeof from, &err);
        if (!rc) {
            const char *meta[] = {"format",      "pt",           "ftune_version",
                                  FTUNE_VERSION, "ftune_config", ec->text};
            rc = ft_save_safetensors(out, em, &map, meta, 3, &err);
        }
    }
    if (rc) {
        fprintf(stderr, "ftune export: %s\n", err.msg);
    } else {
        size_t tensors = 0;
        for (int i = 0; i < em->nlayers; i++)
            tensors += (size_t)em->layers[i].nparams +
                       (!to_ftune && strcmp(em->layers[i].ops->kind, "batchnorm") == 0);
        printf("exported %s: %zu tensors -> %s", model_path, tensors, out);
        if (merge)
            printf(" (%d LoRA adapter%s merged%s)", merged, merged == 1 ? "" : "s",
                   adapter_file ? " into the base model" : "");
        if (map.n)
            printf(" (names of %d layer%s from the pretrained.map of %s)", map.n,
                   map.n == 1 ? "" : "s", from);
        printf("\n");
    }
    ft_name_map_free(&map);
    ft_model_free(&m2);
    ft_model_free(&m);
    ft_config_free(&cfg2);
    ft_config_free(&cfg);
    free(text2);
    free(text);
    return rc;
}
