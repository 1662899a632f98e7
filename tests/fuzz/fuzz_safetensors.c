/* Fuzzes the safetensors reader (src/safetensors.c) and the pretrained loader on top of it
 * (src/pretrained.c): open (the whole header is validated), look every tensor up by name,
 * read every readable tensor of up to 1M values as float32, then load the file as
 * pretrained weights into a fixed model (the one of tests/fuzz/fuzz_model.c), strictly and with
 * a reinit and a name map. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/pretrained.h"
#include "ftune/safetensors.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_cfg[] =
    "data = { train = \"x.h5\"; };\n"
    "model = { input = [1, 4, 4]; layers = (\n"
    "  { name = \"conv1\"; type = \"conv2d\"; filters = 2; kernel = 3; padding = 1; },\n"
    "  { name = \"bn1\"; type = \"batchnorm\"; },\n"
    "  { name = \"relu1\"; type = \"relu\"; },\n"
    "  { name = \"flatten\"; type = \"flatten\"; },\n"
    "  { name = \"fc1\"; type = \"dense\"; units = 3; }\n"
    "); };\n";

static ft_config fixed;
static ft_model model;

static void teardown(void)
{
    ft_model_free(&model);
    ft_config_free(&fixed);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_tmpdir();
    ft_err err = {0};
    if (ft_config_load_string(&fixed, fixed_cfg, "fixed", &err) ||
        ft_model_build(&model, &fixed.input, fixed.layers, fixed.nlayers, &err)) {
        fprintf(stderr, "fuzz_safetensors: %s\n", err.msg);
        abort();
    }
    atexit(teardown);
    return 0;
}

static void warn_cb(const char *msg, void *user)
{
    (void)user;
    if (strnlen(msg, 4096) >= 4096)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fz_write(path, sizeof path, "w.safetensors", data, size);
    ft_st_file f;
    ft_err err = {0};
    int rc = ft_st_open(&f, path, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        char shape[256];
        for (size_t i = 0; i < f.ntensors; i++) {
            const ft_st_tensor *t = &f.tensors[i];
            if (ft_st_find(&f, t->name) != t)
                abort(); /* names are unique and found */
            if (t->end < t->begin || t->end > f.data_len)
                abort(); /* validated at open */
            ft_st_shape_str(t, shape, sizeof shape);
            if (ft_st_dtype_readable(t->dtype) && t->count <= ((uint64_t)1 << 20)) {
                float *out = malloc((t->count ? t->count : 1) * sizeof *out);
                ft_err e2 = {0};
                if (out) {
                    int r2 = ft_st_read_f32(&f, t, out, t->count, &e2);
                    fz_check_err(&e2, r2);
                }
                free(out);
            }
        }
        ft_st_meta(&f, "format");
        ft_st_close(&f);
    }
    int format = 0;
    ft_err_clear(&err);
    rc = ft_weights_format(path, &format, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK && format == FT_FMT_SAFETENSORS) {
        ft_err_clear(&err);
        rc = ft_load_pretrained(path, &model, NULL, 0, NULL, warn_cb, NULL, &err);
        fz_check_err(&err, rc);
        static const char *const reinit[] = {"fc1"};
        ft_name_map_entry e[1] = {{"conv1", "features.0"}};
        ft_name_map map = {e, 1};
        ft_err_clear(&err);
        rc = ft_load_pretrained(path, &model, reinit, 1, &map, warn_cb, NULL, &err);
        fz_check_err(&err, rc);
    }
    return 0;
}
