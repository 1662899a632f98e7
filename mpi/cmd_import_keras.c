/* ftune import keras MODEL.h5 -o OUT.h5 [--config-out OUT.cfg] [--config CFG] ...
 * (single process; src/keras.c does the work). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5io.h"
#include "ftune/keras.h"

#include "commands.h"

static void keras_usage(FILE *f)
{
    fputs("usage: ftune import keras MODEL.h5 -o OUT.h5 [--config-out OUT.cfg] [--config CFG]\n"
          "                          [--input-scale S] [--flip-kernels | --no-flip-kernels]\n"
          "                          [--data-format channels_last|channels_first]\n"
          "\n"
          "Turns a Keras HDF5 file (model.save(\"x.h5\") or save_weights) into an ftune model.\n"
          "\n"
          "  -o OUT.h5           the ftune model file to write\n"
          "  --config-out FILE   also write the generated config (with comments and\n"
          "                      pretrained.file = OUT.h5), ready to edit and train with\n"
          "  --config CFG        the model as an ftune config: required for weights-only\n"
          "                      files (no model_config); layers are matched by name, or\n"
          "                      else in order\n"
          "  --input-scale S     the Keras model expects inputs S times ftune's dataset values\n"
          "                      (255 for a model trained on raw 0..255 pixels: ftune's\n"
          "                      import-idx stores x/255); sets model.preprocess.scale\n"
          "  --flip-kernels, --no-flip-kernels\n"
          "                      flip convolution kernels (Theano backend) or not; default:\n"
          "                      flip when the file says backend 'theano', or for Keras 1\n"
          "                      'th' kernels in a file that does not say\n"
          "  --data-format F     weights-only files: the layout the model was trained in\n"
          "                      (default channels_last, Keras 1 'th' files channels_first);\n"
          "                      decides the input order of the first dense layer after a\n"
          "                      flatten\n"
          "\n"
          "Supported Keras layers: ",
          f);
    fputs(ft_keras_supported_types(), f);
    fputs(".\nSee docs/import-export.md (Keras).\n", f);
}

static int fail_usage(const char *msg, const char *arg)
{
    fprintf(stderr, "ftune import keras: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

int cmd_import_keras(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *cfg_out = NULL;
    ft_keras_opts o;
    ft_keras_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            keras_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && more) {
            out = argv[++i];
        } else if (!strcmp(a, "--config-out") && more) {
            cfg_out = argv[++i];
        } else if (!strcmp(a, "--config") && more) {
            o.config_path = argv[++i];
        } else if (!strcmp(a, "--input-scale") && more) {
            char *end;
            errno = 0;
            o.input_scale = strtod(argv[++i], &end);
            if (*end || end == argv[i] || errno || !isfinite(o.input_scale) || o.input_scale <= 0)
                return fail_usage("--input-scale needs a positive number, got", argv[i]);
        } else if (!strcmp(a, "--flip-kernels")) {
            o.flip = FT_KERAS_FLIP_YES;
        } else if (!strcmp(a, "--no-flip-kernels")) {
            o.flip = FT_KERAS_FLIP_NO;
        } else if (!strcmp(a, "--data-format") && more) {
            const char *v = argv[++i];
            if (!strcmp(v, "channels_last"))
                o.data_format = FT_KERAS_CHANNELS_LAST;
            else if (!strcmp(v, "channels_first"))
                o.data_format = FT_KERAS_CHANNELS_FIRST;
            else
                return fail_usage("--data-format must be channels_last or channels_first, got", v);
        } else if (a[0] == '-') {
            fprintf(stderr, "ftune import keras: unknown or incomplete option '%s'\n\n", a);
            keras_usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            return fail_usage("unexpected argument", a);
        }
    }
    if (!in || !out) {
        fprintf(stderr, "ftune import keras: %s\n\n",
                !in ? "MODEL.h5 is missing" : "-o OUT.h5 is missing");
        keras_usage(stderr);
        return 2;
    }
    if (strlen(out) >= FT_PATH_MAX || (cfg_out && strlen(cfg_out) >= FT_PATH_MAX))
        return fail_usage("output path too long:", strlen(out) >= FT_PATH_MAX ? out : cfg_out);
    o.model_path = out;

    ft_err err = {0};
    ft_keras_result r;
    int rc = ft_keras_import(in, &o, &r, &err);
    if (!rc)
        rc = ft_save(out, &r.model, r.cfg.text, NULL, NULL, &err);
    if (!rc && cfg_out && r.config_text)
        rc = ft_write_text_file(cfg_out, r.config_text, &err);
    if (rc) {
        fprintf(stderr, "ftune import keras: %s\n", err.msg);
        ft_keras_result_free(&r);
        return rc;
    }

    size_t params = 0;
    for (int i = 0; i < r.model.nlayers; i++)
        for (int j = 0; j < r.model.layers[i].nparams; j++)
            params += r.model.layers[i].params[j].count;
    printf("%s: Keras %s%s%s%s -> %s: %d layers, %zu parameters, input [", in,
           r.keras_version[0] ? r.keras_version : "1.x", r.backend[0] ? " (" : "", r.backend,
           r.backend[0] ? ")" : "", out, r.model.nlayers, params);
    for (int d = 0; d < r.model.input.rank; d++)
        printf(d ? ", %d" : "%d", r.model.input.d[d]);
    printf("], %d outputs\n", r.model.classes);
    for (const char *s = r.notes; s && *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        printf("note: %.*s\n", (int)len, s);
        s += len + (e ? 1 : 0);
    }
    if (cfg_out && r.config_text)
        printf("config: %s (edit the data paths, then: mpirun -np 2 ftune train %s)\n", cfg_out,
               cfg_out);
    else if (cfg_out)
        printf("config: --config-out ignored: the model uses your config %s\n", o.config_path);
    else
        printf("config: stored in %s (ftune inspect %s --config); --config-out FILE writes an "
               "editable copy\n",
               out, out);
    ft_keras_result_free(&r);
    return 0;
}
