/* ftune eval MODEL --data FILE [--json] [--batch-size N] [--save-logits FILE.h5] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/adapter.h"
#include "ftune/config.h"
#include "ftune/freeze.h"
#include "ftune/h5io.h"
#include "ftune/h5util.h"
#include "ftune/preprocess.h"
#include "ftune/textmetrics.h"

#include "commands.h"
#include "evaluate.h"
#include "runtime.h"
#include "slurm.h"

static void eval_usage(FILE *f)
{
    fputs("usage: ftune eval MODEL --data FILE [--json] [--batch-size N] [--save-logits OUT.h5]\n"
          "\n"
          "  MODEL           an ftune model or checkpoint (.h5); a LoRA adapter file\n"
          "                  loads its base model first (docs/text.md, LoRA)\n"
          "  --data FILE     dataset (docs/formats.md)\n"
          "  --json          print one JSON object (samples, loss, accuracy, top5,\n"
          "                  macro_f1, per_class, confusion) instead of the table\n"
          "  --batch-size N  rows per forward pass on each rank (default 256)\n"
          "  --save-logits OUT.h5\n"
          "                  also write every sample's logits (float32 [N, classes]) and\n"
          "                  predicted class (int32 [N]), in dataset order\n"
          "\n"
          "The model's input preprocessing (model.preprocess in its stored config) is\n"
          "applied to the data.\n",
          f);
}

/* OUT.h5: /logits [N, classes] float32 and /predictions [N] int32 (argmax,
 * the first maximum on ties), written under a temporary name and renamed. */
static int save_logits(const char *path, const float *logits, uint64_t n, int classes, ft_err *err)
{
    ft_h5_quiet();
    int *pred = malloc((n ? n : 1) * sizeof *pred);
    if (!pred)
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) {
        const float *r = logits + i * (uint64_t)classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (r[k] > r[best])
                best = k;
        pred[i] = best;
    }
    char tmp[1200];
    hid_t f;
    int rc = ft_h5_create_tmp(path, tmp, sizeof tmp, &f, err);
    if (rc) {
        free(pred);
        return rc;
    }
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)classes};
    hid_t s2 = H5Screate_simple(2, dims, NULL), s1 = H5Screate_simple(1, dims, NULL);
    hid_t dl = H5Dcreate2(f, "logits", H5T_IEEE_F32LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dp =
        H5Dcreate2(f, "predictions", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dl < 0 || dp < 0 ||
        H5Dwrite(dl, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, logits) < 0 ||
        H5Dwrite(dp, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) < 0)
        rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot write the logits", path);
    if (dl >= 0)
        H5Dclose(dl);
    if (dp >= 0)
        H5Dclose(dp);
    H5Sclose(s1);
    H5Sclose(s2);
    free(pred);
    if (rc) {
        ft_h5_discard(f, tmp);
        return rc;
    }
    return ft_h5_commit(f, tmp, path, err);
}

static int evaluate_model(const ft_mpi *w, const char *model_path, const char *data_path, int batch,
                          int json, const char *logits_path, ft_err *err)
{
    float *logits = NULL;
    char *text = NULL;
    ft_config cfg;
    ft_model m;
    ft_dataset d;
    ft_metrics metrics;
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    memset(&d, 0, sizeof d);
    memset(&metrics, 0, sizeof metrics);
    int opened = 0;

    if (ft_load_config_text(model_path, &text, err) == FT_OK &&
        ft_config_load_string(&cfg, text, model_path, err) == FT_OK &&
        ft_config_build_model(&cfg, &m, err) == FT_OK &&
        ft_load_model_file(&cfg, model_path, &m, NULL, NULL, err) == FT_OK &&
        ft_dataset_open(&d, data_path, NULL, err) == FT_OK) {
        opened = 1;
        if (ft_dataset_set_preprocess(&d, &cfg.preprocess, &cfg.input, err) == FT_OK &&
            ft_check_data_fits(&d, &m, err) == FT_OK && ft_model_alloc(&m, batch, err) == FT_OK)
            ft_metrics_init(&metrics, m.classes);
        size_t nlogits;
        if (!err->code && logits_path && !ft_mul_size((size_t)d.n, (size_t)m.classes, &nlogits))
            ft_fail(err, FT_EINPUT, "%s: too many logits to save", data_path);
        if (!err->code && logits_path)
            logits = ft_alloc_floats((size_t)d.n * (size_t)m.classes, err);
    }
    if (!err->code && cfg.task == FT_TASK_LM && logits_path)
        ft_fail(err, FT_EINPUT, "--save-logits: not available for a language model (%s)",
                model_path);
    if (cfg.task == FT_TASK_LM) { /* token loss, perplexity, token accuracy */
        ft_lm_stats st;
        if (ft_mpi_agree(w, err) == FT_OK && ft_evaluate_lm(w, &m, &d, &st, err) == FT_OK &&
            w->rank == 0) {
            double tok = st.tokens > 0 ? st.tokens : 1;
            if (json)
                printf("{\"loss\":%.9g,\"perplexity\":%.9g,\"token_accuracy\":%.9g,"
                       "\"tokens\":%.0f}\n",
                       st.nll / tok, ft_perplexity(st.nll, (uint64_t)st.tokens), st.correct / tok,
                       st.tokens);
            else
                printf("%s on %s (language model): %.0f target tokens, loss %.6f, perplexity "
                       "%.4f, token accuracy %.4f\n",
                       model_path, data_path, st.tokens, st.nll / tok,
                       ft_perplexity(st.nll, (uint64_t)st.tokens), st.correct / tok);
            fflush(stdout);
        }
    } else if (ft_mpi_agree(w, err) == FT_OK &&
               ft_evaluate_logits(w, &m, &d, &metrics, logits, err) == FT_OK && w->rank == 0) {
        if (logits_path && save_logits(logits_path, logits, d.n, m.classes, err))
            ft_err_prefix(err, "--save-logits");
        if (json) {
            ft_metrics_json(&metrics, stdout);
        } else {
            printf("%s on %s\n", model_path, data_path);
            ft_metrics_print(&metrics, stdout);
        }
        fflush(stdout);
    }
    if (opened)
        ft_dataset_close(&d);
    ft_free_floats(logits);
    ft_metrics_free(&metrics);
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(text);
    return err->code;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *logits = NULL;
    int json = 0, batch = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(a, "--save-logits") && i + 1 < argc) {
            logits = argv[++i];
        } else if (!strcmp(a, "--batch-size") && i + 1 < argc) {
            batch = atoi(argv[++i]);
            if (batch < 1) {
                fprintf(stderr, "ftune eval: --batch-size must be a positive integer\n");
                return 2;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "ftune eval: unknown or incomplete option '%s'\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "ftune eval: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !data) {
        fprintf(stderr, "ftune eval: %s\n", !model ? "MODEL is missing" : "--data FILE is missing");
        eval_usage(stderr);
        return 2;
    }
    if (ft_slurm_precheck("ftune eval"))
        return 2;
    ft_mpi w;
    ft_mpi_init(&w, &argc, &argv);
    if (ft_slurm_check(&w, "ftune eval", stderr)) { /* stdout may be --json */
        ft_mpi_finalize();
        return 2;
    }
    ft_mpi_set_blas_threads(&w, 0);
    ft_err err = {0};
    int rc = evaluate_model(&w, model, data, batch, json, logits, &err);
    if (rc && w.rank == 0)
        fprintf(stderr, "ftune eval: %s\n", err.msg);
    ft_mpi_finalize();
    return rc;
}
