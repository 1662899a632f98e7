/* Fuzzes the Keras HDF5 importer (src/keras.c): the input (after one option byte) is written
 * to a file and imported as `ftune import keras` does, with the option byte choosing the
 * kernel flip, the data format and whether a config is supplied (needed for weights-only
 * files; the fixed config below matches the fixtures of tests/unit/test_keras.c only in
 * part, so both the by-name and the error paths run). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ftune/keras.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_cfg[] =
    "data = { train = \"x.h5\"; };\n"
    "model = { input = [1, 8, 8]; layers = (\n"
    "  { name = \"conv2d\"; type = \"conv2d\"; filters = 4; kernel = 3; },\n"
    "  { name = \"relu\"; type = \"relu\"; },\n"
    "  { name = \"flatten\"; type = \"flatten\"; },\n"
    "  { name = \"dense\"; type = \"dense\"; units = 10; }\n"
    "); };\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    char path[512], cfg[512], out[512];
    fz_write(path, sizeof path, "k.h5", data + 1, size - 1);
    fz_path(out, sizeof out, "k-out.h5");
    ft_keras_opts o;
    ft_keras_opts_default(&o);
    if (opt & 1) {
        fz_write(cfg, sizeof cfg, "k.cfg", (const uint8_t *)fixed_cfg, strlen(fixed_cfg));
        o.config_path = cfg;
    }
    o.flip = (int)((opt >> 1) % 3) - 1;
    o.data_format = (int)((opt >> 3) % 3);
    o.input_scale = opt & 0x20 ? 255.0 : 0.0;
    o.model_path = opt & 0x40 ? out : NULL;
    ft_keras_result r;
    memset(&r, 0, sizeof r);
    ft_err err = {0};
    int rc = ft_keras_import(path, &o, &r, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK && (r.model.nlayers < 1 || !r.notes))
        abort();
    ft_keras_result_free(&r);
    return 0;
}
