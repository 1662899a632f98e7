/* Pretrained weights from safetensors (names, pretrained.map, conversions,
 * every refusal), safetensors export, HDF5 pass-through and format detection;
 * model.preprocess (config validation, arithmetic, nhwc, dataset hook). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/data.h"
#include "ftune/h5io.h"
#include "ftune/preprocess.h"
#include "ftune/pretrained.h"
#include "ftune/safetensors.h"

#include "testutil.h"

static char pbuf[4][600];

static const char *tpath(int slot, const char *name)
{
    snprintf(pbuf[slot], sizeof pbuf[slot], "%s/%s", tu_tmpdir(), name);
    return pbuf[slot];
}

#define MODEL_CFG                                                                                  \
    "data = { train = \"x.h5\"; };\n"                                                              \
    "model = { input = [2, 4, 4]; layers = (\n"                                                    \
    "  { name = \"conv1\"; type = \"conv2d\"; filters = 3; kernel = 3; },\n"                       \
    "  { name = \"bn\"; type = \"batchnorm\"; },\n"                                                \
    "  { name = \"relu\"; type = \"relu\"; },\n"                                                   \
    "  { name = \"flat\"; type = \"flatten\"; },\n"                                                \
    "  { name = \"fc\"; type = \"dense\"; units = 2; bias = false; } ); };\n"

static int load_cfg(ft_config *c, const char *text, ft_err *err)
{
    return ft_config_load_string(c, text, "test.cfg", err);
}

static int build(ft_config *c, ft_model *m, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", MODEL_CFG, extra ? extra : "");
    ft_err err = {0};
    memset(m, 0, sizeof *m);
    if (load_cfg(c, text, &err) || ft_model_build(m, &c->input, c->layers, c->nlayers, &err)) {
        printf("build failed: %s\n", err.msg);
        return 1;
    }
    ft_model_init_params(m, 1);
    return 0;
}

/* Tensors for MODEL_CFG: conv1.weight [3,2,3,3] (F16), conv1.bias [3],
 * bn.* [3] + num_batches_tracked, fc.weight [2,12]; names through prefixes. */
static float conv_w[54], conv_b[3], bn_w[3], bn_b[3], bn_m[3], bn_v[3],
    fc_w[36]; /* up to 3 rows of 12 */

static void fill(void)
{
    for (int i = 0; i < 54; i++)
        conv_w[i] = (float)(i - 27) / 8.0f; /* exact in half precision */
    for (int i = 0; i < 3; i++) {
        conv_b[i] = 0.5f * (float)i;
        bn_w[i] = 1.0f + (float)i;
        bn_b[i] = -0.25f * (float)i;
        bn_m[i] = 0.1f * (float)i;
        bn_v[i] = 2.0f + (float)i;
    }
    for (int i = 0; i < 36; i++)
        fc_w[i] = (float)i * 0.01f;
}

static void put_half(unsigned char *p, float f)
{
    /* f is a multiple of 1/8 in [-4, 4): normal half or zero */
    uint16_t h = 0;
    if (f != 0.0f) {
        int e;
        float m = frexpf(fabsf(f), &e); /* f = m * 2^e, m in [0.5, 1) */
        uint16_t man = (uint16_t)((m * 2.0f - 1.0f) * 1024.0f + 0.5f);
        h = (uint16_t)(((e - 1 + 15) << 10) | man | (f < 0 ? 0x8000 : 0));
    }
    p[0] = (unsigned char)h;
    p[1] = (unsigned char)(h >> 8);
}

/* A safetensors file by hand (F16 conv weight), names from the prefixes. */
static const char *write_weights(int slot, const char *name, const char *conv, const char *bn,
                                 const char *fc, int extra_bias, int fc_rows)
{
    const char *p = tpath(slot, name);
    char hdr[4096];
    unsigned char data[1024];
    size_t o = 0, n = 0;
    n += (size_t)snprintf(hdr + n, sizeof hdr - n,
                          "{\"%s.weight\":{\"dtype\":\"F16\",\"shape\":[3,2,3,3],"
                          "\"data_offsets\":[0,108]},",
                          conv);
    for (int i = 0; i < 54; i++, o += 2)
        put_half(data + o, conv_w[i]);
    const struct {
        const char *pre, *what;
        const float *v;
        int count;
    } f32[] = {{conv, "bias", conv_b, 3},    {bn, "weight", bn_w, 3},
               {bn, "bias", bn_b, 3},        {bn, "running_mean", bn_m, 3},
               {bn, "running_var", bn_v, 3}, {fc, "weight", fc_w, fc_rows * 12}};
    for (size_t k = 0; k < sizeof f32 / sizeof *f32; k++) {
        char shape[32];
        if (strcmp(f32[k].pre, fc) == 0)
            snprintf(shape, sizeof shape, "[%d,12]", fc_rows);
        else
            snprintf(shape, sizeof shape, "[%d]", f32[k].count);
        n += (size_t)snprintf(
            hdr + n, sizeof hdr - n,
            "\"%s.%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%zu,%zu]},", f32[k].pre,
            f32[k].what, shape, o, o + 4 * (size_t)f32[k].count);
        memcpy(data + o, f32[k].v, 4 * (size_t)f32[k].count);
        o += 4 * (size_t)f32[k].count;
    }
    n += (size_t)snprintf(hdr + n, sizeof hdr - n,
                          "\"%s.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
                          "\"data_offsets\":[%zu,%zu]}",
                          bn, o, o + 8);
    memset(data + o, 0, 8);
    o += 8;
    if (extra_bias) {
        n += (size_t)snprintf(hdr + n, sizeof hdr - n,
                              ",\"%s.bias\":{\"dtype\":\"F32\",\"shape\":[2],"
                              "\"data_offsets\":[%zu,%zu]}",
                              fc, o, o + 8);
        memset(data + o, 0, 8);
        o += 8;
    }
    n +=
        (size_t)snprintf(hdr + n, sizeof hdr - n, "%s}",
                         extra_bias == 2 ? ",\"classifier.extra\":{\"dtype\":\"F32\",\"shape\":[0],"
                                           "\"data_offsets\":[0,0]}"
                                         : "");
    FILE *f = fopen(p, "wb");
    uint64_t hl = n;
    unsigned char len8[8];
    for (int b = 0; b < 8; b++)
        len8[b] = (unsigned char)(hl >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, n, f);
    fwrite(data, 1, o, f);
    fclose(f);
    return p;
}

static char warned[2048];
static int nwarn;

static void warn_cb(const char *msg, void *user)
{
    (void)user;
    snprintf(warned, sizeof warned, "%s", msg);
    nwarn++;
}

static int param_equals(const ft_model *m, const char *layer, const char *param, const float *v,
                        size_t n)
{
    const ft_layer *l = ft_model_find(m, layer);
    for (int j = 0; l && j < l->nparams; j++)
        if (strcmp(l->params[j].name, param) == 0)
            return l->params[j].count == n && memcmp(l->params[j].data, v, n * sizeof *v) == 0;
    return 0;
}

static void test_load(void)
{
    fill();
    ft_config c;
    ft_model m;
    ft_err err = {0};

    /* default names: <layer>.<param>; F16 converted exactly */
    const char *p = write_weights(0, "plain.safetensors", "conv1", "bn", "fc", 0, 2);
    if (build(&c, &m, NULL))
        return;
    nwarn = 0;
    CHECK(ft_load_pretrained(p, &m, NULL, 0, &c.pretrained_map, warn_cb, NULL, &err) == FT_OK);
    if (err.code)
        printf("%s\n", err.msg);
    CHECK(param_equals(&m, "conv1", "weight", conv_w, 54));
    CHECK(param_equals(&m, "conv1", "bias", conv_b, 3));
    CHECK(param_equals(&m, "bn", "running_var", bn_v, 3));
    CHECK(param_equals(&m, "fc", "weight", fc_w, 24));
    CHECK(nwarn == 0); /* num_batches_tracked is ignored silently */

    /* export and read back: same names and values, num_batches_tracked added */
    const char *out = tpath(1, "export.safetensors");
    const char *meta[] = {"format", "pt"};
    CHECK(ft_save_safetensors(out, &m, NULL, meta, 1, &err) == FT_OK);
    ft_st_file f;
    CHECK(ft_st_open(&f, out, &err) == FT_OK);
    CHECK(f.ntensors == 8);
    CHECK(ft_st_find(&f, "conv1.weight") && ft_st_find(&f, "bn.num_batches_tracked") &&
          ft_st_find(&f, "bn.num_batches_tracked")->dtype == FT_ST_I64 &&
          ft_st_find(&f, "fc.bias") == NULL);
    CHECK(ft_st_meta(&f, "format") && strcmp(ft_st_meta(&f, "format"), "pt") == 0);
    ft_st_close(&f);
    ft_model m2;
    ft_config c2;
    if (build(&c2, &m2, NULL))
        return;
    CHECK(ft_load_pretrained(out, &m2, NULL, 0, NULL, NULL, NULL, &err) == FT_OK);
    CHECK(memcmp(m.params, m2.params, m.nparams * sizeof(float)) == 0);
    ft_model_free(&m2);
    ft_config_free(&c2);

    /* HDF5 files go to ft_load_weights (map ignored) */
    const char *h5 = tpath(1, "model.h5");
    CHECK(ft_save(h5, &m, c.text, NULL, NULL, &err) == FT_OK);
    if (build(&c2, &m2, NULL))
        return;
    CHECK(ft_load_pretrained(h5, &m2, NULL, 0, NULL, NULL, NULL, &err) == FT_OK);
    CHECK(memcmp(m.params, m2.params, m.nparams * sizeof(float)) == 0);
    ft_model_free(&m2);
    ft_config_free(&c2);
    ft_model_free(&m);
    ft_config_free(&c);

    /* mapped names */
    p = write_weights(0, "mapped.safetensors", "features.0", "features.1", "classifier.2", 0, 2);
    if (build(&c, &m,
              "pretrained = { file = \"w\"; map = { conv1 = \"features.0\"; bn = \"features.1\"; "
              "fc = \"classifier.2\"; }; };"))
        return;
    CHECK(c.pretrained_map.n == 3);
    char tn[300];
    CHECK(strcmp(ft_tensor_name(&c.pretrained_map, "fc", "weight", tn, sizeof tn),
                 "classifier.2.weight") == 0);
    CHECK(strcmp(ft_tensor_name(&c.pretrained_map, "relu", "x", tn, sizeof tn), "relu.x") == 0);
    CHECK(ft_load_pretrained(p, &m, NULL, 0, &c.pretrained_map, warn_cb, NULL, &err) == FT_OK);
    CHECK(param_equals(&m, "bn", "weight", bn_w, 3) && param_equals(&m, "fc", "weight", fc_w, 24));
    /* export with the map gives the original names back */
    CHECK(ft_save_safetensors(out, &m, &c.pretrained_map, NULL, 0, &err) == FT_OK);
    CHECK(ft_st_open(&f, out, &err) == FT_OK);
    CHECK(ft_st_find(&f, "features.0.weight") && ft_st_find(&f, "features.1.running_mean") &&
          ft_st_find(&f, "features.1.num_batches_tracked") &&
          ft_st_find(&f, "classifier.2.weight") && !ft_st_find(&f, "conv1.weight"));
    CHECK(f.nmeta == 0);
    ft_st_close(&f);

    /* without the map: the missing tensor is named, with a near name */
    float before = m.params[0];
    CHECK(ft_load_pretrained(p, &m, NULL, 0, NULL, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, p);
    CHECK_STR_CONTAINS(err.msg, "layer 'conv1' parameter 'weight': tensor 'conv1.weight' is not "
                                "in the file");
    CHECK_STR_CONTAINS(err.msg, "pretrained.map");
    CHECK(m.params[0] == before);
    ft_model_free(&m);
    ft_config_free(&c);

    /* shape mismatch, then the same with reinit (which also keeps the fresh init) */
    p = write_weights(0, "fc3.safetensors", "conv1", "bn", "fc", 0, 3);
    if (build(&c, &m, NULL))
        return;
    float fc_init[24];
    const ft_layer *fc = ft_model_find(&m, "fc");
    memcpy(fc_init, fc->params[0].data, sizeof fc_init);
    memset(warned, 0, sizeof warned);
    CHECK(ft_load_pretrained(p, &m, NULL, 0, NULL, warn_cb, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "layer 'fc' parameter 'weight': tensor 'fc.weight' has shape "
                                "[3, 12] in the file but [2, 12] in the model");
    CHECK_STR_CONTAINS(err.msg, "pretrained.reinit");
    CHECK(!param_equals(&m, "conv1", "bias", conv_b, 3)); /* nothing loaded */
    const char *reinit[] = {"fc"};
    nwarn = 0;
    CHECK(ft_load_pretrained(p, &m, reinit, 1, NULL, warn_cb, NULL, &err) == FT_OK);
    CHECK(param_equals(&m, "conv1", "bias", conv_b, 3));
    CHECK(memcmp(fc->params[0].data, fc_init, sizeof fc_init) == 0);
    CHECK(nwarn == 0); /* a reinit layer's tensors are not "unused" */
    ft_model_free(&m);
    ft_config_free(&c);

    /* a bias the model's layer does not have */
    p = write_weights(0, "bias.safetensors", "conv1", "bn", "fc", 1, 2);
    if (build(&c, &m, NULL))
        return;
    /* a parameter stored with an integer or unreadable dtype */
    {
        int64_t iv[3] = {1, 2, 3};
        ft_st_entry ents[2] = {{"conv1.weight", FT_ST_F32, 4, {3, 2, 3, 3}, conv_w},
                               {"conv1.bias", FT_ST_I64, 1, {3}, iv}};
        const char *ip = tpath(2, "int.safetensors");
        CHECK(ft_st_write(ip, ents, 2, NULL, 0, &err) == FT_OK);
        CHECK(ft_load_pretrained(ip, &m, NULL, 0, NULL, NULL, NULL, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "tensor 'conv1.bias' has dtype I64; parameters must be "
                                    "floating point");
    }
    CHECK(ft_load_pretrained(p, &m, NULL, 0, NULL, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tensor 'fc.bias' belongs to layer 'fc', which has no parameter "
                                "'bias'");
    /* unused tensors: one warning naming them */
    p = write_weights(0, "extra.safetensors", "conv1", "bn", "fc", 2, 2);
    CHECK(ft_load_pretrained(p, &m, reinit, 1, NULL, warn_cb, NULL, &err) == FT_OK);
    nwarn = 0;
    ft_name_map map = {0};
    ft_name_map_entry e = {"fc", "classifier"};
    map.v = &e;
    map.n = 1;
    /* fc.weight and fc.bias unused when fc is reinit and the map points elsewhere */
    snprintf(e.prefix, sizeof e.prefix, "head");
    CHECK(ft_load_pretrained(p, &m, reinit, 1, &map, warn_cb, NULL, &err) == FT_OK);
    CHECK(nwarn == 1);
    CHECK_STR_CONTAINS(warned, "3 tensors are not used by the model (ignored): ");
    CHECK_STR_CONTAINS(warned, "fc.weight");
    CHECK_STR_CONTAINS(warned, "classifier.extra");
    snprintf(e.layer, sizeof e.layer, "nope");
    CHECK(ft_load_pretrained(p, &m, NULL, 0, &map, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "pretrained.map names layer 'nope'");
    ft_model_free(&m);
    ft_config_free(&c);
}

static void test_format(void)
{
    int fmt;
    ft_err err = {0};
    struct {
        const char *name, *bytes, *want;
        size_t n;
    } cases[] = {
        {"x.pt", "PK\x03\x04rest", "zip archive", 8},
        {"y.pt", "\x80\x02}q\x00", "Python pickle", 5},
        {"z.bin", "hello world, not a model", "neither an HDF5 file", 24},
        {"e.bin", "", "neither", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = tpath(2, cases[i].name);
        FILE *f = fopen(p, "wb");
        fwrite(cases[i].bytes, 1, cases[i].n, f);
        fclose(f);
        CHECK(ft_weights_format(p, &fmt, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, cases[i].want);
        CHECK_STR_CONTAINS(err.msg, p);
    }
    CHECK(ft_weights_format(tpath(2, "missing"), &fmt, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "cannot open");
}

/* ---- preprocessing ---------------------------------------------------------------- */

static void expect_cfg_error(const char *extra_model, const char *extra, const char *want)
{
    char text[4096];
    snprintf(text, sizeof text,
             "data = { train = \"x.h5\"; };\n"
             "model = { input = [3, 2, 2]; %s layers = ( { name = \"fc\"; type = \"dense\"; "
             "units = 2; } ); };\n%s",
             extra_model, extra);
    ft_config c;
    ft_err err = {0};
    CHECK(load_cfg(&c, text, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, want);
    ft_config_free(&c);
}

static void test_preprocess_config(void)
{
    ft_config c;
    ft_err err = {0};
    const char *ok = "data = { train = \"x.h5\"; };\n"
                     "model = { input = [3, 2, 2];\n"
                     "  preprocess = { scale = 2; mean = [1.0, 2.5, 3.0]; std = [0.5]; layout = "
                     "\"nhwc\"; };\n"
                     "  layers = ( { name = \"fc\"; type = \"dense\"; units = 2; } ); };\n";
    CHECK(load_cfg(&c, ok, &err) == FT_OK);
    CHECK(c.preprocess.scale == 2.0f && c.preprocess.nmean == 3 && c.preprocess.mean[1] == 2.5f &&
          c.preprocess.nstd == 1 && c.preprocess.std[0] == 0.5f &&
          c.preprocess.layout == FT_LAYOUT_NHWC);
    /* the stored text reads back to the same preprocessing */
    ft_config c2;
    CHECK(load_cfg(&c2, c.text, &err) == FT_OK && c2.preprocess.nmean == 3 &&
          c2.preprocess.layout == FT_LAYOUT_NHWC);
    ft_config_free(&c2);
    ft_config_free(&c);
    /* defaults: the identity */
    CHECK(load_cfg(&c, MODEL_CFG, &err) == FT_OK && ft_preprocess_is_identity(&c.preprocess));
    ft_config_free(&c);

    expect_cfg_error("preprocess = { std = [0.0]; };", "",
                     "test.cfg:2: model.preprocess.std[0] "
                     "must be > 0");
    expect_cfg_error("preprocess = { mean = [1.0, 2.0]; };", "",
                     "model.preprocess.mean has 2 values; give 1 or one per channel (3)");
    expect_cfg_error("preprocess = { std = [1.0, 1.0, 1.0, 1.0]; };", "", "std has 4 values");
    expect_cfg_error("preprocess = { layout = \"nwhc\"; };", "",
                     "unknown layout 'nwhc' in model.preprocess.layout");
    expect_cfg_error("preprocess = { scale = 0; };", "", "scale must be a finite non-zero");
    expect_cfg_error("preprocess = { mean = \"x\"; };", "", "model.preprocess.mean must be a list");
    expect_cfg_error("preprocess = { means = [1.0]; };", "",
                     "unknown key 'means' in model.preprocess (did you mean 'mean'?)");
    /* map */
    expect_cfg_error("", "pretrained = { file = \"w\"; map = { fc2 = \"x\"; }; };",
                     "pretrained.map names layer 'fc2', which is not in model.layers (did you "
                     "mean 'fc'?)");
    expect_cfg_error("", "pretrained = { file = \"w\"; map = { fc = 3; }; };",
                     "pretrained.map must be a group of strings");
    expect_cfg_error("", "pretrained = { file = \"w\"; map = [\"fc\"]; };",
                     "pretrained.map must be a group of strings");

    char text[1024];
    snprintf(text, sizeof text,
             "data = { train = \"x.h5\"; };\nmodel = { input = [4]; preprocess = { layout = "
             "\"nhwc\"; }; layers = ( { name = \"fc\"; type = \"dense\"; units = 2; } ); };\n");
    CHECK(load_cfg(&c, text, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "layout \"nhwc\" needs a [channels, height, width] model.input");
    snprintf(text, sizeof text,
             "%spretrained = { file = \"w\"; map = { conv1 = \"a\"; fc = \"a\"; }; };\n",
             MODEL_CFG);
    CHECK(load_cfg(&c, text, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "pretrained.map maps both 'conv1' and 'fc' to \"a\"");
}

static void test_preprocess_apply(void)
{
    ft_shape in = ft_shape3(3, 2, 2);
    ft_preprocess p;
    ft_preprocess_init(&p);
    CHECK(ft_preprocess_is_identity(&p));
    float mean[3] = {1, 2, 3}, std[3] = {0.5f, 2, 4};
    p.scale = 2;
    p.mean = mean;
    p.std = std;
    p.nmean = p.nstd = 3;
    ft_err err = {0};
    CHECK(ft_preprocess_check(&p, &in, &err) == FT_OK);
    /* two NCHW samples: x[s][c][k] = 10 s + 4 c + k */
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)(10 * (i / 12) + i % 12);
    CHECK(ft_preprocess_apply(&p, &in, x, 2, &err) == FT_OK);
    int ok = 1;
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 4; k++) {
                float v = (float)(10 * s + 4 * c + k);
                ok &= x[s * 12 + c * 4 + k] == (v * 2 - mean[c]) / std[c];
            }
    CHECK(ok);
    /* NHWC: stored [H, W, C] -> [C, H, W]; one mean/std for every channel */
    p.layout = FT_LAYOUT_NHWC;
    p.nmean = p.nstd = 1;
    p.scale = 1;
    float h[12];
    for (int i = 0; i < 12; i++)
        h[i] = (float)i; /* (hw, c) = i / 3, i % 3 */
    CHECK(ft_preprocess_apply(&p, &in, h, 1, &err) == FT_OK);
    ok = 1;
    for (int c = 0; c < 3; c++)
        for (int hw = 0; hw < 4; hw++)
            ok &= h[c * 4 + hw] == ((float)(hw * 3 + c) - 1.0f) / 0.5f;
    CHECK(ok);
    /* nothing to do for n = 0 */
    CHECK(ft_preprocess_apply(&p, &in, NULL, 0, &err) == FT_OK);
    /* a zeroed struct is the identity */
    ft_preprocess z;
    memset(&z, 0, sizeof z);
    CHECK(ft_preprocess_is_identity(&z));
    CHECK(strcmp(ft_layout_name(FT_LAYOUT_NHWC), "nhwc") == 0);
}

/* A dataset of [N, H, W, C] samples read through the hook. */
static void test_dataset_hook(void)
{
    ft_err err = {0};
    const char *p = tpath(3, "nhwc.h5");
    ft_dataset_writer w;
    ft_shape hwc = ft_shape3(2, 2, 3);
    float x[24];
    int y[2] = {0, 1};
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    CHECK(ft_dataset_create(&w, p, 2, &hwc, 2, &err) == FT_OK &&
          ft_dataset_append(&w, x, y, 2, &err) == FT_OK && ft_dataset_finish(&w, &err) == FT_OK);
    ft_dataset d;
    CHECK(ft_dataset_open(&d, p, NULL, &err) == FT_OK);
    ft_preprocess pp;
    ft_preprocess_init(&pp);
    pp.scale = 0.5f;
    pp.layout = FT_LAYOUT_NHWC;
    ft_shape chw = ft_shape3(3, 2, 2);
    CHECK(ft_dataset_set_preprocess(&d, &pp, &chw, &err) == FT_OK);
    float out[24];
    int yo[2];
    uint64_t idx[2] = {1, 0};
    CHECK(ft_dataset_read(&d, idx, 2, out, yo, &err) == FT_OK);
    int ok = yo[0] == 1 && yo[1] == 0;
    for (int c = 0; c < 3; c++)
        for (int hw = 0; hw < 4; hw++)
            ok &= out[c * 4 + hw] == (float)(12 + hw * 3 + c) * 0.5f &&
                  out[12 + c * 4 + hw] == (float)(hw * 3 + c) * 0.5f;
    CHECK(ok);
    /* layout checks: nchw with [H, W, C] data is refused with a hint ... */
    pp.layout = FT_LAYOUT_NCHW;
    CHECK(ft_dataset_set_preprocess(&d, &pp, &chw, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "set model.preprocess.layout = \"nhwc\"");
    /* ... as is nhwc for a model whose [C, H, W] the data does not fit */
    pp.layout = FT_LAYOUT_NHWC;
    ft_shape other = ft_shape3(2, 2, 3);
    CHECK(ft_dataset_set_preprocess(&d, &pp, &other, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "expects [2, 3, 2]");
    /* detached: raw values */
    CHECK(ft_dataset_set_preprocess(&d, NULL, &chw, &err) == FT_OK);
    CHECK(ft_dataset_read(&d, idx, 1, out, yo, &err) == FT_OK && out[1] == 13.0f);
    ft_dataset_close(&d);
}

int main(void)
{
    test_load();
    test_format();
    test_preprocess_config();
    test_preprocess_apply();
    test_dataset_hook();
    return tu_done("test_pretrained");
}
