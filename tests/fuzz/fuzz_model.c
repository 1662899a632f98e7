/* Fuzzes the model and checkpoint reader (src/h5io.c): the input is written to a file and
 * read the ways ftune reads one: `ftune inspect` (text and JSON), `ftune eval` (the stored
 * config rebuilds the model, then the weights load), `pretrained.file` and `--resume` (weights,
 * optimizer and training state into a fixed model; its layers match the seed files). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/h5io.h"
#include "ftune/model.h"
#include "ftune/optim.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The model of the seed files (tests/fuzz/make_seeds.sh). */
static const char fixed_cfg[] =
    "data = { train = \"x.h5\"; };\n"
    "model = { input = [1, 4, 4]; layers = (\n"
    "  { name = \"conv1\"; type = \"conv2d\"; filters = 2; kernel = 3; padding = 1; },\n"
    "  { name = \"bn1\"; type = \"batchnorm\"; },\n"
    "  { name = \"relu1\"; type = \"relu\"; },\n"
    "  { name = \"flatten\"; type = \"flatten\"; },\n"
    "  { name = \"fc1\"; type = \"dense\"; units = 3; }\n"
    "); };\n"
    "freeze = { upto = \"conv1\"; };\n"
    "train = { optimizer = { type = \"sgd\"; momentum = 0.9; }; };\n";

static ft_config fixed;
static ft_model fixed_model;
static ft_optim fixed_opt;
static FILE *devnull;

static void teardown(void)
{
    ft_optim_free(&fixed_opt);
    ft_model_free(&fixed_model);
    ft_config_free(&fixed);
    if (devnull)
        fclose(devnull);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_tmpdir();
    ft_err err = {0};
    if (ft_config_load_string(&fixed, fixed_cfg, "fixed", &err) ||
        ft_model_build(&fixed_model, &fixed.input, fixed.layers, fixed.nlayers, &err) ||
        ft_optim_init(&fixed_opt, &fixed.optim, &fixed_model, &err)) {
        fprintf(stderr, "fuzz_model: %s\n", err.msg);
        abort();
    }
    devnull = fopen("/dev/null", "w");
    atexit(teardown);
    return 0;
}

/* ftune eval: config text -> model -> weights */
static void like_eval(const char *path)
{
    char *text = NULL;
    ft_config c;
    ft_model m;
    ft_err err = {0};
    memset(&c, 0, sizeof c);
    memset(&m, 0, sizeof m);
    int rc = ft_load_config_text(path, &text, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        rc = ft_config_load_string(&c, text, path, &err);
        fz_check_err(&err, rc);
    }
    if (rc == FT_OK) {
        rc = ft_model_build(&m, &c.input, c.layers, c.nlayers, &err);
        fz_check_err(&err, rc);
    }
    if (rc == FT_OK) {
        rc = ft_load_weights(path, &m, NULL, 0, 1, NULL, NULL, &err);
        fz_check_err(&err, rc);
    }
    ft_model_free(&m);
    ft_config_free(&c);
    free(text);
}

static void warn_cb(const char *msg, void *user)
{
    (void)user;
    if (strnlen(msg, 2048) >= 2048)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fz_write(path, sizeof path, "model.h5", data, size);
    ft_err err = {0};
    int rc = ft_inspect(path, devnull, &err);
    fz_check_err(&err, rc);
    ft_err_clear(&err);
    rc = ft_inspect_json(path, devnull, &err);
    fz_check_err(&err, rc);
    like_eval(path);

    /* pretrained.file (lenient and strict, with a reinit) and --resume */
    static const char *const reinit[] = {"fc1"};
    ft_err_clear(&err);
    rc = ft_load_weights(path, &fixed_model, reinit, 1, 0, warn_cb, NULL, &err);
    fz_check_err(&err, rc);
    ft_err_clear(&err);
    rc = ft_load_weights(path, &fixed_model, NULL, 0, 1, warn_cb, NULL, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        ft_train_state st;
        ft_err_clear(&err);
        rc = ft_load_train_state(path, &fixed_model, &fixed_opt, &st, &err);
        fz_check_err(&err, rc);
    }
    return 0;
}
