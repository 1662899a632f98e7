/* ftune eval MODEL --data FILE [--json] [--batch-size N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/h5io.h"

#include "commands.h"
#include "evaluate.h"
#include "runtime.h"
#include "slurm.h"

static void eval_usage(FILE *f)
{
    fputs("usage: ftune eval MODEL --data FILE [--json] [--batch-size N]\n"
          "\n"
          "  MODEL           an ftune model or checkpoint (.h5)\n"
          "  --data FILE     dataset (docs/formats.md)\n"
          "  --json          print one JSON object (samples, loss, accuracy, top5,\n"
          "                  macro_f1, per_class, confusion) instead of the table\n"
          "  --batch-size N  rows per forward pass on each rank (default 256)\n",
          f);
}

static int evaluate_model(const ft_mpi *w, const char *model_path, const char *data_path, int batch,
                          int json, ft_err *err)
{
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
        ft_model_build(&m, &cfg.input, cfg.layers, cfg.nlayers, err) == FT_OK &&
        ft_load_weights(model_path, &m, NULL, 0, 1, NULL, NULL, err) == FT_OK &&
        ft_dataset_open(&d, data_path, NULL, err) == FT_OK) {
        opened = 1;
        if (ft_check_data_fits(&d, &m, err) == FT_OK && ft_model_alloc(&m, batch, err) == FT_OK)
            ft_metrics_init(&metrics, m.classes);
    }
    if (ft_mpi_agree(w, err) == FT_OK && ft_evaluate(w, &m, &d, &metrics, err) == FT_OK &&
        w->rank == 0) {
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
    ft_metrics_free(&metrics);
    ft_model_free(&m);
    ft_config_free(&cfg);
    free(text);
    return err->code;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL;
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
    int rc = evaluate_model(&w, model, data, batch, json, &err);
    if (rc && w.rank == 0)
        fprintf(stderr, "ftune eval: %s\n", err.msg);
    ft_mpi_finalize();
    return rc;
}
