/* ftune import keras|safetensors|hf ... (single process).
 *
 *   ftune import safetensors FILE [--config CFG] -o OUT.h5 [--set key=value ...]
 *
 * builds the model of CFG (model.layers, model.preprocess, pretrained.map,
 * pretrained.reinit), loads FILE's tensors into it by name and writes an
 * ftune model file whose stored config is CFG's. Without --config, the
 * config that `ftune export` stored in FILE's metadata (ftune_config) is
 * used. Keras files go to cmd_import_keras (mpi/cmd_import_keras.c), Hugging Face
 * checkpoints to cmd_import_hf (mpi/cmd_import_hf.c). */
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftune/config.h"
#include "ftune/h5io.h"
#include "ftune/pretrained.h"
#include "ftune/safetensors.h"

#include "commands.h"

/* Writes text to path through a temporary file, fsync and a rename, so a failed or
 * interrupted write never leaves a half-written file under the final name. */
int ft_write_text_file(const char *path, const char *text, ft_err *err)
{
    char tmp[FT_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ft_fail(err, FT_EINPUT, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    int bad = fputs(text, f) == EOF;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ft_fail(err, FT_ERUNTIME, "%s: cannot write: %s", path, strerror(e));
    }
    return FT_OK;
}

#define MAX_SETS 64

static void import_usage(FILE *f)
{
    fputs("usage: ftune import safetensors FILE [--config CFG] -o OUT.h5 [--set key=value ...]\n"
          "       ftune import keras MODEL.h5 -o OUT.h5 ...   (ftune import keras --help)\n"
          "       ftune import hf DIR -o OUT.h5 ...           (ftune import hf --help: Hugging\n"
          "                                                    Face GPT-2 and BERT)\n"
          "\n"
          "safetensors: builds the model of an ftune config and loads FILE's tensors into it,\n"
          "then writes an ftune model file (which stores the config: `ftune eval` and\n"
          "`ftune export` use its model.preprocess and pretrained.map).\n"
          "\n"
          "  FILE           a safetensors file, e.g. a PyTorch state_dict\n"
          "                 (tools/torch_export.py writes one from a model or a .pt file)\n"
          "  --config CFG   ftune config with model.input, model.layers and optionally\n"
          "                 model.preprocess, pretrained.map (ftune layer -> tensor name\n"
          "                 prefix, e.g. { conv1 = \"features.0\"; }) and pretrained.reinit.\n"
          "                 Default: the config stored in FILE's metadata by `ftune export`.\n"
          "                 data.train and pretrained.file may be left out here.\n"
          "  -o OUT.h5      the ftune model file to write\n"
          "  --set K=V      override a config key (as for ftune train)\n"
          "\n"
          "Tensor names are <layer>.<param> (weight, bias, running_mean, running_var) or\n"
          "<prefix>.<param> for mapped layers; shapes are PyTorch's. See\n"
          "docs/import-export.md.\n",
          f);
}

static void warn_cb(const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "ftune: warning: %s\n", msg);
}

/* 1 if the config (file or text) has a setting at path, or a --set sets it. */
static int has_setting(const char *cfg_path, const char *text, const char *const *sets, int nsets,
                       const char *path)
{
    size_t n = strlen(path);
    for (int i = 0; i < nsets; i++)
        if (strncmp(sets[i], path, n) == 0 && (sets[i][n] == '=' || sets[i][n] == ' '))
            return 1;
    config_t c;
    config_init(&c);
    if (cfg_path) {
        char dir[FT_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", cfg_path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            config_set_include_dir(&c, dir);
        }
    }
    int ok = cfg_path ? config_read_file(&c, cfg_path) : config_read_string(&c, text);
    int found = ok && config_lookup(&c, path) != NULL;
    config_destroy(&c);
    return found;
}

static int import_safetensors(int argc, char **argv)
{
    const char *file = NULL, *cfg_path = NULL, *out = NULL;
    const char *sets[MAX_SETS + 2];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            import_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            if (nsets == MAX_SETS) {
                fprintf(stderr, "ftune import: at most %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[nsets++] = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ftune import safetensors: unknown or incomplete option '%s'\n", a);
            return 2;
        } else if (!file) {
            file = a;
        } else {
            fprintf(stderr, "ftune import safetensors: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!file || !out) {
        fprintf(stderr, "ftune import safetensors: %s\n",
                !file ? "FILE is missing" : "-o OUT.h5 is missing");
        import_usage(stderr);
        return 2;
    }

    ft_err err = {0};
    int format;
    if (ft_weights_format(file, &format, &err)) {
        fprintf(stderr, "ftune import safetensors: %s\n", err.msg);
        return err.code;
    }
    if (format != FT_FMT_SAFETENSORS) {
        fprintf(stderr,
                "ftune import safetensors: %s is an HDF5 file, not safetensors (an ftune model "
                "can be used as pretrained.file directly; Keras files: ftune import keras)\n",
                file);
        return 2;
    }

    /* the config: --config, else the one `ftune export` stored in the file */
    char *stored = NULL;
    if (!cfg_path) {
        ft_st_file st;
        if (ft_st_open(&st, file, &err)) {
            fprintf(stderr, "ftune import safetensors: %s\n", err.msg);
            return err.code;
        }
        const char *text = ft_st_meta(&st, "ftune_config");
        stored = text ? strdup(text) : NULL;
        ft_st_close(&st);
        if (!stored) {
            fprintf(stderr,
                    "ftune import safetensors: %s has no ftune config in its metadata: give the "
                    "model with --config CFG (model.input, model.layers; tools/torch_export.py "
                    "writes one for nn.Sequential models)\n",
                    file);
            return 2;
        }
    }
    /* an import needs no training set and takes the weights from FILE */
    char train_set[] = "data.train=unset.h5", file_set[FT_PATH_MAX + 32];
    if (!has_setting(cfg_path, stored, sets, nsets, "data.train"))
        sets[nsets++] = train_set;
    if (has_setting(cfg_path, stored, sets, nsets, "pretrained") &&
        !has_setting(cfg_path, stored, sets, nsets, "pretrained.file")) {
        snprintf(file_set, sizeof file_set, "pretrained.file=%s", file);
        sets[nsets++] = file_set;
    }

    ft_config cfg;
    ft_model m;
    memset(&m, 0, sizeof m);
    int rc;
    if (cfg_path) {
        rc = ft_config_load(&cfg, cfg_path, sets, nsets, &err);
    } else {
        /* the stored text, through a temporary file so that overrides apply */
        char tmp[] = "/tmp/ftune-import-XXXXXX";
        int fd = mkstemp(tmp);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f || fputs(stored, f) < 0 || fclose(f) != 0) {
            if (f == NULL && fd >= 0)
                close(fd);
            memset(&cfg, 0, sizeof cfg);
            rc = ft_fail(&err, FT_ERUNTIME, "cannot write a temporary config file %s", tmp);
        } else {
            rc = ft_config_load(&cfg, tmp, sets, nsets, &err);
            if (rc)
                ft_err_prefix(&err, "the config stored in %s", file);
        }
        if (fd >= 0)
            unlink(tmp);
    }
    if (!rc)
        rc = ft_model_build(&m, &cfg.input, cfg.layers, cfg.nlayers, &err);
    if (!rc) {
        ft_model_init_params(&m, cfg.seed); /* pretrained.reinit layers keep this */
        const char *reinit[FT_MAX_LAYERS];
        for (int i = 0; i < cfg.nreinit && i < FT_MAX_LAYERS; i++)
            reinit[i] = cfg.reinit[i];
        rc = ft_load_pretrained(file, &m, reinit, cfg.nreinit, &cfg.pretrained_map, warn_cb, NULL,
                                &err);
    }
    if (!rc)
        rc = ft_save(out, &m, cfg.text, NULL, NULL, &err);
    if (rc) {
        fprintf(stderr, "ftune import safetensors: %s\n", err.msg);
    } else {
        size_t params = 0;
        int with = 0;
        for (int i = 0; i < m.nlayers; i++) {
            with += m.layers[i].nparams > 0;
            for (int j = 0; j < m.layers[i].nparams; j++)
                params += m.layers[i].params[j].count;
        }
        printf("imported %s: %d layers (%d with parameters, %zu values%s%s) -> %s\n", file,
               m.nlayers, with, params,
               cfg.pretrained_map.n ? ", names mapped by pretrained.map" : "",
               cfg.nreinit ? ", reinit layers initialised fresh" : "", out);
    }
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(stored);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        import_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "safetensors"))
        return import_safetensors(argc - 1, argv + 1);
    if (!strcmp(argv[1], "keras"))
        return cmd_import_keras(argc - 1, argv + 1);
    if (!strcmp(argv[1], "hf"))
        return cmd_import_hf(argc - 1, argv + 1);
    fprintf(stderr, "ftune import: unknown format '%s' (keras, safetensors or hf)\n", argv[1]);
    import_usage(stderr);
    return 2;
}
