/* ftune export MODEL.h5 [--format safetensors] -o OUT.safetensors [--names original|ftune]
 * (single process).
 *
 * Writes the model's parameters with PyTorch layouts (ftune's own) under
 * PyTorch state_dict names, so model.load_state_dict(safetensors.torch.
 * load_file(OUT)) takes them back. Names are "<layer>.<param>", or the
 * original module names where the model's config has a pretrained.map (an
 * import with a map, or training from a mapped safetensors file); when the
 * model was trained from another ftune model (pretrained.file), that file's
 * map is used too. __metadata__: format = pt, ftune_version, ftune_config
 * (the model's config, so `ftune import safetensors OUT` needs no --config). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/h5io.h"
#include "ftune/pretrained.h"
#include "ftune/version.h"

#include "commands.h"

#define MAP_DEPTH 8 /* pretrained.file links followed looking for a map */

static void export_usage(FILE *f)
{
    fputs("usage: ftune export MODEL.h5 [--format safetensors] -o OUT.safetensors\n"
          "                    [--names original|ftune]\n"
          "\n"
          "Writes an ftune model or checkpoint as a PyTorch state_dict in safetensors format\n"
          "(float32; batchnorm layers also get num_batches_tracked = 0).\n"
          "\n"
          "  --format F       safetensors (the only format, the default)\n"
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

int cmd_export(int argc, char **argv)
{
    const char *model_path = NULL, *out = NULL, *format = "safetensors", *names = "original";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            export_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            format = argv[++i];
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
    if (strcmp(format, "safetensors") != 0) {
        fprintf(stderr, "ftune export: unknown --format '%s' (safetensors is supported)\n", format);
        return 2;
    }
    if (strcmp(names, "original") != 0 && strcmp(names, "ftune") != 0) {
        fprintf(stderr, "ftune export: --names must be 'original' or 'ftune', got '%s'\n", names);
        return 2;
    }

    ft_err err = {0};
    char *text = NULL;
    ft_config cfg;
    ft_model m;
    ft_name_map map = {0};
    char from[FT_PATH_MAX] = "";
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    int rc = ft_load_config_text(model_path, &text, &err);
    if (!rc)
        rc = ft_config_load_string(&cfg, text, model_path, &err);
    if (!rc)
        rc = ft_model_build(&m, &cfg.input, cfg.layers, cfg.nlayers, &err);
    if (!rc)
        rc = ft_load_weights(model_path, &m, NULL, 0, 1, NULL, NULL, &err);
    if (!rc && strcmp(names, "original") == 0)
        rc = find_map(&cfg, model_path, &map, from, sizeof from, &err);
    if (!rc) {
        const char *meta[] = {"format",      "pt",           "ftune_version",
                              FTUNE_VERSION, "ftune_config", cfg.text};
        rc = ft_save_safetensors(out, &m, &map, meta, 3, &err);
    }
    if (rc) {
        fprintf(stderr, "ftune export: %s\n", err.msg);
    } else {
        size_t tensors = 0;
        for (int i = 0; i < m.nlayers; i++)
            tensors +=
                (size_t)m.layers[i].nparams + (strcmp(m.layers[i].ops->kind, "batchnorm") == 0);
        printf("exported %s: %zu tensors -> %s", model_path, tensors, out);
        if (map.n)
            printf(" (names of %d layer%s from the pretrained.map of %s)", map.n,
                   map.n == 1 ? "" : "s", from);
        printf("\n");
    }
    ft_name_map_free(&map);
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(text);
    return rc;
}
